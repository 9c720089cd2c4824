"""A sheet's rows to validated orders: each row through the rules of its kind, totals lines
skipped, every order given its ref and its identity, and a summary (rows per kind, face value and
cost per operator and plan, duplicates, what the catalog could not check)."""

from __future__ import annotations

from typing import Any

from .catalog import Catalog
from .i18n import N_, _
from .identity import assign_persons, assign_recipients, assign_refs
from .orders import KINDS, Order, Problem, Validation, totals_line
from .rules import check_gift_stock, check_row
from .sheet import Sheet


def build_orders(
    sheet: Sheet, batch: str, catalog: Catalog | None, *, allow_duplicates: bool = False
) -> Validation:
    """Every row of `sheet` as an `Order`, validated against `catalog`, with its ref."""
    catalog = catalog or Catalog(missing=["plans", "internet", "gift", "gift_types"])
    labels = sheet.labels
    orders: list[Order] = []
    skipped: list[Problem] = []
    for row in sheet.rows:
        total = totals_line(row, labels)
        if total:
            skipped.append(total)
        else:
            orders.append(check_row(row, len(orders), catalog, labels))
    check_gift_stock(orders, catalog)
    assign_persons(orders)
    duplicates = assign_refs(orders, batch, allow_duplicates)
    assign_recipients(orders)
    notes = _catalog_notes(catalog)
    summary = summarise(orders, duplicates)
    summary["warnings"] += len(skipped)
    summary["skipped"] = [{"row": p.row, "why": p.message} for p in skipped]
    return Validation(orders, notes, summary, list(sheet.notes), skipped, list(catalog.missing))


#: Each part of the catalog in words, and what a row is checked against in it.
_CATALOG_PARTS = {
    "plans": (N_("mobile plans"), N_("plan codes, amounts and operators")),
    "internet": (N_("internet products"), N_("card values and stock")),
    "gift": (N_("gift catalog"), N_("gift products")),
    "gift_types": (N_("gift card types and stock"), N_("gift types and stock")),
}


def _catalog_notes(catalog: Catalog) -> list[str]:
    """What could not be checked, and what was checked against an old cache (in the reader's
    language: notes are shown, never stored)."""
    notes = []
    for part in catalog.missing:
        name, checks = _CATALOG_PARTS[part]
        notes.append(
            _(
                "the {part} could not be loaded (API unreachable, no cache): {checks} were NOT "
                "checked"
            ).format(part=_(name), checks=_(checks))
        )
    for part in catalog.stale:
        age = catalog.age(part) or 0
        notes.append(
            _("the {part} come from a cache {age} old (API unreachable)").format(
                part=_(_CATALOG_PARTS[part][0]), age=_age(age)
            )
        )
    return notes


def _age(seconds: float) -> str:
    if seconds < 120:
        return _("{n} s").format(n=f"{seconds:.0f}")
    if seconds < 7200:
        return _("{n} min").format(n=f"{seconds / 60:.0f}")
    if seconds < 172800:
        return _("{n} h").format(n=f"{seconds / 3600:.0f}")
    return _("{n} days").format(n=f"{seconds / 86400:.0f}")


def summarise(orders: list[Order], duplicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per kind, face value and cost per operator and product, duplicates."""
    per_kind: dict[str, dict[str, int]] = {k: {"valid": 0, "invalid": 0} for k in KINDS}
    per_product: dict[str, dict[str, Any]] = {}
    for o in orders:
        per_kind[o.kind]["valid" if o.valid else "invalid"] += 1
        if not o.valid:
            continue
        group = o.operator or o.product if o.kind == "mobile" else o.label or o.product
        key = f"{o.kind}: {group} / {o.product}" if o.kind == "mobile" else f"{o.kind}: {group}"
        entry = per_product.setdefault(key, {"rows": 0, "face_value": 0.0, "cost": 0.0})
        entry["rows"] += 1
        entry["face_value"] = round(entry["face_value"] + o.face_value, 2)
        entry["cost"] = round(entry["cost"] + o.cost, 2)
    valid = [o for o in orders if o.valid]
    return {
        "rows": len(orders),
        "valid": len(valid),
        "invalid": len(orders) - len(valid),
        "warnings": sum(len(o.warnings) for o in orders),
        "per_kind": per_kind,
        "per_product": dict(sorted(per_product.items())),
        "face_value": round(sum(o.face_value for o in valid), 2),
        "cost": round(sum(o.cost for o in valid), 2),
        "duplicates": duplicates,
    }
