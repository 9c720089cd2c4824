"""What the OneClickDz API answers, as typed values, and the parsing of its `data` objects.

Parsing is tolerant (`Reader`): an optional field the provider drops, renames or sends in another
type degrades a value, it does not crash a run; a required one that is missing or unreadable is
one `UnreadableAnswer` naming the endpoint and the field. A gift card's code is cash: no repr
shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from .clock import parse_iso
from .errors import UnreadableAnswer

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
    """An accepted order. `ref` is the ref the API answered with (`topupRef`, or `orderRef` for a
    gift order): None for a gift order means the API did not honour the ref sent."""

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
    #: internet: when Algérie Télécom processed the card (ISO text, as given); the docs say to
    #: deliver it to the customer with the card code
    date_traitement: str | None = None
    #: undocumented links to a follow-up or retried order: kept, never acted upon
    follow_orderid: str | None = None
    retry_orderid: str | None = None


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
    ref: str | None = None  # when the API honours gift refs (`ref` on the order)


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


def _described(value: Any, expected: str) -> str:
    """What a value is, for an error message, without echoing it (it may be a card code)."""
    if value is None:
        return "is empty (null)"
    if isinstance(value, bool):
        kind = "true/false"
    elif isinstance(value, int | float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "text"
    elif isinstance(value, list):
        kind = "a list"
    else:
        kind = "an object"
    return f"is {kind}, not {expected}"


class Reader:
    """One JSON object of an API answer, read field by field on behalf of one endpoint.

    Tolerant where the documentation is loose: an optional field that is missing, null or of
    another type reads as None (a list as empty); a number may come as numeric text, and an id or
    a code as a whole number. A required field that is missing or of the wrong type raises
    `UnreadableAnswer` naming the endpoint and the field: one sentence, never a KeyError.
    """

    def __init__(self, obj: Any, endpoint: str, path: str = "data") -> None:
        if not isinstance(obj, dict):
            raise UnreadableAnswer(endpoint, path, _described(obj, "an object"))
        self.obj: dict[str, Any] = obj
        self.endpoint = endpoint
        self.path = path

    def _fail(self, name: str, expected: str) -> UnreadableAnswer:
        value = self.obj.get(name)
        problem = "is missing" if name not in self.obj else _described(value, expected)
        return UnreadableAnswer(self.endpoint, f"{self.path}.{name}", problem)

    def text(self, name: str, *, required: bool = False, numbers: bool = True) -> str | None:
        """A string; with `numbers`, a whole number is taken as its digits (ids, card codes)."""
        value = self.obj.get(name)
        if isinstance(value, str):
            return value
        if numbers and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if required:
            raise self._fail(name, "text")
        return None

    def number(self, name: str, *, required: bool = False) -> float | None:
        value = self.obj.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            if math.isfinite(value):
                return float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
        if required:
            raise self._fail(name, "a number")
        return None

    def integer(self, name: str, *, required: bool = False) -> int | None:
        number = self.number(name, required=required)
        if number is not None and number == int(number):
            return int(number)
        if required:
            raise self._fail(name, "a whole number")
        return None

    def boolean(self, name: str, *, default: bool | None = None) -> bool | None:
        value = self.obj.get(name)
        if isinstance(value, bool):
            return value
        if value in (0, 1) and not isinstance(value, bool):
            return bool(value)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return default

    def child(self, name: str, *, required: bool = False) -> Reader | None:
        value = self.obj.get(name)
        if isinstance(value, dict):
            return Reader(value, self.endpoint, f"{self.path}.{name}")
        if required:
            raise self._fail(name, "an object")
        return None

    def items(self, name: str, *, required: bool = False, strict: bool = True) -> list[Reader]:
        """The objects of a list field. Missing or null: an error if `required`, else empty.
        Present but not a list of objects: an error, unless not `strict` (a list shown to a
        person only, such as suggested offers), then empty: plans, orders and cards are never
        guessed."""
        value = self.obj.get(name)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            if required or strict:
                raise self._fail(name, "a list")
            return []
        return [
            Reader(v, self.endpoint, f"{self.path}.{name}[{i}]")
            for i, v in enumerate(value)
            if strict or isinstance(v, dict)
        ]


def parse_topup(
    kind: str, d: Any, endpoint: str = "a top-up check", path: str = "data"
) -> TopupStatus:
    """A mobile or internet top-up; `_id` and `status` are required, the rest tolerated."""
    r = Reader(d, endpoint, path)
    offers = []
    for o in r.items("suggested_offers", strict=False):
        code = o.text("plan_code")
        if code:
            offers.append(Offer(o.text("typename") or "", code, o.integer("amount")))
    if kind == "mobile":
        target, product = r.text("MSSIDN") or "", r.text("plan_code") or ""
    else:
        target, product = r.text("number") or "", r.text("type") or ""
    return TopupStatus(
        kind=kind,
        id=r.text("_id", required=True) or "",
        ref=r.text("ref"),
        status=r.text("status", required=True, numbers=False) or "",
        amount=r.number("topup_amount"),
        debited=r.number("balance_amount"),
        created_at=parse_time(r.text("created_at")),
        target=target,
        product=product,
        refund_message=r.text("refund_message", numbers=False) or None,
        suggested_offers=tuple(offers),
        card_code=r.text("card_code"),
        num_trans=r.text("num_trans"),
        date_traitement=r.text("date_traitement", numbers=False),
        follow_orderid=r.text("follow_orderid"),
        retry_orderid=r.text("retry_orderid"),
    )


def parse_gift(d: Any, endpoint: str = "a gift order check", path: str = "data") -> GiftOrder:
    """A gift order; `_id`, `status`, `quantity` and every card's `value` are required."""
    r = Reader(d, endpoint, path)
    cards = tuple(
        Card(c.text("value", required=True) or "", c.text("serial") or "") for c in r.items("cards")
    )
    return GiftOrder(
        id=r.text("_id", required=True) or "",
        status=r.text("status", required=True, numbers=False) or "",
        quantity=r.integer("quantity", required=True) or 0,
        product=r.text("product") or "",
        type=r.text("type") or "",
        created_at=parse_time(r.text("time")),
        fulfilled_quantity=r.integer("fulfilled_quantity"),
        fulfilled_amount=r.number("fulfilled_amount"),
        price_per_card=r.number("price_per_card"),
        cards=cards,
        ref=r.text("ref"),
    )


def parse_submitted(data: Any, id_field: str, what: str, ref_field: str = "topupRef") -> Submitted:
    """The id of an accepted order (and the ref the API gave it, if any); an acceptance without
    an id is an unknown outcome (`UnreadableAnswer`): the order may exist."""
    r = Reader(data, what)
    return Submitted(r.text(id_field, required=True) or "", r.text(ref_field))
