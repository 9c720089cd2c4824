"""The one pace of every API call, measured in real time: never faster than the rate, no burst
at the start, none after an idle spell. (Only lower bounds are asserted: a slow machine can make
the waits longer, never shorter.)"""

from __future__ import annotations

import time

import anyio
import pytest

from bulk_topup.throttle import AdaptiveThrottle

pytestmark = pytest.mark.anyio


async def elapsed(throttle: AdaptiveThrottle, n: int) -> float:
    start = time.monotonic()
    for _ in range(n):
        await throttle.acquire()
    return time.monotonic() - start


@pytest.mark.parametrize("rate", [20.0, 50.0])
async def test_n_calls_take_at_least_n_minus_one_intervals(rate: float) -> None:
    throttle = AdaptiveThrottle(rate)
    assert await elapsed(throttle, 11) >= 10 / rate * 0.97  # no burst at the start


async def test_no_burst_after_an_idle_spell() -> None:
    throttle = AdaptiveThrottle(50.0)
    await elapsed(throttle, 3)
    await anyio.sleep(0.3)  # idle: a token bucket would have refilled and allowed a burst
    assert await elapsed(throttle, 6) >= 5 / 50.0 * 0.97


async def test_many_callers_share_one_pace() -> None:
    throttle = AdaptiveThrottle(40.0)
    start = time.monotonic()
    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(elapsed, throttle, 4)
    assert time.monotonic() - start >= 15 / 40.0 * 0.97


async def test_a_429_halves_the_pace_and_holds_every_caller() -> None:
    throttle = AdaptiveThrottle(40.0)
    await elapsed(throttle, 2)
    throttle.on_rate_limited(0.2)
    assert throttle.rate == 20.0
    assert await elapsed(throttle, 5) >= 0.2 + 4 / 20.0 * 0.97
