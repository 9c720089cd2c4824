"""Typed orders: what one row of a sheet asks for, and every problem found in it.

Every problem of every row is collected as data (`Problem`), each naming the spreadsheet row and
the column, written for the person who has to fix the sheet. A repair (a restored leading zero,
`+213` converted, spaces removed) is kept on its row as a warning, so nothing changes silently.

A problem's message is a `Text`: English as a value (the journal and the plan file keep it so),
shown in the reader's language with `Problem.shown()`.

    validation  build_orders: a sheet's rows through the rules, with refs and identities
      ├── rules      the checks of one row, per kind (mobile, internet, gift card)
      └── identity   refs, duplicates, and who a payment is for
    orders      (here) Order, Problem, Validation; the kind of a row; totals lines
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .i18n import N_, Text, _, shown
from .normalise import (
    INTERNET_RE,
)
from .refs import payload_hash
from .sheet import KEY_COLUMNS, SheetRow, normalise_header

KINDS = ("mobile", "internet", "giftcard")
#: The column that names a row's recipient, per kind (where a row-wide problem is reported).
TARGET_COLUMN = {"mobile": "phone", "internet": "number", "giftcard": "product_id"}
_KIND_WORDS = {
    "mobile": "mobile",
    "flexy": "mobile",
    "topup": "mobile",
    "recharge": "mobile",
    "credit": "mobile",
    "internet": "internet",
    "adsl": "internet",
    "4g": "internet",
    "idoom": "internet",
    "giftcard": "giftcard",
    "gift": "giftcard",
    "gift card": "giftcard",
    "carte cadeau": "giftcard",
    "cartecadeau": "giftcard",
    "carte": "giftcard",
}


#: A cell reading one of these (normalised) marks a totals line, not an order.
TOTAL_WORDS = {"total", "totaux", "totals", "totalgeneral", "grandtotal", "soustotal",
               "subtotal", "somme", "sum", "montanttotal", "totalda", "totaldzd",
               "totalgen"}  # fmt: skip


#: An order in words (also `journal.Row.describe`).
TO_NUMBER = N_("{product} {amount} DA to {target}")
TO_LINE = N_("{product} {amount} DA to line {target}")


@dataclass(frozen=True, slots=True)
class Problem:
    row: int
    column: str  # the header as the user wrote it (`Numéro`)
    message: str
    severity: str = "error"  # error | warning
    field: str = ""  # the canonical column (`phone`), when the problem is about one

    def __str__(self) -> str:
        return f"row {self.row}, {self.column}: {self.message}"

    def shown(self) -> str:
        """The problem in the reader's language: `ligne 4, Numéro : ...`."""
        return _("row {row}, {column}: {message}").format(
            row=self.row, column=self.column, message=shown(self.message)
        )


@dataclass(slots=True)
class Order:
    """One row of the sheet, normalised. `payload` is exactly what would be sent."""

    row: int
    index: int  # position among the sheet's data rows
    kind: str
    target: str = ""  # phone, internet number or gift product id
    product: str = ""  # plan code, internet type or gift type id
    amount: int | None = None  # mobile amount or internet value, DZD
    quantity: int | None = None  # gift cards
    user_ref: str | None = None
    ref: str = ""
    face_value: float = 0.0
    cost: float = 0.0
    operator: str = ""
    label: str = ""  # the plan, product or type in words
    cells: dict[str, str] = field(default_factory=dict)  # the row as read
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    #: who is paid: kind + normalised target (mobile, internet); for a gift card the row's own
    #: identity (its ref, the person's columns, or its row number: GIFT_ROW_IDENTITY)
    recipient: str | None = None
    #: the row's own columns (a name, an employee id) when they tell this row apart: "" if not
    person: str = ""
    labels: dict[str, str] = field(default_factory=dict, repr=False)  # column -> header written

    @property
    def valid(self) -> bool:
        return not self.errors

    def error(self, column: str, message: str) -> None:
        """The cell's error; a cell already in error keeps its first (the cause, such as a formula
        never computed, rather than what follows from it, such as "is empty")."""
        if self.has_error(column):
            return
        self.errors.append(Problem(self.row, self.labels.get(column, column), message, "error",
                                   column))  # fmt: skip

    def warn(self, column: str, message: str) -> None:
        self.warnings.append(
            Problem(self.row, self.labels.get(column, column), message, "warning", column)
        )

    def has_error(self, column: str) -> bool:
        return any(p.field == column for p in self.errors)

    def payload(self) -> dict[str, Any]:
        """The request body of this order, in the API's own field names (ref excluded)."""
        if self.kind == "mobile":
            return {"plan_code": self.product, "MSSIDN": self.target, "amount": self.amount}
        if self.kind == "internet":
            return {"type": self.product, "number": self.target, "value": self.amount}
        return {"productId": self.target, "typeId": self.product, "quantity": self.quantity}

    @property
    def payload_hash(self) -> str:
        return payload_hash({"kind": self.kind, **self.payload()})

    def describe(self) -> Text:
        """The order in words (English as a value; `shown()` in the reader's language)."""
        if self.kind == "mobile":
            return Text(TO_NUMBER, product=self.product, amount=self.amount, target=self.target)
        if self.kind == "internet":
            return Text(TO_LINE, product=self.product, amount=self.amount, target=self.target)
        return Text(
            N_("{quantity} x {label} ({product})"),
            quantity=self.quantity,
            label=self.label or self.product,
            product=self.target,
        )


@dataclass
class Validation:
    orders: list[Order]
    catalog_notes: list[str]
    summary: dict[str, Any]
    sheet_notes: list[str] = field(default_factory=list)  # sheets not read, columns carried
    skipped: list[Problem] = field(default_factory=list)  # rows that are not orders (totals)
    #: catalog parts neither the API nor a cache could give: their checks were not made
    unchecked: list[str] = field(default_factory=list)

    @property
    def valid(self) -> list[Order]:
        return [o for o in self.orders if o.valid]

    @property
    def invalid(self) -> list[Order]:
        return [o for o in self.orders if not o.valid]

    @property
    def problems(self) -> list[Problem]:
        return [p for o in self.orders for p in o.errors + o.warnings] + self.skipped


# --- normalisers ---------------------------------------------------------------------------------


def kind_word(text: str) -> str | None:
    t = text.strip().lower()
    return _KIND_WORDS.get(t) or _KIND_WORDS.get(t.replace("_", " ").replace("-", " "))


def infer_kind(cells: dict[str, str]) -> tuple[str | None, Text | None]:
    given = cells.get("kind", "").strip()
    typed = cells.get("internet_type", "").strip()
    if not given and typed and kind_word(typed) and typed.upper() not in INTERNET_RE:
        given = typed  # a `Type` column used for the kind of order (Mobile, Carte cadeau)
    if given:
        kind = kind_word(given)
        if kind is None:
            return None, Text(
                N_('"{given}" is not a kind of order; write mobile, internet or giftcard'),
                given=given,
            )
        return kind, None
    if cells.get("product_id", "").strip() or cells.get("type_id", "").strip():
        return "giftcard", None
    if typed:
        return "internet", None
    if cells.get("number", "").strip() and not cells.get("phone", "").strip():
        return "internet", None
    return "mobile", None


def totals_line(row: SheetRow, labels: dict[str, str]) -> Problem | None:
    """A warning when `row` is a totals line (`TOTAL`, `Total général`, `Somme`), not an order.

    A row is one when a cell reads a totals word and no order column that names a recipient
    (phone, line number, product) holds a digit.
    """
    if any(any(ch.isdigit() for ch in row.cells.get(c, "")) for c in KEY_COLUMNS if c in row.cells):
        return None
    for column, text in row.cells.items():
        if text and normalise_header(text) in TOTAL_WORDS:
            return Problem(
                row.number,
                labels.get(column, column),
                Text(N_('"{text}": a totals line, not an order; skipped'), text=text),
                "warning",
                column,
            )
    return None
