"""Property: whatever a person does between runs (edit an amount, delete a row, add a ref column,
run the sheet under a renamed batch key) and whatever happens during them (kills, 5xx, dropped
answers), nobody is paid twice, no order is lost, and no gift card is handed to two rows."""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bulk_topup.batchfile import list_batches
from bulk_topup.clock import VirtualClock
from bulk_topup.context import RunOptions
from bulk_topup.emulator import EmulatorTransport, World, create_app
from bulk_topup.errors import BulkTopupError, InvalidRowsError

from .runkit import Desk, gift, mobile


class KillAfter(httpx.AsyncBaseTransport):
    """Passes requests on; after `n` of them the process "dies" mid-request."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.n = 0
        self.scope: anyio.CancelScope | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.n -= 1
        if self.n == 0 and self.scope is not None:
            self.scope.cancel()
            await anyio.sleep(0)
        return await self.inner.handle_async_request(request)


people = st.integers(2, 6)
action = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 5), st.sampled_from([100, 250, 900])),
    st.tuples(st.just("delete"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("refs"), st.just(0), st.just(0)),
    st.tuples(st.just("rename"), st.sampled_from(["Payroll", "payroll ", "PAYROLL"]), st.just(0)),
    st.tuples(st.just("run"), st.just(0), st.just(0)),
)
run_faults = st.fixed_dictionaries(
    {
        "error_rate": st.sampled_from([0.0, 0.2]),
        "drop_rate": st.sampled_from([0.0, 0.3]),
        "seed": st.integers(0, 1000),
        "kill_after": st.sampled_from([0, 3, 9, 15, 30]),
    }
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    n=people,
    gifts=st.integers(0, 2),
    first=run_faults,
    steps=st.lists(st.tuples(action, run_faults), max_size=5),
)
def test_edits_renames_kills_and_faults_never_pay_twice(
    n: int, gifts: int, first: dict[str, Any], steps: list[Any]
) -> None:
    clock = VirtualClock()
    world = World(clock=clock)
    world.faults.update({"ref_dedup": False})  # a resent ref shows as a second order
    app = create_app(world)
    killer = KillAfter(EmulatorTransport(app))

    rows: list[dict[str, str]] = [
        {"name": f"P{i}", **mobile(f"06610000{i:02d}", 500)} for i in range(n)
    ] + [{"name": f"G{i}", **gift()} for i in range(gifts)]

    async def attempt(desk: Desk, batch: str, faults: dict[str, Any]) -> None:
        world.faults.update({k: v for k, v in faults.items() if k != "kill_after"})
        killer.n = faults["kill_after"]
        sheet = desk.sheet("staff.csv", *rows)
        options = RunOptions(concurrency=2, rate=2000, breaker_threshold=100, retry_budget=500)
        with anyio.CancelScope() as scope:
            killer.scope = scope
            try:
                await desk.run(sheet, batch, options=options, allow_duplicates=True)
            except InvalidRowsError as e:
                event("refused: " + e.message.split(";")[0][:40])  # an edit or a repeat
            except BulkTopupError:
                event("stopped")  # the breaker, a refused start: nothing promised but "once"
        if scope.cancelled_caught:
            event("killed mid-run")
        killer.scope = None
        world.faults.update({"error_rate": 0.0, "drop_rate": 0.0})
        clock.advance(30)

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            desk = Desk(app, clock, Path(tmp), killer)
            batch = "payroll"
            await attempt(desk, batch, first)
            for (what, arg, value), faults in steps:
                if what == "edit" and arg < len(rows) and "phone" in rows[arg]:
                    rows[arg] = {**rows[arg], "amount": str(value)}
                elif what == "delete" and arg < len(rows):
                    del rows[arg]
                elif what == "refs":
                    for r in rows:
                        r["ref"] = f"ACC-{r['name']}"
                elif what == "rename":
                    batch = str(arg)
                await attempt(desk, batch, faults)
            # Settle everything: every batch resumed (and reconciled) to the end.
            killer.n = 0
            for key, _, _, _ in list_batches(desk.state):
                with contextlib.suppress(BulkTopupError):
                    await desk.resume(key)
            check(desk)
            event(f"orders: {len(world.orders)}; batches: {len(list_batches(desk.state))}")

    anyio.run(scenario)


def check(desk: Desk) -> None:
    world = desk.app.world
    world.settle()
    phones = Counter(o.fields["MSSIDN"] for o in world.orders if o.kind == "mobile")
    assert phones and max(phones.values()) == 1, phones  # everybody once, nobody twice
    held: list[str] = []
    cards: Counter[str] = Counter()
    gift_rows = 0
    for key, _, _, _ in list_batches(desk.state):
        with desk.journal(key) as j:
            for row in j.rows():
                if row.order_id:
                    held.append(row.order_id)
                for card in row.cards:
                    cards[card["value"]] += 1
                gift_rows += row.kind == "giftcard" and row.order_id is not None
    # Every order the provider made is held by exactly one row: none lost, none shared.
    assert sorted(held) == sorted(o.id for o in world.orders)
    assert not cards or max(cards.values()) == 1
    persons = Counter(o.fields.get("quantity") for o in world.orders if o.kind == "gift")
    assert sum(persons.values()) == gift_rows
