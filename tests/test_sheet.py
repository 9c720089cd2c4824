"""Reading sheets: formats, encodings, headers, damage, and hostile files."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from openpyxl import Workbook

from bulk_topup.errors import SheetError
from bulk_topup.sheet import canonical, cell_text, read_sheet

SAMPLES = Path(__file__).parent.parent / "samples"
FIXTURES = Path(__file__).parent / "fixtures"


def xlsx(path: Path, rows: list[list[object]], title: str = "Sheet1") -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


@pytest.mark.parametrize(
    ("header", "canon"),
    [
        ("Numéro", "phone"),
        ("TÉLÉPHONE", "phone"),
        ("MSSIDN", "phone"),
        ("msisdn", "phone"),
        ("Tel", "phone"),
        (" Numéro de téléphone ", "phone"),
        ("Offre", "plan_code"),
        ("Forfait", "plan_code"),
        ("plan_code", "plan_code"),
        ("Montant", "amount"),
        ("Amount (DZD)", "amountdzd" and "amount"),
        ("Product ID", "product_id"),
        ("type_id", "type_id"),
        ("Quantité", "quantity"),
        ("Internet type", "internet_type"),
        ("Référence", "ref"),
        ("Name", None),
    ],
)
def test_header_aliases(header: str, canon: str | None) -> None:
    assert canonical(header) == canon


def test_cells_are_text_and_integral_floats_lose_their_point() -> None:
    assert cell_text(778037340.0) == "778037340"
    assert cell_text(1000.5) == "1000.5"
    assert cell_text(None) == ""
    assert cell_text("  0778037340 ") == "0778037340"


def test_xlsx_title_block_lost_zero_and_passthrough(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "s.xlsx",
        [
            ["Payroll November"],
            [],
            ["Employee", "Numéro", "Offre", "Montant"],
            ["Amel", 778037340, "PREPAID_DJEZZY", 1000],
            [],
            [None, None, None, None],
            ["Bilal", "0661234567", "PREPAID_MOBILIS", 500.0],
        ],
    )
    sheet = read_sheet(path)
    assert sheet.header_row == 3
    assert [r.number for r in sheet.rows] == [4, 7]
    assert sheet.rows[0].cells == {
        "Employee": "Amel",
        "phone": "778037340",
        "plan_code": "PREPAID_DJEZZY",
        "amount": "1000",
    }
    assert sheet.rows[1].cells["amount"] == "500"
    assert sheet.extra_columns == ["Employee"]


def test_sheet_option(tmp_path: Path) -> None:
    wb = Workbook()
    wb.active.append(["nothing here"])
    ws = wb.create_sheet("Orders")
    ws.append(["phone", "plan", "amount"])
    ws.append(["0661234567", "PREPAID_MOBILIS", 500])
    wb.save(tmp_path / "two.xlsx")
    assert len(read_sheet(tmp_path / "two.xlsx", "Orders").rows) == 1
    with pytest.raises(
        SheetError, match="no sheet named 'Nope'; its sheets are: 'Sheet', 'Orders'"
    ):
        read_sheet(tmp_path / "two.xlsx", "Nope")


def test_semicolon_cp1252_csv_with_french_headers(tmp_path: Path) -> None:
    path = tmp_path / "fr.csv"
    path.write_bytes(
        "Recharges décembre\n\nNuméro;Offre;Montant;Remarque\n"
        "0661234567;PREPAID_MOBILIS;1000,00;élève\n".encode("cp1252")
    )
    sheet = read_sheet(path)
    assert (sheet.delimiter, sheet.encoding) == (";", "cp1252")
    assert sheet.rows[0].number == 4
    assert sheet.rows[0].cells["amount"] == "1000,00"
    assert sheet.rows[0].cells["Remarque"] == "élève"


def test_utf8_bom_and_tabs(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("\ufeffphone\tplan_code\tamount\n0661234567\tPREPAID_MOBILIS\t500\n".encode())
    sheet = read_sheet(path)
    assert sheet.delimiter == "\t" and sheet.columns == ["phone", "plan_code", "amount"]


@pytest.mark.parametrize(
    "other",
    [SAMPLES / "orders.csv", FIXTURES / "orders.ods", FIXTURES / "orders.xls"],
    ids=["csv", "ods", "xls"],
)
def test_every_format_reads_the_sample_alike(other: Path) -> None:
    """The same sheet saved as CSV, ODS (LibreOffice) and old XLS reads the same rows."""
    a, b = read_sheet(SAMPLES / "orders.xlsx"), read_sheet(other)
    assert [r.cells for r in a.rows] == [r.cells for r in b.rows]
    if other.suffix != ".csv":  # the CSV sample has no title block above its header
        assert [r.number for r in a.rows] == [r.number for r in b.rows]


def _with_cached_formula(path: Path) -> Path:
    """openpyxl writes formulas without a computed value; add one as Excel would."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = re.sub(
                    rb"<f>500\*2</f><v\s*/>|<f>500\*2</f><v></v>|<f>500\*2</f>",
                    b"<f>500*2</f><v>1000</v>",
                    data,
                )
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())
    return path


def test_formula_cells_are_flagged(tmp_path: Path) -> None:
    path = xlsx(
        tmp_path / "f.xlsx",
        [
            ["phone", "plan_code", "amount"],
            ["0661234567", "PREPAID_MOBILIS", "=500*2"],
            ["0661234568", "PREPAID_MOBILIS", "=SUM(A1:A2)"],
        ],
    )
    _with_cached_formula(path)
    sheet = read_sheet(path)
    assert sheet.rows[0].formulas == {"amount"} and sheet.rows[0].cells["amount"] == "1000"
    assert sheet.rows[1].formulas == {"amount"} and sheet.rows[1].cells["amount"] == ""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\n\n  \n", "is empty"),
        (b"%PDF-1.4\x00\x01\x02binary", "is a PDF document, not a spreadsheet"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00"
            b"\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\x00\x01",
            "it holds binary data",
        ),
        (b"just,some,words\nand,more,words\n", "has no header row naming the columns"),
        (b"PK\x03\x04garbage", "damaged or not a spreadsheet"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1garbage", "is damaged, or not a spreadsheet"),
        (
            b"phone,plan,amount\n" + b"x" * 300_000 + b",a,1\n",
            "line 2: one cell holds more than 131,072 characters",
        ),
    ],
)
def test_unreadable_files_get_one_sentence(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.xlsx"
    path.write_bytes(content)
    with pytest.raises(SheetError, match=re.escape(message)):
        read_sheet(path)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match="no such file"):
        read_sheet(tmp_path / "nope.csv")
    with pytest.raises(SheetError, match="is a folder"):
        read_sheet(tmp_path)


def test_zip_bomb_refused_before_expanding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (40 * 2**20))
    with pytest.raises(SheetError, match="zip bomb"):
        read_sheet(path)


def test_xml_entity_bomb_refused(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "e.xlsx", [["phone", "plan_code", "amount"]])
    buf = io.BytesIO()
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    )
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/sharedStrings.xml" or info.filename.endswith("sheet1.xml"):
                data = bomb + (data.split(b"?>", 1)[1] if b"?>" in data else data)
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())
    with pytest.raises(SheetError, match="XML entity declarations"):
        read_sheet(path)


def test_two_columns_with_one_meaning(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("phone,Numéro,plan,amount\n0661234567,0661234567,PREPAID_MOBILIS,500\n")
    with pytest.raises(
        SheetError, match=r"dup.csv, row 1: columns A \('phone'\) and B \('Numéro'\) both mean"
    ):
        read_sheet(path)


def test_a_zip_that_lies_about_its_sizes_is_refused(tmp_path: Path) -> None:
    """A member whose header claims a small size but expands further fails its check."""
    path = tmp_path / "liar.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"<a>" + b"\0" * (2 * 2**20) + b"</a>")
    data = bytearray(path.read_bytes())
    real = (2 * 2**20 + 7).to_bytes(4, "little")
    fake = (100).to_bytes(4, "little")
    data = data.replace(real, fake)  # both the local header and the central directory
    path.write_bytes(bytes(data))
    with pytest.raises(SheetError, match="damaged or not a spreadsheet|zip bomb"):
        read_sheet(path)


def test_entity_declarations_after_a_long_comment_are_found(tmp_path: Path) -> None:
    path = xlsx(tmp_path / "c.xlsx", [["phone", "plan_code", "amount"]])
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("sheet1.xml"):
                body = data.split(b"?>", 1)[-1]
                data = (b'<?xml version="1.0"?><!--' + b"x" * (3 * 2**20) + b"-->"
                        b'<!DOCTYPE x [<!ENTITY a "b">]>' + body)  # fmt: skip
            dst.writestr(info, data)
    path.write_bytes(buf.getvalue())
    with pytest.raises(SheetError, match="XML entity declarations"):
        read_sheet(path)


def test_hidden_rows_and_excel_errors_are_named_on_their_row(tmp_path: Path) -> None:
    """A row the clerk hid (or filtered out) is not sent as if it were shown; a cell showing
    #N/A is not "empty"; in a column of the clerk's own, #N/A is kept as it shows."""
    import re
    import zipfile

    from openpyxl import Workbook

    from bulk_topup.catalog import Catalog
    from bulk_topup.validation import build_orders

    wb = Workbook()
    ws = wb.active
    ws.append(["phone", "plan_code", "amount", "note"])
    ws.append(["0661234567", "PREPAID_MOBILIS", 500, "ok"])
    ws.append(["0661234568", "PREPAID_MOBILIS", 600, "hidden"])
    ws.append(["0661234569", "PREPAID_MOBILIS", 700, 1])
    ws.row_dimensions[3].hidden = True
    path = tmp_path / "s.xlsx"
    wb.save(path)
    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    xml = files["xl/worksheets/sheet1.xml"].decode()
    xml = re.sub(r'<c r="C4"[^>]*>.*?</c>', '<c r="C4" t="e"><v>#N/A</v></c>', xml)
    xml = re.sub(r'<c r="D4"[^>]*>.*?</c>', '<c r="D4" t="e"><f>1/0</f><v>#DIV/0!</v></c>', xml)
    files["xl/worksheets/sheet1.xml"] = xml.encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    sheet = read_sheet(path)
    assert [r.hidden for r in sheet.rows] == [False, True, False]
    assert sheet.rows[2].excel_errors == {"amount": "#N/A"}
    assert sheet.rows[2].cells["note"] == "#DIV/0!"
    orders = build_orders(sheet, "b", Catalog(missing=["plans"])).orders
    assert orders[0].valid
    assert [str(p) for p in orders[1].errors] == [
        "row 3, phone: this row is hidden in the sheet: unhide it to send it, or delete it"
    ]
    assert [str(p) for p in orders[2].errors] == [
        "row 4, amount: the cell shows an Excel error (#N/A); type the value itself"
    ]


@pytest.mark.parametrize("name", ["hidden-and-errors.xls", "hidden-and-errors.ods"])
def test_hidden_rows_and_excel_errors_of_xls_and_ods(name: str) -> None:
    """The same sheet saved by LibreOffice as .xls and .ods: row 3 hidden, row 4 showing #N/A
    in Amount and #DIV/0! in a note, row 5 a formula in a note. The readers show the error cells
    empty and say nothing of hidden rows: the file itself is read for them."""
    from bulk_topup.catalog import Catalog
    from bulk_topup.validation import build_orders

    sheet = read_sheet(FIXTURES / name)
    assert [r.hidden for r in sheet.rows] == [False, True, False, False]
    assert sheet.rows[2].excel_errors == {"amount": "#N/A"}
    assert sheet.rows[2].cells["note"] == "#DIV/0!"  # a column of the clerk's own: as it shows
    assert sheet.rows[3].formulas == {"note"} and sheet.rows[3].cells["note"] == "PREPAID_MOBILIS"
    orders = build_orders(sheet, "b", Catalog(missing=["plans"])).orders
    assert orders[0].valid and orders[3].valid
    assert [str(p) for p in orders[1].errors] == [
        "row 3, phone: this row is hidden in the sheet: unhide it to send it, or delete it"
    ]
    assert [str(p) for p in orders[2].errors] == [
        "row 4, amount: the cell shows an Excel error (#N/A); type the value itself"
    ]
