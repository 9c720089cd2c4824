"""The emulator's world: keys, balance, orders and their timelines, stock, faults and statistics.

Order statuses are not pushed by background tasks: each order carries a timeline of
(seconds after creation, status) and its status is read off the clock when asked. `settle()`
applies what has happened since the last request (refund credits, ledger lines) in time order,
taking due steps off a heap, so a request costs O(k log n) for the k steps that fell due rather
than a pass over every open order.

Lists are served from per-kind indexes kept in creation order (`ByTime`), so a page, with or
without a `from`/`to` window, costs O(log n + page size) with 100,000 orders or more.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import random
import secrets
import time
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

from ..clock import Clock, SystemClock, iso
from . import fixtures as fx

SANDBOX_KEY = "emulator-sandbox-key"

FINAL = {"FULFILLED", "REFUNDED", "PARTIALLY_FILLED"}

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)

Item = TypeVar("Item")


def epoch_ms(when: datetime) -> int:
    """Milliseconds since 1970, floored: the precision the API writes times with."""
    return (when - EPOCH) // MS


def ms_iso(ms: int) -> str:
    return iso(EPOCH + ms * MS)


@dataclass(frozen=True)
class ApiKey:
    key: str
    type: str = "SANDBOX"  # SANDBOX | PRODUCTION
    scope: str = "READ-WRITE"  # READ-WRITE | READ-ONLY
    username: str = "+213665983439"
    allowed_ips: tuple[str, ...] = ()  # the key's whitelist; empty means any address


class Switches:
    """A dataclass whose fields can be set by name from JSON or the command line, checked."""

    #: field name -> the values it may take (fields not named here take any value of their type)
    CHOICES: ClassVar[dict[str, tuple[Any, ...]]] = {}
    NOUN: ClassVar[str] = "setting"

    def update(self, values: dict[str, Any]) -> None:
        """Set fields by name; an unknown name or a value out of its choices is a ValueError."""
        names = {f.name for f in fields(self)}  # type: ignore[arg-type]
        for name, value in values.items():
            if name not in names:
                known = ", ".join(sorted(names))
                raise ValueError(f"unknown {self.NOUN} {name!r} (known: {known})")
            setattr(self, name, self._coerce(name, value))

    def _coerce(self, name: str, value: Any) -> Any:
        current = getattr(self, name)
        if isinstance(current, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(f"{name} must be true or false, not {value!r}")
                value = value.lower() in ("true", "1", "yes", "on")
            value = bool(value)
        elif isinstance(current, int | float) and not isinstance(current, bool):
            value = type(current)(value)
        elif isinstance(current, str):
            value = str(value)
        choices = self.CHOICES.get(name)
        if choices is not None and value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value


GARBAGE_KINDS = ("null", "html", "types", "empty")


@dataclass
class Faults(Switches):
    """Faults on demand. Shares are drawn from a seeded generator, so runs repeat."""

    CHOICES = {"garbage": GARBAGE_KINDS, "gift_refs": ("ignore", "honour", "refuse")}
    NOUN = "fault"

    latency: float = 0.0  # seconds added before every API answer (after the work is done)
    error_rate: float = 0.0  # share of API requests answered 500/503 before any work
    fail_next: int = 0  # the next N API requests are answered 500/503 before any work
    fail_on: str = ""  # ...of the endpoints whose "METHOD /path" starts with this; "" = any
    drop_rate: float = 0.0  # share of POSTs committed, then the connection dropped
    drop_next: int = 0  # the next N POSTs are committed, then the connection dropped
    slow_next: int = 0  # the next N POSTs are committed, then answered after `slow_seconds`
    slow_seconds: float = 5.0
    ref_dedup: bool = True  # False: a reused ref creates a second order (a detector for tests)
    #: the next N answers of the endpoints named by `garbage_on` (after the work is done) are
    #: replaced by HTTP 200 with `garbage`: "null" (`data: null`), "html" (a proxy's page),
    #: "types" (every field of `data` of a wrong type), "empty" (no body at all)
    garbage_next: int = 0
    garbage: str = "null"
    garbage_on: str = ""  # "METHOD /path" prefix, e.g. "GET /v3/mobile/check-ref"; "" = any
    #: gift `placeOrder` and a `ref` in its body: "ignore" (the English reference: accepted and
    #: ignored), "honour" (the Arabic guide: answered as `orderRef`, unique like top-up refs,
    #: shown on gift order views), "refuse" (400 ERR_VALIDATION naming `ref`; no order)
    gift_refs: str = "ignore"
    seed: int = 0

    def _coerce(self, name: str, value: Any) -> Any:
        if name == "gift_refs" and isinstance(value, bool):
            return "honour" if value else "ignore"  # a switch read as on/off
        return super()._coerce(name, value)


@dataclass
class Variants(Switches):
    """Where the documentation contradicts itself or is silent, which reading the emulator answers.

    The defaults follow the English API reference pages; each alternative is what another page of
    the documentation shows (README: "The emulator", assumptions).
    """

    NOUN = "variant"
    CHOICES = {
        "pagination": ("data", "meta", "both"),
        "products_type": ("data", "meta", "both", "array"),
        "partial_rounding": ("down", "up"),
    }

    #: where list answers put `pagination`: "data" (every list example), "meta" (the
    #: response-format page's field list), "both"
    pagination: str = "data"
    #: `/internet/products`: "data" (reference: `data.type`), "meta" (the guide: `meta.type`),
    #: "both", "array" (the Arabic guide: `data` is the bare list of products)
    products_type: str = "data"
    balance_currency: bool = False  # the changelog shows `"currency": "DZD"`; the reference not
    send_new_balance: bool = False  # the response-format page shows `newBalance` on mobile send
    #: sandbox gift orders cost nothing (the list example: `price_per_card: 0`,
    #: `fulfilled_amount: 0`); False charges the type's price like production
    sandbox_gift_free: bool = True
    #: a SANDBOX key's placeOrder accepts ids the catalog does not know (the list example holds an
    #: order of product "string", type "string") and fulfils them; False refuses them with 400
    sandbox_placeholder_ids: bool = True
    #: placeOrder without `quantity` (the Arabic guide sends none): this many cards; 0 = refused
    gift_quantity_default: int = 1
    #: TEST_PARTIAL delivers half the cards, rounded "down" (1 of 3; 0 of 1: REFUNDED) or "up"
    partial_rounding: str = "down"
    #: refund_message texts the documentation does not give (only 0600000002's is documented)
    refund_message: str = fx.REFUND_MESSAGE
    unknown_message: str = fx.UNKNOWN_MESSAGE
    getmenu_message: str = fx.GETMENU_MESSAGE


@dataclass(slots=True)
class Order:
    kind: str  # mobile | internet | gift
    id: str
    ref: str | None
    created: float  # clock seconds
    timeline: list[tuple[float, str]]  # (seconds after creation, status), ascending
    fields: dict[str, Any]
    debited: float
    ms: int = 0  # creation time on the provider's wall clock, ms since 1970, as listed
    refunded: float = 0.0
    applied: int = 1  # timeline entries already settled
    version: int = 0  # bumped when the timeline is rewritten (admin resolve)

    def status_at(self, now: float) -> str:
        status = self.timeline[0][1]
        for offset, name in self.timeline:
            if self.created + offset <= now:
                status = name
        return status


class ByTime(Generic[Item]):
    """Items kept in time order (ms since 1970) for windows and newest-first pages by bisection."""

    def __init__(self) -> None:
        self.keys: list[int] = []
        self.items: list[Item] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, ms: int, item: Item) -> None:
        if not self.keys or ms >= self.keys[-1]:
            self.keys.append(ms)
            self.items.append(item)
        else:  # a clock moved back (admin): keep the order, at O(n) for this rare insert
            i = bisect_right(self.keys, ms)
            self.keys.insert(i, ms)
            self.items.insert(i, item)

    def page(
        self, page: int, size: int, since: int | None = None, until: int | None = None
    ) -> tuple[list[Item], int]:
        """Page `page` (from 1) of `size`, newest first, of the items within [since, until]
        (inclusive, ms); and how many items the window holds."""
        lo = 0 if since is None else bisect_left(self.keys, since)
        hi = len(self.keys) if until is None else bisect_right(self.keys, until)
        total = max(0, hi - lo)
        top = hi - (page - 1) * size
        bottom = max(lo, top - size)
        chunk = self.items[bottom:top][::-1] if top > lo else []
        return chunk, total


@dataclass
class World:
    clock: Clock = field(default_factory=SystemClock)
    balance: float = 500_000.0
    keys: dict[str, ApiKey] = field(default_factory=dict)
    rate_limit: float | None = None  # requests per second, token bucket of that many
    faults: Faults = field(default_factory=Faults)
    variants: Variants = field(default_factory=Variants)
    #: the rate limit's time: real seconds by default (clients pace themselves in real time)
    rate_clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys = {SANDBOX_KEY: ApiKey(SANDBOX_KEY)}
        self.initial_balance = self.balance
        self.reset()

    def reset(self) -> None:
        self.balance = self.initial_balance
        self.orders: list[Order] = []
        self.by_id: dict[str, Order] = {}
        self.by_ref: dict[str, list[Order]] = {}
        kinds = ("mobile", "internet", "gift")
        self.by_kind: dict[str, ByTime[Order]] = {k: ByTime() for k in kinds}
        self.transactions: ByTime[dict[str, Any]] = ByTime()
        #: timeline steps not yet applied: (due clock second, tie-break, order, step, version)
        self._due: list[tuple[float, int, Order, int, int]] = []
        self.plans = {p["code"]: copy.deepcopy(p) for p in fx.DYNAMIC_PLANS + fx.FIXED_PLANS}
        self.internet = copy.deepcopy(fx.INTERNET_PRODUCTS)
        self.gift_types = copy.deepcopy(fx.GIFT_TYPES)
        self.failures: dict[str, list[float]] = {}
        self.blocked_until: dict[str, float] = {}
        self.calls: Counter[str] = Counter()
        self.call_log: list[tuple[float, str]] = []  # (rate_clock time, "METHOD /path")
        self.rate_limited = 0
        self.faults_injected: Counter[str] = Counter()
        self.random = random.Random(self.faults.seed)
        self._ids = itertools.count(1)
        self._cards = itertools.count(1)
        self._seq = itertools.count()
        self._tokens = float(self.rate_limit or 0)
        self._token_time: float | None = None

    @property
    def open(self) -> set[str]:
        """Ids of the orders with timeline steps still to come."""
        return {o.id for _, _, o, step, v in self._due if v == o.version and step == o.applied}

    # --- identifiers and time --------------------------------------------------------------------

    def new_id(self) -> str:
        return f"{int(self.clock.wall().timestamp()):08x}{next(self._ids):016x}"

    def request_id(self) -> str:
        return f"req_{int(self.clock.wall().timestamp())}_{secrets.token_hex(3)}"

    def timestamp(self, at: float | None = None) -> str:
        return iso(self.clock.wall(at))

    def ms(self, at: float | None = None) -> int:
        """The provider's wall time at clock second `at` (default now), in ms since 1970."""
        return epoch_ms(self.clock.wall(at))

    # --- rate limit: a token bucket refilled in real time ----------------------------------------

    def take_token(self, real_now: float) -> float | None:
        """Take a request token; None when allowed, else seconds until one is free."""
        if not self.rate_limit:
            return None
        rate = self.rate_limit
        if self._token_time is None:
            self._token_time = real_now
        self._tokens = min(rate, self._tokens + (real_now - self._token_time) * rate)
        self._token_time = real_now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / rate

    # --- money -----------------------------------------------------------------------------------

    def ledger(self, kind: str, amount: float, objid: str, note: str, at: float) -> None:
        old = self.balance
        credit = kind.startswith("REFUND")
        self.balance = round(old + amount if credit else old - amount, 2)
        ms = self.ms(at)
        self.transactions.add(
            ms,
            {
                "_id": self.new_id(),
                "type": kind,
                # The schema names `operation` without its values: ours are a guess (README).
                "operation": "credit" if credit else "debit",
                "amount": round(amount, 2),
                "oldBalance": old,
                "newBalance": self.balance,
                "objid": objid,
                "note": note,
                "time": ms_iso(ms),
            },
        )

    def add_order(self, order: Order, ledger_type: str, note: str) -> None:
        order.ms = self.ms(order.created)
        self.orders.append(order)
        self.by_id[order.id] = order
        self.by_kind[order.kind].add(order.ms, order)
        if order.ref is not None:
            self.by_ref.setdefault(order.ref, []).append(order)
        self._schedule(order)
        if order.debited:
            self.ledger(ledger_type, order.debited, order.id, note, order.created)

    def _schedule(self, order: Order) -> None:
        if order.applied < len(order.timeline):
            due = order.created + order.timeline[order.applied][0]
            heapq.heappush(self._due, (due, next(self._seq), order, order.applied, order.version))

    def settle(self) -> None:
        """Apply every status change due by now, in time order: credits for refunds and
        partial fills, internet card codes."""
        now = self.clock.now()
        due = self._due
        while due and due[0][0] <= now:
            at, _, order, step, version = heapq.heappop(due)
            if version != order.version or step != order.applied:
                continue  # superseded by a rewritten timeline
            order.applied += 1
            self._on_status(order, order.timeline[step][1], at)
            self._schedule(order)

    def _on_status(self, order: Order, status: str, at: float) -> None:
        refund = 0.0
        if status == "REFUNDED":
            refund = order.debited - order.refunded
        elif status == "PARTIALLY_FILLED":
            f = order.fields
            refund = (f["quantity"] - f["fulfilled_quantity"]) * f["price_per_card"]
        if refund > 0:
            order.refunded += refund
            kind = {"mobile": "REFUND-FLEXY", "internet": "REFUND-ADSL", "gift": "REFUND-ORDER"}
            self.ledger(kind[order.kind], refund, order.id, f"refund {order.id}", at)
        if status == "FULFILLED" and order.kind == "internet" and "card_code" not in order.fields:
            order.fields["card_code"] = f"{self.random.randrange(10**11, 10**12)}"
            order.fields["num_trans"] = f"AT-{self.clock.wall(at).year}-{next(self._ids):05d}"
            order.fields["date_traitement"] = self.timestamp(at)

    def resolve(self, order: Order, status: str) -> None:
        """Admin: make `status` the order's next and last step, effective now."""
        now = self.clock.now()
        self.settle()
        order.timeline = order.timeline[: order.applied] + [(now - order.created, status)]
        order.version += 1
        self._schedule(order)
        self.settle()

    # --- statistics ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        per_ref = Counter({ref: len(orders) for ref, orders in self.by_ref.items()})
        kinds = Counter(o.kind for o in self.orders)
        return {
            "calls": dict(sorted(self.calls.items())),
            "total_calls": sum(self.calls.values()),
            "rate_limited": self.rate_limited,
            "faults_injected": dict(self.faults_injected),
            "orders": len(self.orders),
            "orders_per_kind": dict(kinds),
            "orders_per_ref": dict(per_ref),
            "max_orders_per_ref": max(per_ref.values(), default=0),
            "balance": self.balance,
        }
