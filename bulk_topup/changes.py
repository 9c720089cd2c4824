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

from dataclasses import dataclass
from datetime import datetime, timedelta

from .clock import iso
from .history import MAY_BE_PAID, History
from .i18n import _, shown
from .journal import Journal
from .orders import GIFT_ROW_IDENTITY, Order

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
        lines.append(_("... and {n} more rows").format(n=len(conflicts) - LISTED))
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
    gone_person = {s.person: s for s in gone if s.person and s.state in MAY_BE_PAID}
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
        if earlier is None and order.person:
            earlier = gone_person.get(order.person)
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


def refuse_edits(conflicts: list[Conflict]) -> str:
    return _(
        "the sheet would pay again people this batch has already sent to (an edited or added "
        "row); nothing was sent. Restore the rows as they were sent, or pass "
        "--send-edited-rows to send these rows as new orders on purpose:\n  {rows}"
    ).format(rows=_listing(conflicts))


def repeats(
    orders: list[Order],
    already_sent: set[str],
    history: History,
    *,
    batch: str,
    fingerprint: str,
    now: datetime,
    window_days: float = REPEAT_WINDOW_DAYS,
) -> list[Conflict]:
    """Rows (and the sheet itself) that another batch paid within the window. Rows whose ref
    this batch has sent already (`already_sent`) are not new payments and are not looked at."""
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
    for other, when in history.sheet_runs(fingerprint, since):
        conflicts.append(
            Conflict(
                0,
                _(
                    "this very sheet (fingerprint {fingerprint}) was run as batch {other!r} on "
                    "{day}"
                ).format(fingerprint=fingerprint, other=other, day=when[:10]),
            )
        )
    payments = history.payments_since(since)
    for order in orders:
        if not order.valid or order.ref in already_sent or not order.recipient:
            continue
        if order.recipient.startswith(GIFT_ROW_IDENTITY):
            continue  # a row number says nothing about a person in another sheet
        paid = payments.get((order.recipient, round(order.face_value, 2)))
        if paid is not None:
            where = _(" (row {row})").format(row=paid.sheet_row) if paid.sheet_row else ""
            conflicts.append(
                Conflict(
                    order.row,
                    _(
                        "row {row}: {order} was already sent by batch {batch!r}{where} on {day} "
                        "({state})"
                    ).format(
                        row=order.row,
                        order=shown(order.describe()),
                        batch=paid.batch,
                        where=where,
                        day=paid.sent_at[:10],
                        state=paid.state,
                    ),
                )  # fmt: skip
            )
    return conflicts


def refuse_repeats(conflicts: list[Conflict], window_days: float) -> str:
    return _(
        "this would pay again what another batch paid in the last {days} days; nothing was "
        "sent. If it is meant (a second payment on purpose), pass --allow-repeat; "
        "--repeat-window DAYS sets the window:\n  {rows}"
    ).format(days=f"{window_days:g}", rows=_listing(conflicts))
