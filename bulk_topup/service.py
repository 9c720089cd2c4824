"""Batch orchestration that the command line and the console both call: nothing here prints.

    face (cli/, console/) ── service ── runner (submit, reconcile, poll), journal, report
                                 └───── changes, history (what was paid already)

A run goes: take the batch's lock (a second run stops at once, exit 7, before any API call) →
validate the sheet → check the key's environment → refuse what would pay again (edited rows,
rows another batch paid, the same sheet under another key: exit 3) → journal the rows →
reconcile what a previous run left uncertain → pre-flight facts (what will be sent, balance,
--max-total) → the face's confirmation → send and poll → write the results → next steps.

The faces pass their confirmation, progress and stop control in as `Hooks`; they turn the
`BatchResult` (or a `BulkTopupError`) into words and an exit code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from filelock import FileLock, Timeout

from .approval import authorise_run, check_resume, record_authorisation
from .batchfile import open_batch
from .changes import REPEAT_WINDOW_DAYS, edits, refuse_edits, refuse_repeats, repeats
from .client import OneClickClient
from .clock import iso
from .config import Settings
from .context import RunOptions
from .errors import ApiError, AuthError, BulkTopupError, InvalidRowsError, RefusedError, UsageError
from .history import ADMITTED, HELD, History
from .i18n import _
from .journal import FINAL, Journal, Row, RowState
from .models import mask
from .notify import BatchNews, Delivery, news_from_journal, notify_url, send, worth_telling
from .orders import Validation
from .plan import validate_sheet
from .policy import Policy
from .report import default_path, output_format, write_results
from .report.settings import ReportSettings
from .runner import Outcome, Preflight, Runner, auth_refusal, exit_code_for
from .sheet import Sheet
from .statedir import default_state_dir, private_folder
from .texts import display

S = RowState
EXIT_OK, EXIT_INVALID, EXIT_FAILED_ROWS, EXIT_NOT_FINAL = 0, 3, 4, 5


class NothingToSend(InvalidRowsError):
    """A sheet, or a batch, with no order to send: never "success" (exit 3)."""


@dataclass
class SheetRun:
    """What a person asked of `run`."""

    sheet: Path
    batch: str
    sheet_name: str | None = None
    out: Path | None = None
    options: RunOptions = field(default_factory=RunOptions)
    skip_invalid: bool = False
    allow_duplicates: bool = False
    send_edited: bool = False  # rows that pay again someone this batch paid: send them anyway
    allow_repeat: bool = False  # rows another batch paid within the window: send them anyway
    repeat_window: float = REPEAT_WINDOW_DAYS  # days
    report: ReportSettings | None = None  # language, time zone, CSV dialect, codes in custody
    #: how a refusal says to do what it refused on purpose, in the face's words (default: the
    #: command line's options): "edits" (send edited rows), "repeats" (pay again), "invalid"
    #: (send the valid rows only), "approval" (have the run approved)
    allow_hints: dict[str, str] = field(default_factory=dict)
    plan: Path | None = None  # run only what this approved plan says
    policy: Policy | None = None  # approvals and caps (policy.load_policy)
    notify: str | None = None  # where to send word when the batch ends, stops or needs a person
    actor: str | None = None  # who runs it, as the journal records them (default: the OS user)


class Hooks:
    """What a face lets the service ask and tell. Every method has a harmless default."""

    def validated(self, sheet: Sheet, validation: Validation) -> None:
        """The sheet was read and validated (warnings, or the invalid rows, to show)."""

    def confirm(self, facts: Preflight) -> bool:
        """May these rows be sent? The facts are what will really go out."""
        return True

    def progress(self, event: str, row: Row) -> None:
        """A row changed: submitted, rejected, uncertain, settled, parked."""

    def started(self, runner: Runner) -> None:
        """Sending begins; the face may call `runner.request_stop(reason)` from now on."""


@dataclass
class BatchResult:
    """How a batch stands after a command, for a face to put into words."""

    batch: str
    exit_code: int
    outcome: Outcome | None
    results: Path | None
    counts: dict[str, int]
    facts: Preflight | None = None
    cards: int = 0  # gift card codes delivered in this batch
    cards_shown: list[str] = field(default_factory=list)  # "row 15: ••••RD-1", masked
    next_steps: list[str] = field(default_factory=list)  # commands to run, shell-quoted
    stop_reason: str | None = None
    notified: Delivery | None = None  # the notification, when one was asked for
    #: gift rows whose order was not found: resume leaves them to a person unless told to resend
    uncertain_gifts: int = 0


@dataclass
class DryRun:
    """What `run --dry-run` found: what would go out now, and what would not."""

    sheet: Sheet
    validation: Validation
    key_type: str
    key_scope: str
    balance: float
    to_send: int
    face_value: float
    cost: float
    to_check: int  # rows a previous run left uncertain: checked first, resent only if never placed
    gifts_to_check: int  # of which gift rows: if not found, left to a person (never resent here)
    already_handled: int  # rows this batch already sent (final or being settled)
    skipped_invalid: int
    refusals: list[str] = field(default_factory=list)  # what a real run would refuse (exit 3)
    unauthorised: str | None = None  # why the plan or the policy would refuse the run (exit 6)
    edits: int = 0  # rows refused as edits of rows this batch sent (send_edited allows them)
    repeats: int = 0  # rows refused as repeats of another batch's (allow_repeat allows them)


# --- helpers -------------------------------------------------------------------------------------


def fingerprint(path: Path) -> str:
    """The sheet's fingerprint: sha256 of its bytes (shown short)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def same_api(journal: Journal, api_url: str) -> None:
    """A batch belongs to the API it was started against: its orders exist only there."""
    started = journal.get_meta("api_url")
    if started and started != api_url:
        raise RefusedError(
            _(
                "this batch was started against {started}, not {api_url}: its orders exist only "
                "there; use the same --api-url, or a new --batch key; nothing was sent"
            ).format(started=started, api_url=api_url)
        )


def command(*words: str) -> str:
    """A command line a person can paste into a shell as it is (every word quoted)."""
    return " ".join(shlex.quote(w) for w in words)


def next_steps(batch: str, state_dir: Path, exit_code: int, uncertain_gifts: int = 0) -> list[str]:
    """The commands that continue a batch left open: resume, reconcile, and when gift rows are
    UNCERTAIN (left to a person), the resume that sends them again once a person has checked."""
    if exit_code != EXIT_NOT_FINAL:
        return []
    extra: tuple[str, ...] = ()
    if state_dir.resolve() != default_state_dir().resolve():
        extra = ("--state-dir", str(state_dir))
    steps = [
        command("bulk-topup", "resume", "--batch", batch, *extra),
        command("bulk-topup", "reconcile", "--batch", batch, *extra),
    ]
    if uncertain_gifts:
        steps.append(steps[0] + " --resend-uncertain-gifts")
    return steps


def uncertain_gift_rows(journal: Journal) -> int:
    """Gift rows whose order was not found: resume leaves them to a person unless told."""
    return sum(r.kind == "giftcard" for r in journal.iter_rows([S.UNCERTAIN]))


def _result(
    journal: Journal,
    settings: Settings,
    batch: str,
    outcome: Outcome | None,
    results: Path | None,
    facts: Preflight | None = None,
) -> BatchResult:
    counts = journal.counts()
    code = outcome.exit_code if outcome else exit_code_for(counts)
    cards = [
        (r.sheet_row, c.get("value", ""))
        for r in journal.iter_rows(with_cards=True)
        for c in r.cards
    ]
    uncertain_gifts = uncertain_gift_rows(journal)
    return BatchResult(
        batch=batch,
        exit_code=code,
        outcome=outcome,
        results=results,
        counts=counts,
        facts=facts,
        cards=len(cards),
        cards_shown=[
            _("row {row}: {code}").format(row=row, code=mask(code)) for row, code in cards[:5]
        ],
        next_steps=next_steps(batch, settings.state_dir, code, uncertain_gifts),
        stop_reason=outcome.stop_reason if outcome else journal.get_meta("stop_reason") or None,
        uncertain_gifts=uncertain_gifts,
    )


def _results_path(journal: Journal, sheet: Path | None, batch: str, out: Path | None) -> Path:
    if out is not None:
        return out
    saved = journal.get_meta("out")
    return Path(saved) if saved else default_path(str(sheet) if sheet else None, batch)


def write_batch_results(journal: Journal, path: Path, report: ReportSettings | None = None) -> Path:
    """The results of a batch, in the format its name says (xlsx unless .csv or .json)."""
    return write_results(journal, path, output_format(str(path), None), settings=report)


async def _preflight(
    runner: Runner, admit: Callable[[], Awaitable[None]] | None = None
) -> Preflight:
    """The admission of the rows (a run's), then the pre-flight; refused or unreachable before
    anything was sent, the batch is held back."""
    try:
        if admit is not None:
            await admit()
        return await runner.preflight()
    except ApiError as e:
        _hold(runner.journal)
        raise _could_not_start(e) from None
    except RefusedError:
        _hold(runner.journal)
        raise


def _finish(
    journal: Journal,
    settings: Settings,
    batch: str,
    what: str,
    outcome: Outcome,
    facts: Preflight,
    result_path: Path,
    report: ReportSettings | None,
    notify: str | None,
) -> BatchResult:
    """After a run or a resume: the results written, the word sent."""
    path = write_batch_results(journal, result_path, report)
    result = _result(journal, settings, batch, outcome, path, facts)
    result.notified = _tell(notify, journal, what, result, settings)
    return result


async def _drive(runner: Runner, hooks: Hooks, facts: Preflight, what: str) -> Outcome:
    try:
        confirmed = hooks.confirm(facts)
    except BaseException:  # no terminal to ask on, Ctrl-C at the prompt: not confirmed either
        _hold(runner.journal)
        raise
    if not confirmed:
        _hold(runner.journal)
        raise RefusedError(_("{command} not confirmed; nothing was sent").format(command=what))
    runner.progress = hooks.progress
    hooks.started(runner)
    return await runner.execute()


def _tell(
    url: str | None, journal: Journal, command: str, result: BatchResult, settings: Settings
) -> Delivery | None:
    """Word of how the batch ended, when an address is set (never a card code, never a key)."""
    address = notify_url(url)
    if not address:
        return None
    news = news_from_journal(
        journal, command=command, exit_code=result.exit_code,
        results=str(result.results) if result.results else None, stop_reason=result.stop_reason,
    )  # fmt: skip
    return send(address, news, secrets=[settings.api_key])


def tell_refusal(
    url: str | None, batch: str, command: str, error: BulkTopupError, secret: str = ""
) -> Delivery | None:
    """Word that a command stopped before or instead of running: a cron run refused is the run
    that needs a person."""
    address = notify_url(url)
    if not address:
        return None
    news = BatchNews(batch, command, error.exit_code, problem=error.message)
    return send(address, news, secrets=[secret] if secret else [])


@asynccontextmanager
async def admission(state_dir: Path, timeout: float = 120.0) -> AsyncIterator[None]:
    """The state dir's admission lock: the repeat guard's look at the other batches and the
    journaling of this batch's rows happen as one step, so two runs of one sheet started
    together cannot both pass the guard."""
    lock = FileLock(str(private_folder(state_dir / "locks") / "admission.lock"), thread_local=False)
    waited = 0.0
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            if waited >= timeout:
                raise RefusedError(
                    _(
                        "another run of this state dir is being admitted and does not finish; "
                        "nothing was sent; try again"
                    )  # fmt: skip
                ) from None
            await anyio.sleep(0.05)
            waited += 0.05
    try:
        yield
    finally:
        lock.release()


def check_results_path(path: Path, sheet: Path | None = None) -> None:
    """The results file can be written where asked, in a format its name says: checked before
    anything is sent, not after."""
    output_format(str(path), None)  # an unknown extension is a UsageError
    if sheet is not None and path.resolve() == sheet.resolve():
        raise UsageError(
            _("the results file {path} is the order sheet itself: give --out another name").format(
                path=path
            )
        )
    folder = path.resolve().parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(
            _(
                "the results file {path} cannot be written there (the folder {folder} is not "
                "writable); give --out another place"
            ).format(path=path, folder=folder)  # fmt: skip
        )


def _hold(journal: Journal) -> None:
    """The batch's rows still to send were held back (not confirmed, refused before sending):
    until it is admitted again they are nobody's intended payment."""
    with contextlib.suppress(sqlite3.Error):
        journal.set_meta(intent=HELD)


def _could_not_start(e: ApiError) -> RefusedError:
    if isinstance(e, AuthError):
        return RefusedError(auth_refusal(e))
    return RefusedError(
        _(
            "the API could not be reached or read ({reason}); nothing was sent; try again later"
        ).format(reason=display(e.message))  # fmt: skip
    )


def _empty_batch(batch: str) -> NothingToSend:
    return NothingToSend(
        _(
            "batch {batch!r} holds no rows (the run that created it stopped before the sheet's "
            "rows were written); run the sheet again: bulk-topup run SHEET --batch {key}, or "
            "discard it: bulk-topup discard --batch {key}"
        ).format(batch=batch, key=shlex.quote(batch))
    )


# --- run -----------------------------------------------------------------------------------------


async def run_sheet(
    settings: Settings, request: SheetRun, hooks: Hooks | None = None
) -> BatchResult:
    """Validate the sheet and run it as batch `request.batch` (a new batch, or the same batch
    again: nothing already sent is sent again). Raises a BulkTopupError when it must not run."""
    hooks = hooks or Hooks()
    options = request.options
    now = lambda: iso(settings.clock.wall())  # noqa: E731
    # The lock comes first: a second run of the batch stops here, before any API call.
    journal = open_batch(settings.state_dir, request.batch, now=now)
    journal.actor = request.actor or journal.actor
    created = journal.row_count() == 0
    try:
        same_api(journal, settings.api_url)
        result_path = _results_path(journal, request.sheet, request.batch, request.out)
        check_results_path(result_path, request.sheet)
        async with settings.client(
            throttle=settings.throttle(options.rate), concurrency=options.concurrency
        ) as client:
            runner = Runner(journal, client, settings.clock, options)
            facts = await _preflight(
                runner, lambda: _admit(settings, request, hooks, journal, runner, result_path)
            )
            outcome = await _drive(runner, hooks, facts, "run")
        return _finish(journal, settings, request.batch, "run", outcome, facts, result_path,
                       request.report, request.notify)  # fmt: skip
    finally:
        empty = created and journal.row_count() == 0
        journal.close()
        if empty:  # refused before anything was journaled: leave no empty batch behind
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(str(journal.path) + suffix).unlink(missing_ok=True)


async def _admit(
    settings: Settings,
    request: SheetRun,
    hooks: Hooks,
    journal: Journal,
    runner: Runner,
    result_path: Path,
) -> None:
    """The sheet read, validated, checked against what was paid already and the approvals, and
    journaled. (A function of its own so that the sheet and its orders, a whole-sheet list, are
    freed before the run: from here on the journal is the batch.)"""
    client = runner.ctx.client
    sheet, validation = await _validate(settings, request, client)
    hooks.validated(sheet, validation)
    if validation.invalid and not request.skip_invalid:
        how = request.allow_hints.get("invalid") or _(
            "or pass --skip-invalid to send the valid rows only"
        )
        raise InvalidRowsError(
            _("{n} invalid rows; nothing was sent (fix them, {how})").format(
                n=len(validation.invalid), how=how
            ),
            validation.invalid,
        )
    if not validation.valid:
        raise NothingToSend(
            _("the sheet has no order rows below its header; nothing was sent")
            if not validation.orders
            else _("no row of the sheet is valid; nothing was sent")
        )
    # Before any call that could send: the approved plan and the policy's caps.
    authorised = await authorise_run(
        client, plan_path=request.plan, policy=request.policy, sheet_path=request.sheet,
        validation=validation, batch=request.batch, api_url=settings.api_url,
        state_dir=settings.state_dir, now=settings.clock.wall(),
        how=request.allow_hints.get("approval"),
    )  # fmt: skip
    key = await runner.check_environment()
    history = History(
        settings.state_dir, api_url=settings.api_url, exclude=journal.path, environment=key.type
    )
    runner.ctx.history = history
    print_ = fingerprint(request.sheet)
    conflicts = edits(validation.orders, journal, send_edited=request.send_edited)
    if conflicts:
        raise InvalidRowsError(refuse_edits(conflicts, request.allow_hints.get("edits")), conflicts)
    async with admission(settings.state_dir):
        if not request.allow_repeat:
            sent = {r.ref for r in journal.sent_index()}
            found = repeats(
                validation.orders, sent, history, batch=request.batch,
                fingerprint=print_, now=settings.clock.wall(), window_days=request.repeat_window,
            )  # fmt: skip
            if found:
                raise InvalidRowsError(
                    refuse_repeats(
                        found, request.repeat_window, request.allow_hints.get("repeats")
                    ),
                    found,
                )
        journal.sync_orders(validation.orders)
        journal.set_meta(intent=ADMITTED)
    record_authorisation(journal, authorised)
    journal.set_meta(
        sheet=str(request.sheet.resolve()),
        fingerprint=print_,
        sheet_name=sheet.name or None,
        out=str(result_path.resolve()),
        api_url=settings.api_url,
        headers=json.dumps(
            dict(zip(sheet.columns, sheet.headers, strict=True)), ensure_ascii=False
        ),
    )


async def resume_batch(
    settings: Settings,
    batch: str,
    options: RunOptions,
    hooks: Hooks | None = None,
    out: Path | None = None,
    report: ReportSettings | None = None,
    policy: Policy | None = None,
    notify: str | None = None,
    actor: str | None = None,
    allow_repeat: bool = False,
    repeat_window: float = REPEAT_WINDOW_DAYS,
    allow_hints: dict[str, str] | None = None,
) -> BatchResult:
    """Continue a batch from its journal alone: reconcile, send what is left, poll. The rows
    left to send are checked against the other batches first, as `run` checks a sheet's
    (`allow_hints`: as `SheetRun.allow_hints`, "repeats" and "approval")."""
    hints = allow_hints or {}
    hooks = hooks or Hooks()
    with _existing_batch(settings, batch, actor) as journal:
        check_resume(journal, policy, hints.get("approval"))
        result_path = _results_path(journal, None, batch, out)
        check_results_path(result_path)
        if set(journal.counts()) <= {s.value for s in FINAL}:
            # Every row is final: nothing to send, nothing to look at; no API call is made.
            exists = result_path.exists() and out is None and report is None
            path = result_path if exists else write_batch_results(journal, result_path, report)
            return _result(journal, settings, batch, None, path)
        async with settings.client(
            throttle=settings.throttle(options.rate), concurrency=options.concurrency
        ) as client:
            history = History(
                settings.state_dir, api_url=settings.api_url, exclude=journal.path,
                environment=journal.get_meta("environment"),
            )  # fmt: skip
            runner = Runner(journal, client, settings.clock, options, history=history)
            async with admission(settings.state_dir):
                if not allow_repeat:
                    found = repeats(
                        journal.planned_index(), set(), history, batch=batch, fingerprint=None,
                        now=settings.clock.wall(), window_days=repeat_window,
                    )  # fmt: skip
                    if found:
                        raise InvalidRowsError(
                            refuse_repeats(found, repeat_window, hints.get("repeats")), found
                        )
                if journal.count([S.PLANNED]):
                    journal.set_meta(intent=ADMITTED)
            facts = await _preflight(runner)
            outcome = await _drive(runner, hooks, facts, "resume")
        return _finish(
            journal, settings, batch, "resume", outcome, facts, result_path, report, notify
        )


async def reconcile_batch(
    settings: Settings,
    batch: str,
    rate: float,
    report: ReportSettings | None = None,
    notify: str | None = None,
    actor: str | None = None,
) -> BatchResult:
    """Re-check every row of `batch` that is not final and refresh its results."""
    with _existing_batch(settings, batch, actor) as journal:
        before = journal.counts()
        async with settings.client(throttle=settings.throttle(rate)) as client:
            history = History(settings.state_dir, api_url=settings.api_url, exclude=journal.path)
            runner = Runner(journal, client, settings.clock, RunOptions(rate=rate), history=history)
            outcome = await runner.reconcile()
        path = write_batch_results(journal, _results_path(journal, None, batch, None), report)
        result = _result(journal, settings, batch, outcome, path)
        if worth_telling(before, result.counts, result.exit_code):
            result.notified = _tell(notify, journal, "reconcile", result, settings)
        return result


@contextlib.contextmanager
def _existing_batch(settings: Settings, batch: str, actor: str | None) -> Iterator[Journal]:
    """An existing batch's journal, locked, holding rows, of this API; closed afterwards."""
    journal = open_batch(
        settings.state_dir, batch, now=lambda: iso(settings.clock.wall()), create=False
    )
    journal.actor = actor or journal.actor
    try:
        if journal.row_count() == 0:
            raise _empty_batch(batch)
        same_api(journal, settings.api_url)
        yield journal
    finally:
        journal.close()


def batches_needing_reconcile(state_dir: Path) -> list[str]:
    """The batches of the state dir that a daily reconcile should look at: every batch that sent
    something and is not final. A batch that never sent anything (abandoned at the confirmation)
    needs no provider check."""
    from .batchfile import list_batches

    keys = []
    for key, _path, counts, _meta in list_batches(state_dir):
        sent = {s for s, n in counts.items() if n} - {S.PLANNED.value, S.INVALID.value}
        if not sent:
            continue
        if exit_code_for(counts) == EXIT_NOT_FINAL:
            keys.append(key)
    return keys


def standing(counts: dict[str, int]) -> str:
    """A batch in one word, from its counts per state: "fulfilled" (every row), "skipped"
    (finished: every valid row fulfilled, the invalid rows skipped, never sent), "failed"
    (finished, some sent rows failed), "open" (rows sent and not final: resume or reconcile),
    "unsent" (rows planned and none sent: abandoned at the confirmation, or stopped before
    sending), "empty" (no valid row)."""
    code = exit_code_for(counts)
    present = {s for s, n in counts.items() if n}
    sent = present - {S.PLANNED.value, S.INVALID.value}
    if code == EXIT_OK:
        return "fulfilled"
    if code == EXIT_FAILED_ROWS:
        return "skipped" if present == {S.FULFILLED.value, S.INVALID.value} else "failed"
    if code == EXIT_NOT_FINAL:
        return "open" if sent else "unsent"
    return "empty"


def interrupted(meta: dict[str, str]) -> bool:
    """Whether the batch's last run started sending and never finished (its process was killed,
    or the machine stopped): its journal holds every change it made, but no end and no stop
    reason (a run clears both as it starts)."""
    return (meta.get("last_started_at") or "") > (meta.get("finished_at") or "")


def discard_batch(state_dir: Path, batch: str) -> int:
    """Delete a batch that never sent anything (abandoned at the confirmation, or refused).
    Returns how many rows it held. A batch that sent even one row is kept: its journal is the
    record of money."""
    journal = open_batch(state_dir, batch, now=lambda: "", create=False)
    try:
        counts = journal.counts()
        sent = {s for s, n in counts.items() if n} - {S.PLANNED.value, S.INVALID.value}
        if sent:
            raise UsageError(
                _(
                    "batch {batch!r} has sent rows ({states}): its journal is the record of what "
                    "was paid and is kept; nothing was discarded"
                ).format(batch=batch, states=", ".join(sorted(sent)))
            )
        rows = sum(counts.values())
    finally:
        journal.close()
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(str(journal.path) + suffix).unlink(missing_ok=True)
    return rows


# --- dry run -------------------------------------------------------------------------------------


async def dry_run(settings: Settings, request: SheetRun) -> DryRun:
    """What `run` would send now, without sending, journaling or locking anything."""
    from .batchfile import batch_path

    async with settings.client() as client:
        sheet, validation = await _validate(settings, request, client)
        key = await client.validate_key()
        balance = await client.balance()
        refusals: list[str] = []
        unauthorised = None
        if not validation.invalid or request.skip_invalid:
            try:
                await authorise_run(
                    client, plan_path=request.plan, policy=request.policy,
                    sheet_path=request.sheet, validation=validation, batch=request.batch,
                    api_url=settings.api_url, state_dir=settings.state_dir,
                    now=settings.clock.wall(), how=request.allow_hints.get("approval"),
                )  # fmt: skip
            except RefusedError as e:
                unauthorised = e.message
    journal: Journal | None = None
    if batch_path(settings.state_dir, request.batch).exists():
        journal = open_batch(
            settings.state_dir, request.batch, now=lambda: "", lock=False, create=False
        )
    try:
        known: dict[str, str] = {}
        to_check = gifts_to_check = edited = repeated = 0
        if journal is not None:
            conflicts = edits(validation.orders, journal, send_edited=request.send_edited)
            if conflicts:
                refusals.append(refuse_edits(conflicts, request.allow_hints.get("edits")))
                edited = len(conflicts)
            for s in journal.sent_index():
                known[s.ref] = s.state
        if not request.allow_repeat:
            history = History(
                settings.state_dir,
                api_url=settings.api_url,
                exclude=journal.path if journal else None,
                environment=key.type,
            )
            found = repeats(
                validation.orders, set(known), history, batch=request.batch,
                fingerprint=fingerprint(request.sheet), now=settings.clock.wall(),
                window_days=request.repeat_window,
            )  # fmt: skip
            if found:
                refusals.append(
                    refuse_repeats(found, request.repeat_window, request.allow_hints.get("repeats"))
                )
                repeated = len(found)
        send = [o for o in validation.valid if o.ref not in known]
        unknown = [
            o for o in validation.valid if known.get(o.ref) in (S.SENDING.value, S.UNCERTAIN.value)
        ]
        to_check = len(unknown)
        gifts_to_check = sum(o.kind == "giftcard" for o in unknown)
        handled = sum(1 for o in validation.valid if o.ref in known) - to_check
    finally:
        if journal is not None:
            journal.close()
    return DryRun(
        sheet, validation, key.type, key.scope, balance,
        to_send=len(send),
        face_value=round(sum(o.face_value for o in send), 2),
        cost=round(sum(o.cost for o in send), 2),
        to_check=to_check,
        gifts_to_check=gifts_to_check,
        already_handled=handled,
        skipped_invalid=len(validation.invalid),
        refusals=refusals,
        unauthorised=unauthorised,
        edits=edited,
        repeats=repeated,
    )  # fmt: skip


async def _validate(
    settings: Settings, request: SheetRun, client: OneClickClient
) -> tuple[Sheet, Validation]:
    """The request's sheet read and validated as `run` and its dry run both see it."""
    return await validate_sheet(
        request.sheet,
        batch=request.batch,
        client=client,
        state_dir=settings.state_dir,
        api_url=settings.api_url,
        sheet_name=request.sheet_name,
        allow_duplicates=request.allow_duplicates,
    )
