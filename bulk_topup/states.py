"""A row's states and the only moves between them: the state machine every journal change is
checked against.

    INVALID                          (never sent)
    PLANNED -> SENDING -> SUBMITTED -> FULFILLED | REFUNDED | PARTIALLY_FILLED    (final)
                  |           '------> UNKNOWN_ERROR | QUEUED        (parked: reconcile)
                  |-> REJECTED       (the API refused the request)
                  '-> UNCERTAIN      (the POST's outcome is unknown: reconcile before resending)
"""

from __future__ import annotations

from enum import StrEnum


class RowState(StrEnum):
    INVALID = "INVALID"
    PLANNED = "PLANNED"
    SENDING = "SENDING"
    SUBMITTED = "SUBMITTED"
    FULFILLED = "FULFILLED"
    REFUNDED = "REFUNDED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    REJECTED = "REJECTED"
    UNCERTAIN = "UNCERTAIN"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
    QUEUED = "QUEUED"


S = RowState
FINAL = frozenset({S.FULFILLED, S.REFUNDED, S.PARTIALLY_FILLED, S.REJECTED, S.INVALID})
FAILED = frozenset({S.REFUNDED, S.REJECTED, S.PARTIALLY_FILLED, S.INVALID})
PARKED = frozenset({S.UNKNOWN_ERROR, S.QUEUED, S.UNCERTAIN})
PROVIDER_FINAL = {
    "FULFILLED": S.FULFILLED,
    "REFUNDED": S.REFUNDED,
    "PARTIALLY_FILLED": S.PARTIALLY_FILLED,
}
PROVIDER_PARKED = {"UNKNOWN_ERROR": S.UNKNOWN_ERROR, "QUEUED": S.QUEUED}
_ADOPTED = {S.SUBMITTED, S.FULFILLED, S.REFUNDED, S.PARTIALLY_FILLED, S.UNKNOWN_ERROR, S.QUEUED}

TRANSITIONS: dict[RowState, frozenset[RowState]] = {
    S.INVALID: frozenset(),
    S.PLANNED: frozenset({S.SENDING}),
    S.SENDING: frozenset({S.PLANNED, S.REJECTED, S.UNCERTAIN} | _ADOPTED),
    S.UNCERTAIN: frozenset({S.PLANNED, S.REJECTED} | _ADOPTED),
    S.SUBMITTED: frozenset(_ADOPTED),
    S.UNKNOWN_ERROR: frozenset({S.SUBMITTED, S.FULFILLED, S.REFUNDED, S.UNKNOWN_ERROR}),
    S.QUEUED: frozenset({S.SUBMITTED, S.FULFILLED, S.REFUNDED, S.QUEUED}),
    S.FULFILLED: frozenset(),
    S.REFUNDED: frozenset(),
    S.PARTIALLY_FILLED: frozenset(),
    S.REJECTED: frozenset(),
}
