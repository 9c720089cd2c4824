"""The client against the emulator: typed results and the three failure classes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

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
    RefNotAccepted,
    RequestNotSent,
    UnreadableAnswer,
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


# --- pagination wherever the API puts it ---------------------------------------------------------


class Rewrite(httpx.AsyncBaseTransport):
    """The emulator's answers, edited on their way back by `edit(path, body)`: shapes the emulator
    itself never sends (a provider's odd types, fields the docs name without examples)."""

    def __init__(self, app: Any, edit: Callable[[str, Any], Any]) -> None:
        self.inner = EmulatorTransport(app)
        self.edit = edit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = json.loads(await response.aread())
        return httpx.Response(response.status_code, json=self.edit(request.url.path, body))


def client_on(transport: httpx.AsyncBaseTransport) -> OneClickClient:
    return OneClickClient(BASE, SANDBOX_KEY, transport=transport, retry=RetryPolicy(sleep=no_wait))


async def fill(client: OneClickClient, clock, n: int) -> None:
    for i in range(n):
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=100, ref=f"p{i}"
        )
        clock.advance(0.5)


@pytest.mark.parametrize("where", ["data", "meta", "both"])
async def test_a_sweep_reads_every_page_wherever_pagination_is(client, world, clock, where):
    world.variants.update({"pagination": where})
    await fill(client, clock, 250)
    first = await client.mobile_list(page=1, page_size=100)
    assert (first.page, first.total_pages, first.total_results) == (1, 3, 250)
    since, until = clock.wall(-1), clock.wall()
    refs = [s.ref async for s in client.listed("mobile", since, until)]
    assert sorted(refs) == sorted(f"p{i}" for i in range(250))
    assert client.calls == 250 + 1 + 3


async def test_pagination_under_meta_is_read(app, world, clock) -> None:
    world.variants.update({"pagination": "meta"})
    async with client_on(EmulatorTransport(app)) as c:
        await fill(c, clock, 3)
        page = await c.mobile_list(page=2, page_size=2)
    assert (page.page, page.total_pages, page.total_results) == (2, 2, 3)
    assert [s.ref for s in page.items] == ["p0"]


async def test_without_pagination_a_full_page_means_read_on(app, clock) -> None:
    def strip(path: str, body: Any) -> Any:
        if isinstance(body.get("data"), dict):
            body["data"].pop("pagination", None)
        return body

    async with client_on(Rewrite(app, strip)) as c:
        await fill(c, clock, 5)
        full = await c.mobile_list(page=1, page_size=2)
        assert full.total_pages == 2  # maybe more: read on
        refs = [s.ref async for s in c.listed("mobile", clock.wall(-10), clock.wall(), 2)]
    assert sorted(refs) == [f"p{i}" for i in range(5)]


# --- unreadable answers: one sentence naming the endpoint and the field --------------------------


@pytest.mark.parametrize(
    ("kind", "field", "problem"),
    [
        ("null", '"data"', "is empty (null)"),
        ("html", "the answer", "is a web page"),
        ("empty", "the answer", "is empty"),
        ("types", '"data._id"', "is true/false, not text"),
    ],
)
async def test_check_ref_unreadable_is_one_sentence(client, world, kind, field, problem) -> None:
    await client.send_mobile(plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a")
    calls = client.calls
    world.faults.update({"garbage_next": 1, "garbage": kind, "garbage_on": "GET"})
    with pytest.raises(UnreadableAnswer) as e:
        await client.mobile_check_ref("a")
    message = str(e.value)
    assert message.startswith(
        "the OneClickDz API answered GET /v3/mobile/check-ref/a with something bulk-topup "
        f"cannot read: {field} {problem}"
    )
    assert "\n" not in message and isinstance(e.value, OutcomeUnknown)
    assert client.calls == calls + 1  # an answer read whole reads the same again: no retries
    assert (await client.mobile_check_ref("a")).ref == "a"  # the next answer is fine


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.balance(), "data.balance"),
        (lambda c: c.validate_key(), "data.apiKey"),
        (lambda c: c.mobile_plans(), "data.dynamicPlans"),
        (lambda c: c.mobile_list(), "data.items"),
        (lambda c: c.internet_list(), "data.topups"),
        (lambda c: c.internet_products("ADSL"), "data.products"),
        (lambda c: c.gift_catalog(), "data.categories"),
        (lambda c: c.gift_check_product("507f1f77bcf86cd799439011"), "data.types"),
        (lambda c: c.gift_list(), "data.items"),
        (lambda c: c.transactions(), "data.items"),
    ],
)
async def test_every_get_names_the_unreadable_field(client, world, call, field) -> None:
    world.faults.update({"garbage_next": 1, "garbage": "types"})
    with pytest.raises(UnreadableAnswer) as e:
        await call(client)
    assert e.value.field == field
    assert f'"{field}" is ' in str(e.value)


async def test_an_unreadable_list_item_is_named_by_its_place(app, clock) -> None:
    def spoil(path: str, body: Any) -> Any:
        if path == "/v3/gift-cards/list":
            body["data"]["items"][1]["status"] = 3
            body["data"]["items"][0]["cards"][0]["value"] = {"code": "SECRET-CODE"}
        return body

    async with client_on(Rewrite(app, spoil)) as c:
        for _ in range(2):
            await c.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
        clock.advance(10)
        with pytest.raises(UnreadableAnswer) as e:
            await c.gift_list()
    assert e.value.field == "data.items[0].cards[0].value"
    assert "is an object, not text" in str(e.value)
    assert "SECRET" not in str(e.value)  # a value may be a card code: never echoed


async def test_a_post_answered_unreadably_may_have_made_the_order(client, world) -> None:
    world.faults.update({"garbage_next": 1, "garbage": "null", "garbage_on": "POST"})
    with pytest.raises(UnreadableAnswer) as e:
        await client.send_mobile(
            plan_code="PREPAID_DJEZZY", msisdn="0778037340", amount=500, ref="a"
        )
    assert isinstance(e.value, OutcomeUnknown) and e.value.field == "data"
    assert client.calls == 1 and [o.ref for o in world.orders] == ["a"]


async def test_a_server_error_page_is_still_retried(client, world) -> None:
    world.faults.update({"fail_next": 2})  # 500 with an envelope or a plain-text 503
    assert await client.balance() == world.balance
    assert client.calls == 3


async def test_an_html_403_is_unreadable_not_retried(app) -> None:
    async def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, html="<html><body>Forbidden</body></html>")

    async with client_on(httpx.MockTransport(proxy)) as c:
        with pytest.raises(UnreadableAnswer) as e:
            await c.validate_key()
    assert "is a web page, not the API's JSON answer (HTTP 403)" in str(e.value)
    assert c.calls == 1


# --- tolerance: documented fields read however they come -----------------------------------------


async def test_fields_are_read_tolerantly(app, clock) -> None:
    def odd(path: str, body: Any) -> Any:
        d = body.get("data")
        if path.startswith("/v3/internet/check-ref/"):
            d.update(
                {
                    "topup_amount": "1000",  # numeric text
                    "card_code": 123456789012,  # a code as a number: kept as its digits
                    "refund_message": ["not", "text"],  # optional and odd: dropped
                    "follow_orderid": "6901616fe9e88196b4eb64c1",
                    "retry_orderid": "6901616fe9e88196b4eb64c2",
                }
            )
        return body

    async with client_on(Rewrite(app, odd)) as c:
        await c.send_internet(kind="ADSL", number="036362608", value=1000, ref="i")
        clock.advance(60)
        status = await c.internet_check_ref("i")
    assert status.amount == 1000.0 and status.card_code == "123456789012"
    assert status.refund_message is None
    assert (status.follow_orderid, status.retry_orderid) == (
        "6901616fe9e88196b4eb64c1",
        "6901616fe9e88196b4eb64c2",
    )
    assert status.date_traitement and status.date_traitement.endswith("Z")


async def test_date_traitement_is_kept(client, clock) -> None:
    await client.send_internet(kind="ADSL", number="036362608", value=1000, ref="i")
    assert (await client.internet_check_ref("i")).date_traitement is None  # HANDLING
    clock.advance(60)
    done = await client.internet_check_ref("i")
    assert done.status == "FULFILLED" and done.card_code
    assert done.date_traitement == "2025-10-29T00:00:10.000Z"
    listed = (await client.internet_list()).items[0]
    assert listed.date_traitement == done.date_traitement


async def test_the_quickstarts_abridged_validate_answer(app) -> None:
    def abridge(path: str, body: Any) -> Any:
        key = body["data"]["apiKey"]
        body["data"]["apiKey"] = {k: key[k] for k in ("type", "scope", "isEnabled")}
        return body

    async with client_on(Rewrite(app, abridge)) as c:
        info = await c.validate_key()
    assert (info.username, info.type, info.scope, info.enabled) == (
        "+213665983439",
        "SANDBOX",
        "READ-WRITE",
        True,
    )


@pytest.mark.parametrize("where", ["data", "meta", "both", "array"])
async def test_internet_products_wherever_the_type_is(client, world, where) -> None:
    world.variants.update({"products_type": where})
    products = await client.internet_products("ADSL")
    assert [(p.type, p.value, p.cost, p.available) for p in products][-1] == (
        "ADSL",
        5000,
        4900.0,
        False,
    )


# --- gift refs ------------------------------------------------------------------------------------

PSN = "507f1f77bcf86cd799439011"


async def test_gift_ref_ignored_gives_no_order_ref(client, world) -> None:
    sent = await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1, ref="g1")
    assert sent.ref is None  # the API did not honour it
    assert (await client.gift_check_order(sent.order_id)).ref is None


async def test_gift_ref_honoured(client, world, clock) -> None:
    world.faults.update({"gift_refs": "honour"})
    sent = await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=2, ref="g1")
    assert sent.ref == "g1"
    with pytest.raises(DuplicatedRef):
        await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=2, ref="g1")
    clock.advance(10)
    order = await client.gift_check_order(sent.order_id)
    assert order.ref == "g1" and order.status == "FULFILLED" and len(order.cards) == 2
    assert [o.ref for o in (await client.gift_list()).items] == ["g1"]


async def test_gift_ref_refused_says_no_order_was_made(client, world) -> None:
    world.faults.update({"gift_refs": "refuse"})
    with pytest.raises(RefNotAccepted) as e:
        await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1, ref="g1")
    assert isinstance(e.value, ApiRefused) and e.value.http_status == 400
    assert "no order was made" in str(e.value)
    assert world.orders == []
    sent = await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    assert sent.order_id and len(world.orders) == 1


async def test_other_gift_refusals_are_not_about_the_ref(client, world) -> None:
    world.faults.update({"gift_refs": "honour"})
    with pytest.raises(ApiRefused) as e:
        await client.place_gift_order(product_id=PSN, type_id="type_003", quantity=1, ref="g1")
    assert not isinstance(e.value, RefNotAccepted) and e.value.details["field"] == "quantity"


async def test_gift_order_times_to_the_millisecond(client, clock) -> None:
    clock.advance(7.0019)
    sent = await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    order = await client.gift_check_order(sent.order_id)
    assert order.created_at == clock.wall(7.001)
    listed = (await client.gift_list(since=clock.wall(7.001), until=clock.wall(7.001))).items
    assert [o.id for o in listed] == [sent.order_id]


@pytest.mark.parametrize(
    ("pagination", "outcome"),
    [
        ("three", 'data.pagination" is not an object'),
        ({"page": 1, "totalPages": "many"}, 'data.pagination.totalPages" is text, not a number'),
        (None, None),  # null: as if absent, read on while pages are full
    ],
)
async def test_unreadable_pagination_is_named(app, clock, pagination, outcome) -> None:
    def spoil(path: str, body: Any) -> Any:
        if path == "/v3/mobile/list":
            body["data"]["pagination"] = pagination
        return body

    async with client_on(Rewrite(app, spoil)) as c:
        await fill(c, clock, 2)
        if outcome is None:
            page = await c.mobile_list(page=1, page_size=2)
            assert page.total_pages == 2
            return
        with pytest.raises(UnreadableAnswer) as e:
            await c.mobile_list(page=1, page_size=2)
    assert outcome in str(e.value)
