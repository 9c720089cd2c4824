"""What every part of a run shares: its options and its context (journal, client, clock, guard,
schedule, settler, history). Submission, reconciliation and polling each take a `RunContext`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from filelock import FileLock, Timeout

from .apiurl import canonical_url
from .client import OneClickClient
from .clock import Clock
from .guard import Guard
from .journal import Journal, Row

if TYPE_CHECKING:
    from .history import History
    from .settle import Schedule, Settler

Progress = Callable[[str, Row], None]


@dataclass
class RunOptions:
    rate: float = 10.0  # API calls per second, all endpoints together
    concurrency: int = 8  # rows in flight at once
    max_total: float | None = None  # DZD of face value this run may send
    resend_uncertain_gifts: bool = False
    #: seconds after a send before the first look: the provider's usual settle time (mobile:
    #: PENDING 5 s, HANDLING 15 s; internet 3 to 45 s; gift cards a few seconds) and a second
    #: more, so the orders sent just after a due one (in a sweep's slack) are settled too
    poll_first: dict[str, float] = field(
        default_factory=lambda: {"mobile": 21.0, "internet": 11.0, "giftcard": 9.0}
    )
    poll_step: float = 5.0
    poll_ceiling: float = 60.0
    poll_deadline: dict[str, float] = field(
        default_factory=lambda: {"mobile": 300.0, "internet": 300.0, "giftcard": 600.0}
    )
    #: due orders are gathered until a list page's worth is due, but at most this long (in the
    #: runner's time), so one page answers for many of them instead of one call each
    gather: float = 5.0
    sweep_min: int = 5  # due orders of one kind from which a list sweep replaces check-ref
    sweep_batch: int = 100  # due orders one sweep looks for (one list page holds 100)
    #: seconds of slack around the provider times of a sweep's orders: covers the error in the
    #: learned clock skew (about one trip of an answer)
    sweep_slack: float = 0.5
    #: slack of the window in which an uncertain gift order may have been created
    gift_slack: float = 2.0
    #: the longest a POST can take, used to close a gift window when the run died mid-POST
    post_timeout: float = 60.0
    breaker_threshold: int = 8  # failures in a row that open the circuit
    retry_budget: int | None = None  # resends and requeues allowed (default: 20 or 10 % of rows)
    poll: bool = True


class GiftLocks:
    """One lock per (API, product, type, quantity), held by a gift order's POST and by every
    reconciliation of such an order: in this process, and across the processes that share a
    state dir (`folder`; without one, in this process only). Without a ref, two identical
    orders can only be told apart by when they were born: none is born while another identical
    one is being placed or looked for."""

    def __init__(self, folder: Path | None = None, api_url: str = "") -> None:
        self.folder = folder
        self.api_url = canonical_url(api_url) if api_url else ""
        self._local: dict[str, anyio.Lock] = {}

    @asynccontextmanager
    async def hold(self, product: str, type_id: str, quantity: int) -> AsyncIterator[None]:
        key = hashlib.sha256(f"{self.api_url}|{product}|{type_id}|{quantity}".encode()).hexdigest()
        local = self._local.setdefault(key, anyio.Lock())
        async with local:
            if self.folder is None:
                yield
                return
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = FileLock(str(self.folder / f"gift-{key[:24]}.lock"), thread_local=False)
            while True:
                try:
                    lock.acquire(timeout=0)
                    break
                except Timeout:
                    await anyio.sleep(0.05)  # another process is placing the same gift order
            try:
                yield
            finally:
                lock.release()


@dataclass
class RunContext:
    """One batch's run: the parts submission, reconciliation and polling share."""

    journal: Journal
    client: OneClickClient
    clock: Clock
    options: RunOptions
    guard: Guard
    schedule: Schedule
    settler: Settler
    history: History | None = None
    gift_locks: GiftLocks = field(default_factory=GiftLocks)
    progress: Progress = field(default=lambda event, row: None)
    state: dict[str, Any] = field(default_factory=dict)  # small run-wide facts (gift refs seen)

    def notify(self, event: str, row: Row) -> None:
        self.progress(event, row)
