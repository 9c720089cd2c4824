"""What a run or a resume would send, shown to a person before they confirm it, and the check
that what the run really sends is what they confirmed.

A face shows the figures of `dry_run` (a sheet) or `resume_preview` (a batch) and keeps them as
an `Expected`; when the service later asks `Hooks.confirm(facts)` with the pre-flight facts of
the real run, `Expected.differs(facts)` says in one sentence what changed in between (a sheet
replaced, a row another run sent meanwhile, a row found never placed, a key of the other
environment), so nothing goes out that the person did not see.
"""

from __future__ import annotations

from dataclasses import dataclass

from .batchfile import open_batch
from .config import Settings
from .journal import RowState
from .runner import Preflight
from .service import DryRun

S = RowState
#: Money is compared to the centime: the figures are sums of rounded amounts.
CENTIME = 0.005


@dataclass(frozen=True)
class Expected:
    """The figures a person confirmed: rows to send, their face value and cost, the key's
    environment."""

    rows: int
    face_value: float
    cost: float
    environment: str

    def differs(self, facts: Preflight) -> str | None:
        """None when the run sends what was confirmed; else a sentence saying what changed."""
        same = (
            facts.rows == self.rows
            and abs(facts.face_value - self.face_value) < CENTIME
            and abs(facts.cost - self.cost) < CENTIME
            and facts.key_type == self.environment
        )
        if same:
            return None
        return (
            f"what would be sent changed since it was confirmed: {self.rows} rows, "
            f"{self.face_value:,.2f} DA face value, {self.cost:,.2f} DA cost ({self.environment}) "
            f"then; {facts.rows} rows, {facts.face_value:,.2f} DA, {facts.cost:,.2f} DA "
            f"({facts.key_type}) now; nothing was sent: look at it again and confirm"
        )


@dataclass
class ResumePreview:
    """What `resume` would do now, from the journal and two reading API calls."""

    batch: str
    key_type: str
    key_scope: str
    balance: float
    to_send: int  # rows not sent yet
    face_value: float
    cost: float
    to_check: int  # rows whose outcome is unknown: checked with the provider first
    gifts_to_check: int  # of which gift rows: if not found, left to a person (never resent here)
    in_flight: int  # orders sent earlier and not final: looked at, never sent again
    done: int  # rows final already

    @property
    def expected(self) -> Expected:
        return Expected(self.to_send, self.face_value, self.cost, self.key_type)


async def resume_preview(settings: Settings, batch: str) -> ResumePreview:
    """The figures of a resume, without locking, journaling or sending anything. A row of unknown
    outcome found never placed is sent by the resume too: the run then asks again."""
    with open_batch(settings.state_dir, batch, now=lambda: "", lock=False, create=False) as j:
        rows, face, cost = j.sums([S.PLANNED])
        counts = j.counts()
        gifts = sum(r.kind == "giftcard" for r in j.iter_rows([S.SENDING, S.UNCERTAIN]))
    async with settings.client() as client:
        key = await client.validate_key()
        balance = await client.balance()
    return ResumePreview(
        batch, key.type, key.scope, balance, rows, face, cost,
        to_check=counts.get(S.SENDING.value, 0) + counts.get(S.UNCERTAIN.value, 0),
        gifts_to_check=gifts,
        in_flight=sum(counts.get(s.value, 0) for s in (S.SUBMITTED, S.UNKNOWN_ERROR, S.QUEUED)),
        done=sum(counts.get(s.value, 0) for s in (S.FULFILLED, S.REFUNDED, S.PARTIALLY_FILLED,
                                                  S.REJECTED, S.INVALID)),
    )  # fmt: skip


def expected_of_dry_run(found: DryRun) -> Expected:
    """The figures of a dry run, as a person confirms them."""
    return Expected(found.to_send, found.face_value, found.cost, found.key_type)
