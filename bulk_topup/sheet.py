"""Order sheets (CSV, XLSX, XLS, ODS) to rows of text, with the spreadsheet's own row numbers.

Cells are read as text and never interpreted here. The header row is found below any title block;
headers are matched to canonical column names through English and French aliases, ignoring case,
spaces, punctuation and accents. Hostile files (zip bombs, XML entity bombs) are refused before
anything is expanded.
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from .errors import SheetError

#: canonical column -> normalised header aliases
ALIASES: dict[str, tuple[str, ...]] = {
    "kind": ("kind", "genre", "typecommande", "service", "categorie", "category"),
    "phone": (
        "phone",
        "msisdn",
        "mssidn",
        "numero",
        "telephone",
        "tel",
        "mobile",
        "gsm",
        "phonenumber",
        "numerotelephone",
        "numerodetelephone",
        "numtel",
        "portable",
    ),
    "plan_code": ("plancode", "plan", "offre", "forfait", "offer", "codeoffre", "codeplan"),
    "amount": ("amount", "montant", "somme", "montantda", "montantdzd", "amountdzd"),
    "internet_type": ("internettype", "type", "typeinternet", "typeligne", "linetype"),
    "number": (
        "number",
        "ligne",
        "numeroligne",
        "line",
        "numerointernet",
        "internetnumber",
        "numeroadsl",
        "numero4g",
    ),
    "value": ("value", "valeur", "denomination", "carte", "valeurcarte"),
    "product_id": ("productid", "product", "produit", "idproduit", "giftproduct", "giftcard"),
    "type_id": ("typeid", "idtype", "gifttype", "typecarte", "variante"),
    "quantity": ("quantity", "quantite", "qty", "qte", "nombre", "nb"),
    "ref": ("ref", "reference", "orderref"),
}
#: The columns of an order sheet, in the order bulk_topup writes them (template, Retry sheet).
ORDER_COLUMNS = ["kind", "phone", "plan_code", "amount", "internet_type", "number", "value",
                 "product_id", "type_id", "quantity"]  # fmt: skip
_LOOKUP = {alias: canon for canon, aliases in ALIASES.items() for alias in aliases}
KEY_COLUMNS = {"phone", "number", "product_id"}

HEADER_SCAN_ROWS = 30
MAX_UNCOMPRESSED = 512 * 1024 * 1024
MAX_RATIO = 200
MAX_CSV_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class SheetRow:
    number: int  # the row number a spreadsheet application shows
    cells: dict[str, str]  # canonical or passthrough column -> text
    formulas: set[str] = field(default_factory=set)  # columns whose cell held a formula


@dataclass
class Sheet:
    path: Path
    name: str  # sheet name, or "" for CSV
    headers: list[str]  # the headers as written
    columns: list[str]  # canonical name (or the header itself) per header
    rows: list[SheetRow]
    header_row: int
    encoding: str | None = None
    delimiter: str | None = None

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.columns if c not in ALIASES]


def normalise_header(text: str) -> str:
    """`Numéro de Téléphone ` -> `numerodetelephone`."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]", "", bare.lower())


def canonical(header: str) -> str | None:
    return _LOOKUP.get(normalise_header(header))


def cell_text(value: Any) -> str:
    """A cell as the text a person reads in it; integral floats lose their `.0`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value).strip()


def read_sheet(path: str | Path, sheet: str | None = None) -> Sheet:
    """Read an order sheet; raises `SheetError` with one clear sentence when it cannot."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise SheetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SheetError(f"{path} is a folder, not an order sheet") from None
    except OSError as e:
        raise SheetError(f"{path}: cannot be read ({e.strerror})") from None
    if not head:
        raise SheetError(f"{path} is empty")
    if head.startswith(b"PK\x03\x04"):
        _refuse_hostile_zip(path)
        grid, name, formulas = _read_workbook(path, sheet)
        return _to_sheet(path, name, grid, formulas)
    if head.startswith(b"\xd0\xcf\x11\xe0"):
        grid, name, formulas = _read_workbook(path, sheet)
        return _to_sheet(path, name, grid, formulas)
    if sheet:
        raise SheetError(f"{path} is a CSV file: it has no sheets, so --sheet does not apply")
    return _read_csv(path)


# --- workbooks -----------------------------------------------------------------------------------


def _refuse_hostile_zip(path: Path) -> None:
    """Refuse zip bombs and XML entity declarations before the spreadsheet reader sees the file.

    The declared sizes are checked first, then every member is streamed through (never held
    whole) and its real size counted: a member that lies about its size fails its CRC check.
    """
    bomb = f"{path} would expand far beyond any real spreadsheet; refusing it (zip bomb?)"
    try:
        with zipfile.ZipFile(path) as z:
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
                                f"{path} contains XML entity declarations ({info.filename}), "
                                f"which spreadsheets never need; refusing it"
                            )
                        tail = chunk[-16:]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError):
        raise SheetError(
            f"{path} looks like a zip file but is damaged or not a spreadsheet"
        ) from None


def _read_workbook(
    path: Path, sheet: str | None
) -> tuple[list[list[Any]], str, dict[int, set[int]]]:
    from python_calamine import CalamineWorkbook

    try:
        wb = CalamineWorkbook.from_path(str(path))
    except Exception as e:  # calamine raises its own error types for every kind of damage
        raise SheetError(
            f"{path} is not a spreadsheet that can be read ({type(e).__name__})"
        ) from None
    names = wb.sheet_names
    if not names:
        raise SheetError(f"{path} has no sheets")
    if sheet is not None and sheet not in names:
        raise SheetError(f"{path} has no sheet named {sheet!r}; its sheets are: {', '.join(names)}")
    name = sheet or names[0]
    try:
        grid = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
    except Exception as e:
        raise SheetError(f"sheet {name!r} of {path} cannot be read ({type(e).__name__})") from None
    formulas = _xlsx_formula_cells(path, names.index(name)) if zipfile.is_zipfile(path) else {}
    return grid, name, formulas


def _xlsx_formula_cells(path: Path, index: int) -> dict[int, set[int]]:
    """{row number: {column index}} of the cells holding formulas in sheet `index` of an xlsx."""
    import defusedxml.ElementTree as ET  # noqa: N817

    try:
        with zipfile.ZipFile(path) as z:
            member = f"xl/worksheets/sheet{index + 1}.xml"
            if member not in z.namelist():
                return {}
            with z.open(member) as f:
                if b"<f" not in f.read():  # the common case: no formula at all, no parse
                    return {}
            found: dict[int, set[int]] = {}
            with z.open(member) as f:
                for _, el in ET.iterparse(f, events=("end",)):
                    if el.tag.endswith("}c"):
                        if any(child.tag.endswith("}f") for child in el):
                            row, col = _cell_ref(el.get("r", ""))
                            if row:
                                found.setdefault(row, set()).add(col)
                        el.clear()
            return found
    except (zipfile.BadZipFile, KeyError, ET.ParseError):
        return {}


def _cell_ref(ref: str) -> tuple[int, int]:
    m = re.match(r"^([A-Z]+)(\d+)$", ref)
    if not m:
        return 0, 0
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)), col - 1


# --- CSV -----------------------------------------------------------------------------------------


def _read_csv(path: Path) -> Sheet:
    raw = path.read_bytes()
    if len(raw) > MAX_CSV_BYTES:
        raise SheetError(f"{path} is larger than {MAX_CSV_BYTES // 2**20} MB; split it")
    if b"\x00" in raw[:4096]:
        raise SheetError(f"{path} is not a CSV or Excel file (it holds binary data)")
    encoding = "utf-8-sig"
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError:
        encoding = "cp1252"
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            raise SheetError(f"{path}: the text is neither UTF-8 nor Windows-1252") from None
    if not text.strip():
        raise SheetError(f"{path} is empty")
    del raw
    try:
        delimiter = _sniff_delimiter(text)
        grid = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        del text
    except csv.Error as e:
        raise SheetError(f"{path} is not a well-formed CSV file ({e})") from None
    sheet = _to_sheet(path, "", grid, {})
    sheet.encoding = "utf-8" if encoding == "utf-8-sig" else encoding
    sheet.delimiter = delimiter
    return sheet


def _sniff_delimiter(text: str) -> str:
    lines = [line for line in text.splitlines()[: HEADER_SCAN_ROWS + 20] if line.strip()]
    best, best_score = ",", -1
    for delimiter in (",", ";", "\t", "|"):
        counts = [len(r) for r in csv.reader(lines, delimiter=delimiter)]
        wide = [c for c in counts if c > 1]
        if not wide:
            continue
        # The delimiter that splits the most lines into the same number of fields wins.
        score = max(wide.count(c) * c for c in set(wide))
        if score > best_score:
            best, best_score = delimiter, score
    return best


# --- header and rows -----------------------------------------------------------------------------


def _to_sheet(path: Path, name: str, grid: list[list[Any]], formulas: dict[int, set[int]]) -> Sheet:
    header_index = _find_header(grid)
    if header_index is None:
        where = f"sheet {name!r} of {path}" if name else str(path)
        if not any(any(cell_text(c) for c in row) for row in grid):
            raise SheetError(f"{where} is empty")
        raise SheetError(
            f"{where} has no header row that names the orders' columns: expected "
            f"headers such as phone, plan_code, amount (or Numéro, Offre, Montant) "
            f"in the first {HEADER_SCAN_ROWS} rows"
        )
    headers = [cell_text(c) for c in grid[header_index]]
    columns: list[str] = []
    for i, header in enumerate(headers):
        canon = canonical(header) if header else None
        name_ = canon or header or f"column {i + 1}"
        if name_ in columns:
            where = f"row {header_index + 1}"
            raise SheetError(f"{where}: two columns mean {name_!r} ({header!r}); keep one")
        columns.append(name_)
    rows: list[SheetRow] = []
    width = len(columns)
    for i in range(header_index + 1, len(grid)):
        texts = [cell_text(c) for c in grid[i][:width]]
        if not any(texts):
            continue
        number = i + 1
        cells = {columns[j]: texts[j] if j < len(texts) else "" for j in range(width)}
        cols = formulas.get(number, set())
        rows.append(SheetRow(number, cells, {columns[c] for c in cols if c < width}))
        if any(cell_text(c) for c in grid[i][width:]):
            cells["(beyond the header)"] = " | ".join(cell_text(c) for c in grid[i][width:] if c)
    return Sheet(path, name, headers, columns, rows, header_index + 1)


def _find_header(grid: list[list[Any]]) -> int | None:
    for i, row in enumerate(grid[:HEADER_SCAN_ROWS]):
        found = {canonical(cell_text(c)) for c in row if cell_text(c)} - {None}
        if found & KEY_COLUMNS and len(found) >= 2 or len(found) >= 3:
            return i
    return None
