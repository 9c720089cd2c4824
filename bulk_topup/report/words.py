"""A journal row in a clerk's words, in the current language: its state, its order, why it needs
a person and what to do, the provider's Arabic messages with their meaning, who the operator is.

Nothing here writes a file: the workbook, the CSV and the JSON writers all read from here, so the
three say the same thing.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..i18n import N_, NP_, Text, _, listed, ngettext, npgettext, pgettext
from ..journal import FINAL, Journal, Row, RowState
from ..sheet import ALIASES
from ..texts import display

S = RowState

#: States in the order the Summary lists them.
STATE_ORDER = [
    S.FULFILLED,
    S.PARTIALLY_FILLED,
    S.REFUNDED,
    S.REJECTED,
    S.INVALID,
    S.UNKNOWN_ERROR,
    S.QUEUED,
    S.UNCERTAIN,
    S.SUBMITTED,
    S.SENDING,
    S.PLANNED,
]

#: Each state in words (context "state" in the catalogue).
STATE_WORDS = {
    S.FULFILLED: NP_("state", "delivered"),
    S.PARTIALLY_FILLED: NP_("state", "partly delivered"),
    S.REFUNDED: NP_("state", "refunded"),
    S.REJECTED: NP_("state", "refused by the provider"),
    S.INVALID: NP_("state", "invalid, not sent"),
    S.UNKNOWN_ERROR: NP_("state", "awaiting the operator"),
    S.QUEUED: NP_("state", "queued at Algérie Télécom"),
    S.UNCERTAIN: NP_("state", "outcome unknown"),
    S.SUBMITTED: NP_("state", "at the provider"),
    S.SENDING: NP_("state", "sending was cut short"),
    S.PLANNED: NP_("state", "not sent yet"),
}

#: Why a row needs a person, and what to do about it. (Reconcile and resume are words of both
#: faces: a command of `bulk-topup`, a button of the console.)
NEXT_STEP = {
    S.UNKNOWN_ERROR: (
        N_("the operator's answer was ambiguous; the provider checks it by hand (1 to 24 h)"),
        N_("do not top up again; reconcile the batch tomorrow"),
    ),
    S.QUEUED: (
        N_("the line is queued at Algérie Télécom; delivery within 48 h"),
        N_("nothing to do; reconcile the batch in a day"),
    ),
    S.UNCERTAIN: (
        N_("it is not known whether the provider took this order"),
        N_(
            "do not send it again by hand; reconcile the batch, and for gift cards check the "
            "provider's order list"
        ),
    ),
    S.REFUNDED: (
        N_("the provider refunded it"),
        N_("see the Retry sheet"),
    ),
    S.PARTIALLY_FILLED: (
        N_("only part of the cards were delivered; the rest was refunded"),
        N_("see the Retry sheet for the missing cards"),
    ),
    S.REJECTED: (
        N_("the provider refused the request"),
        N_("fix the row, then send it in a new batch"),
    ),
    S.INVALID: (
        N_("the row is invalid and was not sent"),
        N_("fix the row, then send it in a new batch"),
    ),
    S.SUBMITTED: (
        N_("the provider has not finished it yet"),
        N_("resume the batch later"),
    ),
    S.SENDING: (
        N_("the run stopped while sending it"),
        N_("resume the batch: it is checked before anything is resent"),
    ),
    S.PLANNED: (N_("not sent yet (the run stopped)"), N_("resume the batch")),
}
#: The next step of a refunded row the provider suggested other offers for: its Retry line holds
#: the first of them, not the plan that was refused.
OFFER_FILLED_IN = N_("see the Retry sheet (suggested offer filled in)")

#: Why a batch is still open, per state of its open rows (the Summary's "stopped because").
OPEN_BECAUSE = {
    S.UNKNOWN_ERROR: N_("the operator's answer is pending"),
    S.QUEUED: N_("the line is queued at Algérie Télécom"),
    S.UNCERTAIN: N_("it is not known whether the provider took the order"),
    S.SUBMITTED: N_("the provider has not finished yet"),
    S.SENDING: N_("the run stopped while sending"),
    S.PLANNED: N_("not sent yet"),
}

#: The provider's documented refund and status messages (Arabic), and what they mean.
PROVIDER_MESSAGES = {
    "هذا رقم الهاتف لا يقبل العرض المرسل، الرجاء إرسال أحد العروض التالية": N_(
        "this number does not accept the offer sent; send one of the offers suggested"
    ),
    "فشلت عملية التعبئة، تم إرجاع المبلغ إلى رصيدك": N_(
        "the top-up failed; the amount was returned to your balance"
    ),
    "حالة العملية غير مؤكدة، جارٍ التحقق منها": N_(
        "the outcome of the operation is not confirmed; it is being checked"
    ),
    "العروض المتاحة لهذا الرقم": N_("the offers available for this number"),
}

#: The operator named in a plan code (PREPAID_DJEZZY, GETMENU_Mobilis, PIXX_500...).
_OPERATOR_WORDS = {"DJEZZY": "Djezzy", "MOBILIS": "Mobilis", "OOREDOO": "Ooredoo", "PIXX": "Pixx"}
INTERNET_OPERATOR = "Algérie Télécom"


#: The kinds of order, in words (context "kind").
KIND_WORDS = {
    "mobile": NP_("kind", "mobile"),
    "internet": NP_("kind", "internet"),
    "giftcard": NP_("kind", "gift cards"),
}


def state_words(state: RowState) -> str:
    return pgettext("state", STATE_WORDS[state])


def state_count(state: RowState | str, n: int) -> str:
    """The words of a state after a count of rows, agreed in number: `9 livrés`."""
    state = RowState(state)
    if state == S.FULFILLED:
        return npgettext("rows", "delivered", "delivered", n)
    if state == S.PARTIALLY_FILLED:
        return npgettext("rows", "partly delivered", "partly delivered", n)
    if state == S.REFUNDED:
        return npgettext("rows", "refunded", "refunded", n)
    if state == S.REJECTED:
        return npgettext("rows", "refused by the provider", "refused by the provider", n)
    if state == S.INVALID:
        return npgettext("rows", "invalid, not sent", "invalid, not sent", n)
    if state == S.PLANNED:
        return npgettext("rows", "not sent yet", "not sent yet", n)
    return state_words(state)  # the others do not change with the number, in either language


def kind_words(kind: str) -> str:
    """A kind of order (`mobile`, `internet`, `giftcard`) in the reader's language."""
    return pgettext("kind", KIND_WORDS[kind]) if kind in KIND_WORDS else kind


#: First-strong isolate and pop directional isolate: text of either direction set apart, so
#: Arabic inside an English or French sentence neither moves its brackets nor what follows.
FSI, PDI = "\u2068", "\u2069"


def isolated(text: str) -> str:
    """`text` as a directional isolate (for a page; a workbook cell holds one text each)."""
    return f"{FSI}{text}{PDI}" if text else text


def provider_text(message: str | None, isolate: bool = False) -> str:
    """The provider's message with its meaning in the current language beside it (`isolate`:
    the provider's words set apart as a directional isolate, for a page)."""
    if not message:
        return ""
    original = message.strip()
    quoted = isolated(original) if isolate else original
    meaning = PROVIDER_MESSAGES.get(re.sub(r"\s+", " ", original))
    if meaning is None:
        return quoted
    return _("{meaning} (the provider wrote: {original})").format(
        meaning=_(meaning), original=quoted
    )


def operator_of(row: Row) -> str:
    """The row's operator: as journaled, else the one its plan code names (mobile), else
    Algérie Télécom (internet); gift cards have none."""
    if row.operator:
        return row.operator
    if row.kind == "mobile":
        code = str(row.payload.get("plan_code") or "")
        for token in re.split(r"[^A-Za-z]+", code.upper()):
            if token in _OPERATOR_WORDS:
                return _OPERATOR_WORDS[token]
        return ""
    if row.kind == "internet":
        return INTERNET_OPERATOR
    return ""


def _amount(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _("{amount} DA").format(amount=value)


def describe(row: Row) -> str:
    """The order in words, leaving out what the row does not have (never `None DA`)."""
    p = row.payload
    if row.kind == "giftcard":
        what = row.label or str(p.get("typeId") or "")
        qty = p.get("quantity")
        return _("{quantity} x {product}").format(quantity=qty, product=what) if qty else what
    if row.kind == "internet":
        product = " ".join(x for x in (str(p.get("type") or ""), _amount(p.get("value"))) if x)
        target = str(p.get("number") or "")
        template = _("{product} to line {target}")
    else:
        product = " ".join(
            x for x in (str(p.get("plan_code") or ""), _amount(p.get("amount"))) if x
        )
        target = str(p.get("MSSIDN") or "")
        template = _("{product} to {target}")
    if product and target:
        return template.format(product=product, target=target)
    return product or target


def offers_in_words(row: Row) -> str:
    """The provider's suggested offers: `FACTURE_DJEZZY 500 DA; ...`."""
    return listed(
        " ".join(x for x in (str(o.get("plan_code") or ""), _amount(o.get("amount"))) if x)
        for o in row.suggested
    )


@dataclass
class Columns:
    """The batch's input columns, what the sheet called them, and which are the user's own."""

    names: list[str]  # canonical (or as written, for the user's own columns), in sheet order
    headers: dict[str, str]  # canonical -> as the sheet wrote it
    filled: set[str] = field(default_factory=set)  # the columns some row has a value in
    longest: dict[str, int] = field(default_factory=dict)  # the longest value of each column

    @classmethod
    def of(cls, journal: Journal) -> Columns:
        headers = json.loads(journal.get_meta("headers") or "{}")
        names: dict[str, None] = {}
        longest: dict[str, int] = {}
        for (text,) in journal.db.execute("SELECT input FROM rows ORDER BY idx"):
            for column, value in json.loads(text):
                names.setdefault(column, None)
                if value and len(value) > longest.get(column, 0):
                    longest[column] = len(value)
        headers = headers if isinstance(headers, dict) else {}
        return cls(list(names), headers, set(longest), longest)

    def width(self, column: str, widest: float = 16) -> float:
        """A column's width on paper: its longest value or its header's longest word, within
        6 to `widest` characters (longer values wrap)."""
        word = max((len(w) for w in self.header(column).split()), default=0)
        return max(6, min(widest, max(self.longest.get(column, 0), word) + 1))

    def header(self, column: str) -> str:
        return str(self.headers.get(column) or column)

    @property
    def used(self) -> list[str]:
        """The columns some row fills (a printed page has no room for empty ones)."""
        return [c for c in self.names if c in self.filled]

    @property
    def own(self) -> list[str]:
        """The user's own columns (a name, an employee id): neither order columns nor the ref."""
        return [c for c in self.names if c not in ALIASES]

    def problem(self, p: dict[str, Any]) -> str:
        """A stored row problem, in the reader's language when the journal kept its template."""
        message = str(p.get("message", ""))
        if p.get("text"):
            # A template this version cannot fill: its English, as stored.
            with contextlib.suppress(ValueError, KeyError, IndexError):
                message = Text.from_json(p["text"]).shown()
        return _("{column}: {message}").format(
            column=self.header(str(p.get("column", ""))), message=message
        )


def error_text(row: Row, columns: Columns, isolate: bool = False) -> str:
    """What went wrong: every error of an invalid row, else the provider's error and message
    (`isolate`: the provider's words set apart as directional isolates, for a page)."""
    if row.state == S.INVALID:
        return " | ".join(columns.problem(p) for p in row.problems if p.get("severity") == "error")
    error = display(row.error_message)
    parts = [isolated(error) if isolate else error, provider_text(row.refund_message, isolate)]
    return " | ".join(p for p in parts if p)


def notes_text(row: Row, columns: Columns) -> str:
    notes = [columns.problem(p) for p in row.problems if p.get("severity") == "warning"]
    if not row.in_sheet:
        notes.append(_("no longer in the sheet, but sent earlier in this batch"))
    return " | ".join(notes)


def attention(
    rows: Iterable[Row], columns: Columns, isolate: bool = False
) -> Iterator[tuple[Row, str, str]]:
    """(row, why, next step) of every row a person must look at."""
    for r in rows:
        if r.state in NEXT_STEP:
            reason, step = NEXT_STEP[r.state]
            detail = error_text(r, columns, isolate)
            why = _(reason) + (f" ({detail})" if detail else "")
            if r.state == S.REFUNDED and r.kind == "mobile" and r.suggested:
                step = OFFER_FILLED_IN  # as facts.retry_line fills it in
            yield r, why, _(step)


def open_because(counts: dict[str, int], in_words: bool = False) -> str:
    """Why a batch is not fully final, from its open rows' states:
    `2 rows UNKNOWN_ERROR: the operator's answer is pending; 1 row QUEUED: ...` (`in_words`:
    each state in words, `2 rows awaiting the operator: ...`, for a page)."""
    parts = []
    for state in STATE_ORDER:
        n = counts.get(state.value, 0)
        if n and state not in FINAL:
            parts.append(
                ngettext("{n} row {state}: {reason}", "{n} rows {state}: {reason}", n).format(
                    n=n,
                    state=state_count(state, n) if in_words else state.value,
                    reason=_(OPEN_BECAUSE[state]),
                )  # fmt: skip
            )
    return listed(parts)


def stop_reason(stored: str | None, counts: dict[str, int], in_words: bool = False) -> str:
    """The run's own stop reason, and why rows are still open: every batch not fully final has
    one, even when its last run ended without saying why."""
    return listed(p for p in (display(stored), open_because(counts, in_words)) if p)
