"""Spreadsheet files made by the tests themselves: honest ones, and hostile ones."""

from __future__ import annotations

import io
import re
import shutil
import struct
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

from openpyxl import Workbook

FIXTURES = Path(__file__).parent / "fixtures"
HEADER = ["phone", "plan_code", "amount"]
ROW = ["0661234567", "PREPAID_MOBILIS", 500]


def xlsx(path: Path, rows: list[list[object]], title: str = "Orders") -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for row in rows:
        ws.append(row)
    wb.save(path)
    return path


def patch_xlsx(path: Path, member: str, edit) -> Path:  # type: ignore[no-untyped-def]
    """Rewrite one member of an xlsx through `edit(bytes) -> bytes`."""
    buf = io.BytesIO()
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == member:
                data = edit(data)
            dst.writestr(info.filename, data)
    path.write_bytes(buf.getvalue())
    return path


def xlsx_with_xml(path: Path, cells_xml: bytes = b"", dimension: bytes | None = None) -> Path:
    """A valid one-order sheet, with raw `<row>` XML appended to its sheetData."""
    xlsx(path, [HEADER, ROW])

    def edit(data: bytes) -> bytes:
        data = data.replace(b"</sheetData>", cells_xml + b"</sheetData>")
        if dimension is not None:
            data = re.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="' + dimension + b'"/>',
                          data)  # fmt: skip
        return data

    return patch_xlsx(path, "xl/worksheets/sheet1.xml", edit)


def ods(path: Path, tables: dict[str, str]) -> Path:
    """An ODS file whose tables are given as raw `<table:table-row>` XML."""
    body = "".join(
        f'<table:table table:name="{escape(name)}">{rows}</table:table>'
        for name, rows in tables.items()
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:spreadsheet>{body}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        z.writestr("META-INF/manifest.xml", manifest)
        z.writestr("content.xml", content)
    return path


def ods_cell(text: object) -> str:
    return (
        f'<table:table-cell office:value-type="string"><text:p>{escape(str(text))}</text:p>'
        f"</table:table-cell>"
    )


def ods_row(*texts: object) -> str:
    return "<table:table-row>" + "".join(ods_cell(t) for t in texts) + "</table:table-row>"


ODS_ORDERS = ods_row(*HEADER) + ods_row(*ROW)


def _biff_records(data: bytes):  # type: ignore[no-untyped-def]
    pos = 0
    while pos + 4 <= len(data):
        kind, length = struct.unpack_from("<HH", data, pos)
        yield pos, kind, length
        pos += 4 + length


def patch_xls(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    """A copy of the shipped XLS sample whose Workbook stream went through `edit(bytearray)`
    (same length: the container is rewritten in place)."""
    import olefile

    shutil.copy(FIXTURES / "orders.xls", path)
    with olefile.OleFileIO(str(path), write_mode=True) as ole:
        data = bytearray(ole.openstream("Workbook").read())
        edit(data)
        ole.write_stream("Workbook", bytes(data))
    return path


def move_last_cell(kind: int, row: int, col: int):  # type: ignore[no-untyped-def]
    """An `edit` moving the last BIFF record of `kind` (a cell) to (row, col), 0-based."""

    def edit(data: bytearray) -> None:
        last = [pos for pos, k, _ in _biff_records(bytes(data)) if k == kind][-1]
        struct.pack_into("<HH", data, last + 4, row, col)

    return edit


def claim_dimensions(rows: int, cols: int):  # type: ignore[no-untyped-def]
    def edit(data: bytearray) -> None:
        for pos, k, _ in _biff_records(bytes(data)):
            if k == 0x0200:
                struct.pack_into("<IIHH", data, pos + 4, 0, rows, 0, cols)

    return edit


LABELSST, BLANK = 0x00FD, 0x0201
