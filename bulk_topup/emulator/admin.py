"""Admin endpoints under /__emulator/: statistics, faults, clock, resolution. Emulator only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .state import World, ms_iso

# --- admin (emulator only) -----------------------------------------------------------------------

AdminHandler = Callable[[Request, World], Awaitable[Any]]


def admin_endpoint(world: World, fn: AdminHandler) -> Callable[..., Any]:
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


async def admin_variants(request: Request, world: World) -> Any:
    if request.method == "POST":
        world.variants.update(await request.json())
    return vars(world.variants)


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
                "created_at": ms_iso(o.ms),
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
    ("GET", "/__emulator/variants", admin_variants),
    ("POST", "/__emulator/variants", admin_variants),
    ("GET", "/__emulator/orders", admin_orders),
    ("GET", "/__emulator/clock", admin_clock),
    ("POST", "/__emulator/clock", admin_clock),
    ("POST", "/__emulator/resolve", admin_resolve),
    ("POST", "/__emulator/balance", admin_balance),
    ("POST", "/__emulator/stock", admin_stock),
]
