"""What a sheet would pay that was paid already: decided before anything is sent.

Within a batch (against its own journal):
- a row whose ref the journal holds is the same order (a changed payload under a sent ref is
  refused by the journal itself);
- a row with a new ref whose order is one the journal sent under another ref (a `ref` column added
  for accounting, identical rows renumbered) takes that ref back: it is the same order;
- a row with a new ref for a recipient this batch has already paid, or may have paid (an open or
  uncertain order), is an edit of a sent row: refused, naming both, unless the person asks for it
  to go out as a new order on purpose (`send_edited`); so is a new row carrying the own columns
  (a name, an employee id) of a sent row that is gone from the sheet;
- rows never sent and gone from the sheet are dropped by the journal, never sent.

Across batches (against the history of the state dir): a row whose recipient and amount were paid
by another batch within the repeat window, the very same sheet run under another key within the
window, and a batch key that differs from an existing one only in case or punctuation are refused
unless the person allows the repeat on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import iso
from .history import MAY_BE_PAID, History
from .i18n import _, ngettext, shown
from .identity import GIFT_ROW_IDENTITY, person_pairs
from .journal import Journal, Row
from .orders import Order

#: Default repeat window: shorter than the shortest gap between two monthly payroll runs (28 days:
#: the 1st of February to the 1st of March, or a run moved to a Monday), long enough to catch the
#: same month's sheet run twice under two keys or from two folders.
REPEAT_WINDOW_DAYS = 25.0
LISTED = 20  # conflicts named one by one before "and N more"


@dataclass(frozen=True)
class Conflict:
    row: int
    message: str


def _listing(conflicts: list[Conflict]) -> str:
    lines = [c.message for c in conflicts[:LISTED]]
    if len(conflicts) > LISTED:
        n = len(conflicts) - LISTED
        lines.append(ngettext("... and {n} more row", "... and {n} more rows", n).format(n=n))
    return "\n  ".join(lines)


def edits(orders: list[Order], journal: Journal, *, send_edited: bool = False) -> list[Conflict]:
    """Rows of the sheet that would pay again someone this batch has already sent to.

    Also gives back their ref to rows whose order the journal sent under another ref (mutating
    `order.ref`), so the journal sees them as the orders they are."""
    sent = journal.sent_index()
    sheet_refs = {o.ref for o in orders if o.valid}
    gone = [s for s in sent if s.ref not in sheet_refs]
    by_payload: dict[str, list[str]] = {}
    for s in gone:
        if s.payload_hash:
            by_payload.setdefault(s.payload_hash, []).append(s.ref)
    known = {s.ref for s in sent}
    conflicts: list[Conflict] = []
    paid_to = {s.recipient: s for s in sent if s.recipient and s.state in MAY_BE_PAID}
    gone_paid = [s for s in gone if s.state in MAY_BE_PAID]
    gone_person = {pair: s for s in gone_paid for pair in person_pairs(s.person)}
    # A sent row gone from the sheet and a new row of the same kind in its very place: the
    # row was edited (a corrected number in a sheet with no name to tell whose it is).
    gone_place = {(s.kind, s.sheet_row): s for s in gone_paid if s.in_sheet and s.sheet_row}
    for order in orders:
        if not order.valid or order.ref in known:
            continue
        same = by_payload.get(order.payload_hash)
        if same:
            order.ref = same.pop(0)  # the same order under another ref: it keeps the sent one
            continue
        if send_edited:
            continue
        earlier = paid_to.get(order.recipient) if order.recipient else None
        if earlier is None:
            earlier = next(
                (gone_person[p] for p in sorted(person_pairs(order.person)) if p in gone_person),
                None,
            )
        if earlier is None:
            earlier = gone_place.get((order.kind, order.row))
        if earlier is None:
            continue
        old = journal.row(earlier.idx)
        still = earlier.ref in sheet_refs
        where = (
            _("row {row}").format(row=old.sheet_row)
            if still
            else _("row {row}, no longer in the sheet").format(row=old.sheet_row)
        )
        conflicts.append(
            Conflict(
                order.row,
                _(
                    "row {row}: this batch already sent {sent} ({where}, ref {ref}, {state}); "
                    "the sheet now says {now}"
                ).format(
                    row=order.row,
                    sent=shown(old.describe()),
                    where=where,
                    ref=old.ref,
                    state=old.state.value,
                    now=shown(order.describe()),
                ),
            )  # fmt: skip
        )
    return conflicts


def refuse_edits(conflicts: list[Conflict], allow: str | None = None) -> str:
    """The refusal of edited rows; `allow` says how to send them anyway in the face's words
    (default: the command line's option)."""
    allow = allow or _("pass --send-edited-rows to send these rows as new orders on purpose")
    return _(
        "the sheet would pay again people this batch has already sent to (an edited or added "
        "row); nothing was sent. Restore the rows as they were sent, or {allow}:\n  {rows}"
    ).format(allow=allow, rows=_listing(conflicts))


def _candidate(item: Order | Row) -> tuple[int, str, str | None, float, str | None, Order | Row]:
    """(sheet row, ref, recipient, face value, user ref, the item) of a sheet's order or of a
    journal row still to send; the item is put in words only when it is a repeat."""
    if isinstance(item, Row):
        return (item.sheet_row or 0, item.ref or "", item.recipient, item.face_value,
                item.user_ref, item)  # fmt: skip
    return item.row, item.ref, item.recipient, item.face_value, item.user_ref, item


def repeats(
    orders: Iterable[Order | Row],
    already_sent: set[str],
    history: History,
    *,
    batch: str,
    fingerprint: str | None,
    now: datetime,
    window_days: float = REPEAT_WINDOW_DAYS,
) -> list[Conflict]:
    """Rows (and the sheet itself) that another batch paid, or is about to pay, within the
    window; refs of the sheet's own that another batch has used already. Rows whose ref this
    batch has sent already (`already_sent`) are not new payments and are not looked at."""
    since = iso(now - timedelta(days=window_days))
    conflicts: list[Conflict] = []
    for other in history.similar_batches(batch):
        conflicts.append(
            Conflict(
                0,
                _(
                    "batch {other!r} already exists and differs from {batch!r} only in case or "
                    "punctuation: to continue it, use its exact key"
                ).format(other=other, batch=batch),
            )
        )
    if fingerprint:
        for other, when in history.sheet_runs(fingerprint, since):
            conflicts.append(
                Conflict(
                    0,
                    _(
                        "this very sheet (fingerprint {fingerprint}) was run as batch {other!r} "
                        "on {day}"
                    ).format(fingerprint=fingerprint, other=other, day=when[:10]),
                )
            )
    candidates = [
        _candidate(o)
        for o in orders
        if (isinstance(o, Row) or o.valid) and o.ref not in already_sent
    ]
    used = history.refs_used({c[4] for c in candidates if c[4]})
    payments = history.payments_since(since)
    for row, _ref, recipient, face, user_ref, item in candidates:
        if user_ref and user_ref in used:
            other, other_row = used[user_ref]
            conflicts.append(
                Conflict(
                    row,
                    _(
                        "row {row}: the ref {ref} is already the ref of row {other_row} of batch "
                        "{other!r}: a ref names one payment, at the provider too; give this row "
                        "a ref of its own"
                    ).format(row=row, ref=user_ref, other_row=other_row, other=other),
                )
            )
            continue
        if not recipient or recipient.startswith(GIFT_ROW_IDENTITY):
            continue  # a row number says nothing about a person in another sheet
        paid = payments.get((recipient, round(face, 2)))
        if paid is None:
            continue
        where = _(" (row {row})").format(row=paid.sheet_row) if paid.sheet_row else ""
        if paid.state == "PLANNED":
            message = _(
                "row {row}: {order} is about to be sent by batch {batch!r}{where} (a run under "
                "way, or one stopped before it sent: resume it, or discard it with bulk-topup "
                "discard)"
            )
        else:
            message = _(
                "row {row}: {order} was already sent by batch {batch!r}{where} on {day} ({state})"
            )
        conflicts.append(
            Conflict(
                row,
                message.format(
                    row=row,
                    order=shown(item.describe()),
                    batch=paid.batch,
                    where=where,
                    day=paid.sent_at[:10],
                    state=paid.state,
                ),
            )  # fmt: skip
        )
    return conflicts


def refuse_repeats(conflicts: list[Conflict], window_days: float, allow: str | None = None) -> str:
    """The refusal of repeats; `allow` says how to send them anyway in the face's words."""
    allow = allow or _("pass --allow-repeat; --repeat-window DAYS sets the window")
    return _(
        "this would pay again what another batch paid in the last {days} days; nothing was "
        "sent. If it is meant (a second payment on purpose), {allow}:\n  {rows}"
    ).format(days=f"{window_days:g}", allow=allow, rows=_listing(conflicts))
