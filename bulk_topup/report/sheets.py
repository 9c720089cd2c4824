"""One printable worksheet, written row by row with xlsxwriter (constant memory).

Each column has a kind (text, wrapped text, money, date-time, count): money is a number with a DA
format, a date-time is an Excel date in the report's time zone, text is always written as text
(a cell reading `=HYPERLINK(...)` stays that text, never becomes a formula). Widths follow what
was written, within each column's bounds; every sheet prints landscape on A4, one page wide, its
header row repeated on every page, with a footer naming the batch, the sheet, the page and the
date it was printed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..i18n import _, current_language

A4 = 9
MONEY_FORMAT = '#,##0.00 "DA"'
#: Dates show to the minute (the cell holds the second: a filter or a sum sees it).
DATE_FORMAT = {"fr": "dd/mm/yyyy hh:mm", "en": "yyyy-mm-dd hh:mm"}
DATE_WIDTH = 15.5


@dataclass(frozen=True)
class Col:
    """A column: its heading, its kind, its width (in characters), and whether its text is set
    small (long identifiers: refs and order ids)."""

    header: str
    kind: str = "text"  # text | wrap | money | date | count
    width: float = 12
    small: bool = False


class Styles:
    """The workbook's formats, made once (xlsxwriter keeps every format for the file's life)."""

    def __init__(self, wb: Any) -> None:
        date = DATE_FORMAT.get(current_language(), DATE_FORMAT["en"])
        top = {"valign": "top"}
        self.header = wb.add_format(
            {**top, "bold": True, "font_color": "#FFFFFF", "bg_color": "#305496",
             "text_wrap": True, "border": 1}
        )  # fmt: skip
        self.title = wb.add_format({"bold": True, "font_size": 14})
        self.bold = wb.add_format({**top, "bold": True})
        self.text = wb.add_format(top)
        self.wrap = wb.add_format({**top, "text_wrap": True})
        self.small = wb.add_format({**top, "text_wrap": True, "font_size": 8})
        self.money = wb.add_format({**top, "num_format": MONEY_FORMAT})
        self.date = wb.add_format({**top, "num_format": date, "align": "left"})
        self.count = wb.add_format({**top, "num_format": "0", "align": "left"})
        self.total_text = wb.add_format({**top, "bold": True, "top": 2})
        self.total_money = wb.add_format(
            {**top, "bold": True, "top": 2, "num_format": MONEY_FORMAT}
        )
        self.fills: dict[str, Any] = {}

    def fill(self, wb: Any, colour: str) -> Any:
        if colour not in self.fills:
            self.fills[colour] = wb.add_format({"bg_color": f"#{colour}"})
        return self.fills[colour]

    def of(self, col: Col) -> Any:
        if col.small:
            return self.small
        return {"wrap": self.wrap, "money": self.money, "date": self.date,
                "count": self.count}.get(col.kind, self.text)  # fmt: skip


def footer_text(batch: str) -> str:
    """The printed footer: batch and sheet left, page centre, print date right. `&` is the
    footer's control character: a batch key holding one is escaped."""
    left = _("batch {batch}").format(batch=batch.replace("&", "&&")[:60]) + " - &A"
    centre = _("page &P of &N")
    right = _("printed on &D at &T")
    return f"&L{left}&C{centre}&R{right}"


def print_setup(ws: Any, batch: str, *, header_rows: int = 1, one_page: bool = False) -> None:
    ws.set_landscape()
    ws.set_paper(A4)
    ws.set_margins(left=0.4, right=0.4, top=0.5, bottom=0.6)
    ws.fit_to_pages(1, 1 if one_page else 0)
    if header_rows:
        ws.repeat_rows(0, header_rows - 1)
    ws.set_footer(footer_text(batch))
    ws.hide_gridlines(0)  # gridlines on screen and on paper: a printed table needs its lines


#: Points per line of text, and characters per unit of column width, at 11 and 8 points. The
#: widths are fixed before the first line is written, so each line's height can be set as it is
#: written (LibreOffice does not grow a row to fit wrapped text, Excel only on edit).
LINE_HEIGHT = {False: 15.0, True: 11.5}
CHARS_PER_UNIT = {False: 1.0, True: 1.4}


def lines_needed(text: str, col: Col) -> int:
    per_line = max(1, int(col.width * CHARS_PER_UNIT[col.small]))
    return sum(max(1, -(-len(part) // per_line)) for part in text.split("\n"))


def fit_width(header: str, values: Iterable[str], least: float = 8, most: float = 40) -> float:
    """The width of a column that does not wrap (an order sheet's): its header and its longest
    value whole, so a phone number or a plan code is not cut on screen or on paper."""
    longest = max((len(v) for v in values), default=0)
    return max(least, min(most, max(len(header), longest) + 2))


class Table:
    """A worksheet holding one table: a header row, then a line per item, then a totals line."""

    def __init__(self, wb: Any, name: str, styles: Styles, batch: str, cols: list[Col]) -> None:
        self.wb = wb
        self.ws = wb.add_worksheet(name)
        self.name = name
        self.styles = styles
        self.cols = cols
        self.formats = [styles.of(c) for c in cols]
        self.wraps = [c.kind == "wrap" for c in cols]
        print_setup(self.ws, batch)
        self.ws.freeze_panes(1, 0)
        for i, col in enumerate(cols):
            self.ws.set_column(i, i, col.width)
        header_lines = max(
            (lines_needed(c.header, Col(c.header, width=c.width)) for c in cols), default=1
        )
        self.ws.set_row(0, LINE_HEIGHT[False] * header_lines)
        for i, col in enumerate(cols):
            self.ws.write_string(0, i, col.header, styles.header)
        self.row = 1

    def append(self, values: list[Any]) -> None:
        """One line; None and "" leave the cell empty."""
        ws, r, cols = self.ws, self.row, self.cols
        height = LINE_HEIGHT[False]
        for i, value in enumerate(values):
            if self.wraps[i] and isinstance(value, str) and len(value) > cols[i].width:
                col = cols[i]
                height = max(height, LINE_HEIGHT[col.small] * lines_needed(value, col))
        if height > LINE_HEIGHT[False]:
            ws.set_row(r, height)
        for i, value in enumerate(values):
            if value is None or value == "":
                continue
            kind = cols[i].kind
            if kind == "date" and isinstance(value, datetime):
                ws.write_datetime(r, i, value, self.formats[i])
            elif (
                kind in ("money", "count")
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                ws.write_number(r, i, value, self.formats[i])
            else:
                ws.write_string(r, i, str(value), self.formats[i])
        self.row += 1

    def total(self, label: str, values: dict[int, Any]) -> None:
        """The totals line: `label` in the first column, sums (money) or words elsewhere."""
        styles = self.styles
        self.ws.write_string(self.row, 0, label, styles.total_text)
        for i in range(1, len(self.cols)):
            value = values.get(i)
            if isinstance(value, int | float) and self.cols[i].kind == "money":
                self.ws.write_number(self.row, i, value, styles.total_money)
            elif value is not None:
                self.ws.write_string(self.row, i, str(value), styles.total_text)
            else:
                self.ws.write_blank(self.row, i, None, styles.total_text)
        self.row += 1

    def colour(self, col: int, fills: dict[str, str], last_row: int | None = None) -> None:
        """A fill per value of column `col` as conditional formatting: one rule per value, not
        a format per cell (styling 100,000 cells one by one costs more than writing them)."""
        last = (self.row - 1) if last_row is None else last_row
        if last < 1:
            return
        for value, colour in fills.items():
            quoted = '"' + value.replace('"', '""') + '"'
            self.ws.conditional_format(
                1, col, last, col,
                {"type": "cell", "criteria": "==", "value": quoted,
                 "format": self.styles.fill(self.wb, colour)},
            )  # fmt: skip

    def finish(self, filter_rows: int | None = None) -> None:
        """Filters over the data lines (not the totals line)."""
        last = self.row - 1 if filter_rows is None else filter_rows
        self.ws.autofilter(0, 0, max(last, 1), len(self.cols) - 1)
