"""Async client of the OneClickDz Flexy API v3: one method per endpoint, typed results.

Every failure is sorted into one of three classes (see `errors`):
- `RequestNotSent`: the request never left (connect error, connect or pool timeout);
- `ApiRefused`: the API answered with an error envelope (4xx), definitive; `RateLimited` (429) is
  the one refusal worth retrying, after `Retry-After`;
- `OutcomeUnknown`: it may have been processed (read timeout, connection lost after sending,
  5xx on a POST, a body that is not the API's envelope).

GETs are retried (jittered exponential backoff, capped, `Retry-After` wins). A POST is retried only
when it provably never reached the API; an ambiguous POST is the caller's to reconcile. The key goes
in one header and nowhere else: not in a repr, an exception or a log line.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import anyio
import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from .clock import iso
from .errors import (
    ApiError,
    ApiRefused,
    AuthError,
    DuplicatedRef,
    InsufficientBalance,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    RequestNotSent,
)
from .models import (
    Card,
    GiftOrder,
    GiftProduct,
    GiftType,
    InternetProduct,
    KeyInfo,
    MobilePlan,
    Offer,
    Page,
    Submitted,
    T,
    TopupStatus,
    mask,
    parse_gift,
    parse_submitted,
    parse_time,
    parse_topup,
)

DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=32)
PAGE_SIZE_MAX = 100


class Throttle(Protocol):
    """What the client asks of a rate limiter shared by every call."""

    async def acquire(self) -> None: ...

    def on_rate_limited(self, retry_after: float | None) -> None: ...


@dataclass(frozen=True)
class RetryPolicy:
    """How GETs (and never-sent POSTs) are retried. `sleep` is injectable: tests wait 0 s."""

    attempts: int = 6
    initial: float = 0.5
    max_wait: float = 20.0
    jitter: float = 0.5
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep


_REFUSALS: dict[str, type[ApiRefused]] = {
    "MISSING_ACCESS_TOKEN": AuthError,
    "INVALID_ACCESS_TOKEN": AuthError,
    "ERR_AUTH": AuthError,
    "IP_BLOCKED": AuthError,
    "ACCESS_DENIED": AuthError,
    "INSUFFICIENT_BALANCE": InsufficientBalance,
    "NO_BALANCE": InsufficientBalance,
    "DUPLICATED_REF": DuplicatedRef,
    "NOT_FOUND": NotFound,
}


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _retryable_get(exc: BaseException) -> bool:
    if isinstance(exc, RequestNotSent | OutcomeUnknown | RateLimited):
        return True
    return isinstance(exc, ApiRefused) and exc.http_status >= 500


def _retryable_post(exc: BaseException) -> bool:
    return isinstance(exc, RequestNotSent | RateLimited)


class _Wait:
    """Jittered exponential backoff, capped; a 429's Retry-After wins when it is longer."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential(multiplier=policy.initial, max=policy.max_wait)
        self._jitter = wait_random(0, policy.jitter)

    def __call__(self, state: Any) -> float:
        wait = float(self._backoff(state)) + float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited) and exc.retry_after is not None:
            wait = max(wait, exc.retry_after)
        return wait


# --- the client ----------------------------------------------------------------------------------


class OneClickClient:
    """One `httpx.AsyncClient` for the whole run; use as `async with OneClickClient(...)`."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        retry: RetryPolicy | None = None,
        throttle: Throttle | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._wall = wall or (lambda: datetime.now(UTC))
        #: provider time minus ours, from the last answer's meta.timestamp
        self.server_skew = timedelta(0)
        self.skew_known = False  # True once an answer's meta.timestamp has been read
        self._retry = retry or RetryPolicy()
        self.throttle = throttle
        self.calls = 0
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            limits=limits,
            headers={
                "X-Access-Token": api_key,
                "Accept": "application/json",
                "User-Agent": "bulk-topup",
            },
            http1=True,
            http2=False,
        )

    def __repr__(self) -> str:
        return f"OneClickClient({self.base_url!r})"

    def provider_now(self) -> datetime:
        """Our best estimate of the provider's clock (for list windows)."""
        return self._wall() + self.server_skew

    async def __aenter__(self) -> OneClickClient:
        await self._http.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._http.__aexit__(*exc)

    # --- transport -------------------------------------------------------------------------------

    async def _once(
        self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        if self.throttle is not None:
            await self.throttle.acquire()
        self.calls += 1
        what = f"{method} {path}"
        try:
            response = await self._http.request(method, path, params=params, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            host = urlsplit(self.base_url).netloc
            raise RequestNotSent(
                f"could not reach the OneClickDz API at {host} ({what}): {type(e).__name__}"
            ) from None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as e:
            raise OutcomeUnknown(
                f"the connection failed before the API's answer to {what} "
                f"arrived ({type(e).__name__})"
            ) from None
        return self._parse(response, method, what)

    def _parse(
        self, response: httpx.Response, method: str, what: str
    ) -> tuple[Any, dict[str, Any]]:
        status = response.status_code
        try:
            payload = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        envelope = isinstance(payload, dict) and isinstance(payload.get("success"), bool)
        request_id = payload.get("requestId") if isinstance(payload, dict) else None
        if status == 429:
            retry_after = _retry_after(response)
            if self.throttle is not None:
                self.throttle.on_rate_limited(retry_after)
            raise RateLimited(
                f"the API asked to slow down ({what})",
                retry_after=retry_after,
                code="RATE_LIMITED",
                http_status=429,
                request_id=request_id,
            )
        if not envelope:
            raise OutcomeUnknown(
                f"the API answered {what} with HTTP {status} and a body that is "
                f"not its usual answer",
                request_id=request_id,
            )
        assert isinstance(payload, dict)
        if payload["success"] and status < 300:
            meta: dict[str, Any] = payload["meta"] if isinstance(payload.get("meta"), dict) else {}
            stamp = parse_time(meta.get("timestamp"))
            if stamp is not None:
                self.server_skew = stamp - self._wall()
                self.skew_known = True
            return payload.get("data"), meta
        error: dict[str, Any] = payload["error"] if isinstance(payload.get("error"), dict) else {}
        code = str(error.get("code") or f"HTTP_{status}")
        message = str(error.get("message") or f"HTTP {status}")
        if status >= 500 and method != "GET":
            raise OutcomeUnknown(
                f"the API failed while handling {what} (HTTP {status} {code}); the order may exist",
                request_id=request_id,
            )
        cls = _REFUSALS.get(code, ApiRefused)
        details = error.get("details") if isinstance(error.get("details"), dict) else None
        raise cls(message, code=code, http_status=status, details=details, request_id=request_id)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        policy = self._retry
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=_Wait(policy),
            retry=retry_if_exception(_retryable_get if method == "GET" else _retryable_post),
            sleep=policy.sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, path, params, body)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get(self, path: str, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return (await self._call("GET", path, params=clean or None))[0]

    @staticmethod
    def _window(
        page: int, page_size: int, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        if (since is None) != (until is None):
            raise ValueError("since and until go together")
        return {
            "page": page,
            "pageSize": min(page_size, PAGE_SIZE_MAX),
            "from": iso(since) if since else None,
            "to": iso(until) if until else None,
        }

    @staticmethod
    def _page(data: dict[str, Any], items: list[T]) -> Page[T]:
        p = data.get("pagination") or {}
        return Page(
            items,
            int(p.get("page", 1)),
            int(p.get("totalPages", 1)),
            int(p.get("totalResults", len(items))),
        )

    # --- core and account ------------------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        return dict(await self._get("/v3/ping"))

    async def validate_key(self) -> KeyInfo:
        data = await self._get("/v3/validate")
        key = data.get("apiKey") or {}
        return KeyInfo(
            str(data.get("username", "")),
            str(key.get("type", "")),
            str(key.get("scope", "")),
            bool(key.get("isEnabled", True)),
        )

    async def balance(self) -> float:
        return float((await self._get("/v3/account/balance"))["balance"])

    async def transactions(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[dict[str, Any]]:
        data = await self._get(
            "/v3/account/transactions", **self._window(page, page_size, since, until)
        )
        return self._page(data, list(data.get("items") or []))

    # --- mobile ----------------------------------------------------------------------------------

    async def mobile_plans(self) -> list[MobilePlan]:
        data = await self._get("/v3/mobile/plans")
        plans = []
        for p in (data.get("dynamicPlans") or []) + (data.get("fixedPlans") or []):
            plans.append(
                MobilePlan(
                    code=str(p["code"]),
                    name=str(p.get("name", "")),
                    operator=str(p.get("operator", "")),
                    cost=float(p["cost"]) if p.get("cost") is not None else None,
                    enabled=bool(p.get("isEnabled", True)),
                    min_amount=p.get("min_amount"),
                    max_amount=p.get("max_amount"),
                    amount=p.get("amount"),
                )
            )
        return plans

    async def send_mobile(
        self, *, plan_code: str, msisdn: str, amount: int | None, ref: str
    ) -> Submitted:
        body: dict[str, Any] = {"plan_code": plan_code, "MSSIDN": msisdn, "ref": ref}
        if amount is not None:
            body["amount"] = amount
        data, _ = await self._call("POST", "/v3/mobile/send", body=body)
        return parse_submitted(data, "topupId", "POST /v3/mobile/send")

    async def mobile_check_ref(self, ref: str) -> TopupStatus:
        return parse_topup("mobile", await self._get(f"/v3/mobile/check-ref/{quote(ref, safe='')}"))

    async def mobile_check_id(self, topup_id: str) -> TopupStatus:
        return parse_topup(
            "mobile", await self._get(f"/v3/mobile/check-id/{quote(topup_id, safe='')}")
        )

    async def mobile_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[TopupStatus]:
        data = await self._get("/v3/mobile/list", **self._window(page, page_size, since, until))
        return self._page(data, [parse_topup("mobile", d) for d in data.get("items") or []])

    # --- internet --------------------------------------------------------------------------------

    async def internet_products(self, kind: str) -> list[InternetProduct]:
        data = await self._get("/v3/internet/products", type=kind)
        return [
            InternetProduct(kind, int(p["value"]), float(p["cost"]), bool(p["available"]))
            for p in data.get("products") or []
        ]

    async def internet_check_number(self, kind: str, number: str) -> dict[str, Any]:
        return dict(await self._get("/v3/internet/check-number", type=kind, number=number))

    async def send_internet(self, *, kind: str, number: str, value: int, ref: str) -> Submitted:
        body = {"type": kind, "number": number, "value": value, "ref": ref}
        data, _ = await self._call("POST", "/v3/internet/send", body=body)
        return parse_submitted(data, "topupId", "POST /v3/internet/send")

    async def internet_check_ref(self, ref: str) -> TopupStatus:
        return parse_topup(
            "internet", await self._get(f"/v3/internet/check-ref/{quote(ref, safe='')}")
        )

    async def internet_check_id(self, topup_id: str) -> TopupStatus:
        path = f"/v3/internet/check-id/{quote(topup_id, safe='')}"
        return parse_topup("internet", await self._get(path))

    async def internet_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[TopupStatus]:
        data = await self._get("/v3/internet/list", **self._window(page, page_size, since, until))
        # The documented example names the array `topups`; other lists use `items`.
        items = data.get("topups") if data.get("topups") is not None else data.get("items")
        return self._page(data, [parse_topup("internet", d) for d in items or []])

    # --- gift cards ------------------------------------------------------------------------------

    async def gift_catalog(self) -> list[GiftProduct]:
        data = await self._get("/v3/gift-cards/catalog")
        return [
            GiftProduct(
                str(p["id"]),
                str(p.get("title", "")),
                bool(p.get("enabled", True)),
                str(c.get("name", "")),
                p.get("region"),
            )
            for c in data.get("categories") or []
            for p in c.get("products") or []
        ]

    async def gift_check_product(self, product_id: str) -> list[GiftType]:
        data = await self._get(f"/v3/gift-cards/checkProduct/{quote(product_id, safe='')}")
        return [
            GiftType(
                str(t["id"]),
                str(t.get("name", "")),
                float(t.get("price", 0)),
                int(t.get("quantity", 0)),
            )
            for t in data.get("types") or []
        ]

    async def place_gift_order(
        self, *, product_id: str, type_id: str, quantity: int, ref: str | None = None
    ) -> Submitted:
        body: dict[str, Any] = {"productId": product_id, "typeId": type_id, "quantity": quantity}
        if ref is not None:
            body["ref"] = ref  # honoured by some API versions (they answer orderRef)
        data, _ = await self._call("POST", "/v3/gift-cards/placeOrder", body=body)
        return parse_submitted(data, "orderId", "POST /v3/gift-cards/placeOrder")

    async def gift_check_order(self, order_id: str) -> GiftOrder:
        return parse_gift(await self._get(f"/v3/gift-cards/checkOrder/{quote(order_id, safe='')}"))

    async def gift_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[GiftOrder]:
        data = await self._get("/v3/gift-cards/list", **self._window(page, page_size, since, until))
        return self._page(data, [parse_gift(d) for d in data.get("items") or []])


__all__ = [
    "ApiError",
    "Card",
    "GiftOrder",
    "GiftProduct",
    "GiftType",
    "InternetProduct",
    "KeyInfo",
    "MobilePlan",
    "Offer",
    "OneClickClient",
    "Page",
    "RetryPolicy",
    "Submitted",
    "TopupStatus",
    "mask",
]
