"""The batch as a whole (the Summary's facts) and the refunded rows as a new order sheet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..journal import Journal, Row, RowState
from .words import STATE_ORDER, stop_reason

S = RowState


def _float(text: str | None) -> float | None:
    try:
        return None if text is None or text == "" else float(text)
    except ValueError:
        return None


def _times(journal: Journal, meta: dict[str, str]) -> tuple[str | None, str | None]:
    """(first start, last start) of the batch.

    `first_started_at` is written once, by the batch's first run; journals of earlier versions
    only have `started_at`, rewritten by every run: there the first POST tells when the batch
    really began, and `started_at` is the last resume when it comes after it.
    """
    first = meta.get("first_started_at") or None
    last = meta.get("last_started_at") or meta.get("started_at") or None
    if first is None:
        (sent,) = journal.db.execute("SELECT MIN(sent_at) FROM rows").fetchone()
        candidates = [t for t in (meta.get("started_at"), sent) if t]
        first = min(candidates) if candidates else None
    if last == first:
        last = None
    return first, last


def _sheet_shown(journal: Journal, sheet: str | None) -> str | None:
    """The sheet as its people know it: a sheet uploaded to the console by the name it was
    uploaded with (its folder under `<state dir>/uploads/` is the server's business)."""
    if not sheet:
        return sheet
    uploads = (journal.path.parent.parent / "uploads").resolve()
    path = Path(sheet)
    if path.parent.parent == uploads:
        return path.name
    return sheet


def summary(journal: Journal) -> dict[str, Any]:
    """The batch in figures: what the Summary sheet and the JSON's `summary` show."""
    meta = journal.meta()
    counts = journal.counts()
    first, last = _times(journal, meta)
    return {
        "batch": meta.get("batch"),
        "sheet": _sheet_shown(journal, meta.get("sheet")),
        "fingerprint": meta.get("fingerprint"),
        "environment": meta.get("environment"),
        "started_at": first,
        "last_started_at": last,
        "finished_at": meta.get("finished_at") or None,
        "rows": sum(counts.values()),
        "counts": {s.value: counts.get(s.value, 0) for s in STATE_ORDER},
        **journal.totals(),
        "balance_before": _float(meta.get("balance_before")),
        "balance_after": _float(meta.get("balance_after")),
        "stop_reason": stop_reason(meta.get("stop_reason"), counts) or None,
    }


def retry_line(r: Row) -> dict[str, Any] | None:
    """A refunded row as an order sheet line (canonical columns), the first suggested offer
    filled in; None when there is nothing to send again."""
    p = r.payload
    if r.state == S.REFUNDED and r.kind == "mobile":
        offer = r.suggested[0] if r.suggested else None
        return {
            "kind": "mobile",
            "phone": p.get("MSSIDN"),
            "plan_code": offer["plan_code"] if offer else p.get("plan_code"),
            "amount": offer.get("amount") if offer else p.get("amount"),
        }
    if r.state == S.REFUNDED and r.kind == "internet":
        return {
            "kind": "internet",
            "internet_type": p.get("type"),
            "number": p.get("number"),
            "value": p.get("value"),
        }
    if r.state in (S.REFUNDED, S.PARTIALLY_FILLED) and r.kind == "giftcard":
        missing = (p.get("quantity") or 0) - (r.fulfilled_quantity or 0)
        if missing < 1:
            return None
        return {
            "kind": "giftcard",
            "product_id": p.get("productId"),
            "type_id": p.get("typeId"),
            "quantity": missing,
        }
    return None


def retry_rows(rows: Iterable[Row]) -> Iterator[tuple[Row, dict[str, Any]]]:
    for r in rows:
        line = retry_line(r)
        if line is not None:
            yield r, line
