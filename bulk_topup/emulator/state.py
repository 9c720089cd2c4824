"""The emulator's world: keys, balance, orders and their timelines, stock, faults and statistics.

Order statuses are not pushed by background tasks: each order carries a timeline of
(seconds after creation, status) and its status is read off the clock when asked. `settle()`
applies what has happened since the last request (refund credits, ledger lines) in time order.
"""

from __future__ import annotations

import copy
import itertools
import random
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..clock import Clock, SystemClock, iso
from . import fixtures as fx

SANDBOX_KEY = "emulator-sandbox-key"

FINAL = {"FULFILLED", "REFUNDED", "PARTIALLY_FILLED"}


@dataclass(frozen=True)
class ApiKey:
    key: str
    type: str = "SANDBOX"  # SANDBOX | PRODUCTION
    scope: str = "READ-WRITE"  # READ-WRITE | READ-ONLY
    username: str = "+213665983439"
    allowed_ips: tuple[str, ...] = ()  # the key's whitelist; empty means any address


@dataclass
class Faults:
    """Faults on demand. Shares are drawn from a seeded generator, so runs repeat."""

    latency: float = 0.0  # seconds added before every API answer (after the work is done)
    error_rate: float = 0.0  # share of API requests answered 500/503 before any work
    fail_next: int = 0  # the next N API requests are answered 503 before any work
    drop_rate: float = 0.0  # share of POSTs committed, then the connection dropped
    drop_next: int = 0  # the next N POSTs are committed, then the connection dropped
    slow_next: int = 0  # the next N POSTs are committed, then answered after `slow_seconds`
    slow_seconds: float = 5.0
    ref_dedup: bool = True  # False: a reused ref creates a second order (a detector for tests)
    seed: int = 0

    def update(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            if not hasattr(self, name):
                raise ValueError(f"unknown fault {name!r}")
            setattr(self, name, type(getattr(self, name))(value))


@dataclass
class Order:
    kind: str  # mobile | internet | gift
    id: str
    ref: str | None
    created: float  # clock seconds
    timeline: list[tuple[float, str]]  # (seconds after creation, status), ascending
    fields: dict[str, Any]
    debited: float
    refunded: float = 0.0
    applied: int = 1  # timeline entries already settled

    def status_at(self, now: float) -> str:
        status = self.timeline[0][1]
        for offset, name in self.timeline:
            if self.created + offset <= now:
                status = name
        return status


@dataclass
class World:
    clock: Clock = field(default_factory=SystemClock)
    balance: float = 500_000.0
    keys: dict[str, ApiKey] = field(default_factory=dict)
    rate_limit: float | None = None  # requests per second, token bucket of that many
    faults: Faults = field(default_factory=Faults)
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
        self.open: set[str] = set()
        self.transactions: list[dict[str, Any]] = []
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
        self._tokens = float(self.rate_limit or 0)
        self._token_time: float | None = None

    # --- identifiers and time --------------------------------------------------------------------

    def new_id(self) -> str:
        return f"{int(self.clock.wall().timestamp()):08x}{next(self._ids):016x}"

    def request_id(self) -> str:
        return f"req_{int(self.clock.wall().timestamp())}_{secrets.token_hex(3)}"

    def timestamp(self, at: float | None = None) -> str:
        return iso(self.clock.wall(at))

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
        self.transactions.append(
            {
                "_id": self.new_id(),
                "type": kind,
                "operation": "credit" if credit else "debit",
                "amount": round(amount, 2),
                "oldBalance": old,
                "newBalance": self.balance,
                "objid": objid,
                "note": note,
                "time": self.timestamp(at),
                "_at": at,
            }
        )

    def add_order(self, order: Order, ledger_type: str, note: str) -> None:
        self.orders.append(order)
        self.by_id[order.id] = order
        if order.ref is not None:
            self.by_ref.setdefault(order.ref, []).append(order)
        self.open.add(order.id)
        if order.debited:
            self.ledger(ledger_type, order.debited, order.id, note, order.created)

    def settle(self) -> None:
        """Apply every status change due by now: credits for refunds and partial fills."""
        now = self.clock.now()
        for oid in sorted(self.open, key=lambda i: self.by_id[i].created):
            order = self.by_id[oid]
            while order.applied < len(order.timeline):
                offset, status = order.timeline[order.applied]
                at = order.created + offset
                if at > now:
                    break
                order.applied += 1
                self._on_status(order, status, at)
            if order.applied >= len(order.timeline):
                self.open.discard(oid)

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
        self.open.add(order.id)
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
