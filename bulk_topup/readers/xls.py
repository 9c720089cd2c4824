"""XLS (BIFF) workbooks measured from their records: the sheets of the workbook, and each sheet's
extent, formula cells, Excel error cells and hidden rows."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .extent import Extent, SheetInfo, SheetScan

# --- XLS (BIFF) ----------------------------------------------------------------------------------

#: BIFF records holding one cell's value: (row, column) are their first two 16-bit words.
_BIFF_CELLS = {0x0006, 0x0203, 0x0204, 0x0205, 0x027E, 0x00FD, 0x00D6, 0x0406, 0x0002, 0x0003,
               0x0004, 0x0005}  # fmt: skip
_BIFF_MULRK = 0x00BD
_BIFF_SHEET_KINDS = {0: "worksheet", 1: "macro", 2: "chart", 6: "vba"}
_BIFF_VISIBILITY = {0: "visible", 1: "hidden", 2: "very hidden"}


@dataclass
class Biff:
    version: int  # 8 (Excel 97 and later), 5 (Excel 5.0/95), 0 unknown
    encrypted: bool
    sheets: list[tuple[SheetInfo, int]]  # (sheet, offset of its BOF record)


def _records(data: bytes, pos: int = 0) -> Iterator[tuple[int, int, int]]:
    """(offset, type, length) of each BIFF record from `pos` on."""
    end = len(data)
    while pos + 4 <= end:
        kind, length = struct.unpack_from("<HH", data, pos)
        yield pos, kind, length
        pos += 4 + length


def read_biff_globals(data: bytes) -> Biff:
    version, encrypted, sheets = 0, False, []
    for pos, kind, length in _records(data):
        body = data[pos + 4 : pos + 4 + length]
        if kind == 0x0809 and len(body) >= 2 and not version:
            version = {0x0600: 8, 0x0500: 5}.get(struct.unpack_from("<H", body)[0], 0)
        elif kind == 0x002F:
            encrypted = True
        elif kind == 0x0085 and len(body) >= 8:
            offset, state, dt, cch = struct.unpack_from("<IBBB", body)
            if version == 8 and len(body) >= 8:
                high = body[7] & 1
                raw = body[8 : 8 + cch * (2 if high else 1)]
                name = raw.decode("utf-16-le" if high else "latin-1", "replace")
            else:
                name = body[7 : 7 + cch].decode("cp1252", "replace")
            info = SheetInfo(name, _BIFF_SHEET_KINDS.get(dt, "dialog"),
                             _BIFF_VISIBILITY.get(state & 3, "hidden"))  # fmt: skip
            sheets.append((info, offset))
        elif kind == 0x000A:
            break
    return Biff(version, encrypted, sheets)


#: BIFF error codes (BOOLERR records, formula results) as Excel shows them
_BIFF_ERRORS = {0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!", 0x1D: "#NAME?",
                0x24: "#NUM!", 0x2A: "#N/A", 0x2B: "#GETTING_DATA"}  # fmt: skip
_BIFF_ROW, _BIFF_BOOLERR, _BIFF_FORMULA = 0x0208, 0x0205, 0x0006


def scan_biff_sheet(data: bytes, offset: int, name: str) -> tuple[Extent, SheetScan]:
    """The extent of one sheet's substream (from its BOF to its EOF), and its formula cells (an
    XLS keeps a formula as tokens, so its text is not kept: ""), error cells and hidden rows."""
    extent = Extent(name)
    scan = SheetScan()
    hidden: list[int] = []
    depth = 0
    for pos, kind, length in _records(data, offset):
        if kind in (0x0809, 0x0409, 0x0209, 0x0009):
            depth += 1
        elif kind == 0x000A:
            depth -= 1
            if depth <= 0:
                break
        elif kind == _BIFF_ROW and length >= 16:
            row, flags = struct.unpack_from("<H", data, pos + 4)[0], data[pos + 4 + 12]
            if flags & 0x20:  # fDyZero: the row is hidden
                hidden.append(row)
        elif length >= 4 and (kind in _BIFF_CELLS or kind == _BIFF_MULRK):
            row, col = struct.unpack_from("<HH", data, pos + 4)
            cols = 1
            if kind == _BIFF_MULRK and length >= 6:
                last = struct.unpack_from("<H", data, pos + 4 + length - 2)[0]
                cols = max(1, last - col + 1)
            if kind == _BIFF_BOOLERR and length >= 8 and data[pos + 4 + 7] == 1:
                code = data[pos + 4 + 6]
                scan.note(scan.errors, row, col, _BIFF_ERRORS.get(code, "#ERROR"))
            elif kind == _BIFF_FORMULA and length >= 14:
                result = data[pos + 4 + 6 : pos + 4 + 14]
                scan.note(scan.formulas, row, col, "")
                if result[6:8] == b"\xff\xff" and result[0] == 2:  # the result is an error
                    scan.note(scan.errors, row, col, _BIFF_ERRORS.get(result[2], "#ERROR"))
            if not extent.add(row, col, 1, cols):
                break
    for row in hidden:
        scan.hide(row + 1, 1, extent)
    return extent, scan
