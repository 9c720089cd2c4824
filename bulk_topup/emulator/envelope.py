"""The API's envelopes and the small helpers every emulated endpoint shares."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..clock import parse_iso
from .state import ApiKey, World


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


def paginate(
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
            start, end = clock_seconds(world, parse_iso(lo)), clock_seconds(world, parse_iso(hi))
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


def clock_seconds(world: World, when: datetime) -> float:
    return (when - world.clock.wall(0)).total_seconds()
