"""Workbook files (XLSX, XLS, ODS) to one sheet's grid of cells, bounded before anything is read.

The spreadsheet reader (python-calamine) allocates a dense grid from the first to the farthest
cell holding a value: one stray value at XFD1048576 asks for gigabytes and aborts the process.
So the extent of a sheet is measured first, cheaply, from the file itself (the sheet's XML for
XLSX, the BIFF cell records for XLS, `content.xml` for ODS; never from the `<dimension>` element,
which is only a claim), and a sheet beyond the limits is refused with the address of the cell
that puts it there. XLS and ODS workbooks are parsed whole when opened, so every sheet of them is
measured; XLSX sheets are read one at a time, so only the sheet to read is.

Everything that can go wrong in a reader, panics included, becomes one `SheetError` sentence
that names the file and says why in words.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import struct
import tempfile
import zipfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import IO, Any

from .errors import SheetError
from .i18n import N_, _
from .i18n import number as grouped

#: The largest sheet read: rows (title and header included), columns, and cells of the grid
#: from A1 to the farthest value. 100,000 orders of 20 columns fit; a stray far value does not.
MAX_ROWS = 200_000
MAX_COLUMNS = 1_000
MAX_CELLS = 2_000_000
#: Larger files are refused before anything is read (the benchmark's 100,000 rows: 5 MB).
MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_RATIO = 200
#: Excel encrypts with this password when a workbook is "protected" without one (for example a
#: read-only recommendation or a protected structure); Excel opens such files without asking.
DEFAULT_PASSWORD = "VelvetSweatshop"

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
SAVE_AS_XLSX = N_("open it in Excel (or LibreOffice) and save it as .xlsx")
#: A sheet's kind and visibility, in words.
_KIND_WORDS = {"chart": N_("a chart sheet"), "macro": N_("a macro sheet"),
               "dialog": N_("a dialog sheet"), "vba": N_("a vba sheet")}  # fmt: skip
_VISIBILITY_WORDS = {"hidden": N_("hidden"), "very hidden": N_("very hidden")}


@dataclass(frozen=True)
class SheetInfo:
    name: str
    kind: str = "worksheet"  # worksheet | chart | macro | dialog | vba
    visibility: str = "visible"  # visible | hidden | very hidden

    @property
    def readable(self) -> bool:
        return self.kind == "worksheet" and self.visibility == "visible"

    def describe(self) -> str:
        """`'Old' (hidden)`, `'Chart1' (a chart sheet)`, in the reader's language."""
        what = [] if self.kind == "worksheet" else [_(_KIND_WORDS.get(self.kind, self.kind))]
        if self.visibility != "visible":
            what.append(_(_VISIBILITY_WORDS.get(self.visibility, self.visibility)))
        return f"{self.name!r}" + (f" ({', '.join(what)})" if what else "")


@dataclass
class Grid:
    """One sheet's cells, with the spreadsheet's own row numbers (row i is number i + 1)."""

    name: str
    rows: list[list[Any]]
    sheets: list[SheetInfo]
    formulas: dict[int, dict[int, str]] = field(default_factory=dict)  # row -> {col: text}
    notes: list[str] = field(default_factory=list)
    errors: dict[int, dict[int, str]] = field(default_factory=dict)  # row -> {col: "#N/A"}
    hidden: set[int] = field(default_factory=set)  # row numbers hidden (or filtered out)


def column_letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def address(row: int, col: int) -> str:
    return f"{column_letters(col)}{row + 1}"


# --- extent --------------------------------------------------------------------------------------


@dataclass
class Extent:
    """The cells holding a value in one sheet, as far as the limits need to know."""

    sheet: str
    rows: int = 0  # 1 + the largest row index holding a value
    cols: int = 0
    far_row: tuple[int, int] = (0, 0)  # the cell that reaches `rows`
    far_col: tuple[int, int] = (0, 0)
    beyond: tuple[int, int] | None = None  # the first value found beyond a limit

    def add(self, row: int, col: int, rows: int = 1, cols: int = 1) -> bool:
        """Count a value at (row, col), repeated over `rows` x `cols`; False once beyond."""
        last_row, last_col = row + rows - 1, col + cols - 1
        if last_row >= self.rows:
            self.rows, self.far_row = last_row + 1, (last_row, col)
        if last_col >= self.cols:
            self.cols, self.far_col = last_col + 1, (row, last_col)
        if self.beyond is None and (last_row >= MAX_ROWS or last_col >= MAX_COLUMNS):
            self.beyond = (
                (max(row, MAX_ROWS) if last_row >= MAX_ROWS else row),
                (max(col, MAX_COLUMNS) if last_col >= MAX_COLUMNS else col),
            )
            return False
        return True

    def check(self, path: object) -> None:
        where = _("sheet {name!r} of {path}").format(name=self.sheet, path=path)
        fix = _(
            "if that cell is a stray, clear it (or delete the rows and columns beyond the "
            "orders) and save; if the orders really are that many, split them into several files"
        )
        if self.beyond is not None:
            row, col = self.beyond
            if row >= MAX_ROWS:
                limit = _("row {row}, beyond the {most} rows an order sheet may have").format(
                    row=grouped(row + 1), most=grouped(MAX_ROWS)
                )
            else:
                limit = _(
                    "column {letters}, beyond the {most} columns an order sheet may have"
                ).format(letters=column_letters(col), most=grouped(MAX_COLUMNS))
            raise SheetError(
                _("{where} has a value at {cell} ({limit}): {fix}").format(
                    where=where, cell=address(row, col), limit=limit, fix=fix
                )
            )
        if self.rows * self.cols > MAX_CELLS:
            raise SheetError(
                _(
                    "{where} holds values as far as row {rows} (at {far_row}) and column "
                    "{letters} (at {far_col}): {cells} cells, more than the {most} an order "
                    "sheet may have; {fix}"
                ).format(
                    where=where, rows=grouped(self.rows), far_row=address(*self.far_row),
                    letters=column_letters(self.cols - 1), far_col=address(*self.far_col),
                    cells=grouped(self.rows * self.cols), most=grouped(MAX_CELLS), fix=fix,
                )
            )  # fmt: skip


def _last_match(pattern: re.Pattern[bytes], data: bytes, pos: int = 0) -> re.Match[bytes] | None:
    found = deque(pattern.finditer(data, pos), maxlen=1)
    return found[0] if found else None


def _chunks(stream: IO[bytes], end: re.Pattern[bytes], size: int = 4 << 20) -> Iterator[bytes]:
    """The stream in pieces that each end just after a complete `end` (a closing row tag)."""
    buf = b""
    while True:
        chunk = stream.read(size)
        buf += chunk
        if not chunk:
            if buf:
                yield buf
            return
        last = _last_match(end, buf, max(0, len(buf) - len(chunk) - 64))
        if last is None:
            if len(buf) > max(16 * size, 64 << 20):  # one row of 64 MB: no real sheet
                raise SheetError(_("a single row of the sheet is larger than 64 MB"))
            continue
        yield buf[: last.end()]
        buf = buf[last.end() :]


# --- XLSX ----------------------------------------------------------------------------------------

_P = rb"(?:[A-Za-z_][\w.-]*:)?"  # an optional namespace prefix
_ATTRS = rb"((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)"
#: A cell's body may hold anything but another cell's tags: a cell left open cannot make the
#: scan quadratic, it just fails to match up to the next cell.
_BODY = rb"((?:[^<]|<(?!/?" + _P + rb"c[\s/>]))*)"
_XLSX_TOKEN = re.compile(
    rb"<" + _P + rb"(?:(row)\b" + _ATTRS + rb"/?>|c\b" + _ATTRS + rb"(?:/>|>" + _BODY + rb"</"
    + _P + rb"c>))"
)  # fmt: skip
_XLSX_ROW_END = re.compile(rb"</" + _P + rb"row>")
_R_ATTR = re.compile(rb"""\br\s*=\s*["']([A-Za-z]{1,4})?(\d{1,8})?["']""")
_HAS_VALUE = re.compile(rb"<" + _P + rb"(?:v|is)\b")
_VALUE = re.compile(rb"<" + _P + rb"v>(.*?)</" + _P + rb"v>", re.S)
_ERROR_TYPE = re.compile(rb"""\bt\s*=\s*["']e["']""")
_HIDDEN = re.compile(rb"""\bhidden\s*=\s*["'](?:1|true)["']""")
_FORMULA = re.compile(rb"<" + _P + rb"f\b[^>]*?(?:/>|>(.*?)</" + _P + rb"f>)", re.S)


def _col_index(letters: bytes) -> int:
    col = 0
    for ch in letters.upper():
        col = col * 26 + ch - 64
    return col - 1


#: The common case, matched in C: cells that lead with their `r`, either empty or holding a value.
_FAST_VALUED = re.compile(rb'<c r="([A-Z]{1,3})(\d{1,7})"[^>/]*>(?=<(?:v|is)[\s>/])')
_FAST_EMPTY = re.compile(rb'<c r="[A-Z]{1,3}\d{1,7}"[^>/]*/>')
_LAST_ROW = re.compile(rb'<row r="(\d{1,7})"')


@dataclass
class SheetScan:
    """What a sheet's file says beyond its values, by row number: formula texts (empty where the
    format keeps none readable), Excel error values (the reader shows those cells empty) and
    hidden (or filtered out) rows."""

    formulas: dict[int, dict[int, str]] = field(default_factory=dict)
    errors: dict[int, dict[int, str]] = field(default_factory=dict)
    hidden: set[int] = field(default_factory=set)

    def hide(self, first: int, count: int, extent: Extent) -> None:
        """Rows `first`.. (1-based) hidden, `count` of them: only those up to the last row holding
        a value are kept (a hidden run of a million empty rows costs nothing)."""
        last = min(first + count - 1, max(extent.rows, first), MAX_ROWS)
        self.hidden.update(range(first, last + 1))

    def note(self, table: dict[int, dict[int, str]], row: int, col: int, text: str, rows: int = 1,
             cols: int = 1) -> None:  # fmt: skip
        """`text` for a cell (0-based), repeated over rows x cols; a vast repeat keeps only its
        first cell (the extent check refuses such a sheet unless its cells are empty)."""
        if rows * cols > 10_000:
            rows = cols = 1
        for r in range(row + 1, row + 1 + rows):
            line = table.setdefault(r, {})
            for c in range(col, col + cols):
                line[c] = text


def scan_xlsx_sheet(stream: IO[bytes], name: str, chunk: int = 4 << 20) -> tuple[Extent, SheetScan]:
    """The extent of a worksheet's XML, and its formulas, error cells and hidden rows."""
    extent = Extent(name)
    scan = SheetScan()
    state = [-1, -1]  # the row and column of the last cell seen
    for piece in _chunks(stream, _XLSX_ROW_END, chunk):
        if not _scan_fast(piece, extent, state) and not _scan_slow(piece, extent, scan, state):
            break
    return extent, scan


def _scan_fast(piece: bytes, extent: Extent, state: list[int]) -> bool:
    """Scan a piece written the usual way (every cell with its `r`, no prefix, no formula) with
    C-speed regular expressions; False when the piece needs the careful scan."""
    if b"<f" in piece or b":c " in piece or b":c>" in piece:
        return False
    if b'"e"' in piece or b"'e'" in piece or b"hidden=" in piece:
        return False  # an error cell, or a hidden row: the careful scan records them
    valued = _FAST_VALUED.findall(piece)
    if len(valued) + len(_FAST_EMPTY.findall(piece)) != piece.count(b"<c ") + piece.count(b"<c>"):
        return False
    if valued:
        rows = [int(r) for _, r in valued]
        widest = max(valued, key=lambda v: (len(v[0]), v[0]))
        top = rows.index(max(rows))
        far_row, far_col = rows[top] - 1, _col_index(widest[0])
        if far_row >= MAX_ROWS or far_col >= MAX_COLUMNS:
            return False  # the careful scan names the first cell beyond
        extent.add(far_row, _col_index(valued[top][0]))
        extent.add(int(widest[1]) - 1, far_col)
        state[0], state[1] = rows[-1] - 1, _col_index(valued[-1][0])
    last = _last_match(_LAST_ROW, piece)
    if last is not None and int(last.group(1)) - 1 > state[0]:
        state[0], state[1] = int(last.group(1)) - 1, -1
    return True


def _scan_slow(piece: bytes, extent: Extent, scan: SheetScan, state: list[int]) -> bool:
    """Every row and cell token of a piece, whatever its form; False once beyond the limits."""
    row, col = state
    formulas = scan.formulas
    for m in _XLSX_TOKEN.finditer(piece):
        if m.group(1):  # <row>
            r = _R_ATTR.search(m.group(2))
            row = int(r.group(2)) - 1 if r and r.group(2) else row + 1
            col = -1
            if _HIDDEN.search(m.group(2)):
                scan.hidden.add(row + 1)
            continue
        r = _R_ATTR.search(m.group(3))
        if r and r.group(1):
            col = _col_index(r.group(1))
            if r.group(2):
                row = int(r.group(2)) - 1
        else:
            col += 1
        body = m.group(4)
        if not body:
            continue
        f = _FORMULA.search(body) if b"f" in body else None
        if f:
            text = unescape((f.group(1) or b"").decode("utf-8", "replace"))
            formulas.setdefault(row + 1, {})[col] = text
        if _ERROR_TYPE.search(m.group(3)):
            v = _VALUE.search(body)
            error = unescape(v.group(1).decode("utf-8", "replace")) if v else "#ERROR"
            scan.errors.setdefault(row + 1, {})[col] = error
        if (_HAS_VALUE.search(body) or f) and not extent.add(row, col):
            return False
    state[0], state[1] = row, col
    return True


def _xlsx_sheet_members(z: zipfile.ZipFile) -> dict[str, str]:
    """{sheet name: zip member of its XML}, from the workbook and its relationships."""
    import defusedxml.ElementTree as ET  # noqa: N817

    names = {n.lower(): n for n in z.namelist()}

    def member(path: str) -> str | None:
        return names.get(path.lstrip("/").lower())

    workbook = "xl/workbook.xml"
    rels = member("_rels/.rels")
    if rels:
        for rel in ET.fromstring(z.read(rels)):
            if rel.get("Type", "").endswith("/officeDocument"):
                workbook = posixpath.normpath(rel.get("Target", workbook).lstrip("/"))
    found = member(workbook)
    if found is None:
        return {}
    base = posixpath.dirname(found)
    targets: dict[str, str] = {}
    wb_rels = member(posixpath.join(base, "_rels", posixpath.basename(found) + ".rels"))
    if wb_rels:
        for rel in ET.fromstring(z.read(wb_rels)):
            target = rel.get("Target", "")
            path = target if target.startswith("/") else posixpath.join(base, target)
            targets[rel.get("Id", "")] = posixpath.normpath(path)
    out: dict[str, str] = {}
    for el in ET.fromstring(z.read(found)).iter():
        if el.tag.endswith("}sheet") or el.tag == "sheet":
            rid = next((v for k, v in el.attrib.items() if k.endswith("}id")), "")
            real = member(targets.get(rid, ""))
            if real:
                out[el.get("name", "")] = real
    return out


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

    for piece in _chunks(stream, _ODS_ROW_END, chunk):
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


# --- opening -------------------------------------------------------------------------------------


def _is_control(e: BaseException) -> bool:
    return isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit)


DAMAGED = N_("is damaged, or not a spreadsheet bulk-topup can read")


def _damaged(path: Path) -> SheetError:
    return SheetError(_("{path} {why}").format(path=path, why=_(DAMAGED)))


def _reason(e: BaseException) -> str:
    """A reader's failure in words, never its class name."""
    text = f"{type(e).__name__} {e}".lower()
    if "password" in text or "encrypt" in text:
        return _("is protected by a password")
    if isinstance(e, MemoryError) or "memory" in text:
        return _("is too large to read")
    if "biff" in text and ("5" in text or "version" in text):
        return _("is in an old Excel format: {fix}").format(fix=_(SAVE_AS_XLSX))
    if "macro" in text:
        return _("holds a macro sheet, which bulk-topup does not read: {fix}").format(
            fix=_(SAVE_AS_XLSX)
        )
    return _(DAMAGED)


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep the reader's panic report off the terminal while it reads.

    A panic in the reader prints its message (and, with RUST_BACKTRACE set, a backtrace) on
    the process's stderr before it reaches Python; the failure is told as one sentence instead.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with tempfile.TemporaryFile() as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _open_calamine(source: Path | bytes, path: Path, hint: str = "") -> Any:
    from python_calamine import CalamineWorkbook

    try:
        with _quiet():
            return _open(CalamineWorkbook, source)
    except BaseException as e:  # pyo3 panics derive from BaseException, not Exception
        if _is_control(e):
            raise
        raise SheetError(_("{path} {why}").format(path=path, why=hint or _reason(e))) from None


def _open(reader: Any, source: Path | bytes) -> Any:
    if isinstance(source, bytes):
        return reader.from_filelike(io.BytesIO(source))
    return reader.from_path(str(source))


def read_workbook(path: Path, head: bytes, sheet: str | None) -> Grid:
    """The grid of the sheet to read in the workbook at `path`; SheetError when it cannot be."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SheetError(
            _("{path} is larger than {mb} MB, far beyond an order sheet; split it").format(
                path=path, mb=grouped(MAX_FILE_BYTES // 2**20)
            )
        )
    if head.startswith(ZIP_MAGIC):
        return _read_zip(path, path, sheet)
    if head.startswith(OLE_MAGIC):
        return _read_ole(path, path.read_bytes(), sheet)
    raise SheetError(_("{path} is not a spreadsheet bulk-topup can read").format(path=path))


def _read_zip(path: Path, source: Path | bytes, sheet: str | None) -> Grid:
    opened = io.BytesIO(source) if isinstance(source, bytes) else source
    refuse_hostile_zip(path, opened)
    try:
        z = zipfile.ZipFile(opened)
    except (zipfile.BadZipFile, OSError, EOFError):
        raise _not_a_zip(path) from None
    with z:
        names = set(z.namelist())
        lower = {n.lower() for n in names}
        if "xl/workbook.bin" in lower:
            raise SheetError(
                _(
                    "{path} is an Excel binary workbook (.xlsb), which bulk-topup does not read: "
                    "{fix}"
                ).format(path=path, fix=_(SAVE_AS_XLSX))
            )
        if "content.xml" in names and "mimetype" in names:
            mime = z.read("mimetype")[:100]
            if b"spreadsheet" not in mime:
                kind = mime.decode(errors="replace")
                raise SheetError(
                    _("{path} is an OpenDocument file but not a spreadsheet ({kind})").format(
                        path=path, kind=kind
                    )
                )
            return _read_ods(path, source, z, sheet)
        if any(n.startswith("xl/") for n in lower):
            return _read_xlsx(path, source, z, sheet)
        if any(n.startswith("word/") for n in lower):
            raise SheetError(_(WORD).format(path=path))
        if any(n.startswith("ppt/") for n in lower):
            raise SheetError(_(POWERPOINT).format(path=path))
        if any(n.startswith("index/") for n in lower):
            raise SheetError(
                _(
                    "{path} is an Apple Numbers file: export it to Excel (File > Export To > "
                    "Excel) and validate the .xlsx"
                ).format(path=path)
            )
    raise SheetError(_("{path} is a zip archive, not a spreadsheet").format(path=path))


WORD = N_("{path} is a Word document, not a spreadsheet")
POWERPOINT = N_("{path} is a PowerPoint presentation, not a spreadsheet")


def _not_a_zip(path: Path) -> SheetError:
    return SheetError(
        _("{path} looks like a zip file but is damaged or not a spreadsheet").format(path=path)
    )


def _choose(path: Path, infos: list[SheetInfo], sheet: str | None) -> tuple[SheetInfo, list[str]]:
    """The sheet to read (the first visible worksheet unless named) and notes on the others."""
    names = [i.name for i in infos]
    if not infos:
        raise SheetError(_("{path} has no sheets").format(path=path))
    if sheet is not None:
        if sheet not in names:
            raise SheetError(
                _("{path} has no sheet named {sheet!r}; its sheets are: {sheets}").format(
                    path=path, sheet=sheet, sheets=", ".join(i.describe() for i in infos)
                )
            )
        chosen = infos[names.index(sheet)]
        if chosen.kind != "worksheet":
            raise SheetError(
                _("sheet {sheet!r} of {path} is {kind}, not a table").format(
                    sheet=sheet, path=path, kind=_(_KIND_WORDS.get(chosen.kind, chosen.kind))
                )
            )
    else:
        readable = [i for i in infos if i.readable]
        if not readable:
            raise SheetError(
                _(
                    "{path} has no visible worksheet (its sheets: {sheets}); name the one to "
                    "read with --sheet"
                ).format(path=path, sheets=", ".join(i.describe() for i in infos))
            )
        chosen = readable[0]
    skipped = [i for i in infos if not i.readable and i is not chosen]
    notes = []
    if skipped:
        notes.append(
            _("not read: {sheets} (name a sheet with --sheet to read it)").format(
                sheets=", ".join(i.describe() for i in skipped)
            )
        )
    return chosen, notes


def _metadata(wb: Any) -> list[SheetInfo]:
    kinds = {"WorkSheet": "worksheet", "ChartSheet": "chart", "MacroSheet": "macro",
             "DialogSheet": "dialog", "Vba": "vba"}  # fmt: skip
    seen = {"Visible": "visible", "Hidden": "hidden", "VeryHidden": "very hidden"}
    return [
        SheetInfo(
            m.name,
            kinds.get(str(m.typ).rsplit(".", 1)[-1], "worksheet"),
            seen.get(str(m.visible).rsplit(".", 1)[-1], "hidden"),
        )
        for m in wb.sheets_metadata
    ]


def _grid(wb: Any, path: Path, name: str) -> list[list[Any]]:
    try:
        with _quiet():
            found = wb.get_sheet_by_name(name)
            if found.height > MAX_ROWS + 1 or found.width > MAX_COLUMNS + 1:  # scan missed it
                raise SheetError(
                    _("sheet {name!r} of {path} is larger than an order sheet may be").format(
                        name=name, path=path
                    )
                )
            rows: list[list[Any]] = found.to_python(skip_empty_area=False)
        return rows
    except SheetError:
        raise
    except BaseException as e:
        if _is_control(e):
            raise
        raise SheetError(
            _("sheet {name!r} of {path} {why}").format(name=name, path=path, why=_reason(e))
        ) from None


def _read_xlsx(path: Path, source: Path | bytes, z: zipfile.ZipFile, sheet: str | None) -> Grid:
    macros = any(n.lower().startswith("xl/macrosheets/") for n in z.namelist())
    hint = (
        _(
            "holds an Excel 4.0 macro sheet, which bulk-topup does not open: copy the orders "
            "into a new workbook and save it as .xlsx"
        )
        if macros
        else ""
    )
    wb = _open_calamine(source, path, hint)
    infos = _metadata(wb)
    chosen, notes = _choose(path, infos, sheet)
    try:
        members = _xlsx_sheet_members(z)
    except Exception:
        members = {}
    member = members.get(chosen.name)
    if member is None:
        raise SheetError(
            _("{path} is damaged: sheet {name!r} cannot be found in it").format(
                path=path, name=chosen.name
            )
        )
    with z.open(member) as f:
        extent, scan = scan_xlsx_sheet(f, chosen.name)
    extent.check(path)
    return Grid(chosen.name, _grid(wb, path, chosen.name), infos, scan.formulas, notes,
                scan.errors, scan.hidden)  # fmt: skip


def _read_ods(path: Path, source: Path | bytes, z: zipfile.ZipFile, sheet: str | None) -> Grid:
    with z.open("content.xml") as f:
        tables = scan_ods(f)
    for extent, _scan in tables:  # calamine parses every sheet of an ODS when it opens it
        extent.check(path)
    wb = _open_calamine(source, path)
    infos = _metadata(wb)
    chosen, notes = _choose(path, infos, sheet)
    scans = {extent.sheet: scan for extent, scan in reversed(tables)}  # the first of a name
    return _scanned(Grid(chosen.name, _grid(wb, path, chosen.name), infos, notes=notes),
                    scans.get(chosen.name))  # fmt: skip


def _read_ole(path: Path, data: bytes, sheet: str | None, decrypted: bool = False) -> Grid:
    import olefile

    try:
        ole = olefile.OleFileIO(data)
    except BaseException as e:
        if _is_control(e):
            raise
        raise _damaged(path) from None
    with ole:
        streams = {"/".join(s).lower() for s in ole.listdir()}
        if "encryptedpackage" in streams:  # an encrypted XLSX
            if decrypted:
                raise _damaged(path)
            plain = _decrypt(path, data)
            if not plain.startswith(ZIP_MAGIC):
                raise _damaged(path)
            return _read_zip(path, plain, sheet)
        stream = "workbook" if "workbook" in streams else "book" if "book" in streams else None
        if stream is None:
            if "worddocument" in streams:
                raise SheetError(_(WORD).format(path=path))
            if "powerpoint document" in streams:
                raise SheetError(_(POWERPOINT).format(path=path))
            raise SheetError(_("{path} is an Office file, but not a spreadsheet").format(path=path))
        try:
            biff_data = ole.openstream(stream).read()
        except BaseException as e:
            if _is_control(e):
                raise
            raise _damaged(path) from None
    biff = read_biff_globals(biff_data)
    if biff.encrypted:
        if decrypted:
            raise _damaged(path)
        return _read_ole(path, _decrypt(path, data), sheet, decrypted=True)
    scans: dict[str, SheetScan] = {}
    for info, offset in biff.sheets:  # calamine parses every sheet of an XLS when it opens it
        if info.kind in ("worksheet", "macro"):
            extent, scans[info.name] = scan_biff_sheet(biff_data, offset, info.name)
            extent.check(path)
    macros = [i.name for i, _ in biff.sheets if i.kind == "macro"]
    hint = ""
    if macros:
        hint = _(
            "holds an Excel 4.0 macro sheet ({sheets}), which bulk-topup does not open: copy the "
            "orders into a new workbook and save it as .xlsx"
        ).format(sheets=", ".join(map(repr, macros)))
    elif biff.version == 5:
        hint = _("is in an old Excel format (Excel 5.0/95) that cannot be read: {fix}").format(
            fix=_(SAVE_AS_XLSX)
        )
    wb = _open_calamine(data, path, hint)
    infos = _metadata(wb)
    chosen, notes = _choose(path, infos, sheet)
    return _scanned(Grid(chosen.name, _grid(wb, path, chosen.name), infos, notes=notes),
                    scans.get(chosen.name))  # fmt: skip


def _scanned(grid: Grid, scan: SheetScan | None) -> Grid:
    if scan is not None:
        grid.formulas, grid.errors, grid.hidden = scan.formulas, scan.errors, scan.hidden
    return grid


def _decrypt(path: Path, data: bytes) -> bytes:
    """The file decrypted with Excel's default password; a sentence when it needs another."""
    import msoffcrypto
    from msoffcrypto.exceptions import InvalidKeyError

    protected = _(
        "{path} is protected by a password, so bulk-topup cannot read it: open it in Excel, "
        "remove the password (File > Info > Protect Workbook > Encrypt with Password, empty "
        "the box), save it, and validate it again"
    ).format(path=path)
    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        office.load_key(password=DEFAULT_PASSWORD)
        out = io.BytesIO()
        office.decrypt(out)
    except InvalidKeyError:
        raise SheetError(protected) from None
    except BaseException as e:
        if _is_control(e):
            raise
        if "password" in str(e).lower() or "key" in str(e).lower():
            raise SheetError(protected) from None
        raise SheetError(
            _("{path} is encrypted in a way bulk-topup cannot open: {fix} without a password")
            .format(path=path, fix=_(SAVE_AS_XLSX))
        ) from None  # fmt: skip
    return out.getvalue()


# --- zip guard -----------------------------------------------------------------------------------


def refuse_hostile_zip(path: Path, source: Path | IO[bytes]) -> None:
    """Refuse zip bombs and XML entity declarations before the spreadsheet reader sees the file.

    The declared sizes are checked first, then every member is streamed through (never held
    whole) and its real size counted: a member that lies about its size fails its CRC check.
    """
    bomb = _("{path} would expand far beyond any real spreadsheet; refusing it (zip bomb?)").format(
        path=path
    )
    try:
        with zipfile.ZipFile(source) as z:
            infos = z.infolist()
            if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
                raise SheetError(bomb)
            total = 0
            for info in infos:
                xml = info.filename.endswith((".xml", ".rels"))
                size, tail = 0, b""
                with z.open(info) as member:
                    while chunk := member.read(1 << 20):
                        size += len(chunk)
                        total += len(chunk)
                        if total > MAX_UNCOMPRESSED or (
                            size > 10 * 2**20 and size / max(info.compress_size, 1) > MAX_RATIO
                        ):
                            raise SheetError(bomb)
                        window = tail + chunk
                        if xml and (b"<!DOCTYPE" in window or b"<!ENTITY" in window):
                            raise SheetError(
                                _(
                                    "{path} contains XML entity declarations ({member}), which "
                                    "spreadsheets never need; refusing it"
                                ).format(path=path, member=info.filename)
                            )
                        tail = chunk[-16:]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError, OSError):
        raise _not_a_zip(path) from None
    except RuntimeError:  # an encrypted zip member
        raise SheetError(
            _("{path} is a zip file protected by a password").format(path=path)
        ) from None
    if not isinstance(source, Path):
        source.seek(0)
