"""The checks of one row, per kind: a mobile top-up, an internet card, a gift card.

What is certain is normalised and said as a warning on its row; what is not is an error naming
the column as the sheet wrote it. Against the catalog: the plan exists and is on, the amount in
its range, the card value offered and in stock, the gift product and type known, the quantity in
stock (counting every earlier row of the sheet).
"""

from __future__ import annotations

import difflib
from collections import defaultdict

from .catalog import Catalog
from .i18n import N_, Text
from .normalise import (
    INTERNET_RE,
    clip,
    normalise_internet,
    normalise_mobile,
    parse_dzd,
    parse_quantity,
)
from .orders import TARGET_COLUMN, Order, infer_kind, kind_word
from .refs import USER_REF_RE
from .sheet import ALIASES, SheetRow

PREFIX_OPERATOR = {"05": "Ooredoo", "06": "Mobilis", "07": "Djezzy"}
PLAN_OPERATOR_PREFIX = {
    "Ooredoo": "05",
    "Mobilis": "06",
    "Pixx": "06",
    "GMobilis": "06",
    "Djezzy": "07",
}


def check_row(row: SheetRow, index: int, catalog: Catalog, labels: dict[str, str]) -> Order:
    cells = row.cells
    kind, kind_error = infer_kind(cells)
    order = Order(row.number, index, kind or "mobile", cells=cells, labels=labels)
    if kind_error:
        order.error("kind", kind_error)
        return order
    if row.hidden:
        order.error(
            TARGET_COLUMN.get(order.kind, "phone"),
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
                    value=clip(value),
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
            order.warn(
                "plan_code", Text(N_('"{code}" read as {plan}'), code=clip(code), plan=plan.code)
            )
            order.product = plan.code
        else:
            close = difflib.get_close_matches(code.upper(), list(folded), n=1, cutoff=0.6)
            if close:
                message = Text(
                    N_(
                        '"{code}" is not a plan of the provider; did you mean {close}? (see: '
                        "bulk-topup catalog mobile)"
                    ),
                    code=clip(code),
                    close=folded[close[0]],
                )
            else:
                message = Text(
                    N_('"{code}" is not a plan of the provider (see: bulk-topup catalog mobile)'),
                    code=clip(code),
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
                Text(N_('"{given}" is not ADSL or 4G'), given=clip(raw_type))
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
    if not tid and typed and not kind_word(typed):
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
                product=clip(pid),
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
                type=clip(tid),
                product=product.title,
                known=known,
            ),
        )
        return
    order.label = f"{product.title} - {gift_type.name}"
    if order.quantity:
        order.cost = order.face_value = round(gift_type.price * order.quantity, 2)


def check_gift_stock(orders: list[Order], catalog: Catalog) -> None:
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
