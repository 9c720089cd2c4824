"""Submit, reconcile and poll a batch, never paying twice.

- Intent first: a row is committed as SENDING before its POST leaves. After a crash, SENDING and
  UNCERTAIN rows are reconciled with the provider (`check-ref`, or the gift order list) before
  anything is sent again; an order found is adopted, a ref the provider never saw is resent with
  the same ref (the provider refuses a second order under one ref).
- One `AdaptiveThrottle` paces every call (the provider counts them all); a separate cap bounds how
  many rows are in flight. A 429 halves the rate and waits `Retry-After`; quiet time restores it.
- A retry budget and a circuit breaker park the run (resumable) instead of hammering a failing API.
- Polling starts after the product's usual settle time, backs off to a ceiling, sweeps list pages
  (100 orders a call) when many orders are due, and gives up on a row at its deadline (the row stays
  open, the run ends with exit 5).

Library code: progress goes to a callback; nothing here prints.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio

from .client import OneClickClient
from .clock import Clock, iso, parse_iso
from .errors import (
    ApiError,
    ApiRefused,
    AuthError,
    DuplicatedRef,
    InsufficientBalance,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    RefusedError,
    RequestNotSent,
)
from .journal import FAILED, FINAL, PROVIDER_FINAL, PROVIDER_PARKED, Journal, Row, RowState
from .models import GiftOrder, KeyInfo, Page, T, TopupStatus

S = RowState
EXIT_OK, EXIT_FAILED_ROWS, EXIT_NOT_FINAL = 0, 4, 5


@dataclass
class RunOptions:
    rate: float = 10.0  # API calls per second, all endpoints together
    concurrency: int = 8  # rows in flight at once
    max_total: float | None = None  # DZD of face value this run may send
    resend_uncertain_gifts: bool = False
    poll_first: dict[str, float] = field(
        default_factory=lambda: {"mobile": 22.0, "internet": 12.0, "giftcard": 10.0}
    )
    poll_step: float = 5.0
    poll_ceiling: float = 60.0
    poll_deadline: dict[str, float] = field(
        default_factory=lambda: {"mobile": 300.0, "internet": 300.0, "giftcard": 600.0}
    )
    sweep_min: int = 5  # due orders of one kind from which a list sweep replaces check-ref
    sweep_margin: float = 120.0  # seconds around the sent times, in provider time
    breaker_threshold: int = 8  # failures in a row that open the circuit
    retry_budget: int | None = None  # resends and requeues allowed (default: 20 or 10 % of rows)
    poll: bool = True


@dataclass
class Preflight:
    key_type: str
    key_scope: str
    balance: float
    rows: int
    face_value: float
    cost: float
    already_done: int


@dataclass
class Outcome:
    counts: dict[str, int]
    exit_code: int
    stop_reason: str | None
    timed_out: int
    api_calls: int
    rate_limited: int
    refused: bool = False  # the key was refused mid-run (exit 6)


async def _listed(
    lister: Callable[..., Awaitable[Page[T]]], since: datetime, until: datetime
) -> AsyncIterator[T]:
    """Every order a list endpoint has between `since` and `until`, page after page (100 a
    call, the most the API gives); the caller may stop early."""
    page, pages = 1, 1
    while page <= pages:
        found = await lister(page=page, page_size=100, since=since, until=until)
        pages = found.total_pages
        for item in found.items:
            yield item
        page += 1


def exit_code_for(counts: dict[str, int]) -> int:
    """The contract's code for a batch in this state: 0 all fulfilled, 4 some failed, 5 open."""
    states = {RowState(s) for s, n in counts.items() if n}
    if states - FINAL:
        return EXIT_NOT_FINAL
    if states & FAILED:
        return EXIT_FAILED_ROWS
    return EXIT_OK


def _money(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 2)
    except (TypeError, ValueError):
        return None


class Runner:
    """Runs one batch's journal against the API. Create one per run."""

    def __init__(
        self,
        journal: Journal,
        client: OneClickClient,
        clock: Clock,
        options: RunOptions | None = None,
        progress: Callable[[str, Row], None] | None = None,
    ) -> None:
        self.journal = journal
        self.client = client
        self.clock = clock
        self.options = options or RunOptions()
        self.progress = progress or (lambda event, row: None)
        self.stop_reason: str | None = None
        self._no_more_sends: str | None = None
        self._failures_in_a_row = 0
        self._retries = 0
        rows = sum(journal.counts().values())
        self.budget = self.options.retry_budget or max(20, rows // 10)
        self._due: dict[int, float] = {}
        self._deadline: dict[int, float] = {}
        self._checks: dict[int, int] = {}
        self.timed_out: set[int] = set()
        self._submitting = False
        self.auth_refused = False

    # --- control ---------------------------------------------------------------------------------

    def request_stop(self, reason: str = "interrupted") -> None:
        """Stop taking rows and stop polling; rows in flight settle into the journal."""
        self.stop_reason = self.stop_reason or reason
        self._no_more_sends = self._no_more_sends or reason

    def _stop_sending(self, reason: str) -> None:
        self._no_more_sends = self._no_more_sends or reason

    def _failure(self, what: str) -> None:
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= self.options.breaker_threshold:
            self.request_stop(
                f"the API failed {self._failures_in_a_row} times in a row (last: "
                f"{what}); stopped to avoid hammering it"
            )

    def _success(self) -> None:
        self._failures_in_a_row = 0

    def _spend_retry(self) -> bool:
        self._retries += 1
        if self._retries > self.budget:
            self.request_stop(
                f"more than {self.budget} retries in this run; stopped to avoid "
                f"hammering a failing API"
            )
            return False
        return True

    # --- pre-flight ------------------------------------------------------------------------------

    async def check_environment(self) -> KeyInfo:
        """The key is accepted and of the environment (SANDBOX or PRODUCTION) the batch began
        in: a batch's orders exist in one environment only. Raises RefusedError (exit 6)."""
        try:
            key = await self.client.validate_key()
        except AuthError as e:
            raise RefusedError(f"the API refused the key ({e.code}: {e.message})") from None
        started_in = self.journal.get_meta("environment")
        if started_in and started_in != key.type:
            raise RefusedError(
                f"this batch was started with a {started_in} key and this key is {key.type}: "
                f"its orders live in the other environment; use a new --batch key"
            )
        return key

    async def preflight(self) -> Preflight:
        """Key type and scope, balance against the cost of what is left to send, --max-total.
        Raises RefusedError (exit 6) when the run must not start."""
        key = await self.check_environment()
        if key.scope != "READ-WRITE" or not key.enabled:
            raise RefusedError(
                f"this API key is {key.scope or 'disabled'}: it can look but not "
                f"buy; use a READ-WRITE key"
            )
        balance = await self.client.balance()
        todo = self.journal.rows([S.PLANNED])
        done = sum(self.journal.counts().values()) - len(todo)
        face = round(sum(r.face_value or 0 for r in todo), 2)
        cost = round(sum(r.cost or 0 for r in todo), 2)
        self.journal.set_meta(environment=key.type)
        if self.journal.get_meta("balance_before") is None:
            self.journal.set_meta(balance_before=balance)
        if self.options.max_total is not None and face > self.options.max_total:
            raise RefusedError(
                f"this run would send {face:,.2f} DA of top-ups, more than "
                f"--max-total {self.options.max_total:,.2f} DA; nothing was "
                f"sent"
            )
        if todo and cost > balance:
            raise RefusedError(
                f"the balance is {balance:,.2f} DA but the {len(todo)} rows left "
                f"to send cost {cost:,.2f} DA; add funds or split the sheet; "
                f"nothing was sent"
            )
        return Preflight(key.type, key.scope, balance, len(todo), face, cost, done)

    # --- the run ---------------------------------------------------------------------------------

    async def execute(self) -> Outcome:
        """Reconcile what a previous run left uncertain, submit what is planned, poll to the end."""
        self.journal.set_meta(started_at=iso(self.clock.wall()))
        await self.reconcile_uncertain(self.journal.rows([S.SENDING, S.UNCERTAIN]))
        for row in self.journal.rows([S.SUBMITTED, S.UNKNOWN_ERROR, S.QUEUED]):
            self._schedule(row, first=row.state == S.SUBMITTED and row.provider_status is None)
        self._submitting = True
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._submit_all)
            if self.options.poll:
                tg.start_soon(self._poll_loop)
        return await self._finish()

    async def reconcile(self) -> Outcome:
        """Re-check every row that is not final, once, without sending anything new."""
        await self.check_environment()
        await self.reconcile_uncertain(self.journal.rows([S.SENDING, S.UNCERTAIN]))
        rows = self.journal.rows([S.SUBMITTED, S.UNKNOWN_ERROR, S.QUEUED])
        for row in rows:
            self._due[row.idx] = self.clock.now()
            self._deadline[row.idx] = math.inf
        if rows:
            await self._check(list(self._due))
        self._due.clear()
        return await self._finish()

    async def _finish(self) -> Outcome:
        if self._failures_in_a_row < self.options.breaker_threshold:  # not into a failing API
            with contextlib.suppress(ApiError):
                self.journal.set_meta(balance_after=await self.client.balance())
        self.journal.set_meta(
            finished_at=iso(self.clock.wall()),
            stop_reason=self.stop_reason or self._no_more_sends or "",
        )
        counts = self.journal.counts()
        throttle = self.client.throttle
        return Outcome(
            counts,
            exit_code_for(counts),
            self.stop_reason or self._no_more_sends,
            len(self.timed_out),
            self.client.calls,
            getattr(throttle, "rate_limited", 0),
            self.auth_refused,
        )

    # --- submission ------------------------------------------------------------------------------

    async def _submit_all(self) -> None:
        queue = self.journal.rows([S.PLANNED])

        async def worker() -> None:
            while queue and not self._no_more_sends:
                row = queue.pop(0)
                requeue = await self._submit(row)
                if requeue and not self._no_more_sends:
                    queue.append(self.journal.row(row.idx))

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, self.options.concurrency)):
                    tg.start_soon(worker)
        finally:
            self._submitting = False

    async def _submit(self, row: Row) -> bool:
        """Send one row. True when it went back to PLANNED and may be tried again."""
        provider_now = self.client.provider_now()
        row = self.journal.transition(
            row.idx,
            S.SENDING,
            "intent committed before the POST",
            attempts=row.attempts + 1,
            sent_at=iso(self.clock.wall()),
            provider_sent_at=iso(provider_now),
        )
        try:
            sent = await self._post(row)
        except DuplicatedRef:
            self._success()
            await self._adopt_by_ref(row, "the provider already had this ref")
            return False
        except InsufficientBalance as e:
            self.journal.transition(
                row.idx,
                S.PLANNED,
                "refused for balance; not sent",
                error_code=e.code,
                error_message=e.message,
            )
            self._stop_sending(
                "the balance ran out: the rows left were not sent; add funds, then resume"
            )
            return False
        except AuthError as e:
            self.journal.transition(
                row.idx,
                S.PLANNED,
                f"refused: {e.code}; not sent",
                error_code=e.code,
                error_message=e.message,
            )
            self.auth_refused = True
            self.request_stop(f"the API refused the key ({e.code}: {e.message})")
            return False
        except RateLimited as e:
            self.journal.transition(
                row.idx, S.PLANNED, "rate limited; not processed", error_code=e.code
            )
            return self._spend_retry()
        except ApiRefused as e:
            self._success()
            row = self.journal.transition(
                row.idx,
                S.REJECTED,
                f"refused: {e.code}",
                error_code=e.code,
                error_message=e.message,
            )
            self.progress("rejected", row)
            return False
        except RequestNotSent as e:
            self._failure(e.message)
            self.journal.transition(row.idx, S.PLANNED, f"not sent: {e.message}")
            return self._spend_retry()
        except Exception as e:  # OutcomeUnknown, or anything unforeseen after the intent
            message = e.message if isinstance(e, OutcomeUnknown) else (
                f"unexpected failure while sending ({type(e).__name__}: {e})")  # fmt: skip
            self._failure(message)
            row = self.journal.transition(row.idx, S.UNCERTAIN, message, error_message=message)
            self.progress("uncertain", row)
            await self.reconcile_uncertain([row])
            return self.journal.row(row.idx).state == S.PLANNED and self._spend_retry()
        self._success()
        row = self.journal.transition(
            row.idx, S.SUBMITTED, "accepted", order_id=sent, error_code=None, error_message=None
        )
        self.progress("submitted", row)
        self._schedule(row, first=True)
        return False

    async def _post(self, row: Row) -> str:
        p = row.payload
        assert row.ref is not None
        if row.kind == "mobile":
            return (
                await self.client.send_mobile(
                    plan_code=p["plan_code"],
                    msisdn=p["MSSIDN"],
                    amount=p.get("amount"),
                    ref=row.ref,
                )
            ).order_id
        if row.kind == "internet":
            return (
                await self.client.send_internet(
                    kind=p["type"], number=p["number"], value=p["value"], ref=row.ref
                )
            ).order_id
        return (
            await self.client.place_gift_order(
                product_id=p["productId"], type_id=p["typeId"], quantity=p["quantity"]
            )
        ).order_id

    # --- reconciliation --------------------------------------------------------------------------

    async def reconcile_uncertain(self, rows: list[Row]) -> None:
        """SENDING/UNCERTAIN rows: find the order at the provider before anything is resent."""
        for row in rows:
            try:
                if row.kind == "giftcard":
                    await self._reconcile_gift(row)
                else:
                    await self._adopt_by_ref(row, "reconciled by ref")
            except ApiError as e:
                self._failure(e.message)
                if row.state == S.SENDING:
                    self.journal.transition(row.idx, S.UNCERTAIN, f"could not reconcile: {e}")

    async def _adopt_by_ref(self, row: Row, why: str) -> None:
        assert row.ref is not None
        check = (
            self.client.mobile_check_ref if row.kind == "mobile" else self.client.internet_check_ref
        )
        try:
            status = await check(row.ref)
        except NotFound:
            self.journal.transition(
                row.idx,
                S.PLANNED,
                "the provider has no order with this ref: "
                "it was never placed; it will be sent again with the same ref",
            )
            return
        except ApiError as e:
            if row.state != S.UNCERTAIN:
                self.journal.transition(row.idx, S.UNCERTAIN, f"could not check the ref: {e}")
            raise
        self._success()
        row = self.journal.transition(row.idx, S.SUBMITTED, why, order_id=status.id)
        self._schedule(row, first=False)
        self._apply_topup(row, status)

    async def _reconcile_gift(self, row: Row) -> None:
        """Gift orders have no ref: find exactly one unclaimed matching order around the send."""
        p = row.payload
        if not self.client.skew_known:
            await self.client.ping()  # the provider's clock, so the window is in its time
        sent = (
            parse_iso(row.provider_sent_at) if row.provider_sent_at else self.client.provider_now()
        )
        margin = timedelta(seconds=self.options.sweep_margin)
        since, until = sent - margin, self.client.provider_now() + margin
        claimed = self.journal.order_ids()
        matches: list[GiftOrder] = [
            o
            async for o in _listed(self.client.gift_list, since, until)
            if o.product == p["productId"]
            and o.type == p["typeId"]
            and o.quantity == p["quantity"]
            and o.id not in claimed
        ]
        self._success()
        if len(matches) == 1:
            row = self.journal.transition(
                row.idx, S.SUBMITTED, "gift order found in the list", order_id=matches[0].id
            )
            self._schedule(row, first=False)
            self._apply_gift(row, matches[0])
            return
        why = (
            "no matching order in the provider's list"
            if not matches
            else f"{len(matches)} matching orders in the provider's list"
        )
        if not matches and self.options.resend_uncertain_gifts:
            self.journal.transition(row.idx, S.PLANNED, f"{why}; resending as asked")
            return
        if row.state != S.UNCERTAIN:
            self.journal.transition(row.idx, S.UNCERTAIN, why)
        else:
            self.journal.update(row.idx, why)
        self.progress("uncertain", self.journal.row(row.idx))

    # --- polling ---------------------------------------------------------------------------------

    def _schedule(self, row: Row, *, first: bool) -> None:
        now = self.clock.now()
        self._due[row.idx] = now + (self.options.poll_first.get(row.kind, 10.0) if first else 0)
        self._deadline[row.idx] = now + self.options.poll_deadline.get(row.kind, 300.0)
        self._checks[row.idx] = 0

    def _reschedule(self, idx: int) -> None:
        n = self._checks.get(idx, 0) + 1
        self._checks[idx] = n
        wait = min(self.options.poll_ceiling, self.options.poll_step * 1.5 ** (n - 1))
        at = self.clock.now() + wait
        if at > self._deadline.get(idx, math.inf):
            self._due.pop(idx, None)
            self.timed_out.add(idx)
            return
        self._due[idx] = at

    async def _poll_loop(self) -> None:
        while not self.stop_reason:
            now = self.clock.now()
            due = [idx for idx, at in self._due.items() if at <= now]
            if due:
                await self._check(due)
                continue
            if not self._due and not self._submitting:
                return
            wake = min(self._due.values(), default=now + 0.5)
            await self.clock.sleep(min(max(wake - now, 0.05), 1.0))

    async def _check(self, due: list[int]) -> None:
        rows = [self.journal.row(i) for i in due]
        for kind in ("mobile", "internet"):
            group = [r for r in rows if r.kind == kind]
            if len(group) >= self.options.sweep_min:
                group = await self._sweep(kind, group)
            await self._check_each(group)
        await self._check_each([r for r in rows if r.kind == "giftcard"])

    async def _check_each(self, rows: list[Row]) -> None:
        limiter = anyio.CapacityLimiter(max(1, self.options.concurrency))

        async def one(row: Row) -> None:
            async with limiter:
                try:
                    if row.kind == "giftcard":
                        assert row.order_id
                        self._apply_gift(row, await self.client.gift_check_order(row.order_id))
                    else:
                        check = (
                            self.client.mobile_check_ref
                            if row.kind == "mobile"
                            else self.client.internet_check_ref
                        )
                        assert row.ref
                        self._apply_topup(row, await check(row.ref))
                    self._success()
                except ApiError as e:
                    self._failure(e.message)
                    self._reschedule(row.idx)
                except (KeyError, TypeError, ValueError) as e:  # an answer we cannot read
                    self._failure(f"unreadable status ({type(e).__name__}: {e})")
                    self._reschedule(row.idx)

        async with anyio.create_task_group() as tg:
            for row in rows:
                if self.stop_reason:
                    break
                tg.start_soon(one, row)

    async def _sweep(self, kind: str, rows: list[Row]) -> list[Row]:
        """Read list pages around the rows' send times; return the rows not seen there."""
        wanted = {r.ref: r for r in rows}
        sent = [parse_iso(r.provider_sent_at) for r in rows if r.provider_sent_at]
        margin = timedelta(seconds=self.options.sweep_margin)
        since = (min(sent) if sent else self.client.provider_now()) - margin
        until = (max(sent) if sent else self.client.provider_now()) + margin
        lister = self.client.mobile_list if kind == "mobile" else self.client.internet_list
        try:
            async for status in _listed(lister, since, until):
                row = wanted.pop(status.ref, None) if status.ref else None
                if row is not None:
                    self._apply_topup(row, status)
                if not wanted or self.stop_reason:
                    break  # every due order seen: no need for older pages
            self._success()
        except ApiError as e:
            self._failure(e.message)
        return list(wanted.values())

    # --- applying what the provider says ---------------------------------------------------------

    def _apply_topup(self, row: Row, status: TopupStatus) -> None:
        fields: dict[str, Any] = {"provider_status": status.status, "order_id": status.id}
        if status.refund_message:
            fields["refund_message"] = status.refund_message
        if status.suggested_offers:
            fields["suggested"] = [
                {"typename": o.typename, "plan_code": o.plan_code, "amount": o.amount}
                for o in status.suggested_offers
            ]
        if status.card_code:
            fields["card_code"] = status.card_code
        if status.num_trans:
            fields["num_trans"] = status.num_trans
        debited = _money(status.debited)
        if status.status == "REFUNDED":
            debited = 0.0
        elif debited is None and status.status in ("FULFILLED", "QUEUED"):
            debited = row.cost  # the internet API reports no debit: the catalog price was charged
        if debited is not None:
            fields["debited"] = debited
        self._apply(row, status.status, fields)

    def _apply_gift(self, row: Row, order: GiftOrder) -> None:
        fields: dict[str, Any] = {"provider_status": order.status, "order_id": order.id}
        if order.cards:
            fields["cards"] = [{"value": c.value, "serial": c.serial} for c in order.cards]
        if order.fulfilled_quantity is not None:
            fields["fulfilled_quantity"] = order.fulfilled_quantity
        if order.fulfilled_amount is not None and order.status in PROVIDER_FINAL:
            fields["debited"] = _money(order.fulfilled_amount)
        self._apply(row, order.status, fields)

    def _apply(self, row: Row, provider_status: str, fields: dict[str, Any]) -> None:
        target = PROVIDER_FINAL.get(provider_status) or PROVIDER_PARKED.get(provider_status)
        if target is None:
            changed = provider_status != row.provider_status
            self.journal.update(
                row.idx, f"provider: {provider_status}" if changed else "", **fields
            )
            self._reschedule(row.idx)
            return
        if target == S.REFUNDED and row.kind == "mobile" and not fields.get("refund_message"):
            fields["error_message"] = "refunded by the provider"
        row = self.journal.transition(row.idx, target, f"provider: {provider_status}", **fields)
        self._due.pop(row.idx, None)
        self.progress("parked" if target in PROVIDER_PARKED.values() else "settled", row)
