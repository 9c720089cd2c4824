"""What the OneClickDz API answers, as typed values, and the parsing of its `data` objects.

Parsing is tolerant (`.get` with defaults): a field the provider drops or renames degrades a
value, it does not crash a run. A gift card's code is cash: no repr shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from .clock import parse_iso
from .errors import OutcomeUnknown

T = TypeVar("T")


@dataclass(frozen=True)
class KeyInfo:
    username: str
    type: str  # SANDBOX | PRODUCTION
    scope: str  # READ-WRITE | READ-ONLY
    enabled: bool


@dataclass(frozen=True)
class MobilePlan:
    code: str
    name: str
    operator: str
    cost: float | None  # wholesale factor on face value; None when the API omits it
    enabled: bool
    min_amount: int | None = None  # dynamic plans
    max_amount: int | None = None
    amount: int | None = None  # fixed plans

    @property
    def is_fixed(self) -> bool:
        return self.amount is not None


@dataclass(frozen=True)
class InternetProduct:
    type: str
    value: int
    cost: float
    available: bool


@dataclass(frozen=True)
class GiftProduct:
    id: str
    title: str
    enabled: bool
    category: str
    region: str | None = None


@dataclass(frozen=True)
class GiftType:
    id: str
    name: str
    price: float
    quantity: int


@dataclass(frozen=True)
class Submitted:
    order_id: str
    ref: str | None


@dataclass(frozen=True)
class Offer:
    typename: str
    plan_code: str
    amount: int | None

    def __str__(self) -> str:
        return f"{self.plan_code} {self.amount} DA" if self.amount is not None else self.plan_code


@dataclass(frozen=True)
class Card:
    """A delivered gift card. Its code is cash: the repr never shows it."""

    value: str = field(repr=False)
    serial: str = ""


def mask(code: str) -> str:
    """`SANDBOX-CARD-12` -> `•••••••••••D-12`: enough to tell cards apart, not to use one."""
    keep = min(4, len(code) // 3)
    return "•" * (len(code) - keep) + code[len(code) - keep :] if code else ""


@dataclass(frozen=True)
class TopupStatus:
    """A mobile or internet top-up as the API reports it."""

    kind: str  # mobile | internet
    id: str
    ref: str | None
    status: str
    amount: float | None
    debited: float | None
    created_at: datetime | None
    target: str
    product: str
    refund_message: str | None = None
    suggested_offers: tuple[Offer, ...] = ()
    card_code: str | None = field(default=None, repr=False)
    num_trans: str | None = None


@dataclass(frozen=True)
class GiftOrder:
    id: str
    status: str
    quantity: int
    product: str
    type: str
    created_at: datetime | None
    fulfilled_quantity: int | None = None
    fulfilled_amount: float | None = None
    price_per_card: float | None = None
    cards: tuple[Card, ...] = ()


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    total_pages: int
    total_results: int


# --- parsing -------------------------------------------------------------------------------------


def parse_time(value: Any) -> datetime | None:
    try:
        return parse_iso(value) if isinstance(value, str) else None
    except ValueError:
        return None


def parse_topup(kind: str, d: dict[str, Any]) -> TopupStatus:
    offers = tuple(
        Offer(str(o.get("typename", "")), str(o.get("plan_code", "")), o.get("amount"))
        for o in d.get("suggested_offers") or []
        if isinstance(o, dict)
    )
    if kind == "mobile":
        target, product = str(d.get("MSSIDN", "")), str(d.get("plan_code", ""))
    else:
        target, product = str(d.get("number", "")), str(d.get("type", ""))
    return TopupStatus(
        kind=kind,
        id=str(d.get("_id", "")),
        ref=d.get("ref"),
        status=str(d.get("status", "")),
        amount=d.get("topup_amount"),
        debited=d.get("balance_amount"),
        created_at=parse_time(d.get("created_at")),
        target=target,
        product=product,
        refund_message=d.get("refund_message") or None,
        suggested_offers=offers,
        card_code=d.get("card_code"),
        num_trans=d.get("num_trans"),
    )


def parse_gift(d: dict[str, Any]) -> GiftOrder:
    cards = tuple(
        Card(str(c.get("value", "")), str(c.get("serial", "")))
        for c in d.get("cards") or []
        if isinstance(c, dict)
    )
    return GiftOrder(
        id=str(d.get("_id", "")),
        status=str(d.get("status", "")),
        quantity=int(d.get("quantity") or 0),
        product=str(d.get("product", "")),
        type=str(d.get("type", "")),
        created_at=parse_time(d.get("time")),
        fulfilled_quantity=d.get("fulfilled_quantity"),
        fulfilled_amount=d.get("fulfilled_amount"),
        price_per_card=d.get("price_per_card"),
        cards=cards,
    )


def parse_submitted(data: Any, id_field: str, what: str) -> Submitted:
    """The id of an accepted order; an acceptance without one is an unknown outcome."""
    if not isinstance(data, dict) or not data.get(id_field):
        raise OutcomeUnknown(f"the API accepted {what} but its answer has no {id_field}")
    ref = data.get("topupRef") or data.get("orderRef")
    return Submitted(str(data[id_field]), str(ref) if ref is not None else None)
