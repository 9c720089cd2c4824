"""The Results page of a batch: its figures, Needs attention, the Retry sheet, its card codes
masked until a deliberate reveal, and the downloads (the workbook, the Retry sheet).

A reveal is a POST that the audit log records before the code is shown; it then redirects to the
Results page, which shows the code once (a reload shows it masked again, and re-posts nothing).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from ..errors import UsageError
from ..i18n import _
from ..journal import Journal
from ..models import mask
from ..report import write_results
from ..report.custody import reveal, reveal_all
from ..report.facts import summary
from ..report.retry import retry_table, write_retry_sheet
from ..report.settings import ReportSettings
from ..report.words import (
    NEXT_STEP,
    STATE_ORDER,
    Columns,
    attention,
    describe,
    state_words,
    stop_reason,
)
from ..runner import exit_code_for
from ..service import interrupted, next_steps, standing, uncertain_gift_rows
from . import uploads
from .batches import SHOWN_ROWS, _journal, _key, _settings
from .sheets import _remove, batch_id
from .web import changes, render, session_of, state, user_of


def _cards(journal: Journal) -> list[dict[str, Any]]:
    """Every card code of the batch, masked: internet card codes (card 0) and gift cards."""
    found = []
    for r in journal.iter_rows():
        if r.card_code:
            found.append({"row": r, "card": 0, "masked": mask(r.card_code), "serial": r.num_trans})
        for n, card in enumerate(r.cards, start=1):
            if card.get("value"):
                found.append({"row": r, "card": n, "masked": mask(str(card["value"])),
                              "serial": card.get("serial")})  # fmt: skip
    return found


async def results(request: Request) -> Response:
    key = _key(request)
    bid = batch_id(_settings(request), key)
    # The codes this person revealed a moment ago (recorded then), shown this once.
    held = session_of(request).revealed
    revealed = {(i, c): held.pop((b, i, c)) for (b, i, c) in list(held) if b == bid}
    journal = _journal(request, key)
    if journal is None:
        raise HTTPException(404, _("this batch has no results yet"))
    try:
        info = summary(journal)
        columns = Columns.of(journal)
        needs = list(attention(journal.iter_rows(NEXT_STEP), columns, isolate=True))[:SHOWN_ROWS]
        headers, retry = retry_table(journal)
        counts, meta = journal.counts(), journal.meta()
        code = exit_code_for(counts)
        busy = state(request).runs.busy(key)
        # A run that died gave no reason: the one stored is an earlier run's.
        said = None if busy or interrupted(meta) else meta.get("stop_reason")
        return render(
            request, "results.html", key=key, bid=bid, info=info, needs=needs,
            retry_headers=headers, retry=retry, cards=_cards(journal), revealed=revealed,
            describe=describe, state_words=state_words, order=STATE_ORDER,
            steps=next_steps(key, _settings(request).state_dir, code, uncertain_gift_rows(journal)),
            columns=columns,
            standing=standing(counts), busy=busy, balance_at=meta.get("balance_after_at"),
            stopped=stop_reason(said, counts, in_words=True),
        )  # fmt: skip
    finally:
        journal.close()


@changes()
async def reveal_code(request: Request, form: FormData) -> Response:
    """A card code shown whole, once, on purpose: the audit log records who saw which card."""
    key = _key(request)
    journal = _journal(request, key)
    if journal is None:
        raise HTTPException(404, _("there is no such batch"))
    try:
        idx, card = int(str(form.get("idx", ""))), int(str(form.get("card", "")))
        code = reveal(journal, idx, card, user_of(request))
    except (ValueError, LookupError):
        raise UsageError(_("there is no such card in this batch")) from None
    finally:
        journal.close()
    bid = batch_id(_settings(request), key)
    session_of(request).revealed[(bid, idx, card)] = code
    return RedirectResponse(f"/batches/{bid}/results#card-{idx}-{card}", status_code=303)


def _download(request: Request, key: str, name: str, write: Any) -> Response:
    folder = Path(tempfile.mkdtemp(dir=uploads.uploads_dir(_settings(request).state_dir)))
    path = folder / name
    journal = _journal(request, key)
    if journal is None:
        _remove(folder)
        raise HTTPException(404, _("this batch has no results yet"))
    try:
        write(journal, path)
    finally:
        journal.close()
    return FileResponse(path, filename=name, background=BackgroundTask(_remove, folder))


def _report(request: Request, masked: bool = False) -> ReportSettings:
    return ReportSettings(tz=state(request).config.tz, mask_codes=masked)


async def workbook(request: Request) -> Response:
    """The results workbook, its card codes masked."""
    key = _key(request)
    masked = _report(request, masked=True)
    return _download(request, key, f"{batch_id(_settings(request), key)}-results.xlsx",
                     lambda j, p: write_results(j, p, "xlsx", settings=masked))  # fmt: skip


@changes()
async def workbook_with_codes(request: Request, form: FormData) -> Response:
    """The results workbook with every card code whole: recorded in the audit log first."""
    key = _key(request)
    user = user_of(request)
    whole = _report(request)

    def write(journal: Journal, path: Path) -> None:
        reveal_all(journal, user, "results downloaded with their codes from the console")
        write_results(journal, path, "xlsx", settings=whole)

    return _download(request, key, f"{batch_id(_settings(request), key)}-results-codes.xlsx",
                     write)  # fmt: skip


async def retry_sheet(request: Request) -> Response:
    key = _key(request)
    return _download(request, key, f"{batch_id(_settings(request), key)}-retry.xlsx",
                     write_retry_sheet)  # fmt: skip


ROUTES = [
    Route("/batches/{batch}/results", results),
    Route("/batches/{batch}/results.xlsx", workbook),
    Route("/batches/{batch}/results-with-codes.xlsx", workbook_with_codes, methods=["POST"]),
    Route("/batches/{batch}/retry.xlsx", retry_sheet),
    Route("/batches/{batch}/reveal", reveal_code, methods=["POST"]),
]
