"""A workbook file opened: its format told from its first bytes, hostile zips refused, encrypted
files opened with Excel's default password, the sheet chosen, and every failure of a reader
(panics included) turned into one sentence naming the file."""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from ..errors import SheetError
from ..i18n import N_, _
from ..i18n import number as grouped
from .extent import (
    DEFAULT_PASSWORD,
    KIND_WORDS,
    MAX_COLUMNS,
    MAX_FILE_BYTES,
    MAX_RATIO,
    MAX_ROWS,
    MAX_UNCOMPRESSED,
    OLE_MAGIC,
    SAVE_AS_XLSX,
    ZIP_MAGIC,
    Grid,
    SheetInfo,
    SheetScan,
)
from .ods import scan_ods
from .xls import read_biff_globals, scan_biff_sheet
from .xlsx import scan_xlsx_sheet, xlsx_sheet_members

# --- opening -------------------------------------------------------------------------------------


def is_control(e: BaseException) -> bool:
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
        if is_control(e):
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
                    sheet=sheet, path=path, kind=_(KIND_WORDS.get(chosen.kind, chosen.kind))
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
        if is_control(e):
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
        members = xlsx_sheet_members(z)
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
        if is_control(e):
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
            if is_control(e):
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
        if is_control(e):
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
