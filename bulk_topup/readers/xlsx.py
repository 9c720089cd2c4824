"""XLSX sheets measured from their XML, streamed: the extent of the values, formulas, Excel error
cells and hidden rows; and where each sheet of a workbook lives in its zip."""

from __future__ import annotations

import posixpath
import re
import zipfile
from html import unescape
from typing import IO

from .extent import MAX_COLUMNS, MAX_ROWS, Extent, SheetScan, chunks, last_match
from .extent import XML_ATTRS as _ATTRS
from .extent import XML_PREFIX as _P

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


def scan_xlsx_sheet(stream: IO[bytes], name: str, chunk: int = 4 << 20) -> tuple[Extent, SheetScan]:
    """The extent of a worksheet's XML, and its formulas, error cells and hidden rows."""
    extent = Extent(name)
    scan = SheetScan()
    state = [-1, -1]  # the row and column of the last cell seen
    for piece in chunks(stream, _XLSX_ROW_END, chunk):
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
    last = last_match(_LAST_ROW, piece)
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


def xlsx_sheet_members(z: zipfile.ZipFile) -> dict[str, str]:
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
