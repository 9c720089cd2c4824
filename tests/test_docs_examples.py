"""The documentation's own example requests, sent to the emulator, answered as the docs show.

Each example below is copied from the page named with it (docs.oneclickdz.com, EN unless the
URL says otherwise): the request as the page sends it, and the answer as the page prints it.
Answers are compared field by field: the envelope, every field the page shows (name, JSON type,
value), statuses and messages; ids, refs the server makes and timestamps by their shape. A field
the emulator adds must be one the documentation names for that object elsewhere (`EXTRA`).
Where pages disagree, the example runs under the emulator's variant that follows that page.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from bulk_topup.emulator import SANDBOX_KEY, EmulatorTransport

from .conftest import BASE

pytestmark = pytest.mark.anyio

DOCS = "https://docs.oneclickdz.com"

HEX24 = re.compile(r"^[0-9a-f]{24}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
REQUEST_ID = re.compile(r"^req_\d+_[0-9a-z]+$")
#: fields compared by shape only: the server makes them
SHAPES = {
    "_id": HEX24,
    "topupId": HEX24,
    "orderId": HEX24,
    "objid": HEX24,
    "created_at": ISO_MS,
    "time": ISO_MS,
    "timestamp": ISO_MS,
    "date_traitement": ISO_MS,
    "requestId": REQUEST_ID,
}
JSON_TYPES = {bool: "boolean", int: "number", float: "number", str: "string", type(None): "null"}

#: fields the emulator may add to an object although one example leaves them out, with the page
#: that documents them (schema tables, other examples of the same object)
EXTRA = {
    # the reference's success envelope carries meta.timestamp and requestId (response-format)
    "envelope": {"meta", "requestId"},
    # the full validate answer (authentication page) vs the quickstart's abridged one
    "apiKey": {"key", "allowedips"},
    # check-by-id schema: refund_message/suggested_offers only when refunded, always the rest
    "topup": {"ref", "_id"},
    # gift list items (list-orders) show product and type on final orders too
    "gift": {"product", "type"},
    # the emulator lists its sandbox test types on every product (README: assumptions)
    "types": set(),
}


def json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return JSON_TYPES[type(value)]


def same(actual: Any, documented: Any, *, path: str = "", loose: frozenset[str] = frozenset(),
         extra: frozenset[str] = frozenset()) -> None:  # fmt: skip
    """`actual` is what the page shows: the same fields with the same JSON types and values.
    Fields named in `loose` are compared by JSON type only (an amount the docs computed with
    another cost factor); fields in SHAPES by their pattern; `extra` fields may be added."""
    if isinstance(documented, dict):
        assert isinstance(actual, dict), f"{path}: {actual!r} is not an object"
        missing = set(documented) - set(actual)
        assert not missing, f"{path}: the emulator leaves out {sorted(missing)}"
        added = set(actual) - set(documented) - extra
        assert not added, f"{path}: the emulator adds {sorted(added)}, which no page documents"
        for name, value in documented.items():
            where = f"{path}.{name}" if path else name
            if name in SHAPES and isinstance(value, str):
                assert SHAPES[name].match(str(actual[name])), f"{where}: {actual[name]!r}"
            elif name in loose:
                assert json_type(actual[name]) == json_type(value), where
            else:
                same(actual[name], value, path=where, loose=loose, extra=extra)
        return
    if isinstance(documented, list):
        assert isinstance(actual, list), f"{path}: {actual!r} is not a list"
        assert len(actual) == len(documented), (
            f"{path}: {len(actual)} items, docs show {len(documented)}"
        )
        for i, (a, d) in enumerate(zip(actual, documented, strict=True)):
            same(a, d, path=f"{path}[{i}]", loose=loose, extra=extra)
        return
    assert json_type(actual) == json_type(documented), f"{path}: {actual!r} vs {documented!r}"
    assert actual == documented, f"{path}: {actual!r}, the docs show {documented!r}"


def envelope(response: httpx.Response, documented: dict[str, Any], status: int = 200) -> Any:
    """The answer's envelope is the documented one; returns its `data` (or `error`)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(documented) <= set(body), f"envelope lacks {set(documented) - set(body)}"
    assert set(body) - set(documented) <= EXTRA["envelope"] | {"data", "error"}
    assert body["success"] is documented["success"]
    assert REQUEST_ID.match(body["requestId"])
    if documented["success"]:
        assert ISO_MS.match(body["meta"]["timestamp"])
        return body["data"]
    return body["error"]


# --- quickstart (https://docs.oneclickdz.com/quickstart) -----------------------------------------

QUICKSTART_VALIDATE = {
    "page": f"{DOCS}/quickstart",
    "answer": {
        "success": True,
        "data": {
            "username": "+213665983439",
            "apiKey": {"type": "SANDBOX", "scope": "READ-WRITE", "isEnabled": True},
        },
    },
}

QUICKSTART_SEND = {
    "page": f"{DOCS}/quickstart",
    "request": {
        "plan_code": "PREPAID_DJEZZY",
        "MSSIDN": "0778037340",
        "amount": 500,
        "ref": "order-001",
    },  # fmt: skip
    "answer": {
        "success": True,
        "data": {"topupId": "6901616fe9e88196b4eb64b0", "topupRef": "order-001"},
    },
}

AUTHENTICATION_VALIDATE = {
    "page": f"{DOCS}/authentication",
    "answer": {
        "success": True,
        "data": {
            "username": "+213665983439",
            "apiKey": {
                "key": "ea27b376-9f5c-4b09-883f-1b96cd7b541c",
                "isEnabled": True,
                "type": "SANDBOX",
                "allowedips": [],
                "scope": "READ-WRITE",
            },
        },
    },
}


async def test_quickstart_validate(http) -> None:
    data = envelope(await http.get("/v3/validate"), QUICKSTART_VALIDATE["answer"])
    same(data, QUICKSTART_VALIDATE["answer"]["data"], extra=frozenset(EXTRA["apiKey"]))


async def test_authentication_validate(http) -> None:
    data = envelope(await http.get("/v3/validate"), AUTHENTICATION_VALIDATE["answer"])
    documented = AUTHENTICATION_VALIDATE["answer"]["data"]
    same(data, documented, loose=frozenset({"key"}))
    assert data["apiKey"]["key"] == SANDBOX_KEY  # the key itself, as the page shows its own


async def test_quickstart_send_then_check(http, clock) -> None:
    data = envelope(
        await http.post("/v3/mobile/send", json=QUICKSTART_SEND["request"]),
        QUICKSTART_SEND["answer"],
    )
    same(data, QUICKSTART_SEND["answer"]["data"])
    # Step 2 of the quickstart checks it by the same ref: PENDING, HANDLING, then FULFILLED.
    statuses = []
    for _ in range(3):
        got = envelope(await http.get("/v3/mobile/check-ref/order-001"), {"success": True})
        statuses.append(got["status"])
        clock.advance(10)
    assert statuses == ["PENDING", "HANDLING", "FULFILLED"]


# --- core and account ----------------------------------------------------------------------------

HEALTH_CHECK = {
    "page": f"{DOCS}/api-reference/core/health-check",
    "answer": {
        "success": True,
        "data": {
            "api": "ok",
            "operators": {
                "mobilis": "up",
                "ooredoo": "up",
                "djezzy": "up",
                "mobilisFixedPlans": "up",
            },
        },
        "meta": {"timestamp": "2025-10-29T00:35:58.710Z"},
    },
}

BALANCE = {
    "page": f"{DOCS}/api-reference/response-format",  # and account/get-balance
    "answer": {
        "success": True,
        "data": {"balance": 1326.13},
        "meta": {"timestamp": "2025-10-29T00:35:58.710Z"},
    },
}

TRANSACTIONS = {
    "page": f"{DOCS}/api-reference/response-format",  # "List Transactions (with Pagination)"
    "answer": {
        "success": True,
        "data": {
            "items": [{"type": "FLEXY", "amount": 500, "time": "2025-10-29T00:00:00.000Z"}],
            "pagination": {"page": 1, "pageSize": 20, "totalPages": 10, "totalResults": 195},
        },
        "meta": {"timestamp": "2025-10-29T00:35:58.852Z"},
    },
    # account/list-transactions: the item schema
    "item_fields": {
        "_id",
        "type",
        "operation",
        "amount",
        "oldBalance",
        "newBalance",
        "objid",
        "note",
        "time",
    },  # fmt: skip
}


async def test_health_check(http) -> None:
    data = envelope(await http.get("/v3/ping"), HEALTH_CHECK["answer"])
    same(data, HEALTH_CHECK["answer"]["data"])


async def test_balance(world, http) -> None:
    world.balance = 1326.13
    data = envelope(await http.get("/v3/account/balance"), BALANCE["answer"])
    same(data, BALANCE["answer"]["data"])


async def test_balance_with_the_changelogs_currency(world, http) -> None:
    world.balance = 1326.13
    world.variants.update({"balance_currency": True})
    data = envelope(await http.get("/v3/account/balance"), BALANCE["answer"])
    same(data, {"balance": 1326.13, "currency": "DZD"})  # the changelog's illustration


async def test_transactions_list(world, http) -> None:
    world.balance = 10_000
    envelope(
        await http.post(
            "/v3/mobile/send",
            json={"plan_code": "PIXX_500", "MSSIDN": "0778037340", "ref": "tx"},
        ),
        {"success": True},
    )
    data = envelope(await http.get("/v3/account/transactions"), TRANSACTIONS["answer"])
    item = data["items"][0]
    assert set(item) == TRANSACTIONS["item_fields"]
    documented = TRANSACTIONS["answer"]["data"]["items"][0]
    same({k: item[k] for k in documented}, documented, loose=frozenset({"amount"}))
    assert item["oldBalance"] - item["amount"] == item["newBalance"]
    assert set(data["pagination"]) == set(TRANSACTIONS["answer"]["data"]["pagination"])


# --- mobile --------------------------------------------------------------------------------------

PLANS = {
    "page": f"{DOCS}/api-reference/mobile/list-plans",
    "dynamic": {
        "code": "PREPAID_DJEZZY",
        "name": "📱 PREPAID | عادي",
        "operator": "Djezzy",
        "cost": 0.9925,
        "isEnabled": True,
        "min_amount": 100,
        "max_amount": 10000,
    },
    "fixed": {
        "code": "PIXX_500",
        "name": "Pixx 500 DA",
        "operator": "Pixx",
        "cost": 0.97,
        "isEnabled": True,
        "amount": 500,
    },
}

SEND_REFERENCE = {
    "page": f"{DOCS}/api-reference/mobile/send-topup",
    "request": {
        "plan_code": "PREPAID_DJEZZY",
        "MSSIDN": "0778037340",
        "amount": 500,
        "ref": "order-12345",
    },  # fmt: skip
    # The page answers with another example's ref; the reference says it echoes yours.
    "answer": {
        "success": True,
        "data": {
            "topupId": "6901616fe9e88196b4eb64b0",
            "topupRef": "API-+213665983439-test-1761698159224-success",
        },
        "meta": {"timestamp": "2025-10-29T00:35:59.454Z"},
    },
}

SEND_WITH_NEW_BALANCE = {
    "page": f"{DOCS}/api-reference/response-format",  # "Mobile Top-Up Send"
    "answer": {
        "success": True,
        "data": {
            "topupId": "6901616fe9e88196b4eb64b0",
            "topupRef": "my-order-123",
            "newBalance": 826.13,
        },  # fmt: skip
        "meta": {"timestamp": "2025-10-29T00:35:59.454Z"},
    },
}

CHECK_BY_REF = {
    "page": f"{DOCS}/api-reference/mobile/check-by-ref",
    "answer": {
        "success": True,
        "data": {
            "_id": "6901616fe9e88196b4eb64b0",
            "ref": "order-12345",
            "status": "FULFILLED",
            "plan_code": "PREPAID_DJEZZY",
            "MSSIDN": "0778037340",
            "topup_amount": 500,
            "balance_amount": 490,
            "created_at": "2025-10-29T00:35:59.378Z",
        },
        "meta": {"timestamp": "2025-10-29T00:36:15.606Z"},
        "requestId": "req_1730160975_xyz789",
    },
    "not_found": {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": "Top-up with reference 'order-12345' not found"},
        "requestId": "req_1730160975_xyz789",
    },
}

LIST_TOPUPS = {
    "page": f"{DOCS}/api-reference/mobile/list-topups",
    "request": {
        "plan_code": "PREPAID_DJEZZY",
        "MSSIDN": "0600000002",
        "amount": 500,
        "ref": "API-+213665983439-test-1761698196315-suggest",
    },  # fmt: skip
    "item": {
        "ref": "API-+213665983439-test-1761698196315-suggest",
        "status": "REFUNDED",
        "plan_code": "PREPAID_DJEZZY",
        "MSSIDN": "0600000002",
        "topup_amount": 500,
        "balance_amount": 0,
        "created_at": "2025-10-29T00:36:36.385Z",
        "_id": "69016194e9e88196b4eb64ce",
        "refund_message": "هذا رقم الهاتف لا يقبل العرض المرسل، الرجاء إرسال أحد العروض التالية",
        "suggested_offers": [
            {"typename": "📋 FACTURE | فاتورة", "plan_code": "FACTURE_DJEZZY", "amount": 500}
        ],
    },
    "pagination": {"page": 123, "pageSize": 123, "totalPages": 123, "totalResults": 123},
}


async def test_plans(http) -> None:
    data = envelope(await http.get("/v3/mobile/plans"), {"success": True})
    dynamic = {p["code"]: p for p in data["dynamicPlans"]}
    fixed = {p["code"]: p for p in data["fixedPlans"]}
    same(dynamic["PREPAID_DJEZZY"], PLANS["dynamic"])
    same(fixed["PIXX_500"], PLANS["fixed"])


async def test_send_reference_echoes_the_ref(http) -> None:
    data = envelope(
        await http.post("/v3/mobile/send", json=SEND_REFERENCE["request"]),
        SEND_REFERENCE["answer"],
    )
    same(data, SEND_REFERENCE["answer"]["data"], loose=frozenset({"topupRef"}))
    assert data["topupRef"] == "order-12345"


async def test_send_with_the_response_format_pages_new_balance(world, http) -> None:
    world.variants.update({"send_new_balance": True})
    before = world.balance
    request = {**SEND_REFERENCE["request"], "ref": "my-order-123"}
    data = envelope(
        await http.post("/v3/mobile/send", json=request), SEND_WITH_NEW_BALANCE["answer"]
    )
    same(data, SEND_WITH_NEW_BALANCE["answer"]["data"], loose=frozenset({"newBalance"}))
    assert data["newBalance"] == before - 496.25


async def test_send_without_new_balance_by_default(http) -> None:
    data = envelope(
        await http.post("/v3/mobile/send", json=SEND_REFERENCE["request"]),
        SEND_REFERENCE["answer"],
    )
    assert "newBalance" not in data


async def test_check_by_ref_and_not_found(http, clock) -> None:
    error = envelope(await http.get("/v3/mobile/check-ref/order-12345"), CHECK_BY_REF["not_found"],
                     status=404)  # fmt: skip
    same(error, CHECK_BY_REF["not_found"]["error"])
    await http.post("/v3/mobile/send", json=SEND_REFERENCE["request"])
    clock.advance(20)
    data = envelope(await http.get("/v3/mobile/check-ref/order-12345"), CHECK_BY_REF["answer"])
    # balance_amount: the page's 490 is 500 at a 0.98 factor; the plans page's is 0.9925
    same(data, CHECK_BY_REF["answer"]["data"], loose=frozenset({"balance_amount"}))
    assert data["balance_amount"] == 496.25


async def test_list_topups_sandbox_suggestion(http, clock) -> None:
    await http.post("/v3/mobile/send", json=LIST_TOPUPS["request"])
    clock.advance(30)
    data = envelope(await http.get("/v3/mobile/list?page=1&pageSize=20"), {"success": True})
    same(data["items"][0], LIST_TOPUPS["item"])
    assert set(data["pagination"]) == set(LIST_TOPUPS["pagination"])


# --- internet ------------------------------------------------------------------------------------

PRODUCTS = [
    {"value": 500, "cost": 490, "available": True},
    {"value": 1000, "cost": 980, "available": True},
    {"value": 2000, "cost": 1960, "available": True},
    {"value": 5000, "cost": 4900, "available": False},
]
PRODUCTS_REFERENCE = {  # the schema: data.products and data.type
    "page": f"{DOCS}/en/api-reference/internet/list-products.md",
    "answer": {"success": True, "data": {"products": PRODUCTS, "type": "ADSL"}},
}
PRODUCTS_GUIDE = {
    "page": f"{DOCS}/internet-topup-guides/1-loading-products",
    "answer": {
        "success": True,
        "data": {"products": PRODUCTS},
        "meta": {"timestamp": "2025-11-01T12:00:00.000Z", "type": "ADSL"},
    },
}

CHECK_NUMBER = {
    "page": f"{DOCS}/api-reference/internet/validate-number",
    "adsl": {"ncli": "11022*****", "offre": "FTTc-b_10M'", "type": "ADSL"},
    "4g": {"ncli": "11034*****", "type": "4GLTE"},
    "invalid": {
        "success": False,
        "error": {
            "code": "ERR_PHONE",
            "message": "Invalid phone number for ADSL service",
            "details": {
                "number": "123456",
                "type": "ADSL",
                "reason": "Number does not match required format",
            },
        },
    },
}

INTERNET_SEND = {
    "page": f"{DOCS}/internet-topup-guides/3-sending-topups",
    "request": {"type": "ADSL", "number": "036362608", "value": 1000, "ref": "order-123456"},
    "answer": {
        "success": True,
        "data": {"topupId": "6901616fe9e88196b4eb64b2", "topupRef": "order-123456"},
        "meta": {"timestamp": "2025-11-01T12:00:00.000Z"},
    },
}

INTERNET_CHECK = {
    "page": f"{DOCS}/api-reference/internet/check-by-id",
    "handling": {  # internet-topup-guides/4-status-tracking
        "_id": "6901616fe9e88196b4eb64b2",
        "ref": "order-123456",
        "status": "HANDLING",
        "type": "ADSL",
        "number": "036362608",
        "topup_amount": 1000,
        "created_at": "2025-11-01T12:00:00.000Z",
    },
    "fulfilled": {
        "_id": "6901616fe9e88196b4eb64b2",
        "ref": "internet-order-001",
        "status": "FULFILLED",
        "type": "ADSL",
        "number": "036362608",
        "topup_amount": 1000,
        "card_code": "123456789012",
        "num_trans": "AT-2025-12345",
        "date_traitement": "2025-10-29T01:05:30.000Z",
        "created_at": "2025-10-29T01:00:00.000Z",
    },
}


@pytest.mark.parametrize(
    ("variant", "example"), [("data", PRODUCTS_REFERENCE), ("meta", PRODUCTS_GUIDE)]
)
async def test_internet_products(world, http, variant, example) -> None:
    world.variants.update({"products_type": variant})
    response = await http.get("/v3/internet/products?type=ADSL")
    data = envelope(response, example["answer"])
    same(data, example["answer"]["data"])
    if variant == "meta":
        assert response.json()["meta"]["type"] == "ADSL"


async def test_check_number(http) -> None:
    adsl = envelope(
        await http.get("/v3/internet/check-number?type=ADSL&number=036362608"), {"success": True}
    )
    same(adsl, CHECK_NUMBER["adsl"], loose=frozenset({"ncli"}))
    assert re.match(r"^\d{5}\*{5}$", adsl["ncli"])
    lte = envelope(
        await http.get("/v3/internet/check-number?type=4G&number=213472731602"), {"success": True}
    )
    same(lte, CHECK_NUMBER["4g"])
    error = envelope(
        await http.get("/v3/internet/check-number?type=ADSL&number=123456"),
        CHECK_NUMBER["invalid"],
        status=400,
    )
    same(error, CHECK_NUMBER["invalid"]["error"])


async def test_internet_send_and_check(http, clock) -> None:
    data = envelope(
        await http.post("/v3/internet/send", json=INTERNET_SEND["request"]), INTERNET_SEND["answer"]
    )
    same(data, INTERNET_SEND["answer"]["data"])
    handling = envelope(
        await http.get(f"/v3/internet/check-id/{data['topupId']}"), {"success": True}
    )
    same(handling, INTERNET_CHECK["handling"])
    clock.advance(60)
    fulfilled = envelope(await http.get("/v3/internet/check-ref/order-123456"), {"success": True})
    same(fulfilled, INTERNET_CHECK["fulfilled"],
         loose=frozenset({"ref", "card_code", "num_trans"}))  # fmt: skip
    assert re.match(r"^\d{12}$", fulfilled["card_code"])
    assert re.match(r"^AT-\d{4}-\d+$", fulfilled["num_trans"])


# --- gift cards ----------------------------------------------------------------------------------

CATALOG = {
    "page": f"{DOCS}/gift-card-guides/1-loading-catalog",
    "category": {
        "name": "Gaming Cards",
        "products": [
            {
                "id": "507f1f77bcf86cd799439011",
                "title": "PlayStation Network",
                "enabled": True,
                "region": "dz",
            },  # fmt: skip
            {"id": "507f1f77bcf86cd799439012", "title": "Google Play Gift Card", "enabled": True},
        ],
    },
}

CHECK_PRODUCT = {
    "page": f"{DOCS}/api-reference/gift-cards/check-product",
    "answer": {
        "success": True,
        "data": {
            "productId": "507f1f77bcf86cd799439011",
            "productTitle": "PlayStation Network",
            "types": [
                {"id": "type_001", "name": "PSN 500 DA", "price": 490, "quantity": 150},
                {"id": "type_002", "name": "PSN 1000 DA", "price": 980, "quantity": 87},
                {"id": "type_003", "name": "PSN 2000 DA", "price": 1960, "quantity": 0},
            ],
        },
        "meta": {"timestamp": "2025-10-29T01:00:00.000Z"},
        "requestId": "req_1730163600_xyz789",
    },
}

PLACE_ORDER = {
    "page": f"{DOCS}/api-reference/gift-cards/place-order",
    "request": {"productId": "507f1f77bcf86cd799439011", "typeId": "type_001", "quantity": 2},
    "answer": {
        "success": True,
        "data": {"orderId": "6901616fe9e88196b4eb64b3"},
        "meta": {"timestamp": "2025-10-29T01:00:00.000Z"},
        "requestId": "req_1730163600_abc123",
    },
}

PLACE_ORDER_ARABIC_GUIDE = {
    "page": f"{DOCS}/ar/gift-card-guides/3-placing-orders",
    # as the guide's placeOrder() sends it: a ref, and no quantity
    "request": {
        "productId": "507f1f77bcf86cd799439011",
        "typeId": "type_10",
        "ref": "order-123456",
    },  # fmt: skip
    "answer": {
        "success": True,
        "data": {"orderId": "6901616fe9e88196b4eb64b2", "orderRef": "order-123456"},
        "meta": {"timestamp": "2025-11-01T12:00:00.000Z"},
    },
}

CHECK_ORDER = {
    "page": f"{DOCS}/api-reference/gift-cards/check-order",
    "handling": {
        "_id": "6901616fe9e88196b4eb64b3",
        "status": "HANDLING",
        "quantity": 2,
        "product": "507f1f77bcf86cd799439011",
        "type": "type_001",
        "time": "2025-10-29T01:00:00.000Z",
    },
    "fulfilled": {
        "_id": "6901616fe9e88196b4eb64b3",
        "status": "FULFILLED",
        "quantity": 2,
        "fulfilled_quantity": 2,
        "fulfilled_amount": 980,
        "price_per_card": 490,
        "cards": [
            {"value": "XXXX-XXXX-XXXX-XXXX", "serial": "123456789"},
            {"value": "YYYY-YYYY-YYYY-YYYY", "serial": "987654321"},
        ],
        "time": "2025-10-29T01:00:00.000Z",
    },
}

LIST_ORDERS = {
    "page": f"{DOCS}/api-reference/gift-cards/list-orders",
    # the sandbox order the page lists: placeholder ids, free, one sandbox card
    "sandbox_item": {
        "_id": "69001dc60c7d0ff0c542d96f",
        "quantity": 1,
        "price_per_card": 0,
        "time": "2025-10-28T01:35:02.224Z",
        "fulfilled_quantity": 1,
        "fulfilled_amount": 0,
        "cards": [{"value": "SANDBOX-CARD-1", "serial": "SANDBOX-1"}],
        "status": "FULFILLED",
        "product": "string",
        "type": "string",
    },
    "refunded_item": {
        "_id": "68fcdd7cd712569c624e05ee",
        "quantity": 1,
        "price_per_card": 2000,
        "time": "2025-10-25T14:23:56.515Z",
        "fulfilled_quantity": 0,
        "fulfilled_amount": 0,
        "cards": [],
        "status": "REFUNDED",
        "product": "6126393c6f57860f925a1983",
        "type": "6126393c6f57860f925a1984",
    },
    "pagination": {"page": 1, "pageSize": 5, "totalPages": 11, "totalResults": 55},
}

STATUS_TRACKING_SANDBOX = {
    "page": f"{DOCS}/gift-card-guides/4-status-tracking",
    "scenarios": [
        (
            {"productId": "507f1f77bcf86cd799439011", "typeId": "TEST_REFUND", "quantity": 2},
            "REFUNDED",
            0,
        ),  # fmt: skip
        (
            {"productId": "507f1f77bcf86cd799439011", "typeId": "TEST_PARTIAL", "quantity": 4},
            "PARTIALLY_FILLED",
            2,
        ),  # fmt: skip
    ],
}


async def test_catalog(http) -> None:
    response = await http.get("/v3/gift-cards/catalog")
    data = envelope(response, {"success": True})
    gaming = next(c for c in data["categories"] if c["name"] == "Gaming Cards")
    same({**gaming, "products": gaming["products"][:2]}, CATALOG["category"])
    meta = response.json()["meta"]
    assert isinstance(meta["totalCategories"], int) and isinstance(meta["totalProducts"], int)


async def test_check_product(http) -> None:
    data = envelope(
        await http.get("/v3/gift-cards/checkProduct/507f1f77bcf86cd799439011"),
        CHECK_PRODUCT["answer"],
    )
    documented = CHECK_PRODUCT["answer"]["data"]
    # A SANDBOX key also lists the sandbox test types (README: assumptions).
    same({**data, "types": data["types"][:3]}, documented)
    assert [t["id"] for t in data["types"][3:]] == ["TEST_REFUND", "TEST_PARTIAL"]


async def test_place_order_reference_then_check_order(world, http, clock) -> None:
    world.variants.update({"sandbox_gift_free": False})  # priced as the page's example
    data = envelope(
        await http.post("/v3/gift-cards/placeOrder", json=PLACE_ORDER["request"]),
        PLACE_ORDER["answer"],
    )
    same(data, PLACE_ORDER["answer"]["data"])
    oid = data["orderId"]
    handling = envelope(await http.get(f"/v3/gift-cards/checkOrder/{oid}"), {"success": True})
    same(handling, CHECK_ORDER["handling"])
    clock.advance(30)
    done = envelope(await http.get(f"/v3/gift-cards/checkOrder/{oid}"), {"success": True})
    same(done, CHECK_ORDER["fulfilled"], loose=frozenset({"cards"}),
         extra=frozenset(EXTRA["gift"]))  # fmt: skip
    assert [c["value"] for c in done["cards"]] == ["SANDBOX-CARD-1", "SANDBOX-CARD-2"]


async def test_sandbox_orders_are_free_as_the_list_example_shows(world, http, clock) -> None:
    before = world.balance
    request = {"productId": "string", "typeId": "string", "quantity": 1}  # the playground's ids
    envelope(await http.post("/v3/gift-cards/placeOrder", json=request), PLACE_ORDER["answer"])
    clock.advance(30)
    data = envelope(await http.get("/v3/gift-cards/list?page=1&pageSize=20"), {"success": True})
    same(data["items"][0], LIST_ORDERS["sandbox_item"])
    assert set(data["pagination"]) == set(LIST_ORDERS["pagination"])
    assert world.balance == before
    ledger = envelope(await http.get("/v3/account/transactions"), {"success": True})
    assert ledger["items"] == []


async def test_refunded_order_in_the_list(http, clock) -> None:
    request = {"productId": "507f1f77bcf86cd799439011", "typeId": "TEST_REFUND", "quantity": 1}
    await http.post("/v3/gift-cards/placeOrder", json=request)
    clock.advance(30)
    data = envelope(await http.get("/v3/gift-cards/list"), {"success": True})
    # product, type and the price are ours (the page's order is not a sandbox one)
    same(data["items"][0], LIST_ORDERS["refunded_item"],
         loose=frozenset({"price_per_card", "product", "type"}))  # fmt: skip


@pytest.mark.parametrize(("request_body", "status", "cards"), STATUS_TRACKING_SANDBOX["scenarios"])
async def test_status_tracking_sandbox_scenarios(http, clock, request_body, status, cards) -> None:
    oid = envelope(
        await http.post("/v3/gift-cards/placeOrder", json=request_body), {"success": True}
    )["orderId"]
    clock.advance(30)
    done = envelope(await http.get(f"/v3/gift-cards/checkOrder/{oid}"), {"success": True})
    assert done["status"] == status and done["fulfilled_quantity"] == cards == len(done["cards"])
    assert done["fulfilled_amount"] == 0  # "test without spending real balance"


async def test_arabic_guide_place_order_with_gift_refs_honoured(world, http, clock) -> None:
    world.faults.update({"gift_refs": "honour"})
    example = PLACE_ORDER_ARABIC_GUIDE
    data = envelope(await http.post("/v3/gift-cards/placeOrder", json=example["request"]),
                    example["answer"])  # fmt: skip
    same(data, example["answer"]["data"])
    clock.advance(30)
    order = envelope(await http.get(f"/v3/gift-cards/checkOrder/{data['orderId']}"),
                     {"success": True})  # fmt: skip
    assert order["ref"] == "order-123456" and order["quantity"] == 1
    assert order["status"] == "FULFILLED"


async def test_arabic_guide_place_order_by_default_ignores_the_ref(http) -> None:
    example = PLACE_ORDER_ARABIC_GUIDE
    data = envelope(await http.post("/v3/gift-cards/placeOrder", json=example["request"]),
                    PLACE_ORDER["answer"])  # fmt: skip
    same(data, PLACE_ORDER["answer"]["data"])  # the English reference: orderId only


# --- errors (https://docs.oneclickdz.com/api-reference/error-handling) ---------------------------

ERRORS = {
    "page": f"{DOCS}/api-reference/error-handling",
    "missing": {"code": "MISSING_ACCESS_TOKEN", "message": "Access token is required"},
    "invalid": {
        "code": "INVALID_ACCESS_TOKEN",
        "message": "The provided access token is invalid",
        "details": {"attemptsLeft": 3},
    },  # fmt: skip
    "duplicated": {"code": "DUPLICATED_REF", "message": "This reference ID is already in use"},
    "balance": {  # mobile/send-topup
        "code": "INSUFFICIENT_BALANCE",
        "message": "Your balance is insufficient for this operation",
        "details": {"required": 1000, "available": 500},
    },
    "validation": {  # mobile/send-topup
        "code": "ERR_VALIDATION",
        "message": 'body/MSSIDN must match pattern "^0[567][0-9]{8}$"',
        "details": {"field": "MSSIDN", "value": "778037340"},
    },
}


async def test_error_examples(app, world, http) -> None:
    failed = {"success": False}
    async with httpx.AsyncClient(transport=EmulatorTransport(app), base_url=BASE) as anon:
        same(envelope(await anon.get("/v3/account/balance"), failed, 401), ERRORS["missing"])
        bad = {"X-Access-Token": "not-a-key"}
        await anon.get("/v3/validate", headers=bad)
        second = envelope(await anon.get("/v3/validate", headers=bad), failed, 401)
        same(second, ERRORS["invalid"])
    send = {"plan_code": "PREPAID_DJEZZY", "MSSIDN": "0778037340", "amount": 500, "ref": "d"}
    await http.post("/v3/mobile/send", json=send)
    same(envelope(await http.post("/v3/mobile/send", json=send), failed, 403), ERRORS["duplicated"])
    wrong = {**send, "MSSIDN": "778037340", "ref": "v"}
    same(
        envelope(await http.post("/v3/mobile/send", json=wrong), failed, 400), ERRORS["validation"]
    )
    world.balance = 500
    big = {**send, "amount": 1008, "ref": "b"}  # 1008 x 0.9925 = 1000.44
    error = envelope(await http.post("/v3/mobile/send", json=big), failed, 403)
    same(error, ERRORS["balance"], loose=frozenset({"required"}))
    assert error["details"]["required"] == 1000.44
