"""Rows of text to typed orders: normalise what is certain, reject what is not, say why.

Every problem of every row is collected as data (`Problem`), each naming the spreadsheet row and
the column, written for the person who has to fix the sheet. A repair (a restored leading zero,
`+213` converted, spaces removed) is kept on its row as a warning, so nothing changes silently.

A problem's message is a `Text`: English as a value (the journal and the plan file keep it so),
shown in the reader's language with `Problem.shown()`.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog
from .i18n import N_, Text, _, shown
from .normalise import (
    INTERNET_RE,
    normalise_internet,
    normalise_mobile,
    parse_dzd,
    parse_quantity,
)
from .refs import USER_REF_RE, make_ref, payload_hash
from .sheet import ALIASES, KEY_COLUMNS, Sheet, SheetRow, normalise_header

PREFIX_OPERATOR = {"05": "Ooredoo", "06": "Mobilis", "07": "Djezzy"}
PLAN_OPERATOR_PREFIX = {
    "Ooredoo": "05",
    "Mobilis": "06",
    "Pixx": "06",
    "GMobilis": "06",
    "Djezzy": "07",
}
KINDS = ("mobile", "internet", "giftcard")
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


def _kind_word(text: str) -> str | None:
    t = text.strip().lower()
    return _KIND_WORDS.get(t) or _KIND_WORDS.get(t.replace("_", " ").replace("-", " "))


def infer_kind(cells: dict[str, str]) -> tuple[str | None, Text | None]:
    given = cells.get("kind", "").strip()
    typed = cells.get("internet_type", "").strip()
    if not given and typed and _kind_word(typed) and typed.upper() not in INTERNET_RE:
        given = typed  # a `Type` column used for the kind of order (Mobile, Carte cadeau)
    if given:
        kind = _kind_word(given)
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


# --- validation ----------------------------------------------------------------------------------


def build_orders(
    sheet: Sheet, batch: str, catalog: Catalog | None, *, allow_duplicates: bool = False
) -> Validation:
    """Every row of `sheet` as an `Order`, validated against `catalog`, with its ref."""
    catalog = catalog or Catalog(missing=["plans", "internet", "gift", "gift_types"])
    labels = sheet.labels
    orders: list[Order] = []
    skipped: list[Problem] = []
    for row in sheet.rows:
        total = totals_line(row, labels)
        if total:
            skipped.append(total)
        else:
            orders.append(_order(row, len(orders), catalog, labels))
    _check_gift_stock(orders, catalog)
    _assign_persons(orders)
    duplicates = _assign_refs(orders, batch, allow_duplicates)
    _assign_recipients(orders)
    notes = _catalog_notes(catalog)
    summary = summarise(orders, duplicates)
    summary["warnings"] += len(skipped)
    summary["skipped"] = [{"row": p.row, "why": p.message} for p in skipped]
    return Validation(orders, notes, summary, list(sheet.notes), skipped, list(catalog.missing))


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


def _order(row: SheetRow, index: int, catalog: Catalog, labels: dict[str, str]) -> Order:
    cells = row.cells
    kind, kind_error = infer_kind(cells)
    order = Order(row.number, index, kind or "mobile", cells=cells, labels=labels)
    if kind_error:
        order.error("kind", kind_error)
        return order
    if row.hidden:
        order.error(
            _TARGET_COLUMN.get(order.kind, "phone"),
            Text(N_("this row is hidden in the sheet: unhide it to send it, or delete it")),
        )
    for column, error in sorted(row.excel_errors.items()):
        order.error(
            column,
            Text(N_("the cell shows an Excel error ({error}); type the value itself"), error=error),
        )
    for column in sorted(row.formulas & set(ALIASES) - set(row.excel_errors)):
        value = cells.get(column, "")
        if value:
            order.warn(
                column,
                Text(
                    N_("the cell holds a formula; its last computed value {value!r} is used"),
                    value=value,
                ),
            )
        else:
            order.error(
                column,
                Text(N_("the cell holds a formula with no computed value; type the value itself")),
            )
    user_ref = cells.get("ref", "").strip()
    if user_ref:
        if USER_REF_RE.match(user_ref):
            order.user_ref = user_ref
        else:
            order.error(
                "ref",
                Text(
                    N_('"{ref}" is not a usable ref: at most 40 letters, digits, _ or -'),
                    ref=user_ref,
                ),
            )
    if order.kind == "mobile":
        _mobile(order, cells, catalog)
    elif order.kind == "internet":
        _internet(order, cells, catalog)
    else:
        _gift(order, cells, catalog)
    return order


def _amount(order: Order, cells: dict[str, str], *names: str) -> tuple[int | None, str]:
    for name in names:
        if cells.get(name, "").strip():
            value, repair, error = parse_dzd(cells[name])
            if error:
                order.error(name, error)
            elif repair:
                order.warn(name, repair)
            return value, name
    return None, names[0]


def _set_target(order: Order, column: str, normalised: tuple[str, list[Text], Text | None]) -> None:
    """The normalised number on the order, each repair a warning; or the error."""
    number, repairs, error = normalised
    if error:
        order.error(column, error)
        return
    order.target = number
    for note in repairs:
        order.warn(column, Text(N_("{repair}: read as {number}"), repair=note, number=number))


def _target_column(cells: dict[str, str], own: str, other: str) -> str:
    """The column holding a row's number: its kind's own column, unless only the other one is
    filled (an internet line typed under `Numéro`). Both empty: the kind's own column."""
    if not cells.get(own, "").strip() and cells.get(other, "").strip():
        return other
    return own if own in cells or other not in cells else other


def _mobile(order: Order, cells: dict[str, str], catalog: Catalog) -> None:
    column = _target_column(cells, "phone", "number")
    _set_target(order, column, normalise_mobile(cells.get(column, "")))
    code = cells.get("plan_code", "").strip()
    amount, amount_col = _amount(order, cells, "amount", "value")
    order.amount = amount
    if not code:
        order.error(
            "plan_code",
            Text(
                N_(
                    "is empty; write a plan code such as PREPAID_DJEZZY (see: bulk-topup catalog "
                    "mobile)"
                )
            ),
        )
        return
    order.product = code
    if amount is not None:  # without the plan's cost factor, face value is the safe estimate
        order.face_value = order.cost = float(amount)
    if "plans" in catalog.missing:
        return
    plan = catalog.plans.get(code)
    if plan is None:
        folded = {c.upper(): c for c in catalog.plans}
        if code.upper() in folded:
            plan = catalog.plans[folded[code.upper()]]
            order.warn("plan_code", Text(N_('"{code}" read as {plan}'), code=code, plan=plan.code))
            order.product = plan.code
        else:
            close = difflib.get_close_matches(code.upper(), list(folded), n=1, cutoff=0.6)
            if close:
                message = Text(
                    N_(
                        '"{code}" is not a plan of the provider; did you mean {close}? (see: '
                        "bulk-topup catalog mobile)"
                    ),
                    code=code,
                    close=folded[close[0]],
                )
            else:
                message = Text(
                    N_('"{code}" is not a plan of the provider (see: bulk-topup catalog mobile)'),
                    code=code,
                )
            order.error("plan_code", message)
            return
    order.label, order.operator = plan.name, plan.operator
    if not plan.enabled:
        order.error(
            "plan_code",
            Text(
                N_(
                    "plan {plan} is switched off by the provider for now; choose another plan or "
                    "try later"
                ),
                plan=plan.code,
            ),
        )
    if plan.is_fixed:
        if amount is None:
            order.amount = plan.amount
        elif amount != plan.amount:
            order.error(
                amount_col,
                Text(
                    N_(
                        "plan {plan} is a fixed {amount} DA offer; leave the amount empty or "
                        "write {amount}"
                    ),
                    plan=plan.code,
                    amount=plan.amount,
                ),
            )
    elif amount is None:
        if not order.has_error(amount_col):
            order.error(
                amount_col,
                Text(
                    N_("is empty; plan {plan} needs an amount from {low} to {high} DA"),
                    plan=plan.code,
                    low=plan.min_amount,
                    high=plan.max_amount,
                ),
            )
    elif (
        plan.min_amount is not None
        and plan.max_amount is not None
        and not (plan.min_amount <= amount <= plan.max_amount)
    ):
        order.error(
            amount_col,
            Text(
                N_("{amount} DA is outside what plan {plan} allows ({low} to {high} DA)"),
                amount=amount,
                plan=plan.code,
                low=plan.min_amount,
                high=plan.max_amount,
            ),
        )
    if order.amount is not None:
        order.face_value = float(order.amount)
        order.cost = round(order.amount * (plan.cost if plan.cost is not None else 1.0), 2)
    expected = PLAN_OPERATOR_PREFIX.get(plan.operator)
    if order.target and expected and order.target[:2] != expected:
        looks = PREFIX_OPERATOR.get(order.target[:2])
        template = (
            N_(
                "{number} looks like a {looks} number but plan {plan} is {operator}; numbers can "
                "be ported, so check it"
            )
            if looks
            else N_(
                "{number} looks like another operator's number but plan {plan} is {operator}; "
                "numbers can be ported, so check it"
            )
        )
        order.warn(
            column,
            Text(
                template, number=order.target, looks=looks, plan=plan.code, operator=plan.operator
            ),
        )


def _internet(order: Order, cells: dict[str, str], catalog: Catalog) -> None:
    raw_type = cells.get("internet_type", "").strip()
    kind = raw_type.upper().replace(" ", "").replace("-", "")
    kind = {"4GLTE": "4G", "LTE": "4G", "4GLTE.": "4G", "IDOOM4G": "4G"}.get(kind, kind)
    if kind not in INTERNET_RE:
        given = cells.get("kind", "").strip().upper()
        if not raw_type and given in INTERNET_RE:
            kind = given
        else:
            order.error(
                "internet_type",
                Text(N_('"{given}" is not ADSL or 4G'), given=raw_type)
                if raw_type
                else Text(N_("is empty; write ADSL or 4G")),
            )
            kind = ""
    order.product = kind
    column = _target_column(cells, "number", "phone")
    if kind:
        _set_target(order, column, normalise_internet(kind, cells.get(column, "")))
    value, value_col = _amount(order, cells, "value", "amount")
    order.amount = value
    if value is None:
        if not order.has_error(value_col):
            order.error(value_col, Text(N_("is empty; write the card value in DA (e.g. 1000)")))
        return
    order.face_value = float(value)
    order.cost = float(value)
    if not kind or "internet" in catalog.missing:
        return
    product = catalog.internet_product(kind, value)
    offered = sorted(p.value for p in catalog.internet.get(kind, []) if p.available)
    if product is None:
        order.error(
            value_col,
            Text(
                N_("{value} DA is not a {kind} card value; the provider offers {offered} DA"),
                value=value,
                kind=kind,
                offered=", ".join(map(str, offered)),
            ),
        )
    elif not product.available:
        order.error(
            value_col,
            Text(
                N_("{kind} {value} DA cards are out of stock; available now: {offered} DA"),
                kind=kind,
                value=value,
                offered=", ".join(map(str, offered)),
            ),
        )
    else:
        order.cost = product.cost
    order.label = f"{kind} {value} DA"


def _gift(order: Order, cells: dict[str, str], catalog: Catalog) -> None:
    pid = cells.get("product_id", "").strip()
    tid, tcol = cells.get("type_id", "").strip(), "type_id"
    typed = cells.get("internet_type", "").strip()
    if not tid and typed and not _kind_word(typed):
        tid, tcol = typed, "internet_type"  # one `Type` column for the card type and ADSL/4G
    qty_text = cells.get("quantity", "").strip()
    if not pid:
        order.error(
            "product_id",
            Text(N_("is empty; write the gift card product id (see: bulk-topup catalog gift)")),
        )
    if not tid:
        order.error(
            "type_id", Text(N_("is empty; write the card type id (see: bulk-topup catalog gift)"))
        )
    if not qty_text:
        order.quantity = 1
        order.warn("quantity", Text(N_("is empty: 1 card ordered")))
    else:
        qty, error = parse_quantity(qty_text)
        if error:
            order.error("quantity", error)
        elif qty is not None and qty < 1:
            order.error("quantity", Text(N_("{n} cards: order at least 1"), n=qty))
        order.quantity = qty
    order.target, order.product = pid, tid
    if not pid or "gift" in catalog.missing:
        return
    product = catalog.gifts.get(pid)
    if product is None:
        order.error(
            "product_id",
            Text(
                N_(
                    '"{product}" is not a gift card product of the provider (see: bulk-topup '
                    "catalog gift)"
                ),
                product=pid,
            ),
        )
        return
    if not product.enabled:
        order.error(
            "product_id", Text(N_("{product} is not on sale right now"), product=product.title)
        )
    order.label = product.title
    if not tid or "gift_types" in catalog.missing or pid not in catalog.gift_types:
        return
    gift_type = catalog.gift_type(pid, tid)
    if gift_type is None:
        known = ", ".join(t.id for t in catalog.gift_types[pid]) or Text(N_("none"))
        order.error(
            tcol,
            Text(
                N_('"{type}" is not a type of {product}; its types are {known}'),
                type=tid,
                product=product.title,
                known=known,
            ),
        )
        return
    order.label = f"{product.title} - {gift_type.name}"
    if order.quantity:
        order.cost = order.face_value = round(gift_type.price * order.quantity, 2)


def _check_gift_stock(orders: list[Order], catalog: Catalog) -> None:
    """Quantity within stock, counting every earlier row of the sheet for the same type."""
    taken: dict[tuple[str, str], int] = defaultdict(int)
    for order in orders:
        if order.kind != "giftcard" or not order.quantity or order.errors:
            continue
        gift_type = catalog.gift_type(order.target, order.product)
        if gift_type is None:
            continue
        key = (order.target, order.product)
        taken[key] += order.quantity
        if gift_type.quantity == 0:
            order.error("type_id", Text(N_("{product} is sold out"), product=order.label))
        elif taken[key] > gift_type.quantity:
            before = taken[key] - order.quantity
            if before:
                message = Text(
                    N_(
                        "{n} cards asked ({before} already ordered in rows above), but only "
                        "{stock} {product} are in stock"
                    ),
                    n=order.quantity,
                    before=before,
                    stock=gift_type.quantity,
                    product=order.label,
                )
            else:
                message = Text(
                    N_("{n} cards asked, but only {stock} {product} are in stock"),
                    n=order.quantity,
                    stock=gift_type.quantity,
                    product=order.label,
                )
            order.error("quantity", message)


#: The column a duplicate is reported under, per kind.
_TARGET_COLUMN = {"mobile": "phone", "internet": "number", "giftcard": "product_id"}


def _assign_refs(orders: list[Order], batch: str, allow_duplicates: bool) -> list[dict[str, Any]]:
    seen: dict[tuple[Any, ...], list[Order]] = defaultdict(list)
    same_order: dict[tuple[Any, ...], list[Order]] = defaultdict(list)
    user_refs: dict[str, Order] = {}
    duplicates = []
    for order in orders:
        if not order.valid:
            continue
        key = (order.kind, order.target, order.product, order.amount, order.quantity)
        # Two identical gift cards for two people (their own columns tell them apart) are two
        # orders, not a slip; a top-up goes to a number, so the same top-up twice is one.
        person = order.person if order.kind == "giftcard" else ""
        earlier = same_order[(*key, person)]
        if earlier:
            first = earlier[0]
            column = _TARGET_COLUMN[order.kind]
            if allow_duplicates:
                order.warn(
                    column,
                    Text(
                        N_("same order as row {row} ({order})"),
                        row=first.row,
                        order=order.describe(),
                    ),
                )
            else:
                order.error(
                    column,
                    Text(
                        N_(
                            "same order as row {row} ({order}); remove one, or pass "
                            "--allow-duplicates if both are meant"
                        ),
                        row=first.row,
                        order=order.describe(),
                    ),
                )
            duplicates.append({"row": order.row, "same_as": first.row, "order": order.describe()})
        earlier.append(order)
        occurrence = len(seen[key])  # refs stay distinct among identical orders, whoever's
        seen[key].append(order)
        if order.user_ref:
            if order.user_ref in user_refs:
                order.error(
                    "ref",
                    Text(
                        N_('"{ref}" is also the ref of row {row}; refs must be unique'),
                        ref=order.user_ref,
                        row=user_refs[order.user_ref].row,
                    ),
                )
            user_refs[order.user_ref] = order
            order.ref = order.user_ref
        else:
            amount = order.amount if order.kind != "giftcard" else order.quantity
            order.ref = make_ref(batch, order.kind, order.target, order.product, amount, occurrence)
    return duplicates


GIFT_ROW_IDENTITY = "giftcard:row "


PERSON_SEPARATOR = "|"


def person_pairs(person: str | None) -> set[str]:
    """The `column=value` pairs a stored person is made of (each one tells the row apart)."""
    return {pair for pair in (person or "").split(PERSON_SEPARATOR) if pair}


def _assign_persons(orders: list[Order]) -> None:
    """Each order's person: the row's own cells (a name, an employee id, a remark) that no
    other row of the sheet shares. Any one of them, met again on a new row, names the same
    person (a corrected number with a remark written beside it is still Bilal's row)."""
    cells: dict[int, list[str]] = {}
    seen: dict[str, int] = defaultdict(int)
    for order in orders:
        own = [
            f"{column}={value.strip()}"
            for column, value in order.cells.items()
            if column not in ALIASES and not column.startswith("(") and value.strip()
        ]
        cells[id(order)] = own
        if order.valid:
            for pair in own:
                seen[pair] += 1
    for order in orders:
        # A cell shared by several rows (a department, a date) tells nobody apart.
        order.person = PERSON_SEPARATOR.join(p for p in cells[id(order)] if seen[p] == 1)


def _assign_recipients(orders: list[Order]) -> None:
    """Each valid order's recipient: what a payment is, beyond its ref, so that an edited row or
    a re-run sheet is recognised as paying the same person again."""
    for order in orders:
        if not order.valid:
            continue
        if order.kind == "mobile":
            order.recipient = f"mobile:{order.target}"
        elif order.kind == "internet":
            order.recipient = f"internet:{order.product}:{order.target}"
        elif order.user_ref:
            order.recipient = f"giftcard:ref {order.user_ref}"
        elif order.person:
            order.recipient = f"giftcard:{order.person}"
        else:
            order.recipient = f"{GIFT_ROW_IDENTITY}{order.row}"


#: Each part of the catalog in words, and what a row is checked against in it.
_CATALOG_PARTS = {
    "plans": (N_("mobile plans"), N_("plan codes, amounts and operators")),
    "internet": (N_("internet products"), N_("card values and stock")),
    "gift": (N_("gift catalog"), N_("gift products")),
    "gift_types": (N_("gift card types and stock"), N_("gift types and stock")),
}


def _catalog_notes(catalog: Catalog) -> list[str]:
    """What could not be checked, and what was checked against an old cache (in the reader's
    language: notes are shown, never stored)."""
    notes = []
    for part in catalog.missing:
        name, checks = _CATALOG_PARTS[part]
        notes.append(
            _(
                "the {part} could not be loaded (API unreachable, no cache): {checks} were NOT "
                "checked"
            ).format(part=_(name), checks=_(checks))
        )
    for part in catalog.stale:
        age = catalog.age(part) or 0
        notes.append(
            _("the {part} come from a cache {age} old (API unreachable)").format(
                part=_(_CATALOG_PARTS[part][0]), age=_age(age)
            )
        )
    return notes


def _age(seconds: float) -> str:
    if seconds < 120:
        return _("{n} s").format(n=f"{seconds:.0f}")
    if seconds < 7200:
        return _("{n} min").format(n=f"{seconds / 60:.0f}")
    if seconds < 172800:
        return _("{n} h").format(n=f"{seconds / 3600:.0f}")
    return _("{n} days").format(n=f"{seconds / 86400:.0f}")


def summarise(orders: list[Order], duplicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per kind, face value and cost per operator and product, duplicates."""
    per_kind: dict[str, dict[str, int]] = {k: {"valid": 0, "invalid": 0} for k in KINDS}
    per_product: dict[str, dict[str, Any]] = {}
    for o in orders:
        per_kind[o.kind]["valid" if o.valid else "invalid"] += 1
        if not o.valid:
            continue
        group = o.operator or o.product if o.kind == "mobile" else o.label or o.product
        key = f"{o.kind}: {group} / {o.product}" if o.kind == "mobile" else f"{o.kind}: {group}"
        entry = per_product.setdefault(key, {"rows": 0, "face_value": 0.0, "cost": 0.0})
        entry["rows"] += 1
        entry["face_value"] = round(entry["face_value"] + o.face_value, 2)
        entry["cost"] = round(entry["cost"] + o.cost, 2)
    valid = [o for o in orders if o.valid]
    return {
        "rows": len(orders),
        "valid": len(valid),
        "invalid": len(orders) - len(valid),
        "warnings": sum(len(o.warnings) for o in orders),
        "per_kind": per_kind,
        "per_product": dict(sorted(per_product.items())),
        "face_value": round(sum(o.face_value for o in valid), 2),
        "cost": round(sum(o.cost for o in valid), 2),
        "duplicates": duplicates,
    }
