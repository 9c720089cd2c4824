"""The errors bulk_topup raises, each with a message for a finance clerk and an exit code.

    BulkTopupError                 exit 1 unless a subclass says otherwise
    ├── UsageError                 2  a wrong option or argument
    │   └── StateDirError          2  the state dir cannot be created, or is not safe to use
    ├── SheetError                 2  the order sheet cannot be read at all
    ├── InvalidRowsError           3  rows failed validation (the row problems are data, attached)
    ├── RefusedError               6  pre-flight refused: key, balance, --max-total, READ-ONLY
    ├── BatchLockedError           7  another run holds the batch
    ├── JournalError               1  the journal is damaged or disagrees with the sheet
    └── ApiError                   a call to the OneClickDz API failed
        ├── RequestNotSent         the request provably never reached the API: safe to retry
        ├── ApiRefused             the API answered with an error envelope: definitive
        │   ├── AuthError          401 / IP_BLOCKED / not allowed
        │   ├── InsufficientBalance
        │   ├── DuplicatedRef      the ref exists already: adopt the existing order
        │   ├── NotFound
        │   ├── RefNotAccepted     400 naming `ref` on a gift order: no order was made
        │   └── RateLimited        429: refused before processing, retry after `retry_after`
        └── OutcomeUnknown         the request may or may not have been processed: reconcile
            └── UnreadableAnswer   an answer that is not what the API documents (data null,
                                   HTML, a field missing or of the wrong type)

The three API failure classes are what the runner branches on: retry, accept the verdict, or
reconcile with the provider before anything is sent again. Nothing here prints.
"""

from __future__ import annotations

from typing import Any


class BulkTopupError(Exception):
    """Base of every error bulk_topup raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(BulkTopupError):
    exit_code = 2


class StateDirError(UsageError):
    """The state dir cannot be created or read, or others could alter what it holds."""


class SheetError(BulkTopupError):
    """The file cannot be read as an order sheet (not a spreadsheet, empty, no header, hostile)."""

    exit_code = 2


class InvalidRowsError(BulkTopupError):
    """Some rows are invalid; `problems` holds every one of them."""

    exit_code = 3

    def __init__(self, message: str, problems: list[Any] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class RefusedError(BulkTopupError):
    exit_code = 6


class BatchLockedError(BulkTopupError):
    exit_code = 7


class JournalError(BulkTopupError):
    exit_code = 1


class ApiError(BulkTopupError):
    """A call to the API failed. `request_id` is the provider's, for support tickets."""

    exit_code = 5

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


class RequestNotSent(ApiError):
    """The request never reached the API (connection refused, pool or connect timeout)."""


class OutcomeUnknown(ApiError):
    """The request may have been processed: read timeout, reset after sending, 5xx, bad body."""


class ApiRefused(ApiError):
    """The API answered with an error envelope. Definitive: sending the same again is pointless."""

    def __init__(
        self,
        message: str,
        *,
        code: str,
        http_status: int,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id)
        self.code = code
        self.http_status = http_status
        self.details = details or {}


class AuthError(ApiRefused):
    exit_code = 6


class InsufficientBalance(ApiRefused):
    exit_code = 6


class DuplicatedRef(ApiRefused):
    pass


class NotFound(ApiRefused):
    pass


class RefNotAccepted(ApiRefused):
    """The API refused the `ref` field of a gift order (400 ERR_VALIDATION naming it): the body
    failed validation, so no order was made, and the same order can be sent without the ref."""


class RateLimited(ApiRefused):
    """429. The API refused before processing; `retry_after` is in seconds (may be None)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class UnreadableAnswer(OutcomeUnknown):
    """An answer that is not what the API documents: `data` null, an HTML page, a required field
    missing or of the wrong type. For a POST the order may exist; for a GET nothing is known.

    `endpoint` is "METHOD /path", `field` the dotted path of what could not be read ("data",
    "data.status", "data.items[3].cards[0].value"), `http_status` the answer's status code.
    """

    def __init__(
        self,
        endpoint: str,
        field: str,
        problem: str,
        *,
        http_status: int = 200,
        request_id: str | None = None,
    ) -> None:
        what = "the answer" if not field else f'"{field}"'
        super().__init__(
            f"the OneClickDz API answered {endpoint} with something bulk-topup cannot read: "
            f"{what} {problem}",
            request_id=request_id,
        )
        self.endpoint = endpoint
        self.field = field
        self.problem = problem
        self.http_status = http_status
