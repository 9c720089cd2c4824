"""Card codes in custody: a workbook of the codes alone, encrypted with a password.

Card codes are cash. On request the results show them masked, so the results can be forwarded,
and the codes go to a workbook of their own encrypted with the ECMA-376 agile scheme (what Excel
and LibreOffice open with a password prompt), by msoffcrypto-tool. The clear workbook is built in
memory and only its encrypted bytes reach the disk.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import xlsxwriter
from msoffcrypto.format.ooxml import OOXMLFile

from ..i18n import _, ngettext
from ..journal import Journal, Row
from ..models import mask
from .settings import ReportSettings
from .sheets import DATE_WIDTH, Col, Styles, Table
from .words import Columns, operator_of


def shown(code: str | None, settings: ReportSettings) -> str | None:
    """A card code as the results show it: whole, or masked when the codes are in custody."""
    if not code:
        return None
    return mask(code) if settings.masked else code


def codes_of(journal: Journal) -> Iterator[tuple[Row, str, str | None, str | None]]:
    """(row, code, serial or transaction no., issued at) of every card code of the batch:
    gift cards and internet cards alike."""
    for r in journal.iter_rows():
        if r.card_code:
            yield r, r.card_code, r.num_trans, r.date_traitement or r.settled_at
        for card in r.cards:
            if card.get("value"):
                yield r, str(card["value"]), card.get("serial"), r.settled_at


def encrypt(clear: bytes, password: str) -> bytes:
    """`clear` (an xlsx) encrypted with `password`."""
    out = io.BytesIO()
    OOXMLFile(io.BytesIO(clear)).encrypt(password, out)
    return out.getvalue()


def codes_workbook(journal: Journal, settings: ReportSettings) -> bytes:
    """The codes of the batch as a clear xlsx, in memory."""
    columns = Columns.of(journal)
    own = [c for c in columns.own if c in columns.filled]
    batch = journal.get_meta("batch") or ""
    buffer = io.BytesIO()
    wb = xlsxwriter.Workbook(buffer, {"in_memory": True})
    try:
        styles = Styles(wb)
        cols = [
            Col(_("sheet row"), "count", 5),
            *[Col(columns.header(c), "wrap", columns.width(c)) for c in own],
            Col(_("ref"), "wrap", 15, small=True),
            Col(_("order id"), "wrap", 11, small=True),
            Col(_("operator"), "text", 12),
            Col(_("product"), "wrap", 22),
            Col(_("card code"), "text", 24),
            Col(_("serial or transaction no."), "wrap", 16),
            Col(_("issued at"), "date", DATE_WIDTH),
        ]
        table = Table(wb, _("Card codes"), styles, batch, cols)
        cells_of: dict[int, dict[str, str]] = {}
        for r, code, serial, issued in codes_of(journal):
            cells = cells_of.setdefault(r.idx, dict(r.input))
            table.append(
                [r.sheet_row, *[cells.get(c) for c in own], r.ref, r.order_id, operator_of(r),
                 r.label, code, serial, settings.local(issued) or issued]
            )  # fmt: skip
        n = table.row - 1
        table.total(_("total"), {1: ngettext("{n} code", "{n} codes", n).format(n=n)})
        table.finish(filter_rows=n)
    finally:
        wb.close()
    return buffer.getvalue()


def write_codes(journal: Journal, path: Path, settings: ReportSettings, write: Any) -> Path:
    """Write the encrypted codes workbook to `path` through `write(path, bytes)` (atomic)."""
    assert settings.custody is not None
    return write(path, encrypt(codes_workbook(journal, settings), settings.custody.password))


def reveal(journal: Journal, idx: int, card: int, actor: str) -> str:
    """The code of card `card` of row `idx` (0: the row's internet card code, 1...: its gift
    cards), recorded first in the batch's audit log as seen by `actor`; the log keeps who saw
    which card, never the code. Raises LookupError when the row has no such card."""
    row = journal.row(idx)
    if card == 0:
        code, serial = row.card_code, row.num_trans
    elif 0 < card <= len(row.cards):
        code, serial = row.cards[card - 1].get("value"), row.cards[card - 1].get("serial")
    else:
        code, serial = None, None
    if not code:
        raise LookupError(f"row {row.sheet_row} has no card {card}")
    journal.record(
        f"card code of row {row.sheet_row} revealed to {actor}",
        {"what": "card code revealed", "row": row.sheet_row, "ref": row.ref, "card": card,
         "serial": serial, "masked": mask(code)},
        actor=actor,
    )  # fmt: skip
    return str(code)


def reveal_all(journal: Journal, actor: str, why: str) -> int:
    """Record in the batch's audit log that every card code of the batch is shown to `actor`
    (`why`: the results downloaded with their codes). Returns how many codes that is."""
    n = sum(1 for _ in codes_of(journal))
    journal.record(
        f"{n} card codes revealed to {actor}: {why}",
        {"what": "card codes revealed", "codes": n, "why": why},
        actor=actor,
    )
    return n
