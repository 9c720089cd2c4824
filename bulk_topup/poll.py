"""Polling: every sent order looked at until the provider says how it ended, at the least cost.

Against a rate-limited account every wasted call delays a payment, so:
- an order is first looked at after its product's usual settle time, then with backoff;
- due orders are gathered for a moment (`gather`) rather than checked one by one as they fall due;
- a sweep reads the provider's list only over the window of provider time in which the due
  orders were created (known to within the learned clock skew: from just before the POST left to
  just after its answer came back), so one page of 100 answers for up to 100 orders; any other
  order of this batch the page shows settled is applied too, which spares its own look later;
- only the few orders a sweep did not see are checked one by one.

Polls share the run's one rate with submission (the provider counts every call): a sweep is one
call for up to a hundred orders, so polls take about 1 % of the rate, and while rows are still
being sent at most two single checks are in flight at once.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import anyio

from .clock import parse_iso
from .context import RunContext
from .errors import ApiError
from .journal import Row
from .models import GiftOrder, TopupStatus
from .texts import UNREADABLE_STATUS


class Poller:
    """Looks at the batch's open orders until each is final, parked or past its deadline."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._keys: dict[str, int] = {}  # order id or ref -> row idx, for every watched order
        #: provider send times (epoch seconds) of this batch's orders, per kind, sorted: how many
        #: of our orders a list window holds, so a sweep can be cut to fit one page
        self._sends: dict[str, list[float]] = {}
        #: per kind, the provider time up to which a sweep has read the list: the next sweep
        #: need not read again the slack before its first order (sweeps follow one another)
        self._edge: dict[str, float] = {}
        self._submitting = False
        self._wake = anyio.Event()  # set when there is something new to look at, or an end

    @property
    def submitting(self) -> bool:
        return self._submitting

    @submitting.setter
    def submitting(self, value: bool) -> None:
        self._submitting = value
        self._wake.set()

    def watch(self, row: Row, *, first: bool, deadline: float | None = None) -> None:
        """Look at `row`'s order: after the settle time (`first`), or at once."""
        self.ctx.schedule.add(row.idx, row.kind, first=first, deadline=deadline)
        for key in (row.order_id, row.ref):
            if key:
                self._keys[key] = row.idx
        if row.provider_sent_at:
            bisect.insort(self._sends.setdefault(row.kind, []), _epoch(row.provider_sent_at))
        self._wake.set()

    # --- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        ctx, schedule, options = self.ctx, self.ctx.schedule, self.ctx.options
        while not ctx.guard.stopped:
            now = ctx.clock.now()
            first_due = schedule.next_due()
            if first_due is None:
                if not self.submitting:
                    return
                await self._wake.wait()  # nothing to look at until a row is sent
                self._wake = anyio.Event()
                continue
            if now < first_due:
                await ctx.clock.sleep(min(first_due - now, 1.0))
                continue
            # Orders fall due one by one as they were sent: gather them until a list page's worth
            # is due (or the first has waited `gather`, or no other order is still to come).
            page = options.sweep_batch
            ready = min(first_due + options.gather, self._page_due_at(first_due))
            if now < ready and schedule.due_count(now, page) < page:
                tail = not self.submitting and len(schedule) <= page
                if not (tail and schedule.due_count(now, page) == len(schedule)):
                    await ctx.clock.sleep(min(0.25, ready - now))
                    continue
            await self.check(schedule.take_due(now))

    def _page_due_at(self, first_due: float) -> float:
        """When the orders sent just after the first due one fill a list page's window: the
        moment to sweep them together (runner time; infinity when fewer have been sent)."""
        top = self.ctx.schedule.first()
        if top is None:
            return math.inf
        row = self.ctx.journal.row(top)
        if not row.provider_sent_at:
            return first_due
        sends = self._sends.get(row.kind, [])
        slack, page = self.ctx.options.sweep_slack, self.ctx.options.sweep_batch
        sent = _epoch(row.provider_sent_at)
        last = bisect.bisect_left(sends, self._lower(row.kind, sent)) + page - 1
        if last >= len(sends):
            return math.inf
        return first_due + max(0.0, sends[last] - slack - sent)

    async def check(self, due: list[int]) -> None:
        """Look at the orders of `due` now: sweeps where they are many, single checks for the
        rest."""
        rows = [self.ctx.journal.row(i) for i in due]
        for kind in ("mobile", "internet", "giftcard"):
            group = sorted(
                (r for r in rows if r.kind == kind), key=lambda r: r.provider_sent_at or ""
            )
            left: list[Row] = []
            if len(group) >= self.ctx.options.sweep_min:
                for sweep in self._pack(kind, group):
                    if self.ctx.guard.stopped:
                        return
                    left += await self._sweep(kind, sweep)
            else:
                left = group
            await self._check_each(left)

    # --- sweeps ----------------------------------------------------------------------------------

    def _lower(self, kind: str, first_sent: float) -> float:
        """Where a sweep whose first order was sent at `first_sent` starts reading: the slack
        before it, unless an earlier sweep has read that far already."""
        lower = first_sent - self.ctx.options.sweep_slack
        edge = self._edge.get(kind)
        return max(lower, edge) if edge is not None and first_sent >= edge else lower

    def _window(self, rows: list[Row]) -> tuple[datetime, datetime]:
        """The provider time in which these orders were created, with the skew's slack."""
        options, client = self.ctx.options, self.ctx.client
        slack = timedelta(seconds=options.sweep_slack)
        starts, ends = [], []
        for r in rows:
            if r.provider_sent_at:
                sent = parse_iso(r.provider_sent_at)
                starts.append(sent)
                done = parse_iso(r.provider_done_at) if r.provider_done_at else None
                ends.append(done or sent + timedelta(seconds=options.post_timeout))
        if not starts:
            now = client.provider_now()
            return now - timedelta(hours=1), now + slack
        return min(starts) - slack, max(ends) + slack

    def _pack(self, kind: str, rows: list[Row]) -> list[list[Row]]:
        """Due rows (sorted by send time) cut into sweeps: a row joins the sweep before it as
        long as that costs no extra list page (counting this batch's orders in the window), so
        each page answers for as many rows as it can."""
        sends = self._sends.get(kind, [])
        options = self.ctx.options
        page, slack = options.sweep_batch, options.sweep_slack

        def pages(since: float, until: float) -> int:
            held = bisect.bisect_right(sends, until + slack) - bisect.bisect_left(
                sends, self._lower(kind, since)
            )
            return max(1, math.ceil(held / page))

        sweeps: list[list[Row]] = []
        current: list[Row] = []
        since = until = 0.0
        cost = 0
        for row in rows:
            if not row.provider_sent_at:
                sweeps.append([row])  # no send time: a window of its own (`_window` widens it)
                continue
            sent = _epoch(row.provider_sent_at)
            done = _epoch(row.provider_done_at) if row.provider_done_at else (
                sent + options.post_timeout)  # fmt: skip
            if current:
                trial = pages(min(since, sent), max(until, done))
                if trial <= cost and len(current) < page * cost:
                    current.append(row)
                    since, until = min(since, sent), max(until, done)
                    continue
                sweeps.append(current)
            current, since, until = [row], sent, done
            cost = pages(sent, done)
        if current:
            sweeps.append(current)
        return sweeps

    async def _sweep(self, kind: str, rows: list[Row]) -> list[Row]:
        """Read the list pages over the rows' window; return the rows it did not show."""
        ctx = self.ctx
        wanted = {r.idx: r for r in rows}
        since, until = self._window(rows)
        first_sent = since.timestamp() + ctx.options.sweep_slack
        since = datetime.fromtimestamp(self._lower(kind, first_sent), tz=since.tzinfo)
        try:
            items: AsyncIterator[TopupStatus | GiftOrder] = ctx.client.listed(
                "gift" if kind == "giftcard" else kind, since, until
            )
            async for item in items:
                self._seen(item, wanted)
                if not wanted or ctx.guard.stopped:
                    break  # every due order seen: no need for older pages
            ctx.guard.success()
            self._edge[kind] = max(self._edge.get(kind, 0.0), until.timestamp())
        except ApiError as e:
            ctx.guard.failure(e.message)
            for idx in wanted:
                ctx.schedule.again(idx)
            return []
        return list(wanted.values())

    def _seen(self, item: TopupStatus | GiftOrder, wanted: dict[int, Row]) -> None:
        idx = self._keys.get(item.id)
        if idx is None and isinstance(item, TopupStatus) and item.ref:
            idx = self._keys.get(item.ref)
        if idx is None:
            return
        row = wanted.pop(idx, None)
        if row is None:
            if idx not in self.ctx.schedule:
                return  # settled already
            row = self.ctx.journal.row(idx)
            if not _settled(item):
                return  # not due yet and still running: its own turn will come
            self.ctx.schedule.drop(idx)
        self._apply(row, item)

    def _apply(self, row: Row, item: TopupStatus | GiftOrder) -> None:
        if isinstance(item, GiftOrder):
            self.ctx.settler.gift(row, item)
        else:
            self.ctx.settler.topup(row, item)
        if row.idx not in self.ctx.schedule:
            for key in (row.order_id, row.ref, item.id):
                if key:
                    self._keys.pop(key, None)

    # --- single checks ---------------------------------------------------------------------------

    async def _check_each(self, rows: list[Row]) -> None:
        ctx = self.ctx
        limiter = anyio.CapacityLimiter(2 if self.submitting else max(1, ctx.options.concurrency))

        async def one(row: Row) -> None:
            async with limiter:
                if ctx.guard.stopped:
                    return
                try:
                    self._apply(row, await self._look(row))
                    ctx.guard.success()
                except ApiError as e:
                    ctx.guard.failure(e.message)
                    ctx.schedule.again(row.idx)
                except (KeyError, TypeError, ValueError) as e:  # an answer we cannot read
                    ctx.guard.failure(UNREADABLE_STATUS.format(name=type(e).__name__))
                    ctx.schedule.again(row.idx)

        async with anyio.create_task_group() as tg:
            for row in rows:
                tg.start_soon(one, row)

    async def _look(self, row: Row) -> TopupStatus | GiftOrder:
        client = self.ctx.client
        if row.kind == "giftcard":
            assert row.order_id
            return await client.gift_check_order(row.order_id)
        assert row.ref
        if row.kind == "mobile":
            return await client.mobile_check_ref(row.ref)
        return await client.internet_check_ref(row.ref)


def _epoch(text: str) -> float:
    return parse_iso(text).timestamp()


def _settled(item: TopupStatus | GiftOrder) -> bool:
    from .journal import PROVIDER_FINAL, PROVIDER_PARKED

    return item.status in PROVIDER_FINAL or item.status in PROVIDER_PARKED
