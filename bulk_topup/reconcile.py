"""Find an order at the provider before anything is sent again.

A row in SENDING (the run died during its POST) or UNCERTAIN (the POST's outcome is unknown) may
or may not have become an order. Mobile and internet orders carry our ref: `check-ref` says
which. Found, the order is adopted; NOT_FOUND, it was never placed: the row is sent again with the
same ref (the provider refuses a second order under one ref), unless it is no longer in the
sheet, in which case it is dropped.

Gift orders carry no ref in the English reference. An uncertain gift order is ours only if it was
born during our POST: created in provider time between the moment the POST left and the moment
its fate was known (or the POST's timeout, if the run died), with a slack of the learned clock
skew, never "until now"; of the same product, type and quantity; and not claimed by any row of any
batch in the state dir. Exactly one such order is adopted; none or several leave the row
UNCERTAIN for a person. Where the API honours a gift `ref` (it answers `orderRef`) and its list
shows refs, the order is found by its ref instead, and a ref absent from the window means the
order was never placed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .clock import parse_iso
from .context import RunContext
from .errors import ApiError, NotFound
from .journal import Row, RowState
from .models import GiftOrder, TopupStatus
from .poll import Poller
from .texts import (
    NO_FREE_GIFT_MATCH,
    NO_GIFT_MATCH,
    REF_HELD_HERE,
    REF_USED_ELSEWHERE,
    SEND_TIME_UNKNOWN,
    SEVERAL_GIFT_MATCHES,
)

S = RowState


def _whole(value: object) -> object:
    """`500.0` -> `500`: the API's numbers compared with the sheet's integers."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class Reconciler:
    """Settles what a POST left uncertain, by ref or (gift cards) by a tight time window."""

    def __init__(self, ctx: RunContext, poller: Poller) -> None:
        self.ctx = ctx
        self.poller = poller

    async def uncertain(self, rows: Iterable[Row], *, locked: bool = False) -> None:
        """Reconcile every row of `rows` (SENDING or UNCERTAIN) with the provider. A gift row is
        looked for under its product's gift lock (`locked`: the caller holds it already)."""
        for row in rows:
            if self.ctx.guard.stopped:
                return
            try:
                if row.kind == "giftcard" and locked:
                    await self.gift(row)
                elif row.kind == "giftcard":
                    p = row.payload
                    async with self.ctx.gift_locks.hold(p["productId"], p["typeId"], p["quantity"]):
                        await self.gift(self.ctx.journal.row(row.idx))
                else:
                    await self.by_ref(row, "reconciled by ref")
            except ApiError as e:
                self.ctx.guard.failure(e.message)
                current = self.ctx.journal.row(row.idx)
                if current.state == S.SENDING:
                    self.ctx.journal.transition(
                        row.idx, S.UNCERTAIN, f"could not reconcile: {e.message}"
                    )

    async def by_ref(self, row: Row, why: str) -> None:
        """Adopt the order the provider holds under the row's ref, or put the row back to be
        sent again (NOT_FOUND: it was never placed)."""
        assert row.ref is not None
        client = self.ctx.client
        check = client.mobile_check_ref if row.kind == "mobile" else client.internet_check_ref
        try:
            status = await check(row.ref)
        except NotFound:
            self.never_placed(row, "the provider has no order with this ref: it was never placed")
            return
        self.ctx.guard.success()
        foreign = self._not_ours(row, status)
        if foreign:
            # The provider holds another order under this ref (a ref column reused across
            # batches): this row was not paid, and sending it again would be refused again.
            row = self.ctx.journal.transition(
                row.idx, S.REJECTED, foreign, error_code="DUPLICATED_REF", error_message=foreign
            )
            self.ctx.notify("rejected", row)
            return
        row = self.ctx.journal.transition(row.idx, S.SUBMITTED, why, order_id=status.id)
        self.poller.watch(row, first=False)
        self.ctx.settler.topup(row, status)

    def _not_ours(self, row: Row, status: TopupStatus) -> str | None:
        """Why the order the provider holds under this row's ref is not this row's order (None
        when it is): another number, plan or amount, or an order another row already holds."""
        p = row.payload
        if row.kind == "mobile":
            mine = (p.get("MSSIDN"), p.get("plan_code"), p.get("amount"))
            theirs = (status.target, status.product, status.amount)
        else:
            mine = (p.get("number"), p.get("type"), p.get("value"))
            theirs = (status.target, status.product, status.amount)
        differs = any(
            a is not None and b not in (None, "") and str(a) != str(_whole(b))
            for a, b in zip(mine, theirs, strict=True)
        )
        holder = self.ctx.journal.holder_of(status.id) if status.id else None
        if holder is not None and holder != (row.sheet_row or row.idx):
            return REF_HELD_HERE.format(ref=row.ref, row=holder)
        other = self.ctx.history.claimed_by(status.id) if self.ctx.history and status.id else None
        if other is not None or differs:
            return REF_USED_ELSEWHERE.format(ref=row.ref)
        return None

    def never_placed(self, row: Row, why: str) -> None:
        """No order exists for this row: send it again, unless the sheet no longer holds it."""
        journal = self.ctx.journal
        if not row.in_sheet:
            journal.drop(row.idx, f"{why}; no longer in the sheet: dropped, not sent")
            return
        journal.transition(row.idx, S.PLANNED, f"{why}; it will be sent again with the same ref")

    # --- gift cards ------------------------------------------------------------------------------

    def window(self, row: Row) -> tuple[datetime, datetime]:
        """The provider time in which the row's POST could have created an order."""
        options, client = self.ctx.options, self.ctx.client
        slack = timedelta(seconds=options.gift_slack)
        sent = parse_iso(row.provider_sent_at) if row.provider_sent_at else None
        done = parse_iso(row.provider_done_at) if row.provider_done_at else None
        if sent is None:  # a journal of the first version: its send time, in our clock
            sent = parse_iso(row.sent_at) + client.server_skew if row.sent_at else None
        if sent is None:
            raise ValueError("no send time")
        if done is None:  # the run died during the POST: it cannot have lasted longer than this
            done = sent + timedelta(seconds=options.post_timeout)
        return sent - slack, done + slack

    def _claimed(self, order_id: str) -> str | None:
        """Who holds this order already: a row of this batch or of another batch."""
        here = self.ctx.journal.holder_of(order_id)
        if here is not None:
            return f"row {here} of this batch"
        if self.ctx.history is not None:
            batch = self.ctx.history.claimed_by(order_id)
            if batch is not None:
                return f"batch {batch}"
        return None

    async def gift(self, row: Row) -> None:
        ctx = self.ctx
        p = row.payload
        if not ctx.client.skew_known:
            await ctx.client.ping()  # the provider's clock, so the window is in its time
        try:
            since, until = self.window(row)
        except ValueError:
            self._leave_uncertain(row, SEND_TIME_UNKNOWN)
            return
        candidates: list[GiftOrder] = []
        by_ref: list[GiftOrder] = []
        refs_shown = False
        async for order in ctx.client.listed("gift", since, until):
            order_ref = getattr(order, "ref", None)
            refs_shown = refs_shown or bool(order_ref)
            if order_ref and order_ref == row.ref:
                by_ref.append(order)
            elif (
                not order_ref
                and order.product == p["productId"]
                and order.type == p["typeId"]
                and order.quantity == p["quantity"]
            ):
                candidates.append(order)
        ctx.guard.success()
        if by_ref:
            self._adopt_gift(row, by_ref[0], "gift order found in the list by its ref")
            return
        if refs_shown and ctx.state.get("gift_refs_honoured"):
            # The provider shows the refs of its gift orders and ours is not among them.
            self.never_placed(row, "the provider's list shows no order with this ref")
            return
        unclaimed = [o for o in candidates if self._claimed(o.id) is None]
        if len(unclaimed) == 1:
            self._adopt_gift(row, unclaimed[0], "gift order found in the list")
            return
        if not unclaimed:
            taken = len(candidates)
            why = NO_FREE_GIFT_MATCH.format(n=taken) if taken else NO_GIFT_MATCH
            if ctx.options.resend_uncertain_gifts and row.in_sheet and not taken:
                ctx.journal.transition(row.idx, S.PLANNED, f"{why}; resending as asked")
                return
        else:
            why = SEVERAL_GIFT_MATCHES.format(n=len(unclaimed))
        self._leave_uncertain(row, why)

    def _adopt_gift(self, row: Row, order: GiftOrder, why: str) -> None:
        row = self.ctx.journal.transition(row.idx, S.SUBMITTED, why, order_id=order.id)
        self.poller.watch(row, first=False)
        self.ctx.settler.gift(row, order)

    def _leave_uncertain(self, row: Row, why: str) -> None:
        journal = self.ctx.journal
        if journal.row(row.idx).state != S.UNCERTAIN:
            journal.transition(row.idx, S.UNCERTAIN, why, error_message=why)
        else:
            journal.update(row.idx, why, error_message=why)
        self.ctx.notify("uncertain", journal.row(row.idx))
