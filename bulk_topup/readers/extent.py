"""What reading a sheet knows of it: the limits, the grid of one sheet, the extent of its values
measured before any reader allocates for them, and what a file says beyond its values."""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import SheetError
from ..i18n import N_, _
from ..i18n import number as grouped

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
KIND_WORDS = {"chart": N_("a chart sheet"), "macro": N_("a macro sheet"),
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
        what = [] if self.kind == "worksheet" else [_(KIND_WORDS.get(self.kind, self.kind))]
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


def last_match(pattern: re.Pattern[bytes], data: bytes, pos: int = 0) -> re.Match[bytes] | None:
    found = deque(pattern.finditer(data, pos), maxlen=1)
    return found[0] if found else None


def chunks(stream: IO[bytes], end: re.Pattern[bytes], size: int = 4 << 20) -> Iterator[bytes]:
    """The stream in pieces that each end just after a complete `end` (a closing row tag)."""
    buf = b""
    while True:
        chunk = stream.read(size)
        buf += chunk
        if not chunk:
            if buf:
                yield buf
            return
        last = last_match(end, buf, max(0, len(buf) - len(chunk) - 64))
        if last is None:
            if len(buf) > max(16 * size, 64 << 20):  # one row of 64 MB: no real sheet
                raise SheetError(_("a single row of the sheet is larger than 64 MB"))
            continue
        yield buf[: last.end()]
        buf = buf[last.end() :]


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


#: Pieces of the XML scans (XLSX and ODS): an optional namespace prefix; a tag's attributes.
XML_PREFIX = rb"(?:[A-Za-z_][\w.-]*:)?"
XML_ATTRS = rb"((?:[^>\"']|\"[^\"]*\"|'[^']*')*?)"
