"""The OneClickDz Flexy API v3 sandbox as a Starlette app, plus admin endpoints for tests.

`create_app(world)` builds an app holding all its state in `world`; nothing lives at module level,
so every test gets a fresh provider. The same app serves in-process (`EmulatorTransport`) and over a
socket (uvicorn, `bulk-topup emulator`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from datetime import datetime
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ..clock import parse_iso
from . import fixtures as fx
from .state import ApiKey, Order, World

MSSIDN_RE = re.compile(r"^0[567][0-9]{8}$")
INTERNET_RE = {"ADSL": re.compile(r"^0[0-9]{8}$"), "4G": re.compile(r"^213[0-9]{9}$")}
MAX_FAILED_TOKENS = 5
BLOCK_SECONDS = 15 * 60


class ConnectionDropped(Exception):
    """Raised by a handler that committed its work and must now vanish without answering."""


class Reply(Exception):
    """An error answer, raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


Handler = Callable[[Request, World, ApiKey | None], Awaitable[Any]]


def create_app(world: World | None = None) -> EmulatorApp:
    """A fresh emulator; `world` holds its clock, keys, balance, rate limit and faults."""
    return EmulatorApp(world or World())


class EmulatorApp:
    """ASGI app around the Starlette router; `world` is reachable for tests and admin."""

    def __init__(self, world: World) -> None:
        self.world = world
        routes = [
            Route(path, _endpoint(world, path, fn, write), methods=[method])
            for method, path, fn, write in API_ROUTES
        ]
        routes += [
            Route(path, _admin(world, fn), methods=[method]) for method, path, fn in ADMIN_ROUTES
        ]

        async def no_route(request: Request, exc: Exception) -> Response:
            status = getattr(exc, "status_code", 404)
            code = "NOT_FOUND" if status == 404 else "METHOD_NOT_ALLOWED"
            return fail(
                world,
                status,
                code,
                f"Route {request.method} {request.url.path} "
                f"{'not found' if status == 404 else 'does not allow this method'}",
            )

        self.router = Starlette(routes=routes, exception_handlers={404: no_route, 405: no_route})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)


class DroppedResponse(Response):
    """Starts an answer and abandons it: over a socket the server closes the connection
    mid-response, which is what a client sees when a proxy or the network dies."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"512")],
            }
        )
        raise ConnectionDropped


class EmulatorTransport(httpx.AsyncBaseTransport):
    """In-process transport: the emulator app, with read timeouts and dropped connections
    surfacing as the httpx errors a real socket would raise."""

    def __init__(self, app: EmulatorApp) -> None:
        self.app = app
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            with anyio.fail_after(timeout) if timeout else nullcontext():
                return await self._inner.handle_async_request(request)
        except TimeoutError:
            raise httpx.ReadTimeout(
                "emulator: no answer within the read timeout", request=request
            ) from None
        except ConnectionDropped:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None


# --- envelope ------------------------------------------------------------------------------------


def ok(world: World, data: Any, **meta: Any) -> JSONResponse:
    return JSONResponse(
        {
            "success": True,
            "data": data,
            "meta": {"timestamp": world.timestamp(), **meta},
            "requestId": world.request_id(),
        }
    )


def fail(
    world: World,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    body = {"success": False, "error": error, "requestId": world.request_id()}
    return JSONResponse(body, status_code=status, headers=headers)


def invalid(field: str, value: Any, message: str) -> Reply:
    return Reply(400, "ERR_VALIDATION", message, {"field": field, "value": value})


def _endpoint(world: World, template: str, fn: Handler, write: bool) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        name = f"{request.method} {template.replace(':path', '')}"
        world.calls[name] += 1
        now = world.rate_clock()
        world.call_log.append((now, name))
        wait = world.take_token(now)
        if wait is not None:
            world.rate_limited += 1
            return fail(
                world,
                429,
                "RATE_LIMITED",
                "Too many requests, slow down",
                {"retryAfter": wait},
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )
        faults = world.faults
        if faults.fail_next > 0 or (
            faults.error_rate and world.random.random() < faults.error_rate
        ):
            faults.fail_next = max(0, faults.fail_next - 1)
            status = world.random.choice([500, 503])
            world.faults_injected[str(status)] += 1
            if status == 500:
                return fail(world, 500, "INTERNAL_ERROR", "An internal error occurred")
            return Response("Service Unavailable", status_code=503)
        try:
            key = _authenticate(request, world, required=template != "/v3/ping")
            if write and key is not None and key.scope != "READ-WRITE":
                raise Reply(403, "ACCESS_DENIED", "This API key is read-only")
            world.settle()
            body = await fn(request, world, key)
            response = body if isinstance(body, Response) else ok(world, body)
        except Reply as r:
            response = fail(world, r.status, r.code, r.message, r.details)
        if request.method == "POST" and response.status_code == 200:
            if _drop_now(world):
                return DroppedResponse()
            if faults.slow_next > 0:
                faults.slow_next -= 1
                world.faults_injected["slow"] += 1
                await anyio.sleep(faults.slow_seconds)
        if faults.latency:
            await anyio.sleep(faults.latency)
        return response

    return endpoint


def _drop_now(world: World) -> bool:
    faults = world.faults
    if faults.drop_next > 0 or (faults.drop_rate and world.random.random() < faults.drop_rate):
        faults.drop_next = max(0, faults.drop_next - 1)
        world.faults_injected["drop"] += 1
        return True
    return False


def _authenticate(request: Request, world: World, required: bool) -> ApiKey | None:
    ip = request.client.host if request.client else "unknown"
    now = world.clock.now()
    if world.blocked_until.get(ip, -1) > now:
        raise Reply(
            403,
            "IP_BLOCKED",
            "Your IP has been temporarily blocked due to too many invalid attempts",
        )
    token = request.headers.get("x-access-token")
    if not token:
        if not required:
            return None
        raise Reply(401, "MISSING_ACCESS_TOKEN", "Access token is required")
    key = world.keys.get(token)
    if key is None:
        if not required:
            return None
        failures = [t for t in world.failures.get(ip, []) if t > now - BLOCK_SECONDS] + [now]
        world.failures[ip] = failures
        if len(failures) >= MAX_FAILED_TOKENS:
            world.blocked_until[ip] = now + BLOCK_SECONDS
            world.failures[ip] = []
            raise Reply(
                403,
                "IP_BLOCKED",
                "Your IP has been temporarily blocked due to too many invalid attempts",
            )
        raise Reply(
            401,
            "INVALID_ACCESS_TOKEN",
            "The provided access token is invalid",
            {"attemptsLeft": MAX_FAILED_TOKENS - len(failures)},
        )
    world.failures.pop(ip, None)
    return key


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Reply(400, "ERR_VALIDATION", "body must be valid JSON") from None
    if not isinstance(body, dict):
        raise Reply(400, "ERR_VALIDATION", "body must be object")
    return body


def _required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise invalid(name, None, f"body must have required property '{name}'")
    return body[name]


def _int(body: dict[str, Any], name: str) -> int:
    value = _required(body, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise invalid(name, value, f"body/{name} must be integer")
    return int(value)


def _check_ref(world: World, body: dict[str, Any]) -> str:
    ref = body.get("ref")
    if ref is None:
        return f"API-{next(iter(world.keys.values())).username}-{world.new_id()}"
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
            "allowedips": [],
            "scope": key.scope,
        },
    }


async def balance(request: Request, world: World, key: ApiKey | None) -> Any:
    return {"balance": world.balance, "currency": "DZD"}


def _page(
    request: Request,
    world: World,
    items: list[Any],
    created: Callable[[Any], float],
    key: str = "items",
) -> Any:
    q = request.query_params
    try:
        page = int(q.get("page", "1"))
        size = int(q.get("pageSize", "20"))
    except ValueError:
        raise invalid("page", q.get("page"), "querystring/page must be integer") from None
    if page < 1:
        raise invalid("page", page, "querystring/page must be >= 1")
    if not 1 <= size <= 100:
        raise invalid("pageSize", size, "querystring/pageSize must be <= 100 and >= 1")
    lo, hi = q.get("from"), q.get("to")
    if (lo is None) != (hi is None):
        raise invalid(
            "from" if lo is None else "to",
            None,
            "querystring must have both 'from' and 'to' or neither",
        )
    if lo is not None and hi is not None:
        try:
            start, end = _clock_seconds(world, parse_iso(lo)), _clock_seconds(world, parse_iso(hi))
        except ValueError:
            raise invalid("from", lo, "querystring/from and to must be ISO 8601 dates") from None
        items = [i for i in items if start <= created(i) <= end]
    items = sorted(items, key=created, reverse=True)
    total = len(items)
    chunk = items[(page - 1) * size : page * size]
    return {
        key: chunk,
        "pagination": {
            "page": page,
            "pageSize": size,
            "totalPages": math.ceil(total / size),
            "totalResults": total,
        },
    }


def _clock_seconds(world: World, when: datetime) -> float:
    return (when - world.clock.wall(0)).total_seconds()


async def transactions(request: Request, world: World, key: ApiKey | None) -> Any:
    data = _page(request, world, world.transactions, lambda t: t["_at"])
    data["items"] = [{k: v for k, v in t.items() if k != "_at"} for t in data["items"]]
    return data


# --- mobile --------------------------------------------------------------------------------------


async def mobile_plans(request: Request, world: World, key: ApiKey | None) -> Any:
    plans = list(world.plans.values())
    return {
        "dynamicPlans": [p for p in plans if "amount" not in p],
        "fixedPlans": [p for p in plans if "amount" in p],
    }


async def mobile_send(request: Request, world: World, key: ApiKey | None) -> Any:
    body = await _json_body(request)
    code = _required(body, "plan_code")
    msisdn = _required(body, "MSSIDN")
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
        amount = _int(body, "amount")
        if not plan["min_amount"] <= amount <= plan["max_amount"]:
            raise invalid(
                "amount",
                amount,
                f"body/amount must be between {plan['min_amount']} "
                f"and {plan['max_amount']} for plan {code}",
            )
    cost = round(amount * plan.get("cost", 1), 2)
    ref = _check_ref(world, body)
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
    return {"topupId": order.id, "topupRef": ref, "newBalance": world.balance}


def _mobile_timeline(
    world: World, msisdn: str, plan: dict[str, Any], amount: int
) -> tuple[list[tuple[float, str]], dict[str, Any]]:
    start = [(0.0, "PENDING"), (fx.MOBILE_PENDING_S, "HANDLING")]
    settle = fx.MOBILE_SETTLE_S
    if plan["code"].startswith("GETMENU_"):
        offers = fx.GETMENU_OFFERS.get(plan["operator"], [])
        return start + [(settle, "REFUNDED")], {
            "refund_message": fx.GETMENU_MESSAGE,
            "suggested_offers": [
                {"typename": t, "plan_code": c, "amount": a} for t, c, a in offers
            ],
        }
    scenario = fx.MOBILE_SCENARIOS.get(msisdn)
    if scenario == "refund":
        return start + [(settle, "REFUNDED")], {"refund_message": fx.REFUND_MESSAGE}
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
            "refund_message": fx.UNKNOWN_MESSAGE
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
        "created_at": world.timestamp(order.created),
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
    orders = [o for o in world.orders if o.kind == "mobile"]
    data = _page(request, world, orders, lambda o: o.created)
    data["items"] = [_mobile_view(world, o) for o in data["items"]]
    return data


# --- internet ------------------------------------------------------------------------------------


def _internet_type(value: Any) -> str:
    if value not in INTERNET_RE:
        raise invalid("type", value, "type must be equal to one of the allowed values: ADSL, 4G")
    return str(value)


async def internet_products(request: Request, world: World, key: ApiKey | None) -> Any:
    kind = _internet_type(request.query_params.get("type"))
    return ok(world, {"type": kind, "products": world.internet[kind]}, type=kind)


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
    body = await _json_body(request)
    kind = _internet_type(_required(body, "type"))
    number = _required(body, "number")
    if not isinstance(number, str) or not INTERNET_RE[kind].match(number):
        raise invalid(
            "number",
            number,
            f'body/number must match pattern "{INTERNET_RE[kind].pattern}" for type {kind}',
        )
    value = _int(body, "value")
    product = next((p for p in world.internet[kind] if p["value"] == value), None)
    if product is None:
        raise invalid("value", value, f"No {kind} card of value {value}")
    if not product["available"]:
        raise invalid("value", value, f"{kind} card of value {value} is out of stock")
    ref = _check_ref(world, body)
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
    view["created_at"] = world.timestamp(order.created)
    return view


async def internet_check_id(request: Request, world: World, key: ApiKey | None) -> Any:
    return _internet_view(world, _find(world, "internet", oid=request.path_params["id"]))


async def internet_check_ref(request: Request, world: World, key: ApiKey | None) -> Any:
    return _internet_view(world, _find(world, "internet", ref=request.path_params["ref"]))


async def internet_list(request: Request, world: World, key: ApiKey | None) -> Any:
    orders = [o for o in world.orders if o.kind == "internet"]
    data = _page(request, world, orders, lambda o: o.created, key="topups")
    data["topups"] = [_internet_view(world, o) for o in data["topups"]]
    return data


# --- gift cards ----------------------------------------------------------------------------------


def _gift_product(world: World, pid: Any) -> dict[str, Any]:
    for category in fx.GIFT_CATEGORIES:
        for product in category["products"]:
            if product["id"] == pid:
                return dict(product)
    raise Reply(404, "NOT_FOUND", f"Product with id '{pid}' not found")


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
    body = await _json_body(request)
    pid = _required(body, "productId")
    tid = _required(body, "typeId")
    quantity = _int(body, "quantity")
    try:
        product = _gift_product(world, pid)
    except Reply:
        raise invalid("productId", pid, f"Unknown productId '{pid}'") from None
    if not product["enabled"]:
        raise invalid("productId", pid, f"Product '{product['title']}' is not available")
    gift_type = next((t for t in _gift_types(world, pid, key) if t["id"] == tid), None)
    if gift_type is None:
        raise invalid("typeId", tid, f"Unknown typeId '{tid}' for product '{product['title']}'")
    if quantity < 1:
        raise invalid("quantity", quantity, "body/quantity must be >= 1")
    if quantity > gift_type["quantity"]:
        raise invalid(
            "quantity", quantity, f"Only {gift_type['quantity']} in stock for '{gift_type['name']}'"
        )
    price = gift_type["price"]
    _charge(world, price * quantity)
    if tid not in fx.SANDBOX_GIFT_TYPES:
        gift_type["quantity"] -= quantity  # the list in world.gift_types, by reference
    if tid == "TEST_REFUND":
        status, delivered = "REFUNDED", 0
    elif tid == "TEST_PARTIAL":
        delivered = quantity // 2
        status = "PARTIALLY_FILLED" if delivered else "REFUNDED"
    else:
        status, delivered = "FULFILLED", quantity
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
        None,
        world.clock.now(),
        [(0.0, "HANDLING"), (fx.GIFT_SETTLE_S, status)],
        fields,
        price * quantity,
    )
    world.add_order(order, "ORDER", f"{product['title']} x{quantity}")
    return {"orderId": order.id}


def _card(world: World) -> dict[str, str]:
    n = next(world._cards)
    return {"value": f"SANDBOX-CARD-{n}", "serial": f"SANDBOX-{n}"}


def _gift_view(world: World, order: Order) -> dict[str, Any]:
    f = order.fields
    status = order.status_at(world.clock.now())
    view: dict[str, Any] = {
        "_id": order.id,
        "status": status,
        "quantity": f["quantity"],
        "product": f["product"],
        "type": f["type"],
    }
    if status in ("FULFILLED", "PARTIALLY_FILLED", "REFUNDED"):
        view.update(
            {
                "fulfilled_quantity": f["fulfilled_quantity"],
                "fulfilled_amount": f["fulfilled_amount"],
                "price_per_card": f["price_per_card"],
                "cards": f["cards"],
            }
        )
    view["time"] = world.timestamp(order.created)
    return view


async def gift_check_order(request: Request, world: World, key: ApiKey | None) -> Any:
    return _gift_view(world, _find(world, "gift", oid=request.path_params["orderId"]))


async def gift_list(request: Request, world: World, key: ApiKey | None) -> Any:
    orders = [o for o in world.orders if o.kind == "gift"]
    data = _page(request, world, orders, lambda o: o.created)
    data["items"] = [_gift_view(world, o) for o in data["items"]]
    return data


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

# --- admin (emulator only) -----------------------------------------------------------------------

AdminHandler = Callable[[Request, World], Awaitable[Any]]


def _admin(world: World, fn: AdminHandler) -> Callable[..., Any]:
    async def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(await fn(request, world))
        except (ValueError, KeyError, TypeError) as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    return endpoint


async def admin_stats(request: Request, world: World) -> Any:
    world.settle()
    return world.stats()


async def admin_calls(request: Request, world: World) -> Any:
    """Every API call with its time (seconds on the rate-limit clock), for throughput figures."""
    return {"calls": world.call_log}


async def admin_reset(request: Request, world: World) -> Any:
    world.reset()
    return {"reset": True}


async def admin_faults(request: Request, world: World) -> Any:
    if request.method == "POST":
        world.faults.update(await request.json())
    return vars(world.faults)


async def admin_orders(request: Request, world: World) -> Any:
    world.settle()
    ref = request.query_params.get("ref")
    orders = world.by_ref.get(ref, []) if ref else world.orders
    now = world.clock.now()
    return {
        "orders": [
            {
                "id": o.id,
                "kind": o.kind,
                "ref": o.ref,
                "status": o.status_at(now),
                "debited": o.debited,
                "refunded": o.refunded,
                "created_at": world.timestamp(o.created),
                **o.fields,
            }
            for o in orders
        ]
    }


async def admin_clock(request: Request, world: World) -> Any:
    body = await request.json() if request.method == "POST" else {}
    world.clock.advance(float(body.get("advance", 0)))
    return {"now": world.clock.now(), "wall": world.timestamp()}


async def admin_resolve(request: Request, world: World) -> Any:
    body = await request.json()
    status = body["status"]
    if status not in ("FULFILLED", "REFUNDED"):
        raise ValueError("status must be FULFILLED or REFUNDED")
    orders = world.by_ref.get(body["ref"], []) if "ref" in body else [world.by_id[body["id"]]]
    if not orders:
        raise KeyError(f"no order with ref {body.get('ref')!r}")
    for order in orders:
        world.resolve(order, status)
    return {"resolved": len(orders)}


async def admin_balance(request: Request, world: World) -> Any:
    body = await request.json()
    world.balance = float(body["balance"])
    return {"balance": world.balance}


async def admin_stock(request: Request, world: World) -> Any:
    body = await request.json()
    if "internet" in body:
        kind, value = body["internet"], int(body["value"])
        for product in world.internet[kind]:
            if product["value"] == value:
                product["available"] = bool(body["available"])
    if "plan" in body:
        world.plans[body["plan"]]["isEnabled"] = bool(body["isEnabled"])
    return {"ok": True}


ADMIN_ROUTES: list[tuple[str, str, AdminHandler]] = [
    ("GET", "/__emulator/stats", admin_stats),
    ("GET", "/__emulator/calls", admin_calls),
    ("POST", "/__emulator/reset", admin_reset),
    ("GET", "/__emulator/faults", admin_faults),
    ("POST", "/__emulator/faults", admin_faults),
    ("GET", "/__emulator/orders", admin_orders),
    ("GET", "/__emulator/clock", admin_clock),
    ("POST", "/__emulator/clock", admin_clock),
    ("POST", "/__emulator/resolve", admin_resolve),
    ("POST", "/__emulator/balance", admin_balance),
    ("POST", "/__emulator/stock", admin_stock),
]
