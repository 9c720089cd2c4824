"""Who a payment is for, beyond its row: its ref, its duplicates, its person and recipient.

- Refs are deterministic (`refs.make_ref`): the same order in the same batch always gets the same
  ref; identical orders are numbered by their occurrence. A `ref` column is used as it is.
- The same order twice is an error unless allowed; two identical gift cards for two people (their
  own columns tell them apart) are two orders.
- A row's person is the set of its own cells (a name, an employee id) no other row shares; its
  recipient is the kind and the normalised number (a gift card: its ref, its person, or its row).
  Both let an edited row or a sheet run again be recognised as paying the same person again.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .i18n import N_, Text
from .orders import TARGET_COLUMN, Order
from .refs import make_ref
from .sheet import ALIASES


def assign_refs(orders: list[Order], batch: str, allow_duplicates: bool) -> list[dict[str, Any]]:
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
            column = TARGET_COLUMN[order.kind]
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


def assign_persons(orders: list[Order]) -> None:
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


def assign_recipients(orders: list[Order]) -> None:
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
