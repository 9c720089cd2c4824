"""What the provider says about an order, applied to its journal row; and when to look again.

`Settler` turns a provider status into the row's state (final, parked, or still open) in one
journal transition. `Schedule` keeps, for every open order, when to look at it next: a heap, so a
run with 100,000 open orders finds the due ones without scanning them all, and a deadline per
product after which the row is left open for `resume` or `reconcile`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

from .clock import Clock
from .journal import PROVIDER_FINAL, PROVIDER_PARKED, Journal, Row, RowState
from .models import GiftOrder, TopupStatus
from .texts import REFUNDED

S = RowState


def money(value: Any) -> float | None:
    try:
        return None if value is None else round(float(value), 2)
    except (TypeError, ValueError):
        return None


class Schedule:
    """When to look at each open order next, with a deadline per order."""

    def __init__(
        self,
        clock: Clock,
        first: dict[str, float],
        step: float,
        ceiling: float,
        deadline: dict[str, float],
    ) -> None:
        self.clock = clock
        self._first, self._step, self._ceiling, self._deadline_for = first, step, ceiling, deadline
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, float] = {}
        self._deadline: dict[int, float] = {}
        self._checks: dict[int, int] = {}
        self.timed_out: set[int] = set()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, idx: int) -> bool:
        return idx in self._due

    def add(self, idx: int, kind: str, *, first: bool, deadline: float | None = None) -> None:
        """Watch order `idx`: first look after the product's settle time (or now)."""
        now = self.clock.now()
        self._set(idx, now + (self._first.get(kind, 10.0) if first else 0.0))
        self._deadline[idx] = now + (
            deadline if deadline is not None else self._deadline_for.get(kind, 300.0)
        )
        self._checks[idx] = 0
        self.timed_out.discard(idx)

    def again(self, idx: int) -> None:
        """Look later (backing off to the ceiling); past the deadline the row is left open."""
        n = self._checks.get(idx, 0) + 1
        self._checks[idx] = n
        at = self.clock.now() + min(self._ceiling, self._step * 1.5 ** (n - 1))
        if at > self._deadline.get(idx, math.inf):
            self.drop(idx)
            self.timed_out.add(idx)
            return
        self._set(idx, at)

    def drop(self, idx: int) -> None:
        self._due.pop(idx, None)
        self._deadline.pop(idx, None)
        self._checks.pop(idx, None)

    def first(self) -> int | None:
        """The order due first (without taking it)."""
        self._clean()
        return self._heap[0][1] if self._heap else None

    def next_due(self) -> float | None:
        self._clean()
        return self._heap[0][0] if self._heap else None

    def take_due(self, now: float, limit: int | None = None) -> list[int]:
        """The orders due by `now`, earliest first (at most `limit`); they leave the schedule
        until `again()` or `add()` puts them back."""
        taken: list[int] = []
        while self._heap and (limit is None or len(taken) < limit):
            at, idx = self._heap[0]
            if self._due.get(idx) != at:
                heapq.heappop(self._heap)  # a stale entry: the order was rescheduled or dropped
                continue
            if at > now:
                break
            heapq.heappop(self._heap)
            del self._due[idx]
            taken.append(idx)
        return taken

    def due_count(self, now: float, limit: int) -> int:
        """How many orders are due by `now`, counting up to `limit` (a bounded peek)."""
        self._clean()
        return sum(
            1
            for at, idx in heapq.nsmallest(limit, self._heap)
            if at <= now and self._due.get(idx) == at
        )

    def _set(self, idx: int, at: float) -> None:
        self._due[idx] = at
        heapq.heappush(self._heap, (at, idx))

    def _clean(self) -> None:
        while self._heap and self._due.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)


class Settler:
    """Applies what the provider says about an order to its journal row."""

    def __init__(
        self, journal: Journal, schedule: Schedule, progress: Callable[[str, Row], None]
    ) -> None:
        self.journal = journal
        self.schedule = schedule
        self.progress = progress

    def topup(self, row: Row, status: TopupStatus) -> None:
        fields: dict[str, Any] = {"provider_status": status.status, "order_id": status.id}
        if status.refund_message:
            fields["refund_message"] = status.refund_message
        if status.suggested_offers:
            fields["suggested"] = [
                {"typename": o.typename, "plan_code": o.plan_code, "amount": o.amount}
                for o in status.suggested_offers
            ]
        for name in ("card_code", "num_trans", "date_traitement"):
            value = getattr(status, name, None)
            if value:
                fields[name] = value
        debited = money(status.debited)
        if status.status == "REFUNDED":
            debited = 0.0
        elif debited is None and status.status in ("FULFILLED", "QUEUED"):
            debited = row.cost  # the internet API reports no debit: the catalog price was charged
        if debited is not None:
            fields["debited"] = debited
        self._apply(row, status.status, fields)

    def gift(self, row: Row, order: GiftOrder) -> None:
        fields: dict[str, Any] = {"provider_status": order.status, "order_id": order.id}
        if order.cards:
            fields["cards"] = [{"value": c.value, "serial": c.serial} for c in order.cards]
        if order.fulfilled_quantity is not None:
            fields["fulfilled_quantity"] = order.fulfilled_quantity
        if order.fulfilled_amount is not None and order.status in PROVIDER_FINAL:
            fields["debited"] = money(order.fulfilled_amount)
        self._apply(row, order.status, fields)

    def _apply(self, row: Row, provider_status: str, fields: dict[str, Any]) -> None:
        target = PROVIDER_FINAL.get(provider_status) or PROVIDER_PARKED.get(provider_status)
        if target is None:  # still PENDING / HANDLING (or a status we do not know): look again
            changed = provider_status != row.provider_status
            if changed or row.state != S.SUBMITTED:
                self.journal.transition(
                    row.idx, S.SUBMITTED, f"provider: {provider_status}", **fields
                )
            self.schedule.again(row.idx)
            return
        if target == S.REFUNDED and row.kind == "mobile" and not fields.get("refund_message"):
            fields["error_message"] = REFUNDED
        if target == row.state and row.provider_status == provider_status:
            self.schedule.drop(row.idx)  # a parked row re-checked, unchanged
            return
        row = self.journal.transition(row.idx, target, f"provider: {provider_status}", **fields)
        self.schedule.drop(row.idx)
        self.progress("parked" if target in PROVIDER_PARKED.values() else "settled", row)
