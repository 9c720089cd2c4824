"""The plan file: what a batch will send, written once, read aloud, signed byte for byte.

`bulk-topup plan` writes it; `approve` signs its exact bytes; `run --plan` compares the sheet, the
rows, the environment and the prices with it before anything is sent.

The file is JSON in one canonical form (a format name with a version, sorted keys, one top-level
key and one row per line, UTF-8, one final newline): the same content always gives the same
bytes, so the sha256 of the file is the plan's identity and what the approvers sign. A file whose
bytes are not the canonical form of its own content was edited after it was written and is
refused. The digest a person reads aloud is the first 16 hex digits of that sha256, in groups of
four. Golden tests pin the form: changing it would make every plan already approved unreadable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .catalog import Catalog
from .errors import InvalidRowsError, RefusedError, UsageError
from .i18n import _, shown
from .orders import Order, Validation
from .sheet import ALIASES, Sheet

PLAN_FORMAT = "bulk_topup.plan.v1"
MAX_PLAN_BYTES = 512 * 1024 * 1024
#: The catalog parts a kind of order is priced from.
PRICE_PARTS = {"mobile": ("plans",), "internet": ("internet",), "giftcard": ("gift",)}


def _compact(value: Any) -> bytes:
    text = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return text.encode("utf-8")


def encode(data: dict[str, Any]) -> bytes:
    """The canonical bytes of a plan's content: one top-level key per line, sorted, and each row
    of a list on a line of its own, compact. Written by hand rather than with `json.dumps(...,
    indent=...)`, whose pretty printer is pure Python: a 100,000-row plan took seconds and
    hundreds of MB that way. Here every value goes through the C encoder and is joined as UTF-8
    bytes (one emoji in a plan name makes a Python string 4 bytes a character), and a plan reads,
    and diffs, one row per line."""
    lines = []
    for key in sorted(data):
        value = data[key]
        if isinstance(value, list) and value:
            inner = b",\n".join(_compact(item) for item in value)
            lines.append(b"".join([_compact(key), b":[\n", inner, b"\n]"]))
        else:
            lines.append(_compact(key) + b":" + _compact(value))
    return b"".join([b"{\n", b",\n".join(lines), b"\n}\n"])


def digest_of(sha256_hex: str) -> str:
    """`3f2a91bc07de55aa...` -> `3F2A 91BC 07DE 55AA`: short enough to read over the phone."""
    head = sha256_hex[:16].upper()
    return " ".join(head[i : i + 4] for i in range(0, 16, 4))


def recipient(order: Order) -> str | None:
    """Who a row pays, as the journal records it: kind and normalised number (None for gifts)."""
    if order.kind == "mobile":
        return f"mobile:{order.target}"
    if order.kind == "internet":
        return f"internet:{order.product}:{order.target}"
    return None


def price_key(kind: str, product: str, target: str, amount: int | None) -> str:
    """The catalog entry a row is priced from: a plan, an internet card, a gift type."""
    if kind == "mobile":
        return product
    if kind == "internet":
        return f"{product} {amount}"
    return f"{target} {product}"


@dataclass(frozen=True)
class Plan:
    """A plan as read or written: its content and the exact bytes that were (or will be) signed."""

    data: dict[str, Any]
    raw: bytes
    path: Path | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    @property
    def digest(self) -> str:
        return digest_of(self.sha256)

    @property
    def batch(self) -> str:
        return str(self.data["batch"])

    @property
    def rows(self) -> list[dict[str, Any]]:
        return list(self.data["rows"])

    @property
    def totals(self) -> dict[str, Any]:
        return dict(self.data["totals"])

    @property
    def preparer(self) -> str:
        return str(self.data["prepared_by"])

    @property
    def face_value(self) -> float:
        return float(self.data["totals"]["face_value"])


def _row(order: Order, extra: list[str]) -> dict[str, Any]:
    person = {c: order.cells.get(c, "") for c in extra if order.cells.get(c, "").strip()}
    return {
        "row": order.row,
        "ref": order.ref,
        "kind": order.kind,
        "recipient": recipient(order),
        "target": order.target,
        "product": order.product,
        "amount": order.amount,
        "quantity": order.quantity,
        "face_value": order.face_value,
        "cost": order.cost,
        "label": order.label,
        "operator": order.operator or None,
        "person": person,
    }


def prices_used(orders: list[Order], catalog: Catalog) -> dict[str, dict[str, float | None]]:
    """The catalog price behind every valid row: a plan's cost factor (None when the API gives
    none: face value is charged), an internet card's cost, a gift type's price."""
    prices: dict[str, dict[str, float | None]] = {}
    for o in orders:
        key = price_key(o.kind, o.product, o.target, o.amount)
        price: float | None
        if o.kind == "mobile":
            plan = catalog.plans.get(o.product)
            price = plan.cost if plan else None
        elif o.kind == "internet":
            product = catalog.internet_product(o.product, o.amount or 0)
            price = product.cost if product else None
        else:
            gift_type = catalog.gift_type(o.target, o.product)
            price = gift_type.price if gift_type else None
        prices.setdefault(o.kind, {})[key] = price
    return prices


def totals_of(validation: Validation) -> dict[str, Any]:
    per_kind: dict[str, dict[str, Any]] = {}
    for o in validation.valid:
        entry = per_kind.setdefault(o.kind, {"rows": 0, "face_value": 0.0, "cost": 0.0})
        entry["rows"] += 1
        entry["face_value"] = round(entry["face_value"] + o.face_value, 2)
        entry["cost"] = round(entry["cost"] + o.cost, 2)
    summary = validation.summary
    return {
        "rows": len(validation.valid),
        "skipped": len(validation.invalid),
        "face_value": summary["face_value"],
        "cost": summary["cost"],
        "per_kind": per_kind,
        "per_product": summary["per_product"],
    }


def build_plan(
    sheet: Sheet,
    validation: Validation,
    catalog: Catalog,
    *,
    sheet_bytes: bytes,
    batch: str,
    api_url: str,
    environment: str,
    preparer: str,
    prepared_at: str,
    skip_invalid: bool = False,
    allow_duplicates: bool = False,
) -> Plan:
    """The plan of a validated sheet. Raises InvalidRowsError (exit 3) for invalid rows unless
    `skip_invalid`, RefusedError when the prices are not fresh from the API, InvalidRowsError
    (exit 3: nothing because of the sheet) when no row is left to send."""
    if validation.invalid and not skip_invalid:
        raise InvalidRowsError(
            _(
                "{n} invalid rows; no plan was written (fix them, or pass --skip-invalid to plan "
                "the valid rows only)"
            ).format(n=len(validation.invalid)),
            validation.problems,
        )
    unsure = sorted(set(catalog.missing) | set(catalog.stale))
    if unsure:
        raise RefusedError(
            _(
                "the {parts} prices could not be fetched from the API just now; a plan records "
                "the current prices, so no plan was written (try again when the API answers)"
            ).format(parts=", ".join(unsure))
        )
    if not validation.valid:
        raise InvalidRowsError(_("the sheet has no valid rows: there is nothing to plan"))
    extra = [c for c in sheet.columns if c not in ALIASES]
    data = {
        "format": PLAN_FORMAT,
        "batch": batch,
        "sheet": {
            "file": sheet.path.name,
            "sha256": hashlib.sha256(sheet_bytes).hexdigest(),
            "size": len(sheet_bytes),
            "worksheet": sheet.name or None,
        },
        "api_url": api_url,
        "environment": environment,
        "prepared_by": preparer,
        "prepared_at": prepared_at,
        "options": {"skip_invalid": skip_invalid, "allow_duplicates": allow_duplicates},
        "rows": [_row(o, extra) for o in validation.valid],
        "skipped": [
            {"row": o.row, "problems": [str(p) for p in o.errors]} for o in validation.invalid
        ],
        "prices": prices_used(validation.valid, catalog),
        "totals": totals_of(validation),
    }
    return Plan(data, encode(data))


def default_plan_path(sheet: str | Path, batch: str) -> Path:
    """`<sheet>-<batch>.plan.json` next to the sheet."""
    from .refs import batch_slug

    p = Path(sheet)
    return p.with_name(f"{p.stem}-{batch_slug(batch)}.plan.json")


def signatures_path(plan_path: str | Path) -> Path:
    """Where a plan's approvals are kept: beside it, as PLAN.sig."""
    p = Path(plan_path)
    return p.with_name(p.name + ".sig")


def write_plan(plan: Plan, path: Path) -> Path:
    """Write the plan's bytes (temp file, then rename). Refuses to replace a plan that has been
    signed: its signatures would be left beside a different plan."""
    if signatures_path(path).exists():
        raise UsageError(
            _(
                "{path} has signatures ({signatures}); write the new plan to another file "
                "(--out), or remove the old plan and its signatures first"
            ).format(path=path, signatures=signatures_path(path).name)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Readable as the umask allows: approvers on other accounts read the plan; it holds no secret.
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(plan.raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def read_plan(path: str | Path) -> Plan:
    """Read a plan file and check it is one, whole and untouched (canonical bytes)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_PLAN_BYTES:
            raise UsageError(_("{path} is too large to be a plan file").format(path=path))
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(_("{path}: no such plan file").format(path=path)) from None
    except OSError as e:
        raise UsageError(
            _("{path}: cannot be read ({reason})").format(path=path, reason=e.strerror)
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(
            _("{path} is not a plan file (not JSON); make one with bulk-topup plan").format(
                path=path
            )
        ) from None
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise UsageError(
            _(
                "{path} is not a plan file of this bulk-topup (format {found!r}, expected "
                "{expected!r}); make one with bulk-topup plan"
            ).format(path=path, found=found, expected=PLAN_FORMAT)
        )
    missing = [k for k in ("batch", "sheet", "api_url", "environment", "prepared_by", "rows",
                           "prices", "totals") if k not in data]  # fmt: skip
    if missing:
        raise UsageError(
            _("{path} is not a whole plan: it has no {missing}").format(
                path=path, missing=", ".join(missing)
            )
        )
    if encode(data) != raw:
        raise UsageError(
            _(
                "{path} was edited after bulk-topup plan wrote it (its bytes are not the form "
                "plan writes); make a new plan instead of editing one"
            ).format(path=path)
        )
    return Plan(data, raw, path)


def row_differences(plan: Plan, validation: Validation, limit: int = 5) -> list[str]:
    """How the sheet's valid rows differ from the plan's, in words (empty: the same rows)."""
    planned = {r["ref"]: r for r in plan.rows}
    now = {o.ref: o for o in validation.valid}
    found: list[str] = []
    for ref, r in planned.items():
        o = now.get(ref)
        if o is None:
            found.append(
                _("row {row} of the plan (ref {ref}) is not in the sheet").format(
                    row=r["row"], ref=ref
                )
            )
            continue
        for name, want, have in (
            ("kind", r["kind"], o.kind),
            ("number", r["target"], o.target),
            ("product", r["product"], o.product),
            ("amount", r["amount"], o.amount),
            ("quantity", r["quantity"], o.quantity),
        ):
            if want != have:
                found.append(
                    _("row {row} (ref {ref}): {name} is {have} in the sheet, {want} in the plan")
                    .format(row=o.row, ref=ref, name=name, have=have, want=want)
                )  # fmt: skip
    for ref, o in now.items():
        if ref not in planned:
            found.append(
                _("row {row} ({order}, ref {ref}) is not in the plan").format(
                    row=o.row, order=shown(o.describe()), ref=ref
                )
            )
    more = len(found) - limit
    return found[:limit] + ([_("and {n} more differences").format(n=more)] if more > 0 else [])


@dataclass
class Prepared:
    """A sheet read and validated against prices fetched just now, and the key's environment."""

    sheet: Sheet
    validation: Validation
    catalog: Catalog
    environment: str
    sheet_bytes: bytes


async def prepare(
    client: Any,
    sheet_path: str | Path,
    *,
    batch: str,
    state_dir: Path,
    api_url: str,
    sheet_name: str | None = None,
    allow_duplicates: bool = False,
) -> Prepared:
    """Read and validate a sheet for a plan. Reads only (the key's type, the catalog): nothing is
    sent. The catalog is fetched fresh, never from the cache, because the plan records prices
    (`plan.validate_sheet` would take a fresh-enough cache, hence its steps are composed here).
    Raises SheetError when the file changes while it is read, RefusedError for a refused key."""
    from .catalog import load_catalog
    from .errors import AuthError, SheetError
    from .plan import needed_parts
    from .sheet import read_sheet
    from .validation import build_orders

    try:
        key = await client.validate_key()
    except AuthError as e:
        raise RefusedError(
            _("the API refused the key ({code}: {message})").format(code=e.code, message=e.message)
        ) from None
    path = Path(sheet_path)
    try:
        before = path.read_bytes()
    except OSError:
        before = b""  # read_sheet says what is wrong with the file
    sheet = read_sheet(path, sheet_name)
    parts, gifts = needed_parts(sheet)
    catalog = await load_catalog(
        client, state_dir, api_url, parts=parts, gift_products=gifts, refresh=True
    )
    validation = build_orders(sheet, batch, catalog, allow_duplicates=allow_duplicates)
    if path.read_bytes() != before:
        raise SheetError(
            _("{path} changed while it was being read; plan it again once it is saved").format(
                path=path
            )
        )
    return Prepared(sheet, validation, catalog, key.type, before)
