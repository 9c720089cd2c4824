"""The emulated gift-card endpoints: catalog, products, orders, as the sandbox documents them.

A SANDBOX key's orders cost nothing and accept the placeholder ids of the docs' playground; a
`ref` is ignored, honoured or refused as the `gift_refs` fault says (README: "The emulator").
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from . import fixtures as fx
from .api import charge, check_ref, find_order
from .envelope import Handler, Reply, integer, invalid, json_body, listing, ok, required
from .state import ApiKey, Order, World, ms_iso


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
    ref = check_ref(world, body, key) if world.faults.gift_refs == "honour" else None
    free = sandbox and variants.sandbox_gift_free
    price = 0 if free or gift_type is None else gift_type["price"]
    charge(world, price * quantity)
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
    return _gift_view(world, find_order(world, "gift", oid=request.path_params["orderId"]))


async def gift_list(request: Request, world: World, key: ApiKey | None) -> Any:
    return listing(request, world, world.by_kind["gift"], lambda o: _gift_view(world, o))


GIFT_ROUTES: list[tuple[str, str, Handler, bool]] = [
    ("GET", "/v3/gift-cards/catalog", gift_catalog, False),
    ("GET", "/v3/gift-cards/checkProduct/{productId}", gift_check_product, False),
    ("POST", "/v3/gift-cards/placeOrder", gift_place_order, True),
    ("GET", "/v3/gift-cards/checkOrder/{orderId}", gift_check_order, False),
    ("GET", "/v3/gift-cards/list", gift_list, False),
]
