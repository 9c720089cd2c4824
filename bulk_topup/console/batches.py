"""Pages of a batch: its run (live over server-sent events), stop, resume and reconcile, and the
list of every batch of the state dir. (Its results and downloads: results.py.)

Every page reads the batch's journal (read-only, without its lock), so it shows a batch the same
whoever runs it (this console, the CLI, cron) and after any restart. The live view polls the
journal too, woken at once by the progress of a run of this console.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from ..batchfile import list_batches, open_batch
from ..clock import iso
from ..context import RunOptions
from ..errors import UsageError
from ..i18n import _
from ..journal import Journal, RowState
from ..policy import load_policy
from ..preview import Expected, resume_preview
from ..report.settings import ReportSettings
from ..report.words import STATE_ORDER, Columns, describe, error_text, state_count, state_words
from ..service import interrupted, reconcile_batch, resume_batch, standing
from .sheets import allow_hints, batch_id
from .web import changes, needs_api, render, state, user_of

S = RowState
SHOWN_ROWS = 500  # rows of the batch on its page (the workbook has them all)
BATCH_ID = re.compile(r"^[a-z0-9-]{1,80}$")
POLL = 1.0  # seconds between looks at the journal when nothing wakes the page
HEARTBEAT = 15.0
#: A batch in these standings has nothing left to send or look at (its lock is not probed).
FINISHED = ("fulfilled", "failed", "skipped")


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
    """The batch's journal, read without its lock; what a page records in it (a code revealed)
    is stamped with the real time."""
    settings = _settings(request)
    try:
        return open_batch(settings.state_dir, key, now=lambda: iso(settings.clock.wall()),
                          lock=False, create=False)  # fmt: skip
    except UsageError:
        return None  # the run of this console has not written it yet (or was refused first)


def view(request: Request, key: str, journal: Journal | None, rows: list[int] | None) -> dict:
    """What the batch's page shows: its status, its counts, its rows (`rows`: only those idx)."""
    runs = state(request).runs
    run = runs.get(key)
    busy = runs.busy(key) if run is None or not run.running else "console"
    counts = journal.counts() if journal else {}
    meta = journal.meta() if journal else {}
    shown = []
    if journal is not None:
        if rows is None:
            shown = [r for _n, r in zip(range(SHOWN_ROWS), journal.iter_rows(), strict=False)]
        else:
            shown = [journal.row(i) for i in rows if i < SHOWN_ROWS]
    columns = Columns.of(journal) if journal else None
    cut_short = not busy and interrupted(meta)
    return {
        "key": key, "bid": batch_id(_settings(request), key), "run": run, "busy": busy,
        "counts": counts, "total": sum(counts.values()), "order": STATE_ORDER,
        "standing": standing(counts) if counts else "", "rows": shown, "columns": columns,
        "meta": meta, "state_words": state_words, "state_count": state_count,
        "describe": describe, "error_text": error_text, "S": S,
        "last": _last_event(journal) if journal else 0, "full": rows is None,
        "own": [c for c in columns.own if c in columns.filled] if columns else [],
        "cells_of": lambda r: dict(r.input), "interrupted": cut_short,
        # the reason the last run gave, when it ended by itself (a killed run gave none)
        "stop_reason": "" if cut_short else meta.get("stop_reason", ""),
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
    """What a resume would do, or why there is nothing to resume here: the batch is being run
    (by this console or another process), or every row of it is final."""
    key = _key(request)
    settings = _settings(request)
    busy = state(request).runs.busy(key)
    journal = _journal(request, key)
    counts = journal.counts() if journal else {}
    if journal:
        journal.close()
    found = None
    if not busy and standing(counts) not in (*FINISHED, "empty"):
        needs_api(request)
        found = await resume_preview(settings, key)
        state(request).config.environment = found.key_type
    return render(request, "resume.html", key=key, found=found, busy=busy,
                  standing=standing(counts) if counts else "empty",
                  expected=found.expected if found else None,
                  bid=batch_id(settings, key))  # fmt: skip


def _expected(form: FormData) -> Expected:
    try:
        return Expected(int(str(form["rows"])), float(str(form["face_value"])),
                        float(str(form["cost"])), str(form["environment"]))  # fmt: skip
    except (KeyError, ValueError):
        raise UsageError(_("confirm the figures on the confirmation page first")) from None


@changes()
async def start_resume(request: Request, form: FormData) -> Response:
    key = _key(request)
    config = state(request).config
    settings, user = config.settings, user_of(request)
    expected = _expected(form)
    needs_api(request)
    options = RunOptions(rate=config.rate, concurrency=config.concurrency)
    policy = load_policy(config.policy)
    report = ReportSettings(tz=config.tz)
    repeat = bool(form.get("allow_repeat"))
    hints = allow_hints()
    state(request).runs.start(
        key, "resume", user,
        lambda h: resume_batch(settings, key, options, h, None, report, policy, None, actor=user,
                               allow_repeat=repeat, allow_hints=hints),
        expected,
    )  # fmt: skip
    return RedirectResponse(f"/batches/{batch_id(settings, key)}", status_code=303)


@changes()
async def reconcile(request: Request, form: FormData) -> Response:
    key = _key(request)
    config = state(request).config
    settings, user = config.settings, user_of(request)
    needs_api(request)
    report = ReportSettings(tz=config.tz)
    state(request).runs.start(key, "reconcile", user, lambda h: reconcile_batch(
        settings, key, config.rate, report, None, actor=user))  # fmt: skip
    return RedirectResponse(f"/batches/{batch_id(settings, key)}", status_code=303)


async def batch_list(request: Request) -> Response:
    settings = _settings(request)
    runs = state(request).runs
    found: list[dict[str, Any]] = []
    for key, _path, counts, meta in list_batches(settings.state_dir):
        run = runs.get(key)
        # A batch all of whose rows are final, and whose last run said it finished, is not
        # being run: its lock is not probed (a probe takes a free lock for an instant).
        maybe = interrupted(meta) or standing(counts) not in FINISHED
        busy = "console" if run and run.running else (runs.busy(key) if maybe else None)
        found.append({"key": key, "bid": batch_id(settings, key), "counts": counts,
                      "meta": meta, "busy": busy, "standing": standing(counts),
                      "rows": sum(counts.values())})  # fmt: skip
    found.sort(key=lambda b: b["meta"].get("created_at", ""), reverse=True)
    return render(request, "batches.html", batches=found, order=STATE_ORDER,
                  state_count=state_count)  # fmt: skip


ROUTES = [
    Route("/batches", batch_list),
    Route("/batches/{batch}", batch_page),
    Route("/batches/{batch}/events", events),
    Route("/batches/{batch}/stop", stop, methods=["POST"]),
    Route("/batches/{batch}/resume", resume_page),
    Route("/batches/{batch}/resume", start_resume, methods=["POST"]),
    Route("/batches/{batch}/reconcile", reconcile, methods=["POST"]),
]
