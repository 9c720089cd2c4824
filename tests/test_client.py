"""The client against the emulator: typed results and the three failure classes."""

from __future__ import annotations

import httpx
import pytest

from bulk_topup.client import OneClickClient, RetryPolicy
from bulk_topup.emulator import SANDBOX_KEY, EmulatorTransport
from bulk_topup.errors import (
    ApiRefused,
    AuthError,
    DuplicatedRef,
    InsufficientBalance,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)

from .conftest import BASE, free_port, no_wait

pytestmark = pytest.mark.anyio


async def test_typed_catalogs(client) -> None:
    plans = {p.code: p for p in await client.mobile_plans()}
    assert plans["PREPAID_DJEZZY"].cost == 0.9925 and not plans["PREPAID_DJEZZY"].is_fixed
    assert plans["PIXX_500"].is_fixed and plans["PIXX_500"].amount == 500
    assert plans["GROS_MOBILIS"].cost is None
    products = await client.internet_products("ADSL")
    assert [p.value for p in products if not p.available] == [5000]
    catalog = await client.gift_catalog()
    assert any(
        p.title == "Netflix Gift Card" and p.category == "Streaming Services" for p in catalog
    )
    types = await client.gift_check_product("507f1f77bcf86cd799439011")
    assert types[0].id == "type_001" and types[0].price == 490


async def test_send_and_check(client, clock) -> None:
    sent = await client.send_mobile(
        plan_code="PREPAID_DJEZZY", msisdn="0600000002", amount=500, ref="r+1/ä"
    )
    assert sent.ref == "r+1/ä"
    clock.advance(30)
    status = await client.mobile_check_ref("r+1/ä")
    assert status.status == "REFUNDED" and status.id == sent.order_id
    assert str(status.suggested_offers[0]) == "FACTURE_DJEZZY 500 DA"
    page = await client.mobile_list(page_size=100, since=clock.wall(-60), until=clock.wall())
    assert [s.ref for s in page.items] == ["r+1/ä"]


async def test_key_info(client) -> None:
    info = await client.validate_key()
    assert (info.type, info.scope) == ("SANDBOX", "READ-WRITE")


async def test_definitive_refusals(client) -> None:
    with pytest.raises(NotFound):
        await client.mobile_check_ref("nope")
    await client.send_mobile(plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a")
    with pytest.raises(DuplicatedRef) as e:
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
        )
    assert e.value.http_status == 403
    with pytest.raises(ApiRefused) as e:
        await client.send_mobile(plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=5, ref="b")
    assert e.value.code == "ERR_VALIDATION" and e.value.details["field"] == "amount"


async def test_insufficient_balance(client, world) -> None:
    world.balance = 10
    with pytest.raises(InsufficientBalance) as e:
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
        )
    assert e.value.details == {"required": 496.25, "available": 10}


async def test_wrong_key_is_auth_error_and_key_never_shown(app) -> None:
    secret = "sk-live-123456789"
    async with OneClickClient(
        BASE, secret, transport=EmulatorTransport(app), retry=RetryPolicy(sleep=no_wait)
    ) as c:
        assert secret not in repr(c)
        with pytest.raises(AuthError) as e:
            await c.balance()
    assert e.value.code == "INVALID_ACCESS_TOKEN"
    assert secret not in str(e.value) and secret not in repr(e.value)


async def test_get_retries_5xx_then_succeeds(client, world) -> None:
    world.faults.update({"fail_next": 3})
    assert await client.balance() == world.balance
    assert client.calls == 4


async def test_get_gives_up_after_attempts(client, world) -> None:
    world.faults.update({"fail_next": 100})
    with pytest.raises((ApiRefused, OutcomeUnknown)):
        await client.balance()
    assert client.calls == 6


async def test_post_5xx_is_ambiguous_and_not_retried(client, world) -> None:
    world.faults.update({"fail_next": 1})
    with pytest.raises(OutcomeUnknown):
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
        )
    assert client.calls == 1


async def test_dropped_answer_after_commit_is_ambiguous_never_not_sent(client, world) -> None:
    world.faults.update({"drop_next": 1})
    with pytest.raises(OutcomeUnknown) as e:
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
        )
    assert not isinstance(e.value, RequestNotSent)
    assert client.calls == 1 and len(world.orders) == 1


async def test_read_timeout_on_post_is_ambiguous(app, world) -> None:
    world.faults.update({"latency": 0.3})
    async with OneClickClient(
        BASE,
        SANDBOX_KEY,
        transport=EmulatorTransport(app),
        timeout=httpx.Timeout(5, read=0.05),
        retry=RetryPolicy(sleep=no_wait),
    ) as c:
        with pytest.raises(OutcomeUnknown):
            await c.send_mobile(
                plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
            )
    assert len(world.orders) == 1


async def test_connection_refused_is_not_sent_and_retried() -> None:
    waits: list[float] = []

    async def record(s: float) -> None:
        waits.append(s)

    async with OneClickClient(
        f"http://127.0.0.1:{free_port()}", SANDBOX_KEY, retry=RetryPolicy(attempts=3, sleep=record)
    ) as c:
        with pytest.raises(RequestNotSent):
            await c.send_mobile(
                plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
            )
    assert c.calls == 3 and len(waits) == 2 and all(w <= 20 for w in waits)


class RecordingThrottle:
    def __init__(self) -> None:
        self.acquired = 0
        self.penalties: list[float | None] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def on_rate_limited(self, retry_after: float | None) -> None:
        self.penalties.append(retry_after)


async def test_429_honours_retry_after_and_tells_the_throttle(app, world) -> None:
    world.rate_limit = 1
    world.reset()
    waits: list[float] = []

    async def record(s: float) -> None:
        waits.append(s)

    throttle = RecordingThrottle()
    async with OneClickClient(
        BASE,
        SANDBOX_KEY,
        transport=EmulatorTransport(app),
        retry=RetryPolicy(attempts=2, sleep=record),
        throttle=throttle,
    ) as c:
        await c.balance()
        with pytest.raises(RateLimited) as e:
            await c.balance()
    assert e.value.retry_after == 1.0
    assert waits and waits[0] >= 1.0
    assert throttle.acquired == 3 and throttle.penalties == [1.0, 1.0]


def test_socket_drop_is_ambiguous(served) -> None:
    url, world = served
    world.faults.update({"drop_next": 1})

    async def go() -> None:
        async with OneClickClient(url, SANDBOX_KEY, retry=RetryPolicy(sleep=no_wait)) as c:
            with pytest.raises(OutcomeUnknown):
                await c.send_mobile(
                    plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
                )
            assert (await c.mobile_check_ref("a")).status == "PENDING"

    import anyio

    anyio.run(go)
    assert len(world.orders) == 1
