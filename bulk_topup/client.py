"""Async client of the OneClickDz Flexy API v3: one method per endpoint, typed results.

Every failure is sorted into one of three classes (see `errors`):
- `RequestNotSent`: the request never left (connect error, connect or pool timeout);
- `ApiRefused`: the API answered with an error envelope (4xx), definitive; `RateLimited` (429) is
  the one refusal worth retrying, after `Retry-After`;
- `OutcomeUnknown`: it may have been processed (read timeout, connection lost after sending,
  5xx on a POST); `UnreadableAnswer`, one of them, when the answer is not what the API documents
  (`data` null, an HTML page, a required field missing or of the wrong type): one sentence naming
  the endpoint and the field.

GETs are retried (jittered exponential backoff, capped, `Retry-After` wins), except after an
answer that arrived whole but cannot be read: asking again would read the same. A POST is retried
only when it provably never reached the API; an ambiguous POST is the caller's to reconcile.

List answers are read with their pagination from `data.pagination` or `meta.pagination` (the
documentation shows both); without either, a full page is taken to mean another may follow.

The key goes in one header and nowhere else: not in a repr, an exception or a log line.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
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
    RefNotAccepted,
    RequestNotSent,
    UnreadableAnswer,
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
    Reader,
    Submitted,
    T,
    TopupStatus,
    mask,
    parse_gift,
    parse_submitted,
    parse_time,
    parse_topup,
)

#: set by `pace()`: this task has taken its call's turn already (one task, one request)
_PAID_FOR: ContextVar[bool] = ContextVar("bulk_topup_paid_for", default=False)
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
    if isinstance(exc, UnreadableAnswer):
        return exc.http_status >= 500  # a whole answer we cannot read reads the same again
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

    async def pace(self) -> None:
        """Wait for the next call's turn now: this task's next request then goes out at once.
        A sender journals its intent after this wait, so the time it records is the time the
        POST left (a tight window for finding its order later)."""
        if self.throttle is not None:
            await self.throttle.acquire()
        _PAID_FOR.set(True)

    async def _once(
        self, method: str, path: str, params: dict[str, Any] | None, body: dict[str, Any] | None
    ) -> tuple[Any, dict[str, Any]]:
        if self.throttle is not None and not _PAID_FOR.get():
            await self.throttle.acquire()
        _PAID_FOR.set(False)
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
            if status >= 500:
                may = "; the order may exist" if method != "GET" else ""
                raise OutcomeUnknown(
                    f"the API failed while handling {what} (HTTP {status}){may}",
                    request_id=request_id,
                )
            looks = response.headers.get("content-type", "")
            problem = (
                "is a web page, not the API's JSON answer"
                if "html" in looks or response.text.lstrip().startswith("<")
                else "is empty"
                if not response.content.strip()
                else "is not the API's JSON answer"
            )
            if not 200 <= status < 300:
                problem += f" (HTTP {status})"
            raise UnreadableAnswer(what, "", problem, http_status=status, request_id=request_id)
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
        """The `data` of a GET's answer (anything: read it with a `Reader`)."""
        return (await self._answer(path, **params))[0]

    async def _answer(self, path: str, **params: Any) -> tuple[Any, dict[str, Any]]:
        """The `data` and `meta` of a GET's answer."""
        clean = {k: v for k, v in params.items() if v is not None}
        return await self._call("GET", path, params=clean or None)

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
    def _page(
        data: Reader, meta: dict[str, Any], items: list[T], page: int, page_size: int
    ) -> Page[T]:
        """A page with its pagination, from `data.pagination` or `meta.pagination`; without
        either, a full page means another may follow (a sweep must not stop early)."""
        found = data.child("pagination")
        if found is None and isinstance(meta.get("pagination"), dict):
            found = Reader(meta["pagination"], data.endpoint, "meta.pagination")
        if found is None:
            for where, holder in (("data", data.obj), ("meta", meta)):
                if holder.get("pagination") is not None:  # there, but not an object
                    raise UnreadableAnswer(data.endpoint, f"{where}.pagination", "is not an object")
            more = len(items) >= min(page_size, PAGE_SIZE_MAX)
            seen = (page - 1) * page_size + len(items)
            return Page(items, page, page + 1 if more else page, seen)
        total_pages = found.integer("totalPages", required=True) or 0
        total = found.integer("totalResults")
        return Page(
            items,
            found.integer("page") or page,
            total_pages,
            total if total is not None else (page - 1) * page_size + len(items),
        )

    async def _list(
        self,
        path: str,
        keys: tuple[str, ...],
        page: int,
        page_size: int,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[list[Reader], Reader, dict[str, Any], str]:
        """One list page: its item readers (under the first of `keys` present), the `data`
        reader, the `meta`, and the endpoint's name for messages."""
        window = self._window(page, page_size, since, until)
        data, meta = await self._answer(path, **window)
        endpoint = f"GET {path}"
        r = Reader(data, endpoint)
        key = next((k for k in keys if r.obj.get(k) is not None), keys[0])
        return r.items(key, required=True), r, meta, endpoint

    # --- core and account ------------------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        return dict(Reader(await self._get("/v3/ping"), "GET /v3/ping").obj)

    async def validate_key(self) -> KeyInfo:
        r = Reader(await self._get("/v3/validate"), "GET /v3/validate")
        key = r.child("apiKey", required=True)
        assert key is not None
        return KeyInfo(
            r.text("username") or "",
            key.text("type", required=True, numbers=False) or "",
            key.text("scope", numbers=False) or "",
            bool(key.boolean("isEnabled", default=True)),
        )

    async def balance(self) -> float:
        r = Reader(await self._get("/v3/account/balance"), "GET /v3/account/balance")
        return r.number("balance", required=True) or 0.0

    async def transactions(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[dict[str, Any]]:
        items, r, meta, _ = await self._list(
            "/v3/account/transactions", ("items",), page, page_size, since, until
        )
        return self._page(r, meta, [i.obj for i in items], page, page_size)

    # --- mobile ----------------------------------------------------------------------------------

    async def mobile_plans(self) -> list[MobilePlan]:
        r = Reader(await self._get("/v3/mobile/plans"), "GET /v3/mobile/plans")
        plans = []
        for p in r.items("dynamicPlans") + r.items("fixedPlans"):
            plans.append(
                MobilePlan(
                    code=p.text("code", required=True, numbers=False) or "",
                    name=p.text("name") or "",
                    operator=p.text("operator") or "",
                    cost=p.number("cost"),
                    enabled=bool(p.boolean("isEnabled", default=True)),
                    min_amount=p.integer("min_amount"),
                    max_amount=p.integer("max_amount"),
                    amount=p.integer("amount"),
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
        path = f"/v3/mobile/check-ref/{quote(ref, safe='')}"
        return parse_topup("mobile", await self._get(path), f"GET {path}")

    async def mobile_check_id(self, topup_id: str) -> TopupStatus:
        path = f"/v3/mobile/check-id/{quote(topup_id, safe='')}"
        return parse_topup("mobile", await self._get(path), f"GET {path}")

    async def mobile_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[TopupStatus]:
        items, r, meta, endpoint = await self._list(
            "/v3/mobile/list", ("items",), page, page_size, since, until
        )
        parsed = [parse_topup("mobile", i.obj, endpoint, i.path) for i in items]
        return self._page(r, meta, parsed, page, page_size)

    # --- internet --------------------------------------------------------------------------------

    async def internet_products(self, kind: str) -> list[InternetProduct]:
        endpoint = "GET /v3/internet/products"
        data = await self._get("/v3/internet/products", type=kind)
        # The reference puts the products under `data.products`; one guide answers the bare list.
        if isinstance(data, list):
            data = {"products": data}
        products = Reader(data, endpoint).items("products", required=True)
        return [
            InternetProduct(
                kind,
                p.integer("value", required=True) or 0,
                p.number("cost", required=True) or 0.0,
                bool(p.boolean("available", default=True)),
            )
            for p in products
        ]

    async def internet_check_number(self, kind: str, number: str) -> dict[str, Any]:
        endpoint = "GET /v3/internet/check-number"
        data = await self._get("/v3/internet/check-number", type=kind, number=number)
        return dict(Reader(data, endpoint).obj)

    async def send_internet(self, *, kind: str, number: str, value: int, ref: str) -> Submitted:
        body = {"type": kind, "number": number, "value": value, "ref": ref}
        data, _ = await self._call("POST", "/v3/internet/send", body=body)
        return parse_submitted(data, "topupId", "POST /v3/internet/send")

    async def internet_check_ref(self, ref: str) -> TopupStatus:
        path = f"/v3/internet/check-ref/{quote(ref, safe='')}"
        return parse_topup("internet", await self._get(path), f"GET {path}")

    async def internet_check_id(self, topup_id: str) -> TopupStatus:
        path = f"/v3/internet/check-id/{quote(topup_id, safe='')}"
        return parse_topup("internet", await self._get(path), f"GET {path}")

    async def internet_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[TopupStatus]:
        # The documented example names the array `topups`; other lists use `items`.
        items, r, meta, endpoint = await self._list(
            "/v3/internet/list", ("topups", "items"), page, page_size, since, until
        )
        parsed = [parse_topup("internet", i.obj, endpoint, i.path) for i in items]
        return self._page(r, meta, parsed, page, page_size)

    # --- gift cards ------------------------------------------------------------------------------

    async def gift_catalog(self) -> list[GiftProduct]:
        r = Reader(await self._get("/v3/gift-cards/catalog"), "GET /v3/gift-cards/catalog")
        return [
            GiftProduct(
                p.text("id", required=True) or "",
                p.text("title") or "",
                bool(p.boolean("enabled", default=True)),
                c.text("name") or "",
                p.text("region"),
            )
            for c in r.items("categories", required=True)
            for p in c.items("products")
        ]

    async def gift_check_product(self, product_id: str) -> list[GiftType]:
        path = f"/v3/gift-cards/checkProduct/{quote(product_id, safe='')}"
        r = Reader(await self._get(path), f"GET {path}")
        return [
            GiftType(
                t.text("id", required=True) or "",
                t.text("name") or "",
                t.number("price", required=True) or 0.0,
                t.integer("quantity", required=True) or 0,
            )
            for t in r.items("types", required=True)
        ]

    async def place_gift_order(
        self, *, product_id: str, type_id: str, quantity: int, ref: str | None = None
    ) -> Submitted:
        """Buy `quantity` cards. With `ref`, the ref is sent too: `Submitted.ref` is the API's
        `orderRef` when it honours gift refs, None when it ignored the field. An API that refuses
        the field raises `RefNotAccepted`: no order was made; send it again without the ref."""
        body: dict[str, Any] = {"productId": product_id, "typeId": type_id, "quantity": quantity}
        if ref is not None:
            body["ref"] = ref
        what = "POST /v3/gift-cards/placeOrder"
        try:
            data, _ = await self._call("POST", "/v3/gift-cards/placeOrder", body=body)
        except ApiRefused as e:
            if ref is not None and _names_ref(e):
                raise RefNotAccepted(
                    f"the API refused the gift order's ref ({e.code}: {e.message}); "
                    "no order was made, it can be sent again without the ref",
                    code=e.code,
                    http_status=e.http_status,
                    details=e.details,
                    request_id=e.request_id,
                ) from None
            raise
        return parse_submitted(data, "orderId", what, ref_field="orderRef")

    async def gift_check_order(self, order_id: str) -> GiftOrder:
        path = f"/v3/gift-cards/checkOrder/{quote(order_id, safe='')}"
        return parse_gift(await self._get(path), f"GET {path}")

    async def gift_list(
        self,
        page: int = 1,
        page_size: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Page[GiftOrder]:
        items, r, meta, endpoint = await self._list(
            "/v3/gift-cards/list", ("items",), page, page_size, since, until
        )
        parsed = [parse_gift(i.obj, endpoint, i.path) for i in items]
        return self._page(r, meta, parsed, page, page_size)

    async def listed(
        self, kind: str, since: datetime, until: datetime, page_size: int = PAGE_SIZE_MAX
    ) -> AsyncIterator[Any]:
        """Every order of `kind` (mobile, internet, gift) created between `since` and `until`,
        newest first, page after page until the last one; the caller may stop early."""
        lister: Callable[..., Awaitable[Page[Any]]]
        if kind == "mobile":
            lister = self.mobile_list
        elif kind == "internet":
            lister = self.internet_list
        elif kind == "gift":
            lister = self.gift_list
        else:
            raise ValueError(f"no list of {kind!r} orders")
        page, pages = 1, 1
        while page <= pages:
            found = await lister(page=page, page_size=page_size, since=since, until=until)
            pages = found.total_pages
            for item in found.items:
                yield item
            page += 1


def _names_ref(e: ApiRefused) -> bool:
    """A validation refusal that is about the `ref` field (by its details, or by name in the
    message, as schema validators write it: `body/ref`, `'ref'`, `"ref"`)."""
    if e.code != "ERR_VALIDATION" or e.http_status != 400:
        return False
    named = {str(e.details.get(k)) for k in ("field", "additionalProperty", "property", "param")}
    if "ref" in named:
        return True
    return bool(re.search(r"(body/ref\b|'ref'|\"ref\"|\bref\b is not allowed)", e.message))


__all__ = [
    "ApiError",
    "RefNotAccepted",
    "UnreadableAnswer",
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
