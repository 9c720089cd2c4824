"""Every batch of the state dir read together: who was paid, which gift orders are claimed,
which sheets were run, which batch keys exist.

One history per user: the default state dir is the user's own (XDG), so where a command runs does
not change what it knows. The other journals are opened read-only and only those of the same API
(and, once known, the same environment) count: a sandbox batch never blocks a production one.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from .apiurl import canonical_url
from .journal import RowState

S = RowState
#: Rows whose money may have left: sent or being sent, and not refused or refunded.
MAY_BE_PAID = frozenset(
    {S.SENDING, S.SUBMITTED, S.UNCERTAIN, S.FULFILLED, S.PARTIALLY_FILLED, S.UNKNOWN_ERROR,
     S.QUEUED}
)  # fmt: skip
_PAID_SQL = ",".join(f"'{s.value}'" for s in sorted(MAY_BE_PAID))
#: A batch's `intent` meta: its rows still to send were held back (at the confirmation, or by a
#: refusal before anything was sent); until it is admitted again, they pay nobody.
HELD, ADMITTED = "held", "admitted"


@dataclass(frozen=True)
class Payment:
    """An order of another batch, as the repeat guard names it."""

    batch: str
    sheet_row: int | None
    what: str  # the order in words
    state: str
    sent_at: str


def _folded(key: str) -> str:
    """A batch key without case, accents, spaces or punctuation (`Payroll 2026/11` ->
    `payroll202611`)."""
    bare = unicodedata.normalize("NFKD", key.casefold())
    return "".join(ch for ch in bare if ch.isalnum())


def _same_key(a: str, b: str) -> bool:
    """Two batch keys a person would take for one: equal but for case, spaces or punctuation
    (the whole key is compared: `payroll-2026-11-siege` and `-annexe` are two batches)."""
    return a != b and _folded(a) != "" and _folded(a) == _folded(b)


class History:
    """Read access to the other batches of a state dir (this batch's journal excluded)."""

    def __init__(
        self,
        state_dir: Path,
        *,
        api_url: str,
        exclude: Path | None = None,
        environment: str | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.api_url = canonical_url(api_url)
        self.exclude = exclude.resolve() if exclude else None
        self.environment = environment

    def _journals(self) -> Iterator[tuple[str, dict[str, str], sqlite3.Connection]]:
        folder = self.state_dir / "batches"
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.sqlite")):
            if self.exclude is not None and path.resolve() == self.exclude:
                continue
            try:
                db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
            except sqlite3.Error:
                continue
            with closing(db):
                try:
                    meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                except sqlite3.Error:
                    continue  # not a journal, or one being created right now
                if canonical_url(meta.get("api_url") or "") != self.api_url:
                    continue
                env = meta.get("environment")
                if self.environment and env and env != self.environment:
                    continue
                yield meta.get("batch", path.stem), meta, db

    def batch_keys(self) -> list[str]:
        return [batch for batch, _, _ in self._journals()]

    def similar_batches(self, batch: str) -> list[str]:
        """Other batches whose key differs from `batch` only in case, spaces or punctuation."""
        return [b for b in self.batch_keys() if _same_key(b, batch)]

    def claimed_by(self, order_id: str) -> str | None:
        """The batch whose journal holds provider order `order_id`, if any."""
        for batch, _, db in self._journals():
            try:
                found = db.execute(
                    "SELECT 1 FROM rows WHERE order_id = ? LIMIT 1", (order_id,)
                ).fetchone()
            except sqlite3.Error:
                continue
            if found:
                return batch
        return None

    def payments_since(self, since: str) -> dict[tuple[str, float], Payment]:
        """(recipient, face value) -> the latest order of another batch sent at or after
        `since` (ISO time) that may have been paid, or that is about to be: the rows still to
        send of a batch admitted to run (a run under way, or killed before it sent; not one held
        back at its confirmation or refused before sending)."""
        found: dict[tuple[str, float], Payment] = {}
        for batch, meta, db in self._journals():
            planned = "" if meta.get("intent") == HELD else (
                " OR (state = 'PLANNED' AND in_sheet = 1 AND updated_at >= :since)")  # fmt: skip
            try:
                rows = db.execute(
                    "SELECT recipient, face_value, sheet_row, kind, payload, state, "
                    "COALESCE(sent_at, updated_at) FROM rows WHERE recipient IS NOT NULL AND "
                    f"((state IN ({_PAID_SQL}) AND sent_at >= :since){planned})",
                    {"since": since},
                ).fetchall()
            except sqlite3.Error:
                continue
            for recipient, face, sheet_row, kind, payload, state, sent_at in rows:
                key = (recipient, round(float(face or 0), 2))
                if key not in found or found[key].sent_at < sent_at:
                    found[key] = Payment(batch, sheet_row, _describe(kind, payload), state, sent_at)
        return found

    def refs_used(self, refs: Iterable[str]) -> dict[str, tuple[str, int | None]]:
        """ref -> (batch, sheet row) of the other batches' rows that carry one of `refs` (a ref
        names one payment at the provider: two batches must not share one)."""
        wanted = sorted(set(refs))
        found: dict[str, tuple[str, int | None]] = {}
        if not wanted:
            return found
        for batch, _, db in self._journals():
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                try:
                    rows = db.execute(
                        "SELECT ref, sheet_row FROM rows WHERE state != 'INVALID' AND ref IN "
                        f"({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                except sqlite3.Error:
                    continue
                for ref, sheet_row in rows:
                    found.setdefault(ref, (batch, sheet_row))
        return found

    def sheet_runs(self, fingerprint: str, since: str) -> list[tuple[str, str]]:
        """(batch, when) of the other batches run from a sheet with this fingerprint since
        `since` (ISO time)."""
        runs = []
        for batch, meta, db in self._journals():
            if meta.get("fingerprint") != fingerprint:
                continue
            try:  # a batch counts from the moment it sent something (not when abandoned unsent)
                (when,) = db.execute(
                    f"SELECT max(sent_at) FROM rows WHERE state IN ({_PAID_SQL})"
                ).fetchone()
            except sqlite3.Error:
                continue
            if when and when >= since:
                runs.append((batch, when))
        return runs


def _describe(kind: str, payload_text: str) -> str:
    import json

    try:
        p = json.loads(payload_text)
    except ValueError:
        return kind
    if kind == "mobile":
        return f"{p.get('plan_code')} {p.get('amount')} DA to {p.get('MSSIDN')}"
    if kind == "internet":
        return f"{p.get('type')} {p.get('value')} DA to line {p.get('number')}"
    return f"{p.get('quantity')} x gift card {p.get('productId')}/{p.get('typeId')}"
