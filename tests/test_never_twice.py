"""Property: whatever faults and kills happen, no ref is ever paid twice, and a clean resume ends
with exactly one order per valid row."""

from __future__ import annotations

import tempfile
from pathlib import Path

import anyio
import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bulk_topup.clock import VirtualClock
from bulk_topup.emulator import EmulatorTransport, World, create_app
from bulk_topup.journal import FINAL, PARKED, RowState
from bulk_topup.runner import RunOptions

from .runkit import Kit, gift, internet, mobile


class KillAfter(httpx.AsyncBaseTransport):
    """Passes requests to the emulator; after `n` of them, kills the run mid-request."""

    def __init__(self, inner: httpx.AsyncBaseTransport, n: int, scope: anyio.CancelScope) -> None:
        self.inner, self.n, self.scope = inner, n, scope

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.n -= 1
        if self.n == 0:
            self.scope.cancel()  # the process dies here, the request possibly half-done
            await anyio.sleep(0)
        return await self.inner.handle_async_request(request)


faults = st.fixed_dictionaries(
    {
        "error_rate": st.sampled_from([0.0, 0.1, 0.3]),
        "drop_rate": st.sampled_from([0.0, 0.2, 0.5]),
        "seed": st.integers(0, 10_000),
    }
)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rounds=st.lists(st.tuples(faults, st.integers(1, 60)), min_size=1, max_size=4),
    rows=st.integers(1, 8),
)
def test_faults_kills_and_resumes_never_pay_twice(rounds, rows: int) -> None:
    clock = VirtualClock()
    world = World(clock=clock)
    world.rate_clock = clock.now
    app = create_app(world)
    sheet = [mobile(f"06612{i:05d}", 100 + i) for i in range(rows)] + [internet("036362608")]

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            kit = Kit(app, clock, Path(tmp))
            await kit.load(*sheet)
            world.faults.update({"ref_dedup": False})
            for fault, kill_after in rounds:
                world.faults.update(fault)
                world.random.seed(fault["seed"])
                with anyio.CancelScope() as scope:
                    transport = KillAfter(EmulatorTransport(app), kill_after, scope)
                    await kit.run(
                        RunOptions(concurrency=3, breaker_threshold=4),
                        preflight=False,
                        transport=transport,
                    )
                assert world.stats()["max_orders_per_ref"] <= 1
            world.faults.update({"error_rate": 0.0, "drop_rate": 0.0})
            await kit.run(RunOptions(concurrency=3))
            stats = kit.stats()
            assert stats["max_orders_per_ref"] == 1
            assert len(stats["orders_per_ref"]) == len(sheet)
            assert all(RowState(s) in FINAL | PARKED for s in kit.states())

    anyio.run(scenario)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(fault=faults, kill_after=st.integers(1, 40))
def test_gift_cards_are_never_ordered_twice(fault, kill_after: int) -> None:
    """Gift orders have no ref: an unknown outcome may stay UNCERTAIN, but is never resent."""
    clock = VirtualClock()
    world = World(clock=clock)
    world.rate_clock = clock.now
    app = create_app(world)
    sheet = [gift(qty=1), gift(qty=2), gift("nf_1m", 1, "507f1f77bcf86cd799439014")]

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            kit = Kit(app, clock, Path(tmp))
            await kit.load(*sheet)
            world.faults.update(fault)
            with anyio.CancelScope() as scope:
                transport = KillAfter(EmulatorTransport(app), kill_after, scope)
                await kit.run(RunOptions(concurrency=2), preflight=False, transport=transport)
            world.faults.update({"error_rate": 0.0, "drop_rate": 0.0})
            await kit.run()
            assert len(world.orders) <= len(sheet)
            with kit.journal() as j:
                rows = j.rows()
            ids = [r.order_id for r in rows if r.order_id]
            assert len(ids) == len(set(ids)), "one provider order adopted by two rows"
            settled = [r for r in rows if r.state != RowState.UNCERTAIN]
            assert len(settled) == len(ids)
            assert len(world.orders) >= len(ids)

    anyio.run(scenario)
