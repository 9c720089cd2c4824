"""The sentences the journal keeps in English, and how a reader sees them in their language.

A stop reason (journal meta `stop_reason`) and a row's `error_message` are written once, in
English, whatever language the run spoke: the journal is the record, and what it says must not
depend on who ran it. They are shown later (the workbook, the closing lines, a notification) in
the reader's language by `display()`, which recognises the sentences below (their placeholders
filled) and says them again in the current language; a sentence it does not know (the provider's
own message) is shown as it was written.

Producers write them with the constants here: `BALANCE_RAN_OUT`, `BREAKER.format(n=3, what=...)`.
The API client's failures (client.py) are recognised too: they are raised in English, stored as
a row's error or a breaker's last failure, and shown by the faces through `display()`. Events'
`detail` texts are part of the hash-chained record and are never translated.
"""

from __future__ import annotations

import functools
import re

from .i18n import N_, _, current_language

# --- stop reasons (journal meta `stop_reason`) ---------------------------------------------------

BALANCE_RAN_OUT = N_("the balance ran out: the rows left were not sent; add funds, then resume")
KEY_REFUSED = N_("the API refused the key ({code}: {message})")
BREAKER = N_("the API failed {n} times in a row (last: {what}); stopped to avoid hammering it")
RETRY_BUDGET = N_("more than {n} retries in this run; stopped to avoid hammering a failing API")
INTERRUPTED = N_("interrupted")
INTERRUPTED_BY = N_("interrupted ({signal})")
#: The last failure a breaker names (`BREAKER`'s `what`), when it is not the API's own message.
UNREADABLE_STATUS = N_("unreadable status ({name})")

# --- a row's error_message -----------------------------------------------------------------------

REFUNDED = N_("refunded by the provider")
SENDING_FAILED = N_("unexpected failure while sending ({name})")
SEND_TIME_UNKNOWN = N_("its send time is unknown, so no order can be proven ours")
NO_GIFT_MATCH = N_("no matching order in the provider's list during its POST")
NO_FREE_GIFT_MATCH = N_(
    "no matching order in the provider's list during its POST ({n} matching held by other rows)"
)
SEVERAL_GIFT_MATCHES = N_("{n} matching orders in the provider's list during its POST")
REF_USED_ELSEWHERE = N_(
    "the provider holds another order under the ref {ref} (another batch's, or another "
    "payment's): this row was not paid; give it a ref of its own and send it in a new batch"
)
REF_HELD_HERE = N_(
    "the provider's order under the ref {ref} is already row {row}'s in this batch: this row "
    "was not paid; give it a ref of its own"
)

# --- the API client's failures, as client.py words them ---------------------------------------

NOT_REACHED = N_("could not reach the OneClickDz API at {host} ({what}): {name}")
CUT_OFF = N_("the connection failed before the API's answer to {what} arrived ({name})")
SLOW_DOWN = N_("the API asked to slow down ({what})")
API_FAILED = N_("the API failed while handling {what} (HTTP {status})")
API_FAILED_MAY_EXIST = N_(
    "the API failed while handling {what} (HTTP {status}); the order may exist"
)
UNREADABLE = N_(
    "the OneClickDz API answered {endpoint} with something bulk-topup cannot read: {detail}"
)

STORED = (
    BALANCE_RAN_OUT, KEY_REFUSED, BREAKER, RETRY_BUDGET, INTERRUPTED, INTERRUPTED_BY,
    UNREADABLE_STATUS, REFUNDED, SENDING_FAILED, SEND_TIME_UNKNOWN, NO_GIFT_MATCH,
    NO_FREE_GIFT_MATCH, SEVERAL_GIFT_MATCHES, REF_USED_ELSEWHERE, REF_HELD_HERE, NOT_REACHED,
    CUT_OFF, SLOW_DOWN, API_FAILED, API_FAILED_MAY_EXIST, UNREADABLE,
)  # fmt: skip

_FIELD = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts, seen, at = [], set(), 0
    for m in _FIELD.finditer(template):
        parts.append(re.escape(template[at : m.start()]))
        name = m.group(1)
        parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        at = m.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts), re.DOTALL)


#: The most specific first: a template with more fixed text wins over one it contains.
_PATTERNS = sorted(((t, _pattern(t)) for t in STORED), key=lambda tp: -len(_FIELD.sub("", tp[0])))


def display(stored: str | None) -> str:
    """A sentence the journal kept in English, in the current language (unknown: as written)."""
    if not stored:
        return ""
    return _display(current_language(), stored)


@functools.lru_cache(maxsize=4096)
def _display(language: str, stored: str) -> str:
    for template, pattern in _PATTERNS:
        m = pattern.fullmatch(stored)
        if m:
            # A placeholder may hold a sentence of its own (the breaker's last failure).
            values = {k: _display(language, v) for k, v in m.groupdict().items()}
            return _(template).format(**values)
    return stored
