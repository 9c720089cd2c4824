"""The emulated endpoints of the OneClickDz Flexy API v3 (section 4 of oneclickdz-v3.md)."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request

from . import fixtures as fx
from .envelope import (
    Handler,
    Reply,
    integer,
    invalid,
    json_body,
    listing,
    ok,
    required,
)
from .state import ApiKey, Order, World, ms_iso

MSSIDN_RE = re.compile(r"^0[567][0-9]{8}$")
INTERNET_RE = {"ADSL": re.compile(r"^0[0-9]{8}$"), "4G": re.compile(r"^213[0-9]{9}$")}


def _check_ref(world: World, body: dict[str, Any], key: ApiKey | None = None) -> str:
    ref = body.get("ref")
    if ref is None:
        username = key.username if key else next(iter(world.keys.values())).username
        return f"API-{username}-{world.new_id()}"
    if not isinstance(ref, str) or not 1 <= len(ref) <= 100:
        raise invalid("ref", ref, "body/ref must be a string of 1 to 100 characters")
    if world.faults.ref_dedup and ref in world.by_ref:
        raise Reply(403, "DUPLICATED_REF", "This reference ID is already in use")
    return ref


def _charge(world: World, amount: float) -> None:
    if amount > world.balance:
        raise Reply(
            403,
            "INSUFFICIENT_BALANCE",
            "Your balance is insufficient for this operation",
            {"required": round(amount, 2), "available": round(world.balance, 2)},
        )


# --- core and account ----------------------------------------------------------------------------


async def ping(request: Request, world: World, key: ApiKey | None) -> Any:
    up = {"mobilis": "up", "ooredoo": "up", "djezzy": "up", "mobilisFixedPlans": "up"}
    return {"api": "ok", "operators": up}


async def validate(request: Request, world: World, key: ApiKey | None) -> Any:
    assert key is not None
    return {
        "username": key.username,
        "apiKey": {
            "key": key.key,
            "isEnabled": True,
            "type": key.type,
            "allowedips": list(key.allowed_ips),
            "scope": key.scope,
        },
    }


async def balance(request: Request, world: World, key: ApiKey | None) -> Any:
    if world.variants.balance_currency:
        return {"balance": world.balance, "currency": "DZD"}
    return {"balance": world.balance}


async def transactions(request: Request, world: World, key: ApiKey | None) -> Any:
    return listing(request, world, world.transactions, dict)


# --- mobile --------------------------------------------------------------------------------------


async def mobile_plans(request: Request, world: World, key: ApiKey | None) -> Any:
    plans = list(world.plans.values())
    return {
        "dynamicPlans": [p for p in plans if "amount" not in p],
        "fixedPlans": [p for p in plans if "amount" in p],
    }


async def mobile_send(request: Request, world: World, key: ApiKey | None) -> Any:
    body = await json_body(request)
    code = required(body, "plan_code")
    msisdn = required(body, "MSSIDN")
    if not isinstance(msisdn, str) or not MSSIDN_RE.match(msisdn):
        raise invalid("MSSIDN", msisdn, 'body/MSSIDN must match pattern "^0[567][0-9]{8}$"')
    plan = world.plans.get(code) if isinstance(code, str) else None
    if plan is None:
        raise invalid("plan_code", code, f"Unknown plan_code '{code}'")
    if not plan["isEnabled"]:
        raise invalid("plan_code", code, f"Plan '{code}' is currently disabled")
    if "amount" in plan:
        amount = plan["amount"]  # fixed plans ignore the amount sent
    else:
        amount = integer(body, "amount")
        if not plan["min_amount"] <= amount <= plan["max_amount"]:
            raise invalid(
                "amount",
                amount,
                f"body/amount must be between {plan['min_amount']} "
                f"and {plan['max_amount']} for plan {code}",
            )
    cost = round(amount * plan.get("cost", 1), 2)
    ref = _check_ref(world, body, key)
    _charge(world, cost)
    timeline, extra = _mobile_timeline(world, msisdn, plan, amount)
    order = Order(
        "mobile",
        world.new_id(),
        ref,
        world.clock.now(),
        timeline,
        {"plan_code": code, "MSSIDN": msisdn, "topup_amount": amount, **extra},
        cost,
    )
    world.add_order(order, "FLEXY", f"{code} {msisdn}")
    answer: dict[str, Any] = {"topupId": order.id, "topupRef": ref}
    if world.variants.send_new_balance:
        answer["newBalance"] = world.balance
    return answer


def _mobile_timeline(
    world: World, msisdn: str, plan: dict[str, Any], amount: int
) -> tuple[list[tuple[float, str]], dict[str, Any]]:
    start = [(0.0, "PENDING"), (fx.MOBILE_PENDING_S, "HANDLING")]
    settle = fx.MOBILE_SETTLE_S
    texts = world.variants
    if plan["code"].startswith("GETMENU_"):
        offers = fx.GETMENU_OFFERS.get(plan["operator"], [])
        return start + [(settle, "REFUNDED")], {
            "refund_message": texts.getmenu_message,
            "suggested_offers": [
                {"typename": t, "plan_code": c, "amount": a} for t, c, a in offers
            ],
        }
    scenario = fx.MOBILE_SCENARIOS.get(msisdn)
    if scenario == "refund":
        return start + [(settle, "REFUNDED")], {"refund_message": texts.refund_message}
    if scenario == "suggest":
        facture = world.plans["FACTURE_DJEZZY"]
        offer = min(max(amount, facture["min_amount"]), facture["max_amount"])
        return start + [(settle, "REFUNDED")], {
            "refund_message": fx.SUGGEST_MESSAGE,
            "suggested_offers": [
                {"typename": facture["name"], "plan_code": "FACTURE_DJEZZY", "amount": offer}
            ],
        }
    if scenario in ("unknown_then_fulfilled", "unknown_then_refunded"):
        end = "FULFILLED" if scenario == "unknown_then_fulfilled" else "REFUNDED"
        return start + [(settle, "UNKNOWN_ERROR"), (fx.UNKNOWN_RESOLVE_S, end)], {
            "refund_message": texts.unknown_message
        }
    return start + [(settle, "FULFILLED")], {}


def _mobile_view(world: World, order: Order) -> dict[str, Any]:
    f = order.fields
    status = order.status_at(world.clock.now())
    view: dict[str, Any] = {
        "ref": order.ref,
        "status": status,
        "plan_code": f["plan_code"],
        "MSSIDN": f["MSSIDN"],
        "topup_amount": f["topup_amount"],
        "balance_amount": 0 if status == "REFUNDED" else order.debited,
        "created_at": ms_iso(order.ms),
        "_id": order.id,
    }
    if status in ("REFUNDED", "UNKNOWN_ERROR") and f.get("refund_message"):
        view["refund_message"] = f["refund_message"]
    if status == "REFUNDED" and f.get("suggested_offers"):
        view["suggested_offers"] = f["suggested_offers"]
    return view


def _find(world: World, kind: str, *, ref: str | None = None, oid: str | None = None) -> Order:
    if ref is not None:
        found = [o for o in world.by_ref.get(ref, []) if o.kind == kind]
        if found:
            return found[-1]
        noun = {"mobile": "Top-up", "internet": "Internet top-up"}[kind]
        raise Reply(404, "NOT_FOUND", f"{noun} with reference '{ref}' not found")
    order = world.by_id.get(oid or "")
    if order is None or order.kind != kind:
        noun = {"mobile": "Top-up", "internet": "Internet top-up", "gift": "Order"}[kind]
        raise Reply(404, "NOT_FOUND", f"{noun} with id '{oid}' not found")
    return order


async def mobile_check_id(request: Request, world: World, key: ApiKey | None) -> Any:
    return _mobile_view(world, _find(world, "mobile", oid=request.path_params["id"]))


async def mobile_check_ref(request: Request, world: World, key: ApiKey | None) -> Any:
    return _mobile_view(world, _find(world, "mobile", ref=request.path_params["ref"]))


async def mobile_list(request: Request, world: World, key: ApiKey | None) -> Any:
    return listing(request, world, world.by_kind["mobile"], lambda o: _mobile_view(world, o))


# --- internet ------------------------------------------------------------------------------------


def _internet_type(value: Any) -> str:
    if value not in INTERNET_RE:
        raise invalid("type", value, "type must be equal to one of the allowed values: ADSL, 4G")
    return str(value)


async def internet_products(request: Request, world: World, key: ApiKey | None) -> Any:
    kind = _internet_type(request.query_params.get("type"))
    products = world.internet[kind]
    where = world.variants.products_type
    if where == "array":
        return ok(world, products)
    data: dict[str, Any] = {"products": products}
    if where in ("data", "both"):
        data["type"] = kind
    return ok(world, data, **({"type": kind} if where in ("meta", "both") else {}))


async def internet_check_number(request: Request, world: World, key: ApiKey | None) -> Any:
    kind = _internet_type(request.query_params.get("type"))
    number = request.query_params.get("number", "")
    reason = None
    if not INTERNET_RE[kind].match(number):
        reason = "Number does not match required format"
    elif number == fx.UNKNOWN_ADSL_LINE:
        reason = "Line not found"
    if reason:
        raise Reply(
            400,
            "ERR_PHONE",
            f"Invalid phone number for {kind} service",
            {"number": number, "type": kind, "reason": reason},
        )
    if kind == "ADSL":
        return {"ncli": number[:5] + "*****", "offre": "FTTc-b_10M'", "type": "ADSL"}
    return {"ncli": "11034*****", "type": "4GLTE"}


async def internet_send(request: Request, world: World, key: ApiKey | None) -> Any:
    body = await json_body(request)
    kind = _internet_type(required(body, "type"))
    number = required(body, "number")
    if not isinstance(number, str) or not INTERNET_RE[kind].match(number):
        raise invalid(
            "number",
            number,
            f'body/number must match pattern "{INTERNET_RE[kind].pattern}" for type {kind}',
        )
    value = integer(body, "value")
    product = next((p for p in world.internet[kind] if p["value"] == value), None)
    if product is None:
        raise invalid("value", value, f"No {kind} card of value {value}")
    if not product["available"]:
        raise invalid("value", value, f"{kind} card of value {value} is out of stock")
    ref = _check_ref(world, body, key)
    _charge(world, product["cost"])
    scenario = fx.INTERNET_SCENARIOS.get(number)
    timeline = [(0.0, "HANDLING")]
    if scenario == "refund":
        timeline.append((fx.INTERNET_SETTLE_S, "REFUNDED"))
    elif scenario == "queued":
        timeline += [(fx.INTERNET_SETTLE_S, "QUEUED"), (fx.QUEUED_RESOLVE_S, "FULFILLED")]
    else:
        timeline.append((fx.INTERNET_SETTLE_S, "FULFILLED"))
    order = Order(
        "internet",
        world.new_id(),
        ref,
        world.clock.now(),
        timeline,
        {"type": kind, "number": number, "topup_amount": value},
        product["cost"],
    )
    world.add_order(order, "ADSL", f"{kind} {number}")
    return {"topupId": order.id, "topupRef": ref}


def _internet_view(world: World, order: Order) -> dict[str, Any]:
    f = order.fields
    status = order.status_at(world.clock.now())
    view: dict[str, Any] = {
        "_id": order.id,
        "ref": order.ref,
        "status": status,
        "type": f["type"],
        "number": f["number"],
        "topup_amount": f["topup_amount"],
    }
    if status == "FULFILLED":
        for name in ("card_code", "num_trans", "date_traitement"):
            if name in f:
                view[name] = f[name]
    view["created_at"] = ms_iso(order.ms)
    return view


async def internet_check_id(request: Request, world: World, key: ApiKey | None) -> Any:
    return _internet_view(world, _find(world, "internet", oid=request.path_params["id"]))


async def internet_check_ref(request: Request, world: World, key: ApiKey | None) -> Any:
    return _internet_view(world, _find(world, "internet", ref=request.path_params["ref"]))


async def internet_list(request: Request, world: World, key: ApiKey | None) -> Any:
    index = world.by_kind["internet"]
    return listing(request, world, index, lambda o: _internet_view(world, o), key="topups")


# --- gift cards ----------------------------------------------------------------------------------


def _gift_product_or_none(pid: Any) -> dict[str, Any] | None:
    for category in fx.GIFT_CATEGORIES:
        for product in category["products"]:
            if product["id"] == pid:
                return dict(product)
    return None


def _gift_product(world: World, pid: Any) -> dict[str, Any]:
    product = _gift_product_or_none(pid)
    if product is None:
        raise Reply(404, "NOT_FOUND", f"Product with id '{pid}' not found")
    return product


def _gift_types(world: World, pid: str, key: ApiKey | None) -> list[dict[str, Any]]:
    types = list(world.gift_types.get(pid, []))
    if key is not None and key.type == "SANDBOX":
        types += [{"id": tid, **t} for tid, t in fx.SANDBOX_GIFT_TYPES.items()]
    return types


async def gift_catalog(request: Request, world: World, key: ApiKey | None) -> Any:
    categories = fx.GIFT_CATEGORIES
    total = sum(len(c["products"]) for c in categories)
    return ok(
        world, {"categories": categories}, totalCategories=len(categories), totalProducts=total
    )


async def gift_check_product(request: Request, world: World, key: ApiKey | None) -> Any:
    pid = request.path_params["productId"]
    product = _gift_product(world, pid)
    return {
        "productId": pid,
        "productTitle": product["title"],
        "types": _gift_types(world, pid, key),
    }


async def gift_place_order(request: Request, world: World, key: ApiKey | None) -> Any:
    body = await json_body(request)
    variants = world.variants
    sandbox = key is not None and key.type == "SANDBOX"
    if world.faults.gift_refs == "refuse" and "ref" in body:
        # A strict schema refuses unknown properties before anything else: no order is made.
        raise invalid("ref", body["ref"], "body must NOT have additional properties")
    pid = required(body, "productId")
    tid = required(body, "typeId")
    if body.get("quantity") is None and variants.gift_quantity_default > 0:
        quantity = variants.gift_quantity_default  # as the Arabic guide's example sends none
    else:
        quantity = integer(body, "quantity")
    if not isinstance(pid, str):
        raise invalid("productId", pid, "body/productId must be string")
    if not isinstance(tid, str):
        raise invalid("typeId", tid, "body/typeId must be string")
    # The documented sandbox fulfils ids the catalog does not know (its list example holds an
    # order of product "string", type "string"); known ones are checked as in production.
    placeholders = sandbox and variants.sandbox_placeholder_ids
    product = _gift_product_or_none(pid)
    gift_type: dict[str, Any] | None = None
    if product is None:
        if not placeholders:
            raise invalid("productId", pid, f"Unknown productId '{pid}'")
    elif not product["enabled"]:
        raise invalid("productId", pid, f"Product '{product['title']}' is not available")
    else:
        gift_type = next((t for t in _gift_types(world, pid, key) if t["id"] == tid), None)
        if gift_type is None and not placeholders:
            raise invalid("typeId", tid, f"Unknown typeId '{tid}' for product '{product['title']}'")
    if quantity < 1:
        raise invalid("quantity", quantity, "body/quantity must be >= 1")
    if gift_type is not None and quantity > gift_type["quantity"]:
        raise invalid(
            "quantity", quantity, f"Only {gift_type['quantity']} in stock for '{gift_type['name']}'"
        )
    ref = _check_ref(world, body, key) if world.faults.gift_refs == "honour" else None
    free = sandbox and variants.sandbox_gift_free
    price = 0 if free or gift_type is None else gift_type["price"]
    _charge(world, price * quantity)
    if gift_type is not None and tid not in fx.SANDBOX_GIFT_TYPES:
        gift_type["quantity"] -= quantity  # the list in world.gift_types, by reference
    scenario = tid if sandbox else None
    if scenario == "TEST_REFUND":
        delivered = 0
    elif scenario == "TEST_PARTIAL":
        delivered = (quantity + (variants.partial_rounding == "up")) // 2
    else:
        delivered = quantity
    if delivered == quantity:
        status = "FULFILLED"
    else:
        status = "PARTIALLY_FILLED" if delivered else "REFUNDED"
    fields: dict[str, Any] = {
        "quantity": quantity,
        "product": pid,
        "type": tid,
        "fulfilled_quantity": delivered,
        "price_per_card": price,
        "fulfilled_amount": delivered * price,
        "cards": [_card(world) for _ in range(delivered)],
    }
    order = Order(
        "gift",
        world.new_id(),
        ref,
        world.clock.now(),
        [(0.0, "HANDLING"), (fx.GIFT_SETTLE_S, status)],
        fields,
        price * quantity,
    )
    title = product["title"] if product else pid
    world.add_order(order, "ORDER", f"{title} x{quantity}")
    if ref is None:
        return {"orderId": order.id}
    return {"orderId": order.id, "orderRef": ref}


def _card(world: World) -> dict[str, str]:
    n = next(world._cards)
    return {"value": f"SANDBOX-CARD-{n}", "serial": f"SANDBOX-{n}"}


def _gift_view(world: World, order: Order) -> dict[str, Any]:
    f = order.fields
    status = order.status_at(world.clock.now())
    view: dict[str, Any] = {"_id": order.id}
    if order.ref is not None:
        view["ref"] = order.ref
    view.update({"status": status, "quantity": f["quantity"]})
    if status in ("FULFILLED", "PARTIALLY_FILLED", "REFUNDED"):
        view.update(
            {
                "fulfilled_quantity": f["fulfilled_quantity"],
                "fulfilled_amount": f["fulfilled_amount"],
                "price_per_card": f["price_per_card"],
                "cards": f["cards"],
            }
        )
    view.update({"product": f["product"], "type": f["type"], "time": ms_iso(order.ms)})
    return view


async def gift_check_order(request: Request, world: World, key: ApiKey | None) -> Any:
    return _gift_view(world, _find(world, "gift", oid=request.path_params["orderId"]))


async def gift_list(request: Request, world: World, key: ApiKey | None) -> Any:
    return listing(request, world, world.by_kind["gift"], lambda o: _gift_view(world, o))


API_ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("GET", "/v3/ping", ping, False),
    ("GET", "/v3/validate", validate, False),
    ("GET", "/v3/account/balance", balance, False),
    ("GET", "/v3/account/transactions", transactions, False),
    ("GET", "/v3/mobile/plans", mobile_plans, False),
    ("POST", "/v3/mobile/send", mobile_send, True),
    ("GET", "/v3/mobile/check-id/{id}", mobile_check_id, False),
    ("GET", "/v3/mobile/check-ref/{ref:path}", mobile_check_ref, False),
    ("GET", "/v3/mobile/list", mobile_list, False),
    ("GET", "/v3/internet/products", internet_products, False),
    ("GET", "/v3/internet/check-number", internet_check_number, False),
    ("POST", "/v3/internet/send", internet_send, True),
    ("GET", "/v3/internet/check-id/{id}", internet_check_id, False),
    ("GET", "/v3/internet/check-ref/{ref:path}", internet_check_ref, False),
    ("GET", "/v3/internet/list", internet_list, False),
    ("GET", "/v3/gift-cards/catalog", gift_catalog, False),
    ("GET", "/v3/gift-cards/checkProduct/{productId}", gift_check_product, False),
    ("POST", "/v3/gift-cards/placeOrder", gift_place_order, True),
    ("GET", "/v3/gift-cards/checkOrder/{orderId}", gift_check_order, False),
    ("GET", "/v3/gift-cards/list", gift_list, False),
]
