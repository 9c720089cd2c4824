"""Order sheets (CSV, XLSX, XLS, ODS) to rows of text, with the spreadsheet's own row numbers.

Cells are read as text and never interpreted here. The header row is found below any title block:
the first row that names every column one kind of order needs. Headers are matched to canonical
column names through English and French aliases, ignoring case, spaces, punctuation and accents;
the header as written is kept, so every message can use the user's own words. Hostile files (zip
bombs, XML entity bombs, sheets reaching far beyond their orders, control characters, mixed
encodings) are refused with a sentence; workbooks are bounded before they are read (readers/).
"""

from __future__ import annotations

import csv
import io
import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .errors import SheetError
from .i18n import N_, _
from .i18n import number as grouped
from .readers import (
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_ROWS,
    OLE_MAGIC,
    SAVE_AS_XLSX,
    ZIP_MAGIC,
    Grid,
    SheetInfo,
    column_letters,
    read_workbook,
)

#: canonical column -> normalised header aliases (see `normalise_header`)
ALIASES: dict[str, tuple[str, ...]] = {
    "kind": (
        "kind", "genre", "typecommande", "typedecommande", "service", "categorie", "category",
        "ordertype", "orderkind", "typedeservice", "typederecharge", "nature", "produittype",
    ),
    "phone": (
        "phone", "msisdn", "mssidn", "numero", "telephone", "tel", "mobile", "gsm", "phonenumber",
        "numerotelephone", "numerodetelephone", "numtel", "portable", "ndetelephone",
        "ntelephone", "ntel", "notel", "nodetelephone", "numeromobile", "numerodemobile",
        "mobilenumber", "phoneno", "cellphone", "numerogsm", "numerodutelephone",
    ),
    "plan_code": (
        "plancode", "plan", "offre", "forfait", "offer", "codeoffre", "codeplan",
        "codedeloffre", "codeduplan", "formule", "offrecode", "planname",
    ),
    "amount": (
        "amount", "montant", "somme", "montantda", "montantdzd", "amountdzd", "amountda",
        "montantrecharge", "montantdelarecharge", "topupamount", "montantendinars",
    ),
    "internet_type": (
        "internettype", "type", "typeinternet", "typeligne", "linetype", "typedeligne",
        "typedeconnexion", "connexion", "technologie", "typeadsl4g", "adsl4g",
    ),
    "number": (
        "number", "ligne", "numeroligne", "numerodeligne", "numerodelaligne", "ndeligne",
        "nligne", "noligne", "nodeligne", "nodelaligne", "ndelaligne", "line", "linenumber",
        "numerointernet", "internetnumber", "numeroadsl", "numero4g", "numerofixe",
        "numerodabonne", "ndabonne",
    ),
    "value": (
        "value", "valeur", "denomination", "carte", "valeurcarte", "valeurdelacarte",
        "cardvalue", "facevalue", "valeurfaciale", "valeurda", "valeurdzd",
    ),
    "product_id": (
        "productid", "product", "produit", "idproduit", "giftproduct", "giftcard",
        "cartecadeau", "codeproduit", "productcode", "idduproduit", "produitid",
    ),
    "type_id": (
        "typeid", "idtype", "gifttype", "typecarte", "typedecarte", "cardtype", "variante",
        "variant", "idtypedecarte", "idtypecarte", "typedeproduit", "typeproduit",
    ),
    "quantity": (
        "quantity", "quantite", "qty", "qte", "nombre", "nb", "nombredecartes", "nbcartes",
        "nbdecartes", "quantitecartes", "count",
    ),
    "ref": ("ref", "reference", "orderref", "referencecommande", "votrereference", "yourref",
            "refcommande", "reforder"),
}  # fmt: skip
#: The columns of an order sheet, in the order bulk_topup writes them (template, Retry sheet).
ORDER_COLUMNS = ["kind", "phone", "plan_code", "amount", "internet_type", "number", "value",
                 "product_id", "type_id", "quantity"]  # fmt: skip
_LOOKUP = {alias: canon for canon, aliases in ALIASES.items() for alias in aliases}
KEY_COLUMNS = {"phone", "number", "product_id"}
#: What each kind of order needs: every group must be there, any column of a group will do.
REQUIRED: dict[str, list[tuple[str, ...]]] = {
    "mobile": [("phone", "number"), ("plan_code",)],
    "internet": [("internet_type", "kind"), ("number", "phone"), ("value", "amount")],
    "giftcard": [("product_id",), ("type_id",)],
}
#: In the user's words, for the message of a sheet whose header names no kind in full.
NEEDS = N_(
    "for mobile top-ups a phone number and a plan (Numéro, Offre, and Montant for plans with a "
    "free amount); for internet cards a type, a line number and a value (Type, N° de ligne, "
    "Valeur); for gift cards a product and a card type (Produit, Type de carte, Quantité)"
)

HEADER_SCAN_ROWS = 30
MAX_CSV_BYTES = MAX_FILE_BYTES
BEYOND = "(beyond the header)"
#: C0 controls but tab, line feed and carriage return; DEL. No order sheet holds them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


NO_ERRORS: Mapping[str, str] = MappingProxyType({})
NO_FORMULAS: frozenset[str] = frozenset()  # one for every row without a formula


@dataclass(slots=True)
class SheetRow:
    number: int  # the row number a spreadsheet application shows
    cells: dict[str, str]  # canonical or passthrough column -> text
    formulas: frozenset[str] = NO_FORMULAS  # columns whose cell held a formula
    #: columns whose cell shows an Excel error (#N/A, #DIV/0!): the reader reads it as empty
    excel_errors: Mapping[str, str] = field(default_factory=lambda: NO_ERRORS)  # shared if empty
    hidden: bool = False  # the row is hidden (or filtered out) in the spreadsheet


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
    notes: list[str] = field(default_factory=list)  # sheets not read, columns carried through

    @property
    def extra_columns(self) -> list[str]:
        return [c for c in self.columns if c not in ALIASES]

    @property
    def labels(self) -> dict[str, str]:
        """column -> the header as the user wrote it (`phone` -> `Numéro`)."""
        return {c: h or c for c, h in zip(self.columns, self.headers, strict=False)}


def normalise_header(text: str) -> str:
    """`Numéro de Téléphone ` -> `numerodetelephone`; `N° de ligne` -> `ndeligne`."""
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
            head = f.read(4096)
    except FileNotFoundError:
        raise SheetError(_("{path}: no such file").format(path=path)) from None
    except IsADirectoryError:
        raise SheetError(_("{path} is a folder, not an order sheet").format(path=path)) from None
    except OSError as e:
        raise SheetError(
            _("{path}: cannot be read ({reason})").format(path=path, reason=e.strerror)
        ) from None
    if not head:
        raise SheetError(_("{path} is empty").format(path=path))
    if head.startswith((ZIP_MAGIC, OLE_MAGIC)):
        return _to_sheet(path, read_workbook(path, head, sheet))
    _refuse_other_formats(path, head)
    if sheet:
        raise SheetError(
            _(
                "{path} is a CSV file: it has no worksheets, so a worksheet name does not apply"
            ).format(path=path)
        )
    return _read_csv(path)


def _refuse_other_formats(path: Path, head: bytes) -> None:
    """Files that are not CSV but would otherwise be read as one, each named for what it is."""
    if head[:2] in (b"\x09\x00", b"\x09\x02", b"\x09\x04") and len(head) >= 6:
        raise SheetError(
            _("{path} is in an old Excel format (Excel 2.1 to 4.0): {fix}").format(
                path=path, fix=_(SAVE_AS_XLSX)
            )
        )
    if head.startswith(b"%PDF"):
        raise SheetError(_("{path} is a PDF document, not a spreadsheet").format(path=path))
    if head.startswith(b"{\\rtf"):
        raise SheetError(_("{path} is a Rich Text document, not a spreadsheet").format(path=path))
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return  # UTF-16 text: Excel's "Unicode Text"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<?xml") or text.startswith(b"<workbook"):
        if b"urn:schemas-microsoft-com:office:spreadsheet" in head or b"excel.sheet" in text:
            raise SheetError(
                _("{path} is an XML Spreadsheet 2003 file: {fix}").format(
                    path=path, fix=_(SAVE_AS_XLSX)
                )
            )
        raise SheetError(
            _("{path} is an XML file, not a spreadsheet bulk-topup can read").format(path=path)
        )
    if text.startswith((b"<!doctype html", b"<html", b"<table", b"<meta", b"<head")):
        raise SheetError(
            _(
                "{path} is a web page (HTML) with a spreadsheet's name, as some systems export "
                "them: {fix}"
            ).format(path=path, fix=_(SAVE_AS_XLSX))
        )
    if text.startswith(b"id;p"):
        raise SheetError(_("{path} is a SYLK file: {fix}").format(path=path, fix=_(SAVE_AS_XLSX)))
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if controls > max(8, len(head) // 20):
        raise SheetError(
            _("{path} is not a CSV or Excel file (it holds binary data)").format(path=path)
        )


# --- CSV -----------------------------------------------------------------------------------------

#: A well-formed UTF-8 sequence of two to four bytes: found in a file that is not UTF-8 as a
#: whole, it means two encodings were mixed (a UTF-8 "é" beside a cp1252 one).
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)


def _decode(path: Path, raw: bytes) -> tuple[str, str]:
    """(text, encoding name): UTF-16 with a BOM, UTF-8 (BOM or not), or Windows-1252."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise SheetError(
                _("{path} starts as UTF-16 text but is damaged further on").format(path=path)
            ) from None
    try:
        return raw.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as e:
        bad = e.start
    line = raw.count(b"\n", 0, bad) + 1
    if raw.startswith(b"\xef\xbb\xbf") or _UTF8_MULTIBYTE.search(raw):
        raise SheetError(
            _(
                "{path} mixes two text encodings: line {line} is not UTF-8 while other lines are "
                "(accents would come out wrong, as in AmÃ©lie); open it in Excel and save it "
                'again as "CSV UTF-8"'
            ).format(path=path, line=line)
        )
    try:
        return raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise SheetError(
            _(
                "{path}: the text is neither UTF-8 nor Windows-1252 (line {line}); save it again "
                'as "CSV UTF-8"'
            ).format(path=path, line=line)
        ) from None


def _read_csv(path: Path) -> Sheet:
    if path.stat().st_size > MAX_CSV_BYTES:
        raise SheetError(
            _("{path} is larger than {mb} MB; split it").format(
                path=path, mb=grouped(MAX_CSV_BYTES // 2**20)
            )
        )
    raw = path.read_bytes()
    text, encoding = _decode(path, raw)
    del raw
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise SheetError(_("{path} is empty").format(path=path))
    delimiter = _sniff_delimiter(text)
    grid = _csv_rows(path, text, delimiter)
    del text
    sheet = _to_sheet(path, Grid("", grid, []))
    sheet.encoding = encoding
    sheet.delimiter = delimiter
    return sheet


def _csv_rows(path: Path, text: str, delimiter: str) -> list[list[str]]:
    """The rows of a CSV text, each bounded as a workbook's sheet is, trailing empties dropped."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    grid: list[list[str]] = []
    cells = 0
    try:
        for row in reader:
            while row and not row[-1].strip():
                row.pop()
            if len(row) > MAX_COLUMNS:
                raise SheetError(
                    _(
                        "{path}, line {line}: {n} columns, more than the {most} an order sheet "
                        "may have (is this the right file?)"
                    ).format(
                        path=path,
                        line=reader.line_num,
                        n=grouped(len(row)),
                        most=grouped(MAX_COLUMNS),
                    )
                )
            cells += len(row)
            if len(grid) >= MAX_ROWS or cells > MAX_CELLS:
                raise SheetError(
                    _(
                        "{path} has more than {rows} rows or {cells} cells, beyond what an order "
                        "sheet may have; split it"
                    ).format(
                        path=path, rows=grouped(min(MAX_ROWS, len(grid))), cells=grouped(MAX_CELLS)
                    )
                )
            grid.append(row)
    except csv.Error as e:
        line = reader.line_num
        if "field limit" in str(e):
            raise SheetError(
                _(
                    "{path}, line {line}: one cell holds more than {n} characters, which no order "
                    "sheet needs (is this the right file?)"
                ).format(path=path, line=line, n=grouped(csv.field_size_limit()))
            ) from None
        raise SheetError(
            _("{path}, line {line}: not well-formed CSV ({reason})").format(
                path=path, line=line, reason=e
            )
        ) from None
    return grid


def _sniff_delimiter(text: str) -> str:
    lines = []
    for line in io.StringIO(text, newline=""):
        if line.strip():
            lines.append(line[:65536])
        if len(lines) >= HEADER_SCAN_ROWS + 20:
            break
    best, best_score = ",", -1
    for delimiter in (",", ";", "\t", "|"):
        try:
            counts = [len(r) for r in csv.reader(lines, delimiter=delimiter)]
        except csv.Error:  # a field beyond the limit with this delimiter: not this one
            continue
        wide = [c for c in counts if c > 1]
        if not wide:
            continue
        # The delimiter that splits the most lines into the same number of fields wins.
        score = max(wide.count(c) * c for c in set(wide))
        if score > best_score:
            best, best_score = delimiter, score
    return best


# --- header and rows -----------------------------------------------------------------------------


def _where(path: Path, name: str) -> str:
    return _("sheet {name!r} of {path}").format(name=name, path=path) if name else str(path)


def _others(grid: Grid) -> str:
    """`; its other sheets: 'Orders', 'Old' (hidden); name one with --sheet`, or nothing."""
    others = [i for i in grid.sheets if i.name != grid.name]
    if not others:
        return ""
    return _("; the workbook's other sheets: {sheets} (name the one to read with --sheet)").format(
        sheets=", ".join(i.describe() for i in others)
    )


def is_order_header(found: set[str]) -> bool:
    """True when the columns name everything one kind of order needs."""
    return any(all(set(group) & found for group in groups) for groups in REQUIRED.values())


def _to_sheet(path: Path, grid: Grid) -> Sheet:
    rows = grid.rows
    where = _where(path, grid.name)
    header_index, best = None, (0, -1)
    for i, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        found = {canonical(t) for t in map(cell_text, row) if t} - {None}
        if is_order_header(found):  # type: ignore[arg-type]
            header_index = i
            break
        if len(found) > best[0]:
            best = (len(found), i)
    if header_index is None:
        if not any(any(cell_text(c) for c in row) for row in rows):
            raise SheetError(
                _("{where} is empty{others}").format(where=where, others=_others(grid))
            )
        near = ""
        if best[1] >= 0:
            named = [t for t in map(cell_text, rows[best[1]]) if t and canonical(t)]
            near = _(" (row {row} has {named}, which is not enough)").format(
                row=best[1] + 1, named=", ".join(named)
            )
        raise SheetError(
            _(
                "{where} has no header row naming the columns of an order sheet in its first {n} "
                "rows{near}. An order sheet needs, {needs}{others}"
            ).format(
                where=where, n=HEADER_SCAN_ROWS, near=near, needs=_(NEEDS), others=_others(grid)
            )
        )
    header_number = header_index + 1
    headers = [cell_text(c) for c in rows[header_index]]
    while headers and not headers[-1]:
        headers.pop()
    columns = _columns(path, grid.name, headers, header_number)
    width = len(columns)
    formulas = grid.formulas
    out: list[SheetRow] = []
    for i in range(header_index + 1, len(rows)):
        raw = rows[i]
        texts = [cell_text(c) for c in raw]
        number = i + 1
        shown_errors: dict[str, str] = {}
        for col, error in grid.errors.get(number, {}).items():
            if col < len(texts) and not texts[col]:
                if col < width and columns[col] in ALIASES:
                    shown_errors[columns[col]] = error  # an order cell: an error on the row
                else:
                    texts[col] = error  # a note of the clerk's own: kept as it shows
        written = formulas.get(number)
        if written:
            for col, formula in written.items():
                # A pass-through cell whose formula was never computed keeps the formula itself.
                if col < len(texts) and not texts[col] and formula and (
                    col >= width or columns[col] not in ALIASES
                ):  # fmt: skip
                    texts[col] = "=" + formula
        if not any(texts) and not shown_errors:
            continue
        _refuse_controls(where, number, texts, headers)
        cells = {columns[j]: texts[j] if j < len(texts) else "" for j in range(width)}
        out.append(
            SheetRow(
                number,
                cells,
                frozenset(columns[c] for c in written if c < width) if written else NO_FORMULAS,
                shown_errors or NO_ERRORS,
                number in grid.hidden,
            )  # fmt: skip
        )
        if any(texts[width:]):
            cells[BEYOND] = " | ".join(t for t in texts[width:] if t)
    _refuse_controls(where, header_number, headers, headers)
    sheet = Sheet(path, grid.name, headers, columns, out, header_number, notes=list(grid.notes))
    carried = [sheet.labels[c] for c in sheet.extra_columns]
    if carried:
        note = _("columns carried through to the results unchanged (not order columns): {columns}")
        sheet.notes.append(note.format(columns=", ".join(carried)))
    return sheet


def _columns(path: Path, name: str, headers: list[str], header_number: int) -> list[str]:
    """A unique column name per header: its canonical name, or the header itself.

    Two headers meaning one order column is an error (which one would be sent?); two
    free-text columns with one title are both carried through, the second as `Note (2)`.
    """
    columns: list[str] = []
    first: dict[str, int] = {}
    for i, header in enumerate(headers):
        canon = canonical(header) if header else None
        name_ = canon or header or f"column {column_letters(i)}"  # a key, never shown
        if name_ in first:
            if canon:
                j = first[name_]
                raise SheetError(
                    _(
                        "{where}, row {row}: columns {first} ({first_header!r}) and {second} "
                        "({second_header!r}) both mean {column!r}; keep one"
                    ).format(
                        where=_where(path, name), row=header_number, first=column_letters(j),
                        first_header=headers[j], second=column_letters(i), second_header=header,
                        column=canon,
                    )
                )  # fmt: skip
            k = 2
            while f"{name_} ({k})" in first:
                k += 1
            name_ = f"{name_} ({k})"
        first[name_] = i
        columns.append(name_)
    return columns


def _refuse_controls(where: str, number: int, texts: list[str], headers: list[str]) -> None:
    if not _CONTROL.search("\n".join(texts)):
        return
    for j, text in enumerate(texts):
        m = _CONTROL.search(text)
        if m:
            header = headers[j] if j < len(headers) and headers[j] else None
            column = (
                _("column {letters} ({header})").format(letters=column_letters(j), header=header)
                if header
                else _("column {letters}").format(letters=column_letters(j))
            )
            code = ord(m.group())
            what = "NUL" if code == 0 else _("code {n}").format(n=code)
            raise SheetError(
                _(
                    "{where}, row {row}, {column}: holds a control character ({what}), which has "
                    "no place in an order sheet; is the file damaged, or not a spreadsheet?"
                ).format(where=where, row=number, column=column, what=what)
            )


__all__ = ["ALIASES", "KEY_COLUMNS", "ORDER_COLUMNS", "Sheet", "SheetInfo", "SheetRow",
           "canonical", "cell_text", "normalise_header", "read_sheet"]  # fmt: skip
