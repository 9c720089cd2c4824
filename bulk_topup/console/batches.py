"""Pages of a batch: its run (live over server-sent events), stop, resume and reconcile, its
results and downloads, and the list of every batch of the state dir.

Every page reads the batch's journal (read-only, without its lock), so it shows a batch the same
whoever runs it (this console, the CLI, cron) and after any restart. The live view polls the
journal too, woken at once by the progress of a run of this console.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.background import BackgroundTask
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..batchfile import list_batches, open_batch
from ..errors import UsageError
from ..i18n import _
from ..journal import Journal, RowState
from ..models import mask
from ..policy import load_policy
from ..preview import Expected, resume_preview
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
    error_text,
    state_words,
)
from ..runner import exit_code_for
from ..service import next_steps, reconcile_batch, resume_batch, standing
from . import uploads
from .sheets import _remove, batch_id
from .web import changes, render, state, user_of

S = RowState
SHOWN_ROWS = 500  # rows of the batch on its page (the workbook has them all)
BATCH_ID = re.compile(r"^[a-z0-9-]{1,80}$")
POLL = 1.0  # seconds between looks at the journal when nothing wakes the page
HEARTBEAT = 15.0


def _settings(request: Request) -> Any:
    return state(request).config.settings


def _key(request: Request) -> str:
    """The batch key of the address's batch id (its journal's name, or a run of this console
    whose journal is not written yet)."""
    bid = request.path_params["batch"]
    settings = _settings(request)
    for key in state(request).runs.batches():
        if batch_id(settings, key) == bid:
            return key
    path = settings.state_dir / "batches" / f"{bid}.sqlite"
    if BATCH_ID.match(bid) and path.exists():
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                found = db.execute("SELECT value FROM meta WHERE key = 'batch'").fetchone()
            finally:
                db.close()
            if found:
                return str(found[0])
        except sqlite3.Error:
            pass
    raise HTTPException(404, _("there is no such batch"))


def _journal(request: Request, key: str) -> Journal | None:
    settings = _settings(request)
    try:
        return open_batch(settings.state_dir, key, now=lambda: "", lock=False, create=False)
    except UsageError:
        return None  # the run of this console has not written it yet (or was refused first)


def view(request: Request, key: str, journal: Journal | None, rows: list[int] | None) -> dict:
    """What the batch's page shows: its status, its counts, its rows (`rows`: only those idx)."""
    runs = state(request).runs
    run = runs.get(key)
    busy = runs.busy(key) if run is None or not run.running else "console"
    counts = journal.counts() if journal else {}
    shown = []
    if journal is not None:
        if rows is None:
            shown = [r for _n, r in zip(range(SHOWN_ROWS), journal.iter_rows(), strict=False)]
        else:
            shown = [journal.row(i) for i in rows if i < SHOWN_ROWS]
    columns = Columns.of(journal) if journal else None
    return {
        "key": key, "bid": batch_id(_settings(request), key), "run": run, "busy": busy,
        "counts": counts, "total": sum(counts.values()), "order": STATE_ORDER,
        "standing": standing(counts) if counts else "", "rows": shown, "columns": columns,
        "meta": journal.meta() if journal else {}, "state_words": state_words,
        "describe": describe, "error_text": error_text, "S": S,
        "last": _last_event(journal) if journal else 0, "full": rows is None,
        "own": [c for c in columns.own if c in columns.filled] if columns else [],
        "cells_of": lambda r: dict(r.input),
    }  # fmt: skip


def _last_event(journal: Journal) -> int:
    return int(journal.db.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])


async def batch_page(request: Request) -> Response:
    key = _key(request)
    journal = _journal(request, key)
    try:
        return render(request, "batch.html", **view(request, key, journal, None))
    finally:
        if journal:
            journal.close()


def _event(name: str, data: str, event_id: int | None = None) -> str:
    lines = [f"event: {name}"] + ([f"id: {event_id}"] if event_id is not None else [])
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


async def events(request: Request) -> Response:
    """The batch's changes as server-sent events: `update` (status, counts and the rows that
    changed, as HTML fragments htmx swaps in), `done` when no run is going on any more."""
    key = _key(request)
    since = request.headers.get("last-event-id") or request.query_params.get("since") or "0"
    last = int(since) if since.isdigit() else 0
    template = state(request).templates.env.get_template("_update.html")
    context = {"csrf": request.scope["state"]["session"].csrf}

    async def stream() -> AsyncIterator[str]:
        nonlocal last
        yield "retry: 2000\n\n"
        journal: Journal | None = None
        quiet = 0.0
        try:
            while True:
                journal = journal or _journal(request, key)
                top = _last_event(journal) if journal else 0
                # A page that saw no journal yet gets the whole table; else the rows changed.
                changed = None if last == 0 else _changed(journal, last) if journal else []
                page = view(request, key, journal, changed)
                yield _event("update", template.render(**context, **page), top)
                last, quiet = top, 0.0
                if page["busy"] is None:
                    yield _event("done", "")
                    return
                run = page["run"]
                wake = run.wake if run is not None else asyncio.Event()
                while quiet < HEARTBEAT:
                    try:
                        await asyncio.wait_for(wake.wait(), POLL)
                        break
                    except TimeoutError:
                        quiet += POLL
                        if journal and _last_event(journal) != last:
                            break
                else:
                    yield ": still here\n\n"
                    quiet = 0.0
        finally:
            if journal:
                journal.close()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"X-Accel-Buffering": "no"})  # fmt: skip


def _changed(journal: Journal, since: int) -> list[int]:
    return [
        int(i)
        for (i,) in journal.db.execute(
            "SELECT DISTINCT idx FROM events WHERE id > ? AND idx IS NOT NULL ORDER BY idx",
            (since,),
        )
    ]


@changes()
async def stop(request: Request, form: FormData) -> Response:
    key = _key(request)
    runs = state(request).runs
    if not runs.stop(key, user_of(request)):
        if runs.busy(key) == "other":
            raise UsageError(_("this batch is being run by another process: stop it there "
                               "(Ctrl-C stops a command-line run cleanly)"))  # fmt: skip
        raise UsageError(_("no run of this batch is going on"))
    return RedirectResponse(f"/batches/{batch_id(_settings(request), key)}", status_code=303)


async def resume_page(request: Request) -> Response:
    key = _key(request)
    found = await resume_preview(_settings(request), key)
    state(request).config.environment = found.key_type
    return render(request, "resume.html", key=key, found=found, expected=found.expected,
                  bid=batch_id(_settings(request), key))  # fmt: skip


@changes()
async def start_resume(request: Request, form: FormData) -> Response:
    key = _key(request)
    config = state(request).config
    settings, user = config.settings, user_of(request)
    try:
        expected = Expected(int(str(form["rows"])), float(str(form["face_value"])),
                            float(str(form["cost"])), str(form["environment"]))  # fmt: skip
    except (KeyError, ValueError):
        raise UsageError(_("confirm the figures on the confirmation page first")) from None
    from ..context import RunOptions

    options = RunOptions(rate=config.rate, concurrency=config.concurrency)
    policy = load_policy(config.policy)
    state(request).runs.start(
        key,
        "resume",
        user,
        lambda h: resume_batch(
            settings, key, options, h, None, ReportSettings(), policy, None, actor=user
        ),
        expected,
    )
    return RedirectResponse(f"/batches/{batch_id(settings, key)}", status_code=303)


@changes()
async def reconcile(request: Request, form: FormData) -> Response:
    key = _key(request)
    config = state(request).config
    settings, user = config.settings, user_of(request)
    state(request).runs.start(key, "reconcile", user, lambda h: reconcile_batch(
        settings, key, config.rate, ReportSettings(), None, actor=user))  # fmt: skip
    return RedirectResponse(f"/batches/{batch_id(settings, key)}", status_code=303)


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


def results_view(request: Request, key: str, revealed: dict[tuple[int, int], str]) -> Response:
    journal = _journal(request, key)
    if journal is None:
        raise HTTPException(404, _("this batch has no results yet"))
    try:
        info = summary(journal)
        columns = Columns.of(journal)
        needs = list(attention(journal.iter_rows(NEXT_STEP), columns))[:SHOWN_ROWS]
        headers, retry = retry_table(journal)
        code = exit_code_for(journal.counts())
        return render(
            request, "results.html", key=key, bid=batch_id(_settings(request), key), info=info,
            needs=needs, retry_headers=headers, retry=retry, cards=_cards(journal),
            revealed=revealed, describe=describe, state_words=state_words, order=STATE_ORDER,
            steps=next_steps(key, _settings(request).state_dir, code), columns=columns,
            standing=standing(journal.counts()), busy=state(request).runs.busy(key),
        )  # fmt: skip
    finally:
        journal.close()


async def results(request: Request) -> Response:
    return results_view(request, _key(request), {})


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
    return results_view(request, key, {(idx, card): code})


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


async def workbook(request: Request) -> Response:
    """The results workbook, its card codes masked."""
    key = _key(request)
    masked = ReportSettings(mask_codes=True)
    return _download(request, key, f"{batch_id(_settings(request), key)}-results.xlsx",
                     lambda j, p: write_results(j, p, "xlsx", settings=masked))  # fmt: skip


@changes()
async def workbook_with_codes(request: Request, form: FormData) -> Response:
    """The results workbook with every card code whole: recorded in the audit log first."""
    key = _key(request)
    user = user_of(request)

    def write(journal: Journal, path: Path) -> None:
        reveal_all(journal, user, "results downloaded with their codes from the console")
        write_results(journal, path, "xlsx", settings=ReportSettings())

    return _download(request, key, f"{batch_id(_settings(request), key)}-results-codes.xlsx",
                     write)  # fmt: skip


async def retry_sheet(request: Request) -> Response:
    key = _key(request)
    return _download(request, key, f"{batch_id(_settings(request), key)}-retry.xlsx",
                     write_retry_sheet)  # fmt: skip


async def batch_list(request: Request) -> Response:
    settings = _settings(request)
    runs = state(request).runs
    found: list[dict[str, Any]] = []
    for key, _path, counts, meta in list_batches(settings.state_dir):
        run = runs.get(key)
        # A batch all of whose rows are final, and whose last run said it finished, is not
        # being run: its lock is not probed (a probe takes a free lock for an instant).
        unfinished = (meta.get("last_started_at") or "") > (meta.get("finished_at") or "")
        maybe = unfinished or standing(counts) not in ("fulfilled", "failed")
        busy = "console" if run and run.running else (runs.busy(key) if maybe else None)
        found.append({"key": key, "bid": batch_id(settings, key), "counts": counts,
                      "meta": meta, "busy": busy, "standing": standing(counts),
                      "rows": sum(counts.values())})  # fmt: skip
    found.sort(key=lambda b: b["meta"].get("created_at", ""), reverse=True)
    return render(request, "batches.html", batches=found, order=STATE_ORDER)


ROUTES = [
    Route("/batches", batch_list),
    Route("/batches/{batch}", batch_page),
    Route("/batches/{batch}/events", events),
    Route("/batches/{batch}/stop", stop, methods=["POST"]),
    Route("/batches/{batch}/resume", resume_page),
    Route("/batches/{batch}/resume", start_resume, methods=["POST"]),
    Route("/batches/{batch}/reconcile", reconcile, methods=["POST"]),
    Route("/batches/{batch}/results", results),
    Route("/batches/{batch}/results.xlsx", workbook),
    Route("/batches/{batch}/results-with-codes.xlsx", workbook_with_codes, methods=["POST"]),
    Route("/batches/{batch}/retry.xlsx", retry_sheet),
    Route("/batches/{batch}/reveal", reveal_code, methods=["POST"]),
]
