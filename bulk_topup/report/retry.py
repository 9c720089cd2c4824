"""The Retry sheet on its own: the rows to send again as a ready order sheet, for a new batch.

The same lines as the results workbook's Retry sheet (`facts.retry_rows`: refunded rows with the
first suggested offer filled in, the cards a partly filled gift order did not deliver), with the
order columns under the headers the sheet reader knows and the user's own columns beside them;
every cell text, so a phone number keeps its leading zero.
"""

from __future__ import annotations

from pathlib import Path

import xlsxwriter

from ..i18n import _, pgettext
from ..journal import Journal, RowState
from ..sheet import ORDER_COLUMNS
from ..template import order_header
from .facts import retry_rows
from .sheets import fit_width
from .words import Columns

S = RowState


def retry_table(journal: Journal) -> tuple[list[str], list[list[str]]]:
    """(headers, lines) of the Retry sheet, every value text ("" where empty)."""
    columns = Columns.of(journal)
    own = [c for c in columns.own if c in columns.filled]
    headers = [order_header(c) for c in ORDER_COLUMNS] + [columns.header(c) for c in own]
    headers += [_("original row"), _("original ref")]
    lines = []
    for r, line in retry_rows(journal.iter_rows([S.REFUNDED, S.PARTIALLY_FILLED])):
        cells = dict(r.input)
        values = [line.get(c) for c in ORDER_COLUMNS] + [cells.get(c) for c in own]
        values += [r.sheet_row, r.ref]
        lines.append(["" if v is None else str(v) for v in values])
    return headers, lines


def write_retry_sheet(journal: Journal, path: Path) -> Path:
    """Write the Retry sheet to `path` as an xlsx order sheet of its own. Returns the path."""
    headers, lines = retry_table(journal)
    wb = xlsxwriter.Workbook(str(path), {"strings_to_numbers": False, "strings_to_formulas": False})
    try:
        ws = wb.add_worksheet(pgettext("sheet", "Retry"))
        bold = wb.add_format({"bold": True})
        text = wb.add_format({"num_format": "@"})
        for j, header in enumerate(headers):
            ws.write_string(0, j, header, bold)
            ws.set_column(j, j, fit_width(header, [line[j] for line in lines], least=10), text)
        for i, line in enumerate(lines, start=1):
            for j, value in enumerate(line):
                ws.write_string(i, j, value, text)
        ws.freeze_panes(1, 0)
    finally:
        wb.close()
    return path
