"""The API's envelopes and the small helpers every emulated endpoint shares."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from ..clock import parse_iso
from .state import ApiKey, ByTime, World, epoch_ms


class Reply(Exception):
    """An error answer, raised from deep inside a handler."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


Handler = Callable[[Request, World, ApiKey | None], Awaitable[Any]]


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


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Reply(400, "ERR_VALIDATION", "body must be valid JSON") from None
    if not isinstance(body, dict):
        raise Reply(400, "ERR_VALIDATION", "body must be object")
    return body


def required(body: dict[str, Any], name: str) -> Any:
    if body.get(name) is None:
        raise invalid(name, None, f"body must have required property '{name}'")
    return body[name]


def integer(body: dict[str, Any], name: str) -> int:
    value = required(body, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise invalid(name, value, f"body/{name} must be integer")
    return int(value)


def page_request(request: Request) -> tuple[int, int, int | None, int | None]:
    """A list's page, page size and `from`/`to` window (ms since 1970, inclusive), checked as
    the documentation states: page >= 1, 1 <= pageSize <= 100, `from` and `to` together."""
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
    if lo is None or hi is None:
        return page, size, None, None
    try:
        return page, size, epoch_ms(parse_iso(lo)), epoch_ms(parse_iso(hi))
    except ValueError:
        raise invalid("from", lo, "querystring/from and to must be ISO 8601 dates") from None


def listing(
    request: Request,
    world: World,
    index: ByTime[Any],
    view: Callable[[Any], Any],
    key: str = "items",
) -> JSONResponse:
    """One page of a list endpoint, newest first, its pagination where `variants` puts it."""
    page, size, since, until = page_request(request)
    chunk, total = index.page(page, size, since, until)
    pagination = {
        "page": page,
        "pageSize": size,
        "totalPages": math.ceil(total / size),
        "totalResults": total,
    }
    where = world.variants.pagination
    data: dict[str, Any] = {key: [view(item) for item in chunk]}
    if where in ("data", "both"):
        data["pagination"] = pagination
    return ok(world, data, **({"pagination": pagination} if where in ("meta", "both") else {}))


# --- unreadable answers on demand (faults "garbage_*") -------------------------------------------

#: what a reverse proxy answers when the application behind it is gone
PROXY_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def _wrong(value: Any) -> Any:
    """A value of another JSON type than `value`'s."""
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, int | float):
        return "n/a"
    if isinstance(value, str):
        return True
    if value is None:
        return 0
    return "n/a"  # a list or an object where one was expected


def garbage(world: World, kind: str, response: Response) -> Response:
    """`response` replaced by HTTP 200 with an answer no client can read as the API's:
    "null" (`data: null`), "html" (a proxy's error page), "types" (every field of `data` of a
    wrong type), "empty" (no body)."""
    if kind == "html":
        return HTMLResponse(PROXY_PAGE, status_code=200)
    if kind == "empty":
        return Response(b"", status_code=200, media_type="application/json")
    data: Any = None
    if kind == "types":
        try:
            body = json.loads(bytes(response.body))
        except ValueError:
            body = {}
        real = body.get("data") if isinstance(body, dict) else None
        data = {k: _wrong(v) for k, v in real.items()} if isinstance(real, dict) else _wrong(real)
    return ok(world, data)
