"""The results as CSV (a spreadsheet's way in) and as JSON (a program's way in)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from ..i18n import _
from ..journal import FINAL, Journal
from .custody import shown
from .facts import summary
from .settings import ReportSettings
from .words import Columns, error_text, notes_text, operator_of, state_words
from .xlsx import result_layout, result_values

#: A cell starting with one of these is run as a formula by spreadsheet applications (a tab or a
#: carriage return first, then `=` or `@`, is read the same way by some of them).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """A CSV cell a spreadsheet shows as text, never runs: a leading apostrophe where it starts
    like a formula. The apostrophe is what Excel itself uses to mark text, so a number the user
    must read (`+213 778 03 73 40`) stays whole and readable after it; cells that need none
    are left exactly as they were."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Any, decimal: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.2f}".replace(".", decimal)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return neutralise(str(value))


def write_csv(journal: Journal, path: Path, settings: ReportSettings) -> None:
    """One line per input row, the Results sheet's columns and the gift cards; UTF-8 with a
    byte order mark, in the settings' dialect (`excel`: `,` and `1192.50`; `excel-fr`: `;` and
    `1192,50`)."""
    columns = Columns.of(journal)
    dialect = settings.csv
    layout = result_layout(columns, columns.names)
    keys = [key for key, _col in layout]
    header = [col.header for _key, col in layout] + [_("gift cards")]
    with path.open("w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, delimiter=dialect.delimiter, lineterminator="\r\n")
        w.writerow([neutralise(h) for h in header])
        for r in journal.iter_rows():
            cards = "; ".join(
                f"{shown(c.get('value'), settings)} ({c.get('serial')})" for c in r.cards
            )
            values = result_values(r, settings, columns)
            line = [values.get(k) for k in keys] + [cards]
            w.writerow([csv_cell(v, dialect.decimal) for v in line])


def write_json(journal: Journal, path: Path, settings: ReportSettings) -> None:
    """The summary and every row; times stay ISO 8601 UTC as journaled (a program converts)."""
    columns = Columns.of(journal)
    lines: list[dict[str, Any]] = []
    out = {
        "summary": {**summary(journal), "codes_masked": settings.masked},
        "rows": lines,
    }
    for r in journal.iter_rows():
        lines.append(
            {
                "sheet_row": r.sheet_row,
                "input": dict(r.input),
                "kind": r.kind,
                "operator": operator_of(r) or None,
                "product": r.label or None,
                "face_value": r.face_value if r.state.value != "INVALID" else None,
                "ref": r.ref,
                "state": r.state.value,
                "state_words": state_words(r.state),
                "final": r.state in FINAL,
                "provider_status": r.provider_status,
                "order_id": r.order_id,
                "debited": r.debited,
                "error_code": r.error_code,
                "error_message": error_text(r, columns) or None,
                "suggested_offers": r.suggested,
                "card_code": shown(r.card_code, settings),
                "date_traitement": r.date_traitement,
                "num_trans": r.num_trans,
                "cards": [{**c, "value": shown(c.get("value"), settings)} for c in r.cards],
                "sent_at": r.sent_at,
                "settled_at": r.settled_at,
                "notes": notes_text(r, columns) or None,
            }
        )
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
