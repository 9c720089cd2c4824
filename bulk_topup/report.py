"""The results, rebuilt from the journal at any time: an xlsx workbook, or CSV, or JSON.

The workbook is what a finance team reads and files: a Summary, one Results line per input row in
input order, the delivered Gift cards, what Needs attention and why, and a Retry sheet that is a
ready order sheet for the refunded rows. Every text cell is written as text (a cell reading
`=HYPERLINK(...)` stays that text), the file is written under a temporary name, made 0600 (card
codes are cash) and renamed over the old one, so a crash never leaves a half-written workbook.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import xlsxwriter

from .journal import FINAL, Journal, Row, RowState
from .sheet import ORDER_COLUMNS

S = RowState
STATE_ORDER = [
    S.FULFILLED,
    S.PARTIALLY_FILLED,
    S.REFUNDED,
    S.REJECTED,
    S.INVALID,
    S.UNKNOWN_ERROR,
    S.QUEUED,
    S.UNCERTAIN,
    S.SUBMITTED,
    S.SENDING,
    S.PLANNED,
]
STATE_FILL = {
    S.FULFILLED: "C6EFCE",
    S.PARTIALLY_FILLED: "FFEB9C",
    S.REFUNDED: "FFC7CE",
    S.REJECTED: "FFC7CE",
    S.INVALID: "F4B183",
    S.UNKNOWN_ERROR: "FFD966",
    S.QUEUED: "DDEBF7",
    S.UNCERTAIN: "FFD966",
    S.SUBMITTED: "EDEDED",
    S.SENDING: "EDEDED",
    S.PLANNED: "FFFFFF",
}
NEXT_STEP = {
    S.UNKNOWN_ERROR: (
        "the operator's answer was ambiguous; the provider checks it by hand (1 to 24 h)",
        "do not top up again; run `bulk-topup reconcile` tomorrow",
    ),
    S.QUEUED: (
        "the line is queued at Algérie Télécom; delivery within 48 h",
        "nothing to do; run `bulk-topup reconcile` in a day",
    ),
    S.UNCERTAIN: (
        "it is not known whether the provider took this order",
        "do not send it again by hand; run `bulk-topup reconcile`, and for gift cards "
        "check the provider's order list",
    ),
    S.REFUNDED: ("the provider refunded it", "see the Retry sheet (suggested offer filled in)"),
    S.PARTIALLY_FILLED: (
        "only part of the cards were delivered; the rest was refunded",
        "see the Retry sheet for the missing cards",
    ),
    S.REJECTED: ("the provider refused the request", "fix the row, then send it in a new batch"),
    S.INVALID: ("the row is invalid and was not sent", "fix the row, then send it in a new batch"),
    S.SUBMITTED: ("the provider has not finished it yet", "run `bulk-topup resume` later"),
    S.SENDING: (
        "the run stopped while sending it",
        "run `bulk-topup resume`: it is checked before anything is resent",
    ),
    S.PLANNED: ("not sent yet (the run stopped)", "run `bulk-topup resume`"),
}
RESULT_COLUMNS = [
    "ref",
    "state",
    "provider status",
    "order id",
    "debited (DA)",
    "error code",
    "error message",
    "suggested offers",
    "card code",
    "transaction no.",
    "sent at",
    "settled at",
    "notes",
]
RETRY_COLUMNS = [*ORDER_COLUMNS, "original row", "original ref"]


def default_path(sheet: str | None, batch: str, fmt: str = "xlsx") -> Path:
    """`<sheet name>-<batch>-results.xlsx` next to the input sheet (else in the working dir)."""
    from .refs import batch_slug

    if sheet:
        p = Path(sheet)
        return p.with_name(f"{p.stem}-{batch_slug(batch)}-results.{fmt}")
    return Path(f"{batch_slug(batch)}-results.{fmt}")


def offers_in_words(row: Row) -> str:
    return "; ".join(
        f"{o.get('plan_code')} {o.get('amount')} DA"
        if o.get("amount") is not None
        else str(o.get("plan_code"))
        for o in row.suggested
    )


def error_text(row: Row) -> str:
    parts = [row.error_message or ""]
    if row.refund_message:
        parts.append(row.refund_message)
    if row.state == S.INVALID:
        parts = [
            f"{p['column']}: {p['message']}" for p in row.problems if p.get("severity") == "error"
        ]
    return " | ".join(p for p in parts if p)


def notes_text(row: Row) -> str:
    notes = [
        f"{p['column']}: {p['message']}" for p in row.problems if p.get("severity") == "warning"
    ]
    if not row.in_sheet:
        notes.append("no longer in the sheet, but sent earlier in this batch")
    return " | ".join(notes)


def header_names(journal: Journal, columns: list[str]) -> list[str]:
    """The input columns as the sheet wrote them (`Numéro`, not `phone`)."""
    written = json.loads(journal.get_meta("headers") or "{}")
    return [written.get(c) or c for c in columns]


def result_values(row: Row, columns: list[str]) -> list[Any]:
    """The Results line of a row; an empty field is None (an empty cell costs nothing)."""
    cells = dict(row.input)
    values = (
        [row.sheet_row]
        + [cells.get(c) for c in columns]
        + [
            row.ref,
            row.state.value,
            row.provider_status,
            row.order_id,
            row.debited,
            row.error_code,
            error_text(row),
            offers_in_words(row),
            row.card_code,
            row.num_trans,
            row.sent_at,
            row.settled_at,
            notes_text(row),
        ]
    )
    return [None if v == "" else v for v in values]


def summary(journal: Journal) -> dict[str, Any]:
    meta = journal.meta()
    counts = journal.counts()
    return {
        "batch": meta.get("batch"),
        "sheet": meta.get("sheet"),
        "fingerprint": meta.get("fingerprint"),
        "environment": meta.get("environment"),
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at"),
        "rows": sum(counts.values()),
        "counts": {s.value: counts.get(s.value, 0) for s in STATE_ORDER},
        **journal.totals(),
        "balance_before": _float(meta.get("balance_before")),
        "balance_after": _float(meta.get("balance_after")),
        "stop_reason": meta.get("stop_reason") or None,
    }


def _float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def attention(rows: Iterable[Row]) -> Iterator[tuple[Row, str, str]]:
    for r in rows:
        if r.state in NEXT_STEP:
            reason, step = NEXT_STEP[r.state]
            detail = error_text(r)
            yield r, f"{reason}" + (f" ({detail})" if detail else ""), step


def retry_rows(rows: Iterable[Row]) -> Iterator[dict[str, Any]]:
    """The refunded rows as order sheet lines, the first suggested offer filled in."""
    for r in rows:
        p = r.payload
        line: dict[str, Any] = {"original row": r.sheet_row, "original ref": r.ref}
        if r.state == S.REFUNDED and r.kind == "mobile":
            offer = r.suggested[0] if r.suggested else None
            line.update(
                kind="mobile",
                phone=p["MSSIDN"],
                plan_code=offer["plan_code"] if offer else p["plan_code"],
                amount=(offer.get("amount") if offer else p.get("amount")),
            )
        elif r.state == S.REFUNDED and r.kind == "internet":
            line.update(
                kind="internet", internet_type=p["type"], number=p["number"], value=p["value"]
            )
        elif r.state in (S.REFUNDED, S.PARTIALLY_FILLED) and r.kind == "giftcard":
            missing = p["quantity"] - (r.fulfilled_quantity or 0)
            if missing < 1:
                continue
            line.update(
                kind="giftcard", product_id=p["productId"], type_id=p["typeId"], quantity=missing
            )
        else:
            continue
        yield line


# --- writers -------------------------------------------------------------------------------------


def write_results(journal: Journal, out: str | Path, fmt: str = "xlsx") -> Path:
    """Write the results of `journal` to `out` atomically, mode 0600; returns the path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        if fmt == "xlsx":
            _write_xlsx(journal, Path(tmp))
        elif fmt == "csv":
            _write_csv(journal, Path(tmp))
        elif fmt == "json":
            _write_json(journal, Path(tmp))
        else:
            raise ValueError(f"unknown format {fmt!r}")
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


class _Sheet:
    """One worksheet written row by row; text always as text (`write_string`), never a formula."""

    def __init__(self, wb: Any, name: str, styles: dict[str, Any]) -> None:
        self.ws = wb.add_worksheet(name)
        self.styles = styles
        self.row = 0

    def header(self, names: list[str], widths: list[int]) -> None:
        for i, width in enumerate(widths):
            self.ws.set_column(i, i, width)
        self.ws.freeze_panes(1, 0)
        self.append(names, style=self.styles["header"])

    def append(self, values: list[Any], style: Any = None) -> None:
        for col, value in enumerate(values):
            if value is None or value == "":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.ws.write_string(self.row, col, str(value), style)
            else:
                self.ws.write_number(self.row, col, value, style)
        self.row += 1

    def colour_by_state(self, col: int) -> None:
        """A fill per state as conditional formatting: one rule per state, not a style per
        cell (styling 100,000 cells one by one costs more than writing them)."""
        if self.row < 2:
            return
        for state in STATE_FILL:
            self.ws.conditional_format(
                1, col, self.row - 1, col,
                {"type": "cell", "criteria": "==", "value": f'"{state.value}"',
                 "format": self.styles[state.value]},
            )  # fmt: skip


def _write_xlsx(journal: Journal, path: Path) -> None:
    # constant_memory: rows go to disk as they are written, so 100,000 rows cost no memory.
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    try:
        _fill_workbook(wb, journal)
    finally:
        wb.close()


def _fill_workbook(wb: Any, journal: Journal) -> None:
    info = summary(journal)
    styles = {
        "bold": wb.add_format({"bold": True}),
        "title": wb.add_format({"bold": True, "font_size": 14}),
        "header": wb.add_format({"bold": True, "font_color": "#FFFFFF", "bg_color": "#305496"}),
    }
    for state, colour in STATE_FILL.items():
        styles[state.value] = wb.add_format({"bg_color": f"#{colour}"})

    sheet = _Sheet(wb, "Summary", styles)
    sheet.ws.set_column(0, 0, 26)
    sheet.ws.set_column(1, 1, 48)
    sheet.append(["Batch results"], style=styles["title"])
    for label, key in [
        ("batch", "batch"),
        ("sheet", "sheet"),
        ("sheet fingerprint", "fingerprint"),
        ("environment", "environment"),
        ("started", "started_at"),
        ("finished", "finished_at"),
        ("rows", "rows"),
        ("face value (DA)", "face_value"),
        ("debited (DA)", "debited"),
        ("refunds (DA)", "refunds"),
        ("balance before (DA)", "balance_before"),
        ("balance after (DA)", "balance_after"),
        ("stopped because", "stop_reason"),
    ]:
        sheet.ws.write_string(sheet.row, 0, label, styles["bold"])
        sheet.append([None, info.get(key)])
    sheet.row += 1
    first = sheet.row  # the state table's header row (0-based)
    sheet.append(["state", "rows"], style=styles["bold"])
    for state in STATE_ORDER:
        sheet.ws.write_string(sheet.row, 0, state.value, styles[state.value])
        sheet.append([None, info["counts"][state.value]])
    chart = wb.add_chart({"type": "column"})
    last = first + len(STATE_ORDER)
    chart.add_series({"name": "rows", "categories": ["Summary", first + 1, 0, last, 0],
                      "values": ["Summary", first + 1, 1, last, 1]})  # fmt: skip
    chart.set_title({"name": "Rows per state"})
    chart.set_legend({"none": True})
    sheet.ws.insert_chart("D2", chart)

    sheet = _Sheet(wb, "Results", styles)
    columns = journal.input_columns()
    names = ["sheet row"] + header_names(journal, columns) + RESULT_COLUMNS
    widths = (
        [9]
        + [max(10, min(30, len(c) + 4)) for c in columns]
        + [40, 17, 15, 26, 12, 18, 50, 28, 16, 16, 24, 24, 40]
    )
    sheet.header(names, widths)
    for r in journal.iter_rows():
        sheet.append(result_values(r, columns))
    sheet.ws.autofilter(0, 0, max(sheet.row - 1, 1), len(names) - 1)
    sheet.colour_by_state(1 + len(columns) + 1)

    sheet = _Sheet(wb, "Gift cards", styles)
    sheet.header(
        ["sheet row", "ref", "order id", "product", "type", "card code", "serial"],
        [9, 40, 26, 30, 16, 30, 20],
    )
    for r in journal.iter_rows(with_cards=True):
        for card in r.cards:
            sheet.append([r.sheet_row, r.ref, r.order_id, r.label, r.payload.get("typeId"),
                          card.get("value"), card.get("serial")])  # fmt: skip

    sheet = _Sheet(wb, "Needs attention", styles)
    sheet.header(["sheet row", "ref", "state", "order", "why", "next step"],
                 [9, 40, 17, 40, 70, 60])  # fmt: skip
    for r, why, step in attention(journal.iter_rows(NEXT_STEP)):
        sheet.append([r.sheet_row, r.ref, r.state.value, r.describe(), why, step])
    sheet.colour_by_state(2)

    sheet = _Sheet(wb, "Retry", styles)
    sheet.header(RETRY_COLUMNS, [10, 14, 20, 10, 14, 14, 10, 28, 16, 10, 12, 40])
    for line in retry_rows(journal.iter_rows([S.REFUNDED, S.PARTIALLY_FILLED])):
        # Every cell as text, as in the template: phone numbers keep their leading zero.
        sheet.append([None if line.get(c) is None else str(line.get(c)) for c in RETRY_COLUMNS])


def _csv_safe(value: Any) -> Any:
    """Spreadsheet apps run a CSV cell starting with = + - @ as a formula: make it text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _write_csv(journal: Journal, path: Path) -> None:
    rows = journal.iter_rows()
    columns = journal.input_columns()
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f)
        w.writerow(["sheet row"] + header_names(journal, columns) + RESULT_COLUMNS + ["gift cards"])
        for r in rows:
            cards = "; ".join(f"{c.get('value')} ({c.get('serial')})" for c in r.cards)
            w.writerow([_csv_safe(v) for v in result_values(r, columns) + [cards]])


def _write_json(journal: Journal, path: Path) -> None:
    rows = journal.iter_rows()
    lines: list[dict[str, Any]] = []
    out = {"summary": summary(journal), "rows": lines}
    for r in rows:
        lines.append(
            {
                "sheet_row": r.sheet_row,
                "input": dict(r.input),
                "kind": r.kind,
                "ref": r.ref,
                "state": r.state.value,
                "final": r.state in FINAL,
                "provider_status": r.provider_status,
                "order_id": r.order_id,
                "debited": r.debited,
                "error_code": r.error_code,
                "error_message": error_text(r) or None,
                "suggested_offers": r.suggested,
                "card_code": r.card_code,
                "num_trans": r.num_trans,
                "cards": r.cards,
                "sent_at": r.sent_at,
                "settled_at": r.settled_at,
                "notes": notes_text(r) or None,
            }
        )
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
