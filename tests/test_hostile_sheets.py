"""Hostile and odd files, made by the tests: each is read, or refused with a sentence naming
the row and column or the reason, in bounded time and memory, never with a traceback.

Bounds (checked in a child process, with the kernel's own peak-memory figure): every file here
is answered in under 10 s with a peak below 300 MB; unbounded, the worst of them took 80 s and
5.5 GB, or aborted the process.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msoffcrypto
import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from openpyxl import Workbook

from bulk_topup import readers
from bulk_topup.errors import SheetError
from bulk_topup.readers import MAX_CELLS, MAX_COLUMNS, MAX_ROWS, opening
from bulk_topup.readers.xlsx import scan_xlsx_sheet
from bulk_topup.sheet import read_sheet

from .sheetkit import (
    BLANK,
    HEADER,
    LABELSST,
    ODS_ORDERS,
    ROW,
    claim_dimensions,
    move_last_cell,
    ods,
    ods_cell,
    ods_row,
    patch_xls,
    xlsx,
    xlsx_with_xml,
)

FIXTURES = Path(__file__).parent / "fixtures"
PEAK_MB = 300
SECONDS = 10


def _value_at(ref: str) -> bytes:
    row = "".join(ch for ch in ref if ch.isdigit())
    return f'<row r="{row}"><c r="{ref}" t="n"><v>1</v></c></row>'.encode()


def _csv(data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        path = tmp / "h.csv"
        path.write_bytes(data)
        return path

    return make


def _encrypted(password: str) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        plain = io.BytesIO()
        wb = Workbook()
        wb.active.append(HEADER)
        wb.active.append(ROW)
        wb.save(plain)
        plain.seek(0)
        path = tmp / "enc.xlsx"
        with path.open("wb") as out:
            OOXMLFile(plain).encrypt(password, out)
        return path

    return make


def _zip(members: dict[str, bytes], name: str = "h.xlsx") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        import zipfile

        path = tmp / name
        with zipfile.ZipFile(path, "w") as z:
            for member, data in members.items():
                z.writestr(member, data)
        return path

    return make


_NUL_LATE = b"phone,plan_code,amount,note\n" + b"0661234567,PREPAID_MOBILIS,500,ok\n" * 200
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "xlsx value at XFD1048576": (
        lambda t: xlsx_with_xml(t / "h.xlsx", _value_at("XFD1048576")),
        r"has a value at XFD1048576 \(row 1,048,576, beyond the 200,000 rows",
    ),
    "xlsx order sheet with a stray value at CV1000000": (
        lambda t: xlsx_with_xml(t / "h.xlsx", _value_at("CV1000000")),
        r"sheet 'Orders' of .*h.xlsx has a value at CV1000000 .*clear it",
    ),
    "xlsx value at ZZ200000 (rows x columns)": (
        lambda t: xlsx_with_xml(t / "h.xlsx", _value_at("ZZ200000")),
        r"as far as row 200,000 \(at ZZ200000\) and column ZZ \(at ZZ200000\): 140,400,000 cells",
    ),
    "xlsx value beyond the columns": (
        lambda t: xlsx_with_xml(t / "h.xlsx", _value_at("ALN2")),
        r"has a value at ALN2 \(column ALN, beyond the 1,000 columns",
    ),
    "xlsx cells without r reaching far": (
        lambda t: xlsx_with_xml(
            t / "h.xlsx", b'<row r="3">' + b"<c><v>1</v></c>" * (MAX_COLUMNS + 5) + b"</row>"
        ),
        r"has a value at ALM3 \(column ALM",
    ),
    "xls value at IV65536": (
        lambda t: patch_xls(t / "h.xls", move_last_cell(LABELSST, 65535, 255)),
        r"sheet 'Orders' of .*h.xls holds values as far as row 65,536 \(at IV65536\)",
    ),
    "ods valued row repeated a million times down": (
        lambda t: ods(
            t / "h.ods",
            {
                "Orders": ODS_ORDERS
                + '<table:table-row table:number-rows-repeated="999997"><table:table-cell/>'
                "</table:table-row><table:table-row>"
                '<table:table-cell table:number-columns-repeated="99"/>'
                + ods_cell("x")
                + "</table:table-row>"
            },
        ),
        r"sheet 'Orders' of .*h.ods has a value at CV1000000 \(row 1,000,000",
    ),
    "ods valued cell repeated across 16,000 columns": (
        lambda t: ods(
            t / "h.ods",
            {
                "Orders": ODS_ORDERS
                + '<table:table-row table:number-rows-repeated="1000"><table:table-cell '
                'office:value-type="float" office:value="1" '
                'table:number-columns-repeated="16000"/></table:table-row>'
            },
        ),
        r"has a value at ALM3 \(column ALM",
    ),
    "ods second sheet far away (read whole when opened)": (
        lambda t: ods(
            t / "h.ods",
            {
                "Orders": ODS_ORDERS,
                "Old": '<table:table-row table:number-rows-repeated="500000"><table:table-cell/>'
                "</table:table-row>" + ods_row("x"),
            },
        ),
        r"sheet 'Old' of .*h.ods has a value at A500001",
    ),
    "csv header of 100,000 columns": (
        _csv(b"phone,plan_code,amount," + b"x," * 100_000 + b"y\n0661234567,PREPAID_MOBILIS,1\n"),
        r"line 1: 100,004 columns, more than the 1,000 an order sheet may have",
    ),
    "csv NUL byte after the first 4 KB": (
        _csv(_NUL_LATE + b"0661234568,PREPAID_MOBILIS,500,a\x00b\n"),
        r"row 202, column D \(note\): holds a control character \(NUL\)",
    ),
    "csv bell character in an order column": (
        _csv(b"phone,plan_code,amount\n0661234567,PREPAID_\x07MOBILIS,500\n"),
        r"row 2, column B \(plan_code\): holds a control character \(code 7\)",
    ),
    "csv mixing UTF-8 and Windows-1252": (
        _csv(
            "phone,plan_code,amount,Nom\n0661234567,PREPAID_MOBILIS,500,Amélie\n".encode()
            + "0661234568,PREPAID_MOBILIS,500,Amélie\n".encode("cp1252")
        ),  # fmt: skip
        r"mixes two text encodings: line 3 is not UTF-8 while other lines are",
    ),
    "csv of more rows than a sheet may have": (
        _csv(b"phone,plan_code,amount\n" + b"0661234567,PREPAID_MOBILIS,500\n" * (MAX_ROWS + 1)),
        r"has more than 200,000 rows or 2,000,000 cells",
    ),
    "xlsb": (
        _zip({"[Content_Types].xml": b"<Types/>", "xl/workbook.bin": b"\x83\x01\x00"}, "h.xlsb"),
        r"is an Excel binary workbook \(.xlsb\), which bulk-topup does not read: open it in Excel",
    ),
    "word document named .xlsx": (
        _zip({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}),
        r"is a Word document, not a spreadsheet",
    ),
    "plain zip named .xlsx": (_zip({"a.txt": b"hello"}), r"is a zip archive, not a spreadsheet"),
    "xlsx protected by a real password": (
        _encrypted("s3cret"),
        r"is protected by a password, so bulk-topup cannot read it: open it in Excel, remove",
    ),
    "excel 4.0 worksheet (BIFF4)": (
        _csv(b"\x09\x04\x06\x00\x00\x00\x10\x00\x00\x00" + b"\x00" * 64),
        r"is in an old Excel format \(Excel 2.1 to 4.0\): open it in Excel",
    ),
    "xml spreadsheet 2003": (
        _csv(
            b'<?xml version="1.0"?><?mso-application progid="Excel.Sheet"?><Workbook '
            b'xmlns="urn:schemas-microsoft-com:office:spreadsheet"></Workbook>'
        ),  # fmt: skip
        r"is an XML Spreadsheet 2003 file: open it in Excel",
    ),
    "html page named .xls": (
        _csv(b"<html><body><table><tr><td>phone</td></tr></table></body></html>"),
        r"is a web page \(HTML\) with a spreadsheet's name",
    ),
    "ole container that is not a workbook": (
        lambda t: _ole_without_workbook(t / "h.xls"),
        r"is an Office file, but not a spreadsheet",
    ),
}


def _ole_without_workbook(path: Path) -> Path:
    """The XLS sample with its Workbook stream renamed away (same length, in the directory)."""
    data = bytearray((FIXTURES / "orders.xls").read_bytes())
    name = "Workbook".encode("utf-16-le")
    at = data.find(name)
    data[at : at + len(name)] = "Workbooq".encode("utf-16-le")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_files_are_refused_with_a_sentence(tmp_path: Path, case: str) -> None:
    make, message = HOSTILE[case]
    with pytest.raises(SheetError, match=message) as caught:
        read_sheet(make(tmp_path))
    text = str(caught.value)
    assert "\n" not in text and "Error" not in text and "calamine" not in text.lower()


_CHILD = """
import resource, sys, time
from bulk_topup.errors import SheetError
from bulk_topup.sheet import read_sheet
start = time.perf_counter()
try:
    sheet = read_sheet(sys.argv[1])
    outcome = f"read {len(sheet.rows)}"
except SheetError as e:
    outcome = "refused " + str(e)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{time.perf_counter() - start:.3f} {peak:.0f}")
print(outcome)
"""


def _measure(path: Path) -> tuple[float, float, str]:
    """(seconds, peak MB, outcome) of reading `path` in a child under an address-space cap."""

    def cap() -> None:
        limit = 2 * 2**30
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    figures, outcome = proc.stdout.split("\n", 1)
    seconds, peak = figures.split()
    return float(seconds), float(peak), outcome.strip()


def test_hostile_files_cost_bounded_time_and_memory(tmp_path: Path) -> None:
    """Each hostile file, read in its own process: refused, fast, small. Unbounded, the first
    three took 5.5 GB and 80 s or aborted the process."""
    worst: list[tuple[float, float, str]] = []
    for i, (case, (make, _)) in enumerate(HOSTILE.items()):
        folder = tmp_path / str(i)
        folder.mkdir()
        seconds, peak, outcome = _measure(make(folder))
        assert outcome.startswith("refused"), (case, outcome)
        assert seconds < SECONDS and peak < PEAK_MB, (case, seconds, peak)
        worst.append((peak, seconds, case))
    assert len(worst) == len(HOSTILE)


# --- what is read, not refused -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda t: xlsx_with_xml(t / "d.xlsx", dimension=b"A1:XFD1048576"),
        lambda t: xlsx_with_xml(t / "e.xlsx", b'<row r="1048576"><c r="XFD1048576" s="0"/></row>'),
        lambda t: patch_xls(t / "d.xls", claim_dimensions(65536, 256)),
        lambda t: patch_xls(t / "b.xls", move_last_cell(BLANK, 65535, 255)),
        lambda t: ods(
            t / "t.ods",
            {
                "Orders": ODS_ORDERS
                + '<table:table-row table:number-rows-repeated="1048574"><table:table-cell '
                'table:number-columns-repeated="16384"/></table:table-row>'
            },
        ),
    ],
    ids=[
        "xlsx dimension claims XFD1048576",
        "xlsx empty styled cell at XFD1048576",
        "xls dimensions claim IV65536",
        "xls blank cell at IV65536",
        "ods trailing empty rows and columns",
    ],  # fmt: skip
)
def test_claims_and_empty_far_cells_do_not_block_a_sheet(tmp_path: Path, make) -> None:
    """Only values count: a `<dimension>` claim or a formatted empty cell far away is read in
    bounded time and memory, and the orders come out."""
    path = make(tmp_path)
    seconds, peak, outcome = _measure(path)
    assert outcome.startswith("read"), outcome
    assert seconds < SECONDS and peak < PEAK_MB, (seconds, peak)
    first = read_sheet(path).rows[0].cells
    expected = FIXTURES / "orders.xls" if path.suffix == ".xls" else None
    if expected is not None:
        assert first == read_sheet(expected).rows[0].cells
    else:
        assert first["phone"] == "0661234567"


def test_the_limits_themselves_are_read(tmp_path: Path) -> None:
    """A value on the last row and the last column allowed is read; one step further is not."""
    assert MAX_ROWS * 5 <= MAX_CELLS * 2  # the limits leave room for a long, narrow sheet
    last = f"A{MAX_ROWS}".encode()
    ok = xlsx_with_xml(tmp_path / "ok.xlsx", _value_at(last.decode()))
    assert read_sheet(ok).rows[-1].number == MAX_ROWS
    over = xlsx_with_xml(tmp_path / "over.xlsx", _value_at(f"A{MAX_ROWS + 1}"))
    with pytest.raises(SheetError, match=f"A{MAX_ROWS + 1}"):
        read_sheet(over)


def test_excel_default_password_is_opened(tmp_path: Path) -> None:
    """Excel encrypts with "VelvetSweatshop" when no password was given, and opens such files
    without asking: so does bulk-topup."""
    path = _encrypted("VelvetSweatshop")(tmp_path)
    with path.open("rb") as f:
        assert msoffcrypto.OfficeFile(f).is_encrypted()
    sheet = read_sheet(path)
    assert [r.cells for r in sheet.rows] == [
        {"phone": "0661234567", "plan_code": "PREPAID_MOBILIS", "amount": "500"}
    ]


def test_an_xls_with_excel_default_password_is_opened() -> None:
    """An RC4-encrypted XLS from Apache POI's test data, encrypted with the default password."""
    path = FIXTURES / "poi" / "50833-default-password.xls"
    with pytest.raises(SheetError, match=r"sheet 'Sheet1' of .* has no header row naming"):
        read_sheet(path)  # decrypted and read: the sheet holds one cell of text
    grid = readers.read_workbook(path, path.read_bytes()[:8], None)
    assert grid.rows == [["test cell value"]]
    assert [s.name for s in grid.sheets] == ["Sheet1", "Sheet2", "Sheet3"]


def test_a_reader_panic_is_a_sentence(capfd: pytest.CaptureFixture[str]) -> None:
    """A fuzzed XLS (from Apache POI's test data) makes the reader panic: a pyo3
    PanicException, which is not an Exception. Read past the bounds check, it becomes a
    sentence, and the reader's own report (a Rust backtrace) stays off the terminal."""
    path = FIXTURES / "poi" / "clusterfuzz-5816431116615680.xls"
    with pytest.raises(SheetError, match=r"is damaged, or not a spreadsheet bulk-topup can read"):
        workbook = opening._open_calamine(path.read_bytes(), path)
        opening._grid(workbook, path, workbook.sheet_names[0])
    assert "panicked" not in capfd.readouterr().err
    # Read as a whole, the bounds check refuses it first, naming the cell.
    with pytest.raises(SheetError, match=r"sheet 'Analysis' of .* has a value at MZI1538"):
        read_sheet(path)


def test_utf16_unicode_text_export(tmp_path: Path) -> None:
    """Excel's "Unicode Text": UTF-16 with a BOM, tab separated."""
    path = tmp_path / "u.txt"
    text = "Numéro\tOffre\tMontant\tNom\r\n0661234567\tPREPAID_MOBILIS\t500\tAmélie\r\n"
    path.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))
    sheet = read_sheet(path)
    assert (sheet.encoding, sheet.delimiter) == ("utf-16", "\t")
    assert sheet.rows[0].cells["Nom"] == "Amélie"


def test_hostile_cells_cost_linear_time(tmp_path: Path) -> None:
    """Cells left open in the sheet XML cannot make the scan quadratic."""
    xml = b'<row r="3">' + b'<c r="A3"><v>1</v>' * 200_000 + b"</row>"
    path = xlsx_with_xml(tmp_path / "open.xlsx", xml)
    start = time.perf_counter()
    with contextlib.suppress(SheetError):
        read_sheet(path)
    assert time.perf_counter() - start < SECONDS


def test_the_scans_see_the_same_cells_whatever_the_chunk_size(tmp_path: Path) -> None:
    """Pieces of the sheet XML end on row boundaries: no cell is lost or counted twice between
    two pieces, in the fast scan (plain cells) or the careful one (formulas, cells without r)."""
    import zipfile

    rows: list[list[object]] = [["phone", "plan_code", "amount", "Note"]]
    for i in range(300):
        rows.append(
            [f"06612345{i:02d}", "PREPAID_MOBILIS", 500, f'=A{i + 2}&"x"' if i % 7 else "n"]
        )
    rows.append([None] * 9 + ["far"])
    path = xlsx(tmp_path / "c.xlsx", rows)
    xlsx_with_xml(tmp_path / "r.xlsx", (b"<row>" + b"<c><v>1</v></c>" * 5 + b"</row>") * 40)
    for name in ("c.xlsx", "r.xlsx"):
        with zipfile.ZipFile(tmp_path / name) as z:
            results = []
            for chunk in (64, 1000, 4 << 20):
                with z.open("xl/worksheets/sheet1.xml") as f:
                    extent, scan = scan_xlsx_sheet(f, "s", chunk)
                results.append(((extent.rows, extent.cols), scan.formulas))
        assert results[0] == results[1] == results[2], name
    assert results[0][0] == (2 + 40, 5)
    with zipfile.ZipFile(path) as z, z.open("xl/worksheets/sheet1.xml") as f:
        extent, scan = scan_xlsx_sheet(f, "s", 64)
    formulas = scan.formulas
    assert (extent.rows, extent.cols) == (302, 10)
    assert formulas[3] == {3: 'A3&"x"'} and 2 not in formulas
    assert sum(len(v) for v in formulas.values()) == len([i for i in range(300) if i % 7])
