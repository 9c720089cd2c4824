"""ODS workbooks measured from `content.xml`, streamed: each table's extent (repeated rows and
cells counted), formulas, error cells and hidden rows."""

from __future__ import annotations

import re
from html import unescape
from typing import IO

from .extent import XML_ATTRS as _ATTRS
from .extent import XML_PREFIX as _P
from .extent import Extent, SheetScan, chunks

# --- ODS -----------------------------------------------------------------------------------------

_ODS_TOKEN = re.compile(
    rb"<(/?)" + _P + rb"(table|table-row|table-cell|covered-table-cell)(?=[\s/>])" + _ATTRS
    + rb"(/?)>"
)  # fmt: skip
_ODS_ROW_END = re.compile(rb"</" + _P + rb"table-row>")
_REPEAT = re.compile(rb"number-(rows|columns)-repeated\s*=\s*[\"'](\d{1,9})[\"']")
_NAME = re.compile(rb"""\b(?:[\w.-]+:)?name\s*=\s*(?:"([^"]*)"|'([^']*)')""")


_VISIBILITY = re.compile(rb"""\bvisibility\s*=\s*["'](collapse|filter)["']""")
_ODS_FORMULA = re.compile(rb"""\bformula\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ODS_ERROR = re.compile(rb"""\bvalue-type\s*=\s*["']error["']""")
_TAGS = re.compile(rb"<[^>]*>")
_ODS_CELL_END = re.compile(rb"</" + _P + rb"table-cell>")


def scan_ods(stream: IO[bytes], chunk: int = 4 << 20) -> list[tuple[Extent, SheetScan]]:
    """The extent of every table of an ODS `content.xml`, repeated rows and cells counted, with
    its formulas, error cells and hidden (or filtered out) rows."""
    tables: list[tuple[Extent, SheetScan]] = []
    current: Extent | None = None
    scan = SheetScan()
    hidden: list[tuple[int, int]] = []
    depth = 0  # tables nested in cells are part of their cell, not sheets
    row, col, row_repeat, cell_open = -1, 0, 1, None
    stop = False

    def finish() -> None:
        if current is not None:
            for first, count in hidden:
                scan.hide(first, count, current)
            hidden.clear()

    for piece in chunks(stream, _ODS_ROW_END, chunk):
        for m in _ODS_TOKEN.finditer(piece):
            closing, tag, attrs, empty = m.group(1), m.group(2), m.group(3), m.group(4)
            if tag == b"table":
                if closing:
                    depth -= 1
                elif not empty:
                    depth += 1
                    if depth == 1:
                        finish()
                        found = _NAME.search(attrs)
                        title = (found.group(1) or found.group(2) or b"") if found else b""
                        current = Extent(unescape(title.decode("utf-8", "replace")))
                        scan = SheetScan()
                        tables.append((current, scan))
                        row = -1
                continue
            if depth != 1 or current is None or stop:
                continue
            if tag == b"table-row":
                if closing:
                    row += row_repeat - 1
                    continue
                row += 1
                col, row_repeat = 0, _repeat(attrs, b"rows")
                if _VISIBILITY.search(attrs):
                    hidden.append((row + 1, row_repeat))
                if empty:
                    row += row_repeat - 1
                continue
            if closing:  # </table-cell>: the cell had content
                if cell_open is not None:
                    start, n = cell_open
                    if not current.add(row, start, row_repeat, n):
                        stop = True
                    cell_open = None
                continue
            n = _repeat(attrs, b"columns")
            if b"formula" in attrs:
                f = _ODS_FORMULA.search(attrs)
                if f:
                    text = unescape((f.group(1) or f.group(2) or b"").decode("utf-8", "replace"))
                    text = re.sub(r"^(?:[a-z]+:)?=", "", text)  # "of:=SUM(...)" reads "SUM(...)"
                    scan.note(scan.formulas, row, col, text, row_repeat, n)
            if b"error" in attrs and _ODS_ERROR.search(attrs):
                end = None if empty else _ODS_CELL_END.search(piece, m.end())
                shown = _TAGS.sub(b"", piece[m.end() : end.start()]) if end else b""
                error = unescape(shown.decode("utf-8", "replace")).strip() or "#ERROR"
                scan.note(scan.errors, row, col, error, row_repeat, n)
            if b"value-type" in attrs and empty:
                if not current.add(row, col, row_repeat, n):
                    stop = True
            elif not empty:
                cell_open = (col, n)
            col += n
        if stop:
            break
    finish()
    return tables


def _repeat(attrs: bytes, what: bytes) -> int:
    for m in _REPEAT.finditer(attrs):
        if m.group(1) == what:
            return max(1, int(m.group(2)))
    return 1
