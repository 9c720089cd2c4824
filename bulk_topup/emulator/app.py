"""The OneClickDz Flexy API v3 sandbox as a Starlette app, plus admin endpoints for tests.

`create_app(world)` builds an app holding all its state in `world`; nothing lives at module level,
so every test gets a fresh provider. The same app serves in-process (`EmulatorTransport`) and over a
socket (uvicorn, `bulk-topup emulator`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .admin import ADMIN_ROUTES, admin_endpoint
from .api import API_ROUTES
from .envelope import Handler, Reply, fail, garbage, ok
from .gifts import GIFT_ROUTES
from .state import ApiKey, World

MAX_FAILED_TOKENS = 5
BLOCK_SECONDS = 15 * 60


class ConnectionDropped(Exception):
    """Raised by a handler that committed its work and must now vanish without answering."""


def create_app(world: World | None = None) -> EmulatorApp:
    """A fresh emulator; `world` holds its clock, keys, balance, rate limit and faults."""
    return EmulatorApp(world or World())


class EmulatorApp:
    """ASGI app around the Starlette router; `world` is reachable for tests and admin."""

    def __init__(self, world: World) -> None:
        self.world = world
        routes = [
            Route(path, _endpoint(world, path, fn, write), methods=[method])
            for method, path, fn, write in API_ROUTES + GIFT_ROUTES
        ]
        routes += [
            Route(path, admin_endpoint(world, fn), methods=[method])
            for method, path, fn in ADMIN_ROUTES
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


# --- the endpoint wrapper: rate limit, faults, auth, envelope -------------------------------------


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
        failing = faults.fail_next > 0 and name.startswith(faults.fail_on)
        if failing or (faults.error_rate and world.random.random() < faults.error_rate):
            faults.fail_next -= failing
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
        if faults.garbage_next > 0 and name.startswith(faults.garbage_on):
            faults.garbage_next -= 1
            world.faults_injected["garbage"] += 1
            response = garbage(world, faults.garbage, response)
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
    if key.allowed_ips and ip not in key.allowed_ips:
        # The documentation gives 403 for an address off the whitelist; its code is a guess.
        raise Reply(403, "IP_NOT_ALLOWED", "Your IP address is not allowed to use this API key")
    return key
