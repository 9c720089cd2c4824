"""What stops a run: a person (SIGINT, the console's stop button), a failing API, a spent budget.

Two levels: `stop_sending` ends submission only (the balance ran out: rows already sent still
settle and are polled); `request_stop` ends submission and polling (interrupted, the circuit
breaker, the key refused). The first reason given is kept: it is the one a person must read.

The breaker counts failures in a row (any success resets it); the retry budget counts resends and
requeues over the whole run. Both are two counters, hand-written: no library models "stop a batch
cleanly and leave it resumable", which is what they are for.
"""

from __future__ import annotations

from .texts import BREAKER, RETRY_BUDGET


class Guard:
    """The stop reasons, the circuit breaker and the retry budget of one run."""

    def __init__(self, breaker_threshold: int, retry_budget: int) -> None:
        self.breaker_threshold = breaker_threshold
        self.budget = retry_budget
        self.stop_reason: str | None = None  # polling and sending stopped
        self.send_stop_reason: str | None = None  # sending stopped (polling goes on)
        self.failures_in_a_row = 0
        self.retries = 0
        self.auth_refused = False

    @property
    def may_send(self) -> bool:
        return self.send_stop_reason is None and self.stop_reason is None

    @property
    def stopped(self) -> bool:
        return self.stop_reason is not None

    @property
    def breaker_open(self) -> bool:
        return self.failures_in_a_row >= self.breaker_threshold

    @property
    def reason(self) -> str | None:
        """Why the run did not simply finish, if it did not."""
        return self.stop_reason or self.send_stop_reason

    def request_stop(self, reason: str) -> None:
        """Stop taking rows and stop polling; rows in flight settle into the journal."""
        self.stop_reason = self.stop_reason or reason
        self.send_stop_reason = self.send_stop_reason or reason

    def stop_sending(self, reason: str) -> None:
        self.send_stop_reason = self.send_stop_reason or reason

    def failure(self, what: str) -> None:
        self.failures_in_a_row += 1
        if self.breaker_open:
            self.request_stop(BREAKER.format(n=self.failures_in_a_row, what=what))

    def success(self) -> None:
        self.failures_in_a_row = 0

    def spend_retry(self) -> bool:
        """Count one resend or requeue; False (and the run stops) once the budget is spent."""
        self.retries += 1
        if self.retries > self.budget:
            self.request_stop(RETRY_BUDGET.format(n=self.budget))
            return False
        return True
