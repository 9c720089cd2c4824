"""One batch's run: pre-flight, reconciliation, submission and polling, never paying twice.

    runner ── submit ──┐
       │       reconcile ── poll
       └────── guard, settle (bottom: stop reasons and budget; an answer applied to its row)

- Intent first: a row is committed as SENDING before its POST leaves (`submit`). After a crash,
  SENDING and UNCERTAIN rows are reconciled with the provider (`reconcile`) before anything is
  sent again, and before the confirmation, so what is confirmed is what will be sent.
- One `AdaptiveThrottle` paces every call (the provider counts them all); a separate cap bounds how
  many rows are in flight. A retry budget and a circuit breaker (`guard`) park the run, resumable.
- Polling (`poll`) gathers due orders and sweeps the provider's list over their creation window.

Library code: progress goes to a callback; nothing here prints.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .client import OneClickClient
from .clock import Clock, iso
from .context import GiftLocks, Progress, RunContext, RunOptions
from .errors import ApiError, AuthError, RefusedError
from .guard import Guard
from .i18n import _, money
from .journal import FAILED, FINAL, Journal, Row, RowState
from .models import KeyInfo
from .poll import Poller
from .reconcile import Reconciler
from .settle import Schedule, Settler
from .submit import Submitter
from .texts import INTERRUPTED

if TYPE_CHECKING:
    from .history import History

S = RowState
EXIT_OK, EXIT_NOTHING, EXIT_FAILED_ROWS, EXIT_NOT_FINAL = 0, 3, 4, 5
OPEN = (S.SUBMITTED, S.UNKNOWN_ERROR, S.QUEUED)

__all__ = ["Outcome", "Preflight", "RunOptions", "Runner", "exit_code_for"]


@dataclass
class Preflight:
    """The facts a person confirms before money moves."""

    key_type: str
    key_scope: str
    balance: float
    rows: int  # rows to send now (PLANNED, including rows put back by reconciliation)
    face_value: float
    cost: float
    already_done: int  # rows final in this batch already (sent earlier, or invalid)
    resend: int = 0  # rows found never placed by reconciliation, to be sent again (in `rows`)
    to_check: int = 0  # rows whose outcome is still unknown (UNCERTAIN): not sent again
    in_flight: int = 0  # orders sent earlier and not final yet: looked at, not sent
    skipped_invalid: int = 0  # invalid rows, never sent


@dataclass
class Outcome:
    counts: dict[str, int]
    exit_code: int
    stop_reason: str | None
    timed_out: int
    api_calls: int
    rate_limited: int
    refused: bool = False  # the key was refused mid-run: the rows left are still PLANNED


def exit_code_for(counts: dict[str, int]) -> int:
    """The contract's code for a batch in this state: 0 all fulfilled, 3 nothing to send (no
    valid row at all), 4 some failed, 5 some not final."""
    states = {RowState(s) for s, n in counts.items() if n}
    if not states - {S.INVALID}:
        return EXIT_NOTHING
    if states - FINAL:
        return EXIT_NOT_FINAL
    if states & FAILED:
        return EXIT_FAILED_ROWS
    return EXIT_OK


class Runner:
    """Runs one batch's journal against the API. Create one per run."""

    def __init__(
        self,
        journal: Journal,
        client: OneClickClient,
        clock: Clock,
        options: RunOptions | None = None,
        progress: Progress | None = None,
        history: History | None = None,
    ) -> None:
        options = options or RunOptions()
        budget = options.retry_budget or max(20, journal.row_count() // 10)
        guard = Guard(options.breaker_threshold, budget)
        schedule = Schedule(
            clock, options.poll_first, options.poll_step, options.poll_ceiling,
            options.poll_deadline,
        )  # fmt: skip
        settler = Settler(journal, schedule, self._progress)
        self.ctx = RunContext(journal, client, clock, options, guard, schedule, settler, history)
        self._callback: Progress = progress or (lambda event, row: None)
        self.poller = Poller(self.ctx)
        self.reconciler = Reconciler(self.ctx, self.poller)
        self.ctx.gift_locks = GiftLocks(journal.path.parent.parent / "locks", client.base_url)
        self.submitter = Submitter(self.ctx, self.reconciler, self.poller)
        self.ctx.progress = self._progress
        self._reconciled = False
        if journal.get_meta("gift_refs") == "honoured":
            self.ctx.state["gift_refs_honoured"] = True
        if journal.get_meta("gift_refs") == "refused":
            self.ctx.state["gift_refs_refused"] = True

    # --- control ---------------------------------------------------------------------------------

    @property
    def journal(self) -> Journal:
        return self.ctx.journal

    @property
    def progress(self) -> Progress:
        return self._callback

    @progress.setter
    def progress(self, callback: Progress) -> None:
        self._callback = callback

    def _progress(self, event: str, row: Row) -> None:
        self._callback(event, row)

    @property
    def stop_reason(self) -> str | None:
        return self.ctx.guard.stop_reason

    def request_stop(self, reason: str = INTERRUPTED) -> None:
        """Stop taking rows and stop polling; rows in flight settle into the journal."""
        self.ctx.guard.request_stop(reason)

    # --- pre-flight ------------------------------------------------------------------------------

    async def check_environment(self) -> KeyInfo:
        """The key is accepted and of the environment (SANDBOX or PRODUCTION) the batch began
        in: a batch's orders exist in one environment only. Raises RefusedError (exit 6)."""
        try:
            key = await self.ctx.client.validate_key()
        except AuthError as e:
            raise RefusedError(auth_refusal(e)) from None
        started_in = self.journal.get_meta("environment")
        if started_in and started_in != key.type:
            raise RefusedError(
                _(
                    "this batch was started with a {started} key and this key is {now}: its "
                    "orders live in the other environment; use a new --batch key"
                ).format(started=started_in, now=key.type)
            )
        return key

    async def settle_uncertain(self) -> int:
        """Reconcile the rows a previous run left in SENDING or UNCERTAIN (read-only calls: an
        order found is adopted, one never placed is put back to be sent). Returns how many rows
        were put back. Done once, before the confirmation, so it counts what will be sent."""
        if self._reconciled:
            return 0
        self._reconciled = True
        before = self.journal.count([S.PLANNED])
        await self.reconciler.uncertain(self.journal.rows([S.SENDING, S.UNCERTAIN]))
        return max(0, self.journal.count([S.PLANNED]) - before)

    async def preflight(self) -> Preflight:
        """Key type and scope, rows left uncertain reconciled, balance against the cost of what
        is left to send, --max-total. Raises RefusedError (exit 6) when the run must not start."""
        key = await self.check_environment()
        if key.scope != "READ-WRITE" or not key.enabled:
            raise RefusedError(
                _(
                    "this API key is {scope}: it can look but not buy; use a READ-WRITE key; "
                    "nothing was sent"
                ).format(scope=key.scope or _("disabled"))
            )
        self.journal.set_meta(environment=key.type)
        resend = await self.settle_uncertain()
        balance = await self.ctx.client.balance()
        todo, face, cost = self.journal.sums([S.PLANNED])
        counts = self.journal.counts()
        if self.journal.get_meta("balance_before") is None:
            self.journal.set_meta(balance_before=balance)
        max_total = self.ctx.options.max_total
        if max_total is not None and face > max_total:
            raise RefusedError(
                _(
                    "this run would send {face} DA of top-ups, more than --max-total {cap} DA; "
                    "nothing was sent"
                ).format(face=money(face), cap=money(max_total))
            )
        if todo and cost > balance:
            raise RefusedError(
                _(
                    "the balance is {balance} DA but the {n} rows left to send cost {cost} DA; "
                    "add funds or split the sheet; nothing was sent"
                ).format(balance=money(balance), n=todo, cost=money(cost))
            )
        return Preflight(
            key.type, key.scope, balance, todo, face, cost,
            already_done=sum(counts.get(s.value, 0) for s in FINAL if s != S.INVALID),
            resend=resend,
            to_check=counts.get(S.UNCERTAIN.value, 0) + counts.get(S.SENDING.value, 0),
            in_flight=sum(counts.get(s.value, 0) for s in OPEN),
            skipped_invalid=counts.get(S.INVALID.value, 0),
        )  # fmt: skip

    # --- the run ---------------------------------------------------------------------------------

    async def execute(self) -> Outcome:
        """Reconcile what a previous run left uncertain, submit what is planned, poll to the end."""
        now = iso(self.ctx.clock.wall())
        if self.journal.get_meta("first_started_at") is None:
            self.journal.set_meta(first_started_at=self.journal.get_meta("started_at") or now)
        # The end and the stop reason belong to the run that wrote them: a run that dies (killed)
        # leaves neither, not those of an earlier run.
        self.journal.set_meta(started_at=now, last_started_at=now, stop_reason="", finished_at="")
        await self.settle_uncertain()
        for row in self.journal.iter_rows(OPEN):
            self.poller.watch(row, first=row.state == S.SUBMITTED and row.provider_status is None)
        self.poller.submitting = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.submitter.run)
            if self.ctx.options.poll:
                tg.start_soon(self.poller.run)
        return await self._finish()

    async def reconcile(self) -> Outcome:
        """Re-check every row that is not final, once, without sending anything new."""
        await self.check_environment()
        await self.settle_uncertain()
        due = []
        for row in self.journal.iter_rows(OPEN):
            self.poller.watch(row, first=False, deadline=math.inf)
            due.append(row.idx)
        if due:
            await self.poller.check(self.ctx.schedule.take_due(math.inf))
        self.ctx.schedule.timed_out.clear()
        return await self._finish()

    async def _finish(self) -> Outcome:
        guard = self.ctx.guard
        if not guard.breaker_open:  # not into a failing API
            with contextlib.suppress(ApiError):
                balance = await self.ctx.client.balance()
                self.journal.set_meta(balance_after=balance,
                                      balance_after_at=iso(self.ctx.clock.wall()))  # fmt: skip
        self.journal.set_meta(
            finished_at=iso(self.ctx.clock.wall()), stop_reason=guard.reason or ""
        )
        counts = self.journal.counts()
        throttle = self.ctx.client.throttle
        return Outcome(
            counts,
            exit_code_for(counts),
            guard.reason,
            len(self.ctx.schedule.timed_out),
            self.ctx.client.calls,
            getattr(throttle, "rate_limited", 0),
            guard.auth_refused,
        )


def auth_refusal(e: AuthError) -> str:
    """One wording for a refused key everywhere, with what the provider says of it."""
    attempts = e.details.get("attemptsLeft") if e.details else None
    if attempts is not None:
        return _(
            "the API refused the key ({code}: {message}); {attempts} attempts left before this "
            "address is blocked for 15 minutes; nothing was sent"
        ).format(code=e.code, message=e.message, attempts=attempts)
    if e.code == "IP_BLOCKED":
        return _(
            "the API refused the key ({code}: {message}); wait 15 minutes before trying again, "
            "with the right key; nothing was sent"
        ).format(code=e.code, message=e.message)
    return _("the API refused the key ({code}: {message}); nothing was sent").format(
        code=e.code, message=e.message
    )
