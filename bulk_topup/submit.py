"""Submission: each PLANNED row sent once, its intent journaled before its POST leaves.

Every answer is sorted into what it proves (see `errors`): accepted (SUBMITTED, then polled);
refused for good (REJECTED); refused before processing (rate limit, balance, key: back to PLANNED,
nothing was made); never sent (back to PLANNED); unknown (UNCERTAIN, then reconciled at once,
before anything is sent again).

Two identical gift orders (same product, type and quantity) are never in flight at once, in this
process or in another one using the same state dir: without a ref, two such orders can only be told
apart by when they were created, so each POST and its reconciliation hold a lock of their own
(`GiftLocks`).
"""

from __future__ import annotations

from collections import deque

import anyio

from .clock import iso
from .context import RunContext
from .errors import (
    ApiRefused,
    AuthError,
    DuplicatedRef,
    InsufficientBalance,
    OutcomeUnknown,
    RateLimited,
    RefNotAccepted,
    RequestNotSent,
)
from .journal import Row, RowState
from .poll import Poller
from .reconcile import Reconciler
from .texts import BALANCE_RAN_OUT, KEY_REFUSED, SENDING_FAILED

S = RowState
FEED = 500  # PLANNED rows read from the journal at a time: a 100,000-row batch is never one list


class Submitter:
    """Sends the batch's PLANNED rows with `concurrency` rows in flight."""

    def __init__(self, ctx: RunContext, reconciler: Reconciler, poller: Poller) -> None:
        self.ctx = ctx
        self.reconciler = reconciler
        self.poller = poller

    async def run(self) -> None:
        ctx = self.ctx
        pending: deque[int] = deque()
        retry: deque[int] = deque()
        last = [-(2**62)]  # the highest idx read from the journal so far
        exhausted = [False]

        def next_row() -> int | None:
            if not pending and not exhausted[0]:
                found = ctx.journal.planned_ids(after=last[0], limit=FEED)
                if found:
                    last[0] = found[-1]
                    pending.extend(found)
                else:
                    exhausted[0] = True
            if pending:
                return pending.popleft()
            return retry.popleft() if retry else None

        async def worker() -> None:
            while ctx.guard.may_send:
                idx = next_row()
                if idx is None:
                    return
                row = ctx.journal.row(idx)
                if row.state != S.PLANNED:
                    continue
                if await self.submit(row) and ctx.guard.may_send:
                    retry.append(idx)

        self.poller.submitting = True
        try:
            async with anyio.create_task_group() as tg:
                for _ in range(max(1, ctx.options.concurrency)):
                    tg.start_soon(worker)
        finally:
            self.poller.submitting = False

    async def submit(self, row: Row) -> bool:
        """Send one row. True when it went back to PLANNED and may be tried again."""
        if row.kind != "giftcard":
            return await self._submit(row)
        p = row.payload
        async with self.ctx.gift_locks.hold(p["productId"], p["typeId"], p["quantity"]):
            return await self._submit(row)

    async def _submit(self, row: Row) -> bool:
        ctx = self.ctx
        journal, guard = ctx.journal, ctx.guard
        await ctx.client.pace()  # the POST's turn first: the send time journaled is when it left
        if not guard.may_send:
            return False
        row = journal.transition(
            row.idx,
            S.SENDING,
            "intent committed before the POST",
            attempts=row.attempts + 1,
            sent_at=iso(ctx.clock.wall()),
            provider_sent_at=iso(ctx.client.provider_now()),
            provider_done_at=None,
        )
        try:
            order_id = await self._post(row)
        except DuplicatedRef:
            guard.success()
            self._done(row)
            row = journal.row(row.idx)
            if row.kind == "giftcard":
                await self.reconciler.uncertain([row], locked=True)
            else:
                await self.reconciler.by_ref(row, "the provider already had this ref")
            return False
        except InsufficientBalance as e:
            journal.transition(
                row.idx, S.PLANNED, "refused for balance; not sent",
                error_code=e.code, error_message=e.message,
            )  # fmt: skip
            guard.stop_sending(BALANCE_RAN_OUT)
            return False
        except AuthError as e:
            journal.transition(
                row.idx, S.PLANNED, f"refused: {e.code}; not sent",
                error_code=e.code, error_message=e.message,
            )  # fmt: skip
            guard.auth_refused = True
            guard.request_stop(KEY_REFUSED.format(code=e.code, message=e.message))
            return False
        except RateLimited as e:
            journal.transition(row.idx, S.PLANNED, "rate limited; not processed", error_code=e.code)
            return guard.spend_retry()
        except RefNotAccepted as e:
            # This API refuses a ref on gift orders: no order was made. The same order goes again
            # without one (and so do the batch's other gift rows).
            ctx.state["gift_refs_refused"] = True
            journal.set_meta(gift_refs="refused")
            journal.transition(
                row.idx, S.PLANNED, f"the API refuses gift refs ({e.code}); not sent, sent "
                "again without a ref",
            )  # fmt: skip
            return True
        except ApiRefused as e:
            guard.success()
            row = journal.transition(
                row.idx, S.REJECTED, f"refused: {e.code}", error_code=e.code,
                error_message=e.message, provider_done_at=iso(ctx.client.provider_now()),
            )  # fmt: skip
            ctx.notify("rejected", row)
            return False
        except RequestNotSent as e:
            guard.failure(e.message)
            journal.transition(row.idx, S.PLANNED, f"not sent: {e.message}")
            return guard.spend_retry()
        except Exception as e:  # OutcomeUnknown, or anything unforeseen after the intent
            message = e.message if isinstance(e, OutcomeUnknown) else (
                SENDING_FAILED.format(name=type(e).__name__))  # fmt: skip
            guard.failure(message)
            row = journal.transition(
                row.idx, S.UNCERTAIN, message, error_message=message,
                provider_done_at=iso(ctx.client.provider_now()),
            )  # fmt: skip
            ctx.notify("uncertain", row)
            await self.reconciler.uncertain([row], locked=True)
            return journal.row(row.idx).state == S.PLANNED and guard.spend_retry()
        guard.success()
        row = journal.transition(
            row.idx, S.SUBMITTED, "accepted", order_id=order_id, error_code=None,
            error_message=None, provider_done_at=iso(ctx.client.provider_now()),
        )  # fmt: skip
        ctx.notify("submitted", row)
        self.poller.watch(row, first=True)
        return False

    def _done(self, row: Row) -> None:
        self.ctx.journal.update(row.idx, provider_done_at=iso(self.ctx.client.provider_now()))

    async def _post(self, row: Row) -> str:
        client, p = self.ctx.client, row.payload
        assert row.ref is not None
        if row.kind == "mobile":
            sent = await client.send_mobile(
                plan_code=p["plan_code"], msisdn=p["MSSIDN"], amount=p.get("amount"), ref=row.ref
            )
        elif row.kind == "internet":
            sent = await client.send_internet(
                kind=p["type"], number=p["number"], value=p["value"], ref=row.ref
            )
        else:
            refs_refused = self.ctx.state.get("gift_refs_refused")
            sent = await client.place_gift_order(
                product_id=p["productId"], type_id=p["typeId"], quantity=p["quantity"],
                ref=None if refs_refused else row.ref,
            )  # fmt: skip
            if sent.ref == row.ref:
                self.ctx.state["gift_refs_honoured"] = True
                self.ctx.journal.set_meta(gift_refs="honoured")
        return sent.order_id
