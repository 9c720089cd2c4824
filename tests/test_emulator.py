"""Contract tests: the emulator answers as oneclickdz-v3.md documents the real API."""

from __future__ import annotations

import re

import httpx
import pytest

from bulk_topup.clock import VirtualClock
from bulk_topup.emulator import SANDBOX_KEY, ApiKey, EmulatorTransport, World, create_app

from .conftest import BASE

pytestmark = pytest.mark.anyio

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
HEX24 = re.compile(r"^[0-9a-f]{24}$")


def data(response: httpx.Response) -> dict:
    body = response.json()
    assert body["success"] is True, body
    assert ISO.match(body["meta"]["timestamp"])
    assert body["requestId"].startswith("req_")
    return body["data"]


def error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["requestId"].startswith("req_")
    return body["error"]


async def send(
    http: httpx.AsyncClient,
    msisdn: str = "0778037340",
    ref: str = "order-001",
    plan: str = "PREPAID_DJEZZY",
    amount: int | None = 500,
) -> httpx.Response:
    body = {"plan_code": plan, "MSSIDN": msisdn, "ref": ref}
    if amount is not None:
        body["amount"] = amount
    return await http.post("/v3/mobile/send", json=body)


# --- core and account ----------------------------------------------------------------------------


async def test_ping_needs_no_key(app) -> None:
    async with httpx.AsyncClient(transport=EmulatorTransport(app), base_url=BASE) as anon:
        d = data(await anon.get("/v3/ping"))
    assert d == {
        "api": "ok",
        "operators": {"mobilis": "up", "ooredoo": "up", "djezzy": "up", "mobilisFixedPlans": "up"},
    }


async def test_validate_shows_key_type_and_scope(http) -> None:
    d = data(await http.get("/v3/validate"))
    assert d["username"] == "+213665983439"
    assert d["apiKey"] == {
        "key": SANDBOX_KEY,
        "isEnabled": True,
        "type": "SANDBOX",
        "allowedips": [],
        "scope": "READ-WRITE",
    }


async def test_missing_and_wrong_keys_then_ip_blocked(app) -> None:
    async with httpx.AsyncClient(transport=EmulatorTransport(app), base_url=BASE) as anon:
        e = error(await anon.get("/v3/account/balance"), 401, "MISSING_ACCESS_TOKEN")
        assert e["message"] == "Access token is required"
        bad = {"X-Access-Token": "not-a-key"}
        left = []
        for _ in range(4):
            e = error(await anon.get("/v3/validate", headers=bad), 401, "INVALID_ACCESS_TOKEN")
            assert e["message"] == "The provided access token is invalid"
            left.append(e["details"]["attemptsLeft"])
        assert left == [4, 3, 2, 1]
        error(await anon.get("/v3/validate", headers=bad), 403, "IP_BLOCKED")
        # Blocked means blocked, even with the right key, until 15 minutes pass.
        ok_key = {"X-Access-Token": SANDBOX_KEY}
        error(await anon.get("/v3/validate", headers=ok_key), 403, "IP_BLOCKED")
        app.world.clock.advance(15 * 60 + 1)
        data(await anon.get("/v3/validate", headers=ok_key))


async def test_read_only_key_cannot_send(clock) -> None:
    world = World(clock=clock, keys={"ro": ApiKey("ro", "PRODUCTION", "READ-ONLY")})
    async with httpx.AsyncClient(
        transport=EmulatorTransport(create_app(world)),
        base_url=BASE,
        headers={"X-Access-Token": "ro"},
    ) as ro:
        assert data(await ro.get("/v3/validate"))["apiKey"]["type"] == "PRODUCTION"
        error(await send(ro), 403, "ACCESS_DENIED")
        data(await ro.get("/v3/account/balance"))
    assert world.orders == []


async def test_balance_debited_at_send_and_credited_on_refund(http, world) -> None:
    start = data(await http.get("/v3/account/balance"))["balance"]
    data(await send(http, "0600000001", "r1", amount=1000))
    assert data(await http.get("/v3/account/balance"))["balance"] == start - 992.5
    world.clock.advance(21)
    assert data(await http.get("/v3/account/balance"))["balance"] == start
    tx = data(await http.get("/v3/account/transactions"))
    assert [t["type"] for t in tx["items"]] == ["REFUND-FLEXY", "FLEXY"]
    assert set(tx["items"][0]) == {
        "_id",
        "type",
        "operation",
        "amount",
        "oldBalance",
        "newBalance",
        "objid",
        "note",
        "time",
    }


async def test_insufficient_balance(clock) -> None:
    world = World(clock=clock, balance=300)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(create_app(world)),
        base_url=BASE,
        headers={"X-Access-Token": SANDBOX_KEY},
    ) as h:
        e = error(await send(h, amount=500), 403, "INSUFFICIENT_BALANCE")
    assert e["message"] == "Your balance is insufficient for this operation"
    assert e["details"] == {"required": 496.25, "available": 300}


# --- mobile --------------------------------------------------------------------------------------


async def test_plans_have_documented_shapes(http) -> None:
    d = data(await http.get("/v3/mobile/plans"))
    dyn = {p["code"]: p for p in d["dynamicPlans"]}
    fixed = {p["code"]: p for p in d["fixedPlans"]}
    assert dyn["PREPAID_DJEZZY"] == {
        "code": "PREPAID_DJEZZY",
        "name": "📱 PREPAID | عادي",
        "operator": "Djezzy",
        "cost": 0.9925,
        "isEnabled": True,
        "min_amount": 100,
        "max_amount": 10000,
    }
    assert "cost" not in dyn["GROS_MOBILIS"]
    assert fixed["PIXX_500"]["amount"] == 500
    assert {"GETMENU_Mobilis", "GETMENU_Ooredoo", "GETMENU_Djezzy"} <= set(dyn)
    assert any(not p["isEnabled"] for p in dyn.values())


async def test_documented_timeline_pending_handling_fulfilled(http, clock: VirtualClock) -> None:
    d = data(await send(http))
    assert HEX24.match(d["topupId"]) and d["topupRef"] == "order-001"
    seen = []
    for t in (0, 4.9, 5, 19.9, 20, 3600):
        clock.advance(t - clock.now())
        seen.append(data(await http.get("/v3/mobile/check-ref/order-001"))["status"])
    assert seen == ["PENDING", "PENDING", "HANDLING", "HANDLING", "FULFILLED", "FULFILLED"]
    by_id = data(await http.get(f"/v3/mobile/check-id/{d['topupId']}"))
    assert by_id == {
        "ref": "order-001",
        "status": "FULFILLED",
        "plan_code": "PREPAID_DJEZZY",
        "MSSIDN": "0778037340",
        "topup_amount": 500,
        "balance_amount": 496.25,
        "created_at": "2025-10-29T00:00:00.000Z",
        "_id": d["topupId"],
    }


@pytest.mark.parametrize(
    ("msisdn", "status", "offers"),
    [
        ("0600000001", "REFUNDED", False),
        ("0600000002", "REFUNDED", True),
        ("0600000003", "UNKNOWN_ERROR", False),
        ("0600000004", "UNKNOWN_ERROR", False),
        ("0661234567", "FULFILLED", False),
    ],
)
async def test_sandbox_numbers(http, clock, msisdn, status, offers) -> None:
    data(await send(http, msisdn, "t"))
    clock.advance(25)
    d = data(await http.get("/v3/mobile/check-ref/t"))
    assert d["status"] == status
    assert ("refund_message" in d) == (status != "FULFILLED")
    assert ("suggested_offers" in d) == offers
    if offers:
        assert d["suggested_offers"] == [
            {"typename": "📋 FACTURE | فاتورة", "plan_code": "FACTURE_DJEZZY", "amount": 500}
        ]
    if status == "REFUNDED":
        assert d["balance_amount"] == 0


async def test_unknown_error_resolves_later_and_by_admin(http, clock) -> None:
    data(await send(http, "0600000003", "u1"))
    data(await send(http, "0600000004", "u2"))
    data(await send(http, "0600000003", "u3"))
    clock.advance(60)
    assert (await http.post("/__emulator/resolve", json={"ref": "u3", "status": "REFUNDED"})).json()
    assert data(await http.get("/v3/mobile/check-ref/u3"))["status"] == "REFUNDED"
    clock.advance(3 * 3600)
    assert data(await http.get("/v3/mobile/check-ref/u1"))["status"] == "FULFILLED"
    assert data(await http.get("/v3/mobile/check-ref/u2"))["status"] == "REFUNDED"


async def test_getmenu_answers_with_suggested_offers(http, clock) -> None:
    data(await send(http, "0661234567", "m", plan="GETMENU_Mobilis", amount=50))
    clock.advance(30)
    d = data(await http.get("/v3/mobile/check-ref/m"))
    assert d["status"] == "REFUNDED"
    assert [o["plan_code"] for o in d["suggested_offers"]] == ["PREPAID_MOBILIS", "MIX500_MOBILIS"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "778037340", "amount": 500}, "MSSIDN"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": 778037340, "amount": 500}, "MSSIDN"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "+213778037340", "amount": 500}, "MSSIDN"),
        ({"MSSIDN": "0778037340", "amount": 500}, "plan_code"),
        ({"plan_code": "NOPE", "MSSIDN": "0778037340", "amount": 500}, "plan_code"),
        ({"plan_code": "FACTURE_OOREDOO", "MSSIDN": "0558037340", "amount": 500}, "plan_code"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340"}, "amount"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340", "amount": 50}, "amount"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340", "amount": 10001}, "amount"),
        ({"plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340", "amount": 99.5}, "amount"),
    ],
)
async def test_mobile_validation(http, world, body, field) -> None:
    e = error(await http.post("/v3/mobile/send", json=body), 400, "ERR_VALIDATION")
    assert e["details"]["field"] == field
    assert "value" in e["details"]
    assert world.orders == []


async def test_documented_mssidn_message(http) -> None:
    e = error(await send(http, "778037340"), 400, "ERR_VALIDATION")
    assert e["message"] == 'body/MSSIDN must match pattern "^0[567][0-9]{8}$"'
    assert e["details"] == {"field": "MSSIDN", "value": "778037340"}


async def test_fixed_plan_ignores_amount(http, world) -> None:
    data(await send(http, "0661234567", "f", plan="PIXX_500", amount=None))
    assert world.orders[0].fields["topup_amount"] == 500


async def test_duplicated_ref_and_not_found(http, world) -> None:
    data(await send(http))
    e = error(await send(http, "0661234567"), 403, "DUPLICATED_REF")
    assert e["message"] == "This reference ID is already in use"
    e = error(
        await http.post(
            "/v3/internet/send",
            json={"type": "ADSL", "number": "036362608", "value": 1000, "ref": "order-001"},
        ),
        403,
        "DUPLICATED_REF",
    )
    e = error(await http.get("/v3/mobile/check-ref/order-12345"), 404, "NOT_FOUND")
    assert e["message"] == "Top-up with reference 'order-12345' not found"
    error(await http.get("/v3/mobile/check-id/ffffffffffffffffffffffff"), 404, "NOT_FOUND")
    assert len(world.orders) == 1


async def test_refs_with_url_characters(http) -> None:
    ref = "API-+213665983439-test-1761698196315-suggest"
    data(await send(http, ref=ref))
    path = "/v3/mobile/check-ref/" + httpx.URL(ref).raw_path.decode().replace("+", "%2B")
    assert data(await http.get(path))["ref"] == ref


# --- lists ---------------------------------------------------------------------------------------


async def test_pagination_and_time_window(http, clock) -> None:
    for i in range(25):
        data(await send(http, ref=f"p{i}"))
        clock.advance(60)
    d = data(await http.get("/v3/mobile/list", params={"page": 2, "pageSize": 10}))
    assert d["pagination"] == {"page": 2, "pageSize": 10, "totalPages": 3, "totalResults": 25}
    assert [i["ref"] for i in d["items"]] == [f"p{i}" for i in range(14, 4, -1)]
    window = {"from": "2025-10-29T00:05:00.000Z", "to": "2025-10-29T00:09:59.000Z"}
    d = data(await http.get("/v3/mobile/list", params=window))
    assert [i["ref"] for i in d["items"]] == ["p9", "p8", "p7", "p6", "p5"]
    error(await http.get("/v3/mobile/list", params={"from": window["from"]}), 400, "ERR_VALIDATION")
    error(await http.get("/v3/mobile/list", params={"pageSize": 101}), 400, "ERR_VALIDATION")
    error(await http.get("/v3/mobile/list", params={"page": 0}), 400, "ERR_VALIDATION")


# --- internet ------------------------------------------------------------------------------------


async def test_internet_products_and_check_number(http) -> None:
    d = data(await http.get("/v3/internet/products", params={"type": "ADSL"}))
    assert d["products"][0] == {"value": 500, "cost": 490, "available": True}
    assert any(not p["available"] for p in d["products"])
    adsl = data(
        await http.get("/v3/internet/check-number", params={"type": "ADSL", "number": "036362608"})
    )
    assert adsl == {"ncli": "03636*****", "offre": "FTTc-b_10M'", "type": "ADSL"}
    lte = data(
        await http.get("/v3/internet/check-number", params={"type": "4G", "number": "213661234567"})
    )
    assert lte["type"] == "4GLTE"
    e = error(
        await http.get("/v3/internet/check-number", params={"type": "ADSL", "number": "123456"}),
        400,
        "ERR_PHONE",
    )
    assert e["message"] == "Invalid phone number for ADSL service"
    assert e["details"] == {
        "number": "123456",
        "type": "ADSL",
        "reason": "Number does not match required format",
    }


@pytest.mark.parametrize(
    ("number", "kind", "end"),
    [
        ("036362608", "ADSL", "FULFILLED"),
        ("000000001", "ADSL", "REFUNDED"),
        ("000000002", "ADSL", "QUEUED"),
        ("213661234567", "4G", "FULFILLED"),
        ("213000000001", "4G", "REFUNDED"),
        ("213000000002", "4G", "QUEUED"),
    ],
)
async def test_internet_outcomes(http, clock, number, kind, end) -> None:
    d = data(
        await http.post(
            "/v3/internet/send", json={"type": kind, "number": number, "value": 1000, "ref": "i1"}
        )
    )
    assert data(await http.get("/v3/internet/check-ref/i1"))["status"] == "HANDLING"
    clock.advance(11)
    d = data(await http.get(f"/v3/internet/check-id/{d['topupId']}"))
    assert d["status"] == end
    assert ("card_code" in d) == (end == "FULFILLED")
    if end == "FULFILLED":
        assert re.match(r"^\d{12}$", d["card_code"]) and d["num_trans"].startswith("AT-")
    if end == "QUEUED":
        clock.advance(25 * 3600)
        assert data(await http.get("/v3/internet/check-ref/i1"))["status"] == "FULFILLED"
    listed = data(await http.get("/v3/internet/list"))
    assert [t["ref"] for t in listed["topups"]] == ["i1"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "3G", "number": "036362608", "value": 1000}, "type"),
        ({"type": "ADSL", "number": "36362608", "value": 1000}, "number"),
        ({"type": "4G", "number": "036362608", "value": 1000}, "number"),
        ({"type": "ADSL", "number": "036362608", "value": 750}, "value"),
        ({"type": "ADSL", "number": "036362608", "value": 5000}, "value"),
    ],
)
async def test_internet_validation(http, body, field) -> None:
    e = error(await http.post("/v3/internet/send", json=body), 400, "ERR_VALIDATION")
    assert e["details"]["field"] == field


# --- gift cards ----------------------------------------------------------------------------------


async def test_gift_catalog_and_product(http) -> None:
    d = data(await http.get("/v3/gift-cards/catalog"))
    assert len(d["categories"]) >= 2
    assert d["categories"][0]["products"][0] == {
        "id": "507f1f77bcf86cd799439011",
        "title": "PlayStation Network",
        "enabled": True,
        "region": "dz",
    }
    p = data(await http.get("/v3/gift-cards/checkProduct/507f1f77bcf86cd799439011"))
    assert p["types"][0] == {"id": "type_001", "name": "PSN 500 DA", "price": 490, "quantity": 150}
    assert {"TEST_REFUND", "TEST_PARTIAL"} <= {t["id"] for t in p["types"]}
    error(await http.get("/v3/gift-cards/checkProduct/nope"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("type_id", "qty", "status", "delivered"),
    [
        ("type_001", 2, "FULFILLED", 2),
        ("TEST_REFUND", 3, "REFUNDED", 0),
        ("TEST_PARTIAL", 4, "PARTIALLY_FILLED", 2),
    ],
)
async def test_gift_orders(http, clock, world, type_id, qty, status, delivered) -> None:
    before = world.balance
    body = {"productId": "507f1f77bcf86cd799439011", "typeId": type_id, "quantity": qty}
    oid = data(await http.post("/v3/gift-cards/placeOrder", json=body))["orderId"]
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid}"))
    assert d["status"] == "HANDLING" and "cards" not in d
    clock.advance(10)
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid}"))
    assert d["status"] == status
    assert d["fulfilled_quantity"] == delivered == len(d["cards"])
    assert d["fulfilled_amount"] == delivered * d["price_per_card"]
    assert all(c["value"].startswith("SANDBOX-CARD-") for c in d["cards"])
    assert world.balance == before - d["fulfilled_amount"]
    listed = data(await http.get("/v3/gift-cards/list"))
    assert listed["items"][0]["_id"] == oid


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"productId": "nope", "typeId": "type_001", "quantity": 1}, "productId"),
        (
            {"productId": "507f1f77bcf86cd799439015", "typeId": "xbox_10usd", "quantity": 1},
            "productId",
        ),
        ({"productId": "507f1f77bcf86cd799439011", "typeId": "type_999", "quantity": 1}, "typeId"),
        (
            {"productId": "507f1f77bcf86cd799439011", "typeId": "type_001", "quantity": 0},
            "quantity",
        ),
        (
            {"productId": "507f1f77bcf86cd799439011", "typeId": "type_003", "quantity": 1},
            "quantity",
        ),
        (
            {"productId": "507f1f77bcf86cd799439011", "typeId": "type_001", "quantity": 151},
            "quantity",
        ),
    ],
)
@pytest.mark.parametrize("placeholders", [True, False])
async def test_gift_validation_with_a_production_key(clock, body, field, placeholders) -> None:
    """Production checks every id; placeholders are a sandbox matter only."""
    world = World(clock=clock, keys={"p": ApiKey("p", "PRODUCTION")})
    world.variants.update({"sandbox_placeholder_ids": placeholders})
    async with httpx.AsyncClient(transport=EmulatorTransport(create_app(world)), base_url=BASE,
                                 headers={"X-Access-Token": "p"}) as h:  # fmt: skip
        e = error(await h.post("/v3/gift-cards/placeOrder", json=body), 400, "ERR_VALIDATION")
    assert e["details"]["field"] == field
    assert world.orders == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"productId": "nope", "typeId": "type_001", "quantity": 1}, "productId"),
        ({"productId": "507f1f77bcf86cd799439011", "typeId": "type_999", "quantity": 1}, "typeId"),
    ],
)
async def test_sandbox_unknown_ids_are_refused_when_placeholders_are_off(
    http, world, body, field
) -> None:
    world.variants.update({"sandbox_placeholder_ids": False})
    e = error(await http.post("/v3/gift-cards/placeOrder", json=body), 400, "ERR_VALIDATION")
    assert e["details"]["field"] == field
    assert world.orders == []


@pytest.mark.parametrize(
    "body",
    [
        {"productId": "507f1f77bcf86cd799439015", "typeId": "xbox_10usd", "quantity": 1},
        {"productId": "507f1f77bcf86cd799439011", "typeId": "type_001", "quantity": 0},
        {"productId": "507f1f77bcf86cd799439011", "typeId": "type_003", "quantity": 1},
        {"productId": "507f1f77bcf86cd799439011", "typeId": "type_001", "quantity": 151},
    ],
)
async def test_sandbox_still_refuses_known_ids_it_cannot_serve(http, world, body) -> None:
    """Placeholders stand for unknown ids only: a disabled product, a sold-out type or a
    quantity beyond stock is refused in the sandbox too."""
    error(await http.post("/v3/gift-cards/placeOrder", json=body), 400, "ERR_VALIDATION")
    assert world.orders == []


async def test_gift_stock_goes_down(http) -> None:
    body = {"productId": "507f1f77bcf86cd799439013", "typeId": "steam_20usd", "quantity": 10}
    data(await http.post("/v3/gift-cards/placeOrder", json=body))
    p = data(await http.get("/v3/gift-cards/checkProduct/507f1f77bcf86cd799439013"))
    assert p["types"][0]["quantity"] == 2
    body["quantity"] = 3
    error(await http.post("/v3/gift-cards/placeOrder", json=body), 400, "ERR_VALIDATION")


# --- beyond the sandbox: rate limit, faults, admin -----------------------------------------------


async def test_rate_limit_answers_429_with_retry_after(clock) -> None:
    world = World(clock=clock, rate_limit=3)
    async with httpx.AsyncClient(
        transport=EmulatorTransport(create_app(world)),
        base_url=BASE,
        headers={"X-Access-Token": SANDBOX_KEY},
    ) as h:
        codes = [(await h.get("/v3/account/balance")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200]
        r = await h.get("/v3/account/balance")
        error(r, 429, "RATE_LIMITED")
        assert int(r.headers["Retry-After"]) >= 1
    assert world.rate_limited >= 2


async def test_fail_next_answers_5xx_before_any_work(http, world) -> None:
    world.faults.update({"fail_next": 2})
    statuses = [(await send(http, ref=f"e{i}")).status_code for i in range(3)]
    assert statuses[:2] in ([500, 500], [500, 503], [503, 500], [503, 503])
    assert statuses[2] == 200
    assert len(world.orders) == 1


async def test_error_rate_is_a_share(http, world) -> None:
    world.faults.update({"error_rate": 0.5})
    statuses = [(await http.get("/v3/account/balance")).status_code for _ in range(200)]
    assert 60 < sum(s >= 500 for s in statuses) < 140


async def test_drop_commits_the_order_then_answers_nothing(http, world) -> None:
    world.faults.update({"drop_next": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        await send(http)
    assert len(world.orders) == 1
    assert data(await http.get("/v3/mobile/check-ref/order-001"))["status"] == "PENDING"


async def test_latency_beyond_read_timeout_is_a_timeout(http, world) -> None:
    world.faults.update({"latency": 0.3})
    with pytest.raises(httpx.ReadTimeout):
        await http.post(
            "/v3/mobile/send",
            timeout=httpx.Timeout(5, read=0.05),
            json={
                "plan_code": "PREPAID_DJEZZY",
                "MSSIDN": "0778037340",
                "amount": 500,
                "ref": "slow",
            },
        )
    assert [o.ref for o in world.orders] == ["slow"]


async def test_admin_stats_reset_and_faults(http, world) -> None:
    data(await send(http))
    await http.get("/v3/mobile/check-ref/order-001")
    stats = (await http.get("/__emulator/stats")).json()
    assert stats["calls"] == {"GET /v3/mobile/check-ref/{ref}": 1, "POST /v3/mobile/send": 1}
    assert stats["orders_per_ref"] == {"order-001": 1}
    assert stats["rate_limited"] == 0
    faults = (await http.post("/__emulator/faults", json={"error_rate": 0.1})).json()
    assert faults["error_rate"] == 0.1
    assert (await http.post("/__emulator/faults", json={"bogus": 1})).status_code == 400
    orders = (await http.get("/__emulator/orders", params={"ref": "order-001"})).json()["orders"]
    assert orders[0]["MSSIDN"] == "0778037340"
    await http.post("/__emulator/reset")
    assert (await http.get("/__emulator/stats")).json()["orders"] == 0


async def test_ref_dedup_can_be_switched_off_to_detect_double_sends(http, world) -> None:
    world.faults.update({"ref_dedup": False})
    data(await send(http))
    data(await send(http))
    assert (await http.get("/__emulator/stats")).json()["orders_per_ref"] == {"order-001": 2}


def test_over_a_real_socket(served) -> None:
    url, world = served
    with httpx.Client(base_url=url, headers={"X-Access-Token": SANDBOX_KEY}) as h:
        r = h.post(
            "/v3/mobile/send",
            json={
                "plan_code": "PREPAID_DJEZZY",
                "MSSIDN": "0778037340",
                "amount": 500,
                "ref": "order-001",
            },
        )
        assert data(r)["topupRef"] == "order-001"
        assert data(h.get("/v3/mobile/check-ref/order-001"))["status"] == "PENDING"
        h.post("/__emulator/clock", json={"advance": 21})
        assert data(h.get("/v3/mobile/check-ref/order-001"))["status"] == "FULFILLED"
        h.post("/__emulator/faults", json={"drop_next": 1})
        with pytest.raises(httpx.RemoteProtocolError):
            h.post(
                "/v3/mobile/send",
                json={
                    "plan_code": "PREPAID_DJEZZY",
                    "MSSIDN": "0778037340",
                    "amount": 500,
                    "ref": "order-002",
                },
            )
    assert len(world.orders) == 2


async def test_unknown_routes_answer_with_the_envelope(http) -> None:
    e = error(await http.get("/v3/nope"), 404, "NOT_FOUND")
    assert e["message"] == "Route GET /v3/nope not found"
    error(await http.delete("/v3/mobile/send"), 405, "METHOD_NOT_ALLOWED")


async def test_ip_whitelist(clock) -> None:
    world = World(clock=clock, keys={"w": ApiKey("w", allowed_ips=("10.0.0.7",))})
    async with httpx.AsyncClient(transport=EmulatorTransport(create_app(world)), base_url=BASE,
                                 headers={"X-Access-Token": "w"}) as h:  # fmt: skip
        e = error(await h.get("/v3/account/balance"), 403, "IP_NOT_ALLOWED")
    assert e["message"] == "Your IP address is not allowed to use this API key"


# --- sandbox gift orders, gift refs and the documentation's variants -----------------------------

PSN = "507f1f77bcf86cd799439011"


async def place(http: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await http.post("/v3/gift-cards/placeOrder", json={"productId": PSN, **body})


@pytest.mark.parametrize(("free", "charged"), [(True, 0), (False, 980)])
async def test_sandbox_gift_orders_are_free_unless_switched(http, world, clock, free, charged):
    world.variants.update({"sandbox_gift_free": free})
    before = world.balance
    oid = data(await place(http, typeId="type_001", quantity=2))["orderId"]
    clock.advance(10)
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid}"))
    assert (d["price_per_card"], d["fulfilled_amount"]) == (charged // 2, charged)
    assert world.balance == before - charged
    ledger = data(await http.get("/v3/account/transactions"))["items"]
    assert [t["type"] for t in ledger] == (["ORDER"] if charged else [])
    # Stock is used up either way: a sold-out type is refused in the sandbox too.
    types = data(await http.get(f"/v3/gift-cards/checkProduct/{PSN}"))["types"]
    assert types[0]["quantity"] == 148


async def test_a_production_key_pays_for_gift_orders(clock) -> None:
    world = World(clock=clock, keys={"p": ApiKey("p", "PRODUCTION")})
    async with httpx.AsyncClient(transport=EmulatorTransport(create_app(world)), base_url=BASE,
                                 headers={"X-Access-Token": "p"}) as h:  # fmt: skip
        data(await place(h, typeId="type_002", quantity=1))
        error(await place(h, typeId="TEST_REFUND", quantity=1), 400, "ERR_VALIDATION")
        error(await place(h, typeId="string", quantity=1), 400, "ERR_VALIDATION")
    assert world.balance == 500_000 - 980


async def test_sandbox_placeholder_ids_are_fulfilled(http, world, clock) -> None:
    oid = data(
        await http.post(
            "/v3/gift-cards/placeOrder",
            json={"productId": "string", "typeId": "string", "quantity": 2},
        )
    )
    clock.advance(10)
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid['orderId']}"))
    assert (d["status"], d["product"], d["type"], d["fulfilled_quantity"]) == (
        "FULFILLED", "string", "string", 2)  # fmt: skip


@pytest.mark.parametrize(
    ("default", "status", "quantity"), [(1, 200, 1), (3, 200, 3), (0, 400, None)]
)
async def test_gift_order_without_quantity(http, world, default, status, quantity) -> None:
    """The Arabic guide sends no quantity; the reference requires one."""
    world.variants.update({"gift_quantity_default": default})
    r = await place(http, typeId="type_001")
    assert r.status_code == status, r.text
    if quantity is None:
        assert r.json()["error"]["details"]["field"] == "quantity"
        assert world.orders == []
    else:
        assert world.orders[0].fields["quantity"] == quantity


@pytest.mark.parametrize(
    ("rounding", "qty", "status", "cards"),
    [
        ("down", 1, "REFUNDED", 0),
        ("down", 3, "PARTIALLY_FILLED", 1),
        ("down", 4, "PARTIALLY_FILLED", 2),
        ("up", 1, "FULFILLED", 1),
        ("up", 3, "PARTIALLY_FILLED", 2),
    ],
)
async def test_test_partial_rounding(http, world, clock, rounding, qty, status, cards) -> None:
    world.variants.update({"partial_rounding": rounding})
    oid = data(await place(http, typeId="TEST_PARTIAL", quantity=qty))["orderId"]
    clock.advance(10)
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid}"))
    assert (d["status"], d["fulfilled_quantity"], len(d["cards"])) == (status, cards, cards)


async def test_gift_refs_ignored_by_default(http, world, clock) -> None:
    first = data(await place(http, typeId="type_001", quantity=1, ref="g-1"))
    second = data(await place(http, typeId="type_001", quantity=1, ref="g-1"))
    assert set(first) == set(second) == {"orderId"}
    clock.advance(10)
    assert "ref" not in data(await http.get(f"/v3/gift-cards/checkOrder/{first['orderId']}"))
    assert all("ref" not in o for o in data(await http.get("/v3/gift-cards/list"))["items"])
    assert len(world.orders) == 2 and world.by_ref == {}


async def test_gift_refs_honoured(http, world, clock) -> None:
    world.faults.update({"gift_refs": "honour"})
    d = data(await place(http, typeId="type_001", quantity=1, ref="g-1"))
    assert d["orderRef"] == "g-1"
    before = world.balance
    e = error(await place(http, typeId="type_002", quantity=1, ref="g-1"), 403, "DUPLICATED_REF")
    assert e["message"] == "This reference ID is already in use"
    assert world.balance == before and len(world.orders) == 1
    # One namespace with top-up refs.
    error(await send(http, ref="g-1"), 403, "DUPLICATED_REF")
    auto = data(await place(http, typeId="type_001", quantity=1))
    assert auto["orderRef"].startswith("API-+213665983439-")
    clock.advance(10)
    assert data(await http.get(f"/v3/gift-cards/checkOrder/{d['orderId']}"))["ref"] == "g-1"
    listed = data(await http.get("/v3/gift-cards/list"))["items"]
    assert [o["ref"] for o in listed] == [auto["orderRef"], "g-1"]
    orders = (await http.get("/__emulator/orders", params={"ref": "g-1"})).json()["orders"]
    assert [o["kind"] for o in orders] == ["gift"]


async def test_gift_refs_honoured_without_dedup_make_a_second_order(http, world) -> None:
    world.faults.update({"gift_refs": "honour", "ref_dedup": False})
    data(await place(http, typeId="type_001", quantity=1, ref="g-1"))
    data(await place(http, typeId="type_001", quantity=1, ref="g-1"))
    assert world.stats()["orders_per_ref"] == {"g-1": 2}


async def test_gift_refs_refused(http, world) -> None:
    world.faults.update({"gift_refs": "refuse"})
    before = world.balance
    e = error(await place(http, typeId="type_001", quantity=1, ref="g-1"), 400, "ERR_VALIDATION")
    assert e["details"] == {"field": "ref", "value": "g-1"}
    assert world.orders == [] and world.balance == before
    data(await place(http, typeId="type_001", quantity=1))  # the same order without the ref


@pytest.mark.parametrize(
    ("where", "in_data", "in_meta"),
    [("data", True, False), ("meta", False, True), ("both", True, True)],
)
async def test_pagination_placement(http, world, where, in_data, in_meta) -> None:
    world.variants.update({"pagination": where})
    for path in ("/v3/mobile/list", "/v3/internet/list", "/v3/gift-cards/list",
                 "/v3/account/transactions"):  # fmt: skip
        body = (await http.get(path)).json()
        assert ("pagination" in body["data"]) == in_data, path
        assert ("pagination" in body["meta"]) == in_meta, path


@pytest.mark.parametrize(
    ("where", "data_type", "meta_type"),
    [("data", "ADSL", None), ("meta", None, "ADSL"), ("both", "ADSL", "ADSL")],
)
async def test_internet_products_type_placement(http, world, where, data_type, meta_type) -> None:
    world.variants.update({"products_type": where})
    body = (await http.get("/v3/internet/products", params={"type": "ADSL"})).json()
    assert body["data"].get("type") == data_type and body["meta"].get("type") == meta_type
    world.variants.update({"products_type": "array"})
    body = (await http.get("/v3/internet/products", params={"type": "ADSL"})).json()
    assert body["data"][0] == {"value": 500, "cost": 490, "available": True}


async def test_balance_currency_and_new_balance_are_variants(http, world) -> None:
    assert data(await http.get("/v3/account/balance")) == {"balance": 500_000}
    assert "newBalance" not in data(await send(http, ref="a"))
    world.variants.update({"balance_currency": True, "send_new_balance": True})
    assert data(await http.get("/v3/account/balance"))["currency"] == "DZD"
    assert data(await send(http, ref="b"))["newBalance"] == world.balance


async def test_undocumented_texts_can_be_set(http, world, clock) -> None:
    world.variants.update({"refund_message": "R", "unknown_message": "U", "getmenu_message": "G"})
    data(await send(http, "0600000001", "r"))
    data(await send(http, "0600000003", "u"))
    data(await send(http, "0661234567", "m", plan="GETMENU_Djezzy", amount=50))
    clock.advance(30)
    texts = [data(await http.get(f"/v3/mobile/check-ref/{r}"))["refund_message"] for r in "rum"]
    assert texts == ["R", "U", "G"]


async def test_admin_variants(http, world) -> None:
    got = (await http.post("/__emulator/variants", json={"pagination": "meta"})).json()
    assert got["pagination"] == "meta" and world.variants.pagination == "meta"
    r = await http.post("/__emulator/variants", json={"pagination": "sideways"})
    assert r.status_code == 400 and "pagination must be one of" in r.json()["error"]
    r = await http.post("/__emulator/faults", json={"gift_refs": "maybe"})
    assert r.status_code == 400


# --- unreadable answers on demand ----------------------------------------------------------------


async def test_garbage_null_on_one_endpoint_for_n_answers(http, world) -> None:
    data(await send(http, ref="a"))
    world.faults.update({"garbage_next": 2, "garbage": "null",
                         "garbage_on": "GET /v3/mobile/check-ref"})  # fmt: skip
    other = await http.get("/v3/mobile/check-id/ffffffffffffffffffffffff")
    assert other.status_code == 404  # another endpoint: untouched
    for ref in ("a", "never-sent"):  # a 404 becomes garbage too: the proxy eats whatever
        r = await http.get(f"/v3/mobile/check-ref/{ref}")
        assert r.status_code == 200 and r.json()["success"] is True and r.json()["data"] is None
    assert data(await http.get("/v3/mobile/check-ref/a"))["ref"] == "a"
    assert world.faults.garbage_next == 0 and world.faults_injected["garbage"] == 2


async def test_garbage_html_and_empty(http, world) -> None:
    world.faults.update({"garbage_next": 1, "garbage": "html"})
    r = await http.get("/v3/account/balance")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Bad Gateway" in r.text
    world.faults.update({"garbage_next": 1, "garbage": "empty"})
    r = await http.get("/v3/account/balance")
    assert r.status_code == 200 and r.content == b""


async def test_garbage_types_changes_every_field_type(http, world) -> None:
    data(await send(http, ref="a"))
    world.faults.update({"garbage_next": 1, "garbage": "types"})
    d = data(await http.get("/v3/mobile/check-ref/a"))
    assert d["status"] is True and d["topup_amount"] == "n/a" and d["_id"] is True


async def test_garbage_on_a_post_comes_after_the_order(http, world) -> None:
    world.faults.update({"garbage_next": 1, "garbage": "null", "garbage_on": "POST"})
    r = await send(http, ref="a")
    assert r.status_code == 200 and r.json()["data"] is None
    assert [o.ref for o in world.orders] == ["a"]


# --- times to the millisecond, and lists at scale ------------------------------------------------


async def test_list_windows_are_exact_to_the_millisecond(http, clock) -> None:
    clock.advance(12.3456)  # listed as 00:00:12.345Z
    data(await send(http, ref="a"))
    listed = data(await http.get("/v3/mobile/list"))["items"][0]
    assert listed["created_at"] == "2025-10-29T00:00:12.345Z"
    assert data(await http.get("/v3/mobile/check-ref/a"))["created_at"] == listed["created_at"]

    async def window(lo: str, hi: str) -> list[str]:
        d = data(await http.get("/v3/mobile/list", params={"from": lo, "to": hi}))
        return [i["ref"] for i in d["items"]]

    at = "2025-10-29T00:00:12.345Z"
    assert await window(at, at) == ["a"]
    assert await window("2025-10-29T00:00:12.346Z", "2025-10-29T00:00:13.000Z") == []
    assert await window("2025-10-29T00:00:12.000Z", "2025-10-29T00:00:12.344Z") == []


async def test_gift_time_is_exact_to_the_millisecond(http, clock) -> None:
    clock.advance(7.0019)
    oid = data(await place(http, typeId="type_001", quantity=1))["orderId"]
    d = data(await http.get(f"/v3/gift-cards/checkOrder/{oid}"))
    assert d["time"] == "2025-10-29T00:00:07.001Z"
    window = {"from": d["time"], "to": d["time"]}
    assert [
        o["_id"] for o in data(await http.get("/v3/gift-cards/list", params=window))["items"]
    ] == [oid]


def test_pages_match_a_plain_filter_and_sort() -> None:
    """ByTime's bisected pages equal filtering and sorting everything (the old way)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from bulk_topup.emulator.state import ByTime

    @settings(derandomize=True, max_examples=300, deadline=None)
    @given(
        times=st.lists(st.integers(0, 50), max_size=60),
        page=st.integers(1, 6),
        size=st.integers(1, 12),
        window=st.one_of(st.none(), st.tuples(st.integers(-5, 55), st.integers(-5, 55))),
    )
    def check(times, page, size, window) -> None:
        index: ByTime[tuple[int, int]] = ByTime()
        for i, t in enumerate(times):  # out of order too: a clock set back by admin
            index.add(t, (t, i))
        since, until = window if window else (None, None)
        kept = [(t, i) for i, t in enumerate(times)
                if (since is None or t >= since) and (until is None or t <= until)]  # fmt: skip
        # newest first; equal times: the later insert first, as a stable reverse does
        expected = sorted(kept, key=lambda x: (x[0], x[1]), reverse=True)
        chunk, total = index.page(page, size, since, until)
        assert total == len(kept)
        assert chunk == expected[(page - 1) * size : page * size]

    check()


async def test_settle_applies_steps_in_time_order_and_resolve_supersedes(http, world, clock):
    data(await send(http, "0600000001", "r1", amount=1000))  # refunded at 20 s
    clock.advance(5)
    data(await send(http, "0600000004", "u1", amount=1000))  # UNKNOWN_ERROR at 25 s
    data(await send(http, "0600000003", "u2", amount=1000))
    clock.advance(30)
    assert (
        await http.post("/__emulator/resolve", json={"ref": "u1", "status": "FULFILLED"})
    ).json()
    clock.advance(3 * 3600)  # u1's own REFUNDED step is superseded; u2 becomes FULFILLED
    assert data(await http.get("/v3/mobile/check-ref/u1"))["status"] == "FULFILLED"
    assert data(await http.get("/v3/mobile/check-ref/u2"))["status"] == "FULFILLED"
    ledger = data(await http.get("/v3/account/transactions"))["items"]
    assert [t["type"] for t in ledger] == ["REFUND-FLEXY", "FLEXY", "FLEXY", "FLEXY"]
    times = [t["time"] for t in ledger]
    assert times == sorted(times, reverse=True)
    assert world.open == set()


def test_the_readme_names_every_variant_and_only_those() -> None:
    """The README's table of assumptions and the emulator's switches cannot drift apart."""
    from dataclasses import fields as dataclass_fields
    from pathlib import Path

    from bulk_topup.emulator import Variants

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("## The emulator") : readme.index("## Benchmarks")]
    named = set(re.findall(r"`([a-z_]+)=", section))
    assert named == {f.name for f in dataclass_fields(Variants)}
