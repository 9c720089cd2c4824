"""The emulated endpoints of the OneClickDz Flexy API v3 (section 4 of oneclickdz-v3.md): core,
account, mobile and internet; gift cards are in `gifts`. The helpers every order endpoint shares
(refs, balance, look-ups) live here."""

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


def check_ref(world: World, body: dict[str, Any], key: ApiKey | None = None) -> str:
    """The body's `ref` (or one made up as the API does), refused if reused while `ref_dedup`."""
    ref = body.get("ref")
    if ref is None:
        username = key.username if key else next(iter(world.keys.values())).username
        return f"API-{username}-{world.new_id()}"
    if not isinstance(ref, str) or not 1 <= len(ref) <= 100:
        raise invalid("ref", ref, "body/ref must be a string of 1 to 100 characters")
    if world.faults.ref_dedup and ref in world.by_ref:
        raise Reply(403, "DUPLICATED_REF", "This reference ID is already in use")
    return ref


def charge(world: World, amount: float) -> None:
    """Refuse (403 INSUFFICIENT_BALANCE) an order the balance cannot pay."""
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
    ref = check_ref(world, body, key)
    charge(world, cost)
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


def find_order(world: World, kind: str, *, ref: str | None = None, oid: str | None = None) -> Order:
    """The order of `kind` with this ref (the latest) or id; 404 NOT_FOUND as the API words it."""
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
    return _mobile_view(world, find_order(world, "mobile", oid=request.path_params["id"]))


async def mobile_check_ref(request: Request, world: World, key: ApiKey | None) -> Any:
    return _mobile_view(world, find_order(world, "mobile", ref=request.path_params["ref"]))


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
    ref = check_ref(world, body, key)
    charge(world, product["cost"])
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
    return _internet_view(world, find_order(world, "internet", oid=request.path_params["id"]))


async def internet_check_ref(request: Request, world: World, key: ApiKey | None) -> Any:
    return _internet_view(world, find_order(world, "internet", ref=request.path_params["ref"]))


async def internet_list(request: Request, world: World, key: ApiKey | None) -> Any:
    index = world.by_kind["internet"]
    return listing(request, world, index, lambda o: _internet_view(world, o), key="topups")


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
]
