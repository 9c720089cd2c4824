"""The journal: one SQLite file per batch, the record of what was sent and what became of it.

WAL, `synchronous=FULL`, one transaction per state change, committed before the next network call.
Every transition is checked against the state machine and appended to the `events` table.

    INVALID                          (never sent)
    PLANNED -> SENDING -> SUBMITTED -> FULFILLED | REFUNDED | PARTIALLY_FILLED    (final)
                  |           '------> UNKNOWN_ERROR | QUEUED        (parked: reconcile)
                  |-> REJECTED       (the API refused the request)
                  '-> UNCERTAIN      (the POST's outcome is unknown: reconcile before resending)

A batch is also locked: `open_batch(..., lock=True)` takes a non-blocking OS lock, so a second run
of the same batch stops at once (exit 7) before any API call.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from .errors import BatchLockedError, InvalidRowsError, JournalError, UsageError
from .i18n import N_, Text, _, shown
from .orders import TO_LINE, TO_NUMBER, Order
from .refs import batch_slug, canonical_json
from .statedir import prepare_state_dir, private_folder


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

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE rows (
        idx INTEGER PRIMARY KEY,          -- position in the input
        sheet_row INTEGER,                -- the row number the spreadsheet shows
        kind TEXT NOT NULL,
        ref TEXT UNIQUE,
        payload TEXT NOT NULL,            -- JSON body sent (ref excluded)
        payload_hash TEXT,
        input TEXT NOT NULL,              -- JSON [[column, text], ...] as read
        label TEXT, face_value REAL, cost REAL,
        problems TEXT NOT NULL DEFAULT '[]',
        state TEXT NOT NULL,
        provider_status TEXT, order_id TEXT, debited REAL,
        error_code TEXT, error_message TEXT, refund_message TEXT,
        suggested TEXT, card_code TEXT, num_trans TEXT, cards TEXT, fulfilled_quantity INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        sent_at TEXT, provider_sent_at TEXT, settled_at TEXT, updated_at TEXT,
        in_sheet INTEGER NOT NULL DEFAULT 1
    );
    CREATE INDEX rows_state ON rows(state);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        idx INTEGER, at TEXT NOT NULL, from_state TEXT, to_state TEXT, detail TEXT
    );
    """,
    # The record of money is append-only, and a row that may have been paid is never deleted.
    """
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER rows_sent_are_kept BEFORE DELETE ON rows
        WHEN OLD.state NOT IN ('PLANNED', 'INVALID')
        BEGIN SELECT RAISE(ABORT, 'a row that may have been sent is never deleted'); END;
    """,
    # A payment's identity beyond its ref (the recipient, the person), what the provider said
    # beyond the status, and an event log that is a hash chain carrying each change's data.
    """
    ALTER TABLE rows ADD COLUMN recipient TEXT;        -- kind + normalised target
    ALTER TABLE rows ADD COLUMN person TEXT;           -- the row's own columns (name, id...)
    ALTER TABLE rows ADD COLUMN user_ref TEXT;         -- the sheet's own ref, when it has one
    ALTER TABLE rows ADD COLUMN operator TEXT;
    ALTER TABLE rows ADD COLUMN date_traitement TEXT;  -- internet: when the card was issued
    ALTER TABLE rows ADD COLUMN provider_done_at TEXT; -- provider time the POST's fate was known
    CREATE INDEX rows_recipient ON rows(recipient);
    CREATE INDEX rows_order_id ON rows(order_id);
    ALTER TABLE events ADD COLUMN data TEXT;           -- JSON of the fields the event set
    ALTER TABLE events ADD COLUMN actor TEXT;          -- who: a user, an approver, the runner
    ALTER TABLE events ADD COLUMN prev_hash TEXT;
    ALTER TABLE events ADD COLUMN hash TEXT;
    UPDATE rows SET recipient = CASE kind
        WHEN 'mobile' THEN 'mobile:' || json_extract(payload, '$.MSSIDN')
        WHEN 'internet' THEN 'internet:' || json_extract(payload, '$.type') || ':'
                             || json_extract(payload, '$.number')
        END
        WHERE state != 'INVALID';
    """,
    lambda db: _chain_existing_events(db),
]

#: The event log is a hash chain: each event's hash covers the one before it, so an event altered
#: or removed in the file breaks the chain from there on (`audit` names the first such event).
EVENT_FORMAT = "bulk_topup.event.v1"
GENESIS = "0" * 64
_APPEND_ONLY = """
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
"""


def event_hash(
    prev_hash: str,
    event_id: int,
    idx: int | None,
    at: str,
    from_state: str | None,
    to_state: str | None,
    detail: str | None,
    data: str | None,
    actor: str | None,
) -> str:
    """The hash of one event, chained to the one before it (versioned canonical form)."""
    form = [EVENT_FORMAT, prev_hash, event_id, idx, at, from_state, to_state, detail, data, actor]
    return hashlib.sha256(canonical_json(form)).hexdigest()


def event_data(fields: dict[str, Any]) -> str | None:
    """An event's record of the fields it set. Card codes are cash: only their hash is kept."""
    if not fields:
        return None
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key in ("cards", "card_code") and value:
            clean[key] = {"sha256": hashlib.sha256(canonical_json(value)).hexdigest()}
        else:
            clean[key] = value.value if isinstance(value, StrEnum) else value
    return canonical_json(clean).decode()


def _chain_existing_events(db: sqlite3.Connection) -> None:
    """Migration: hash-chain the events a journal of an earlier version already holds."""
    db.execute("DROP TRIGGER events_append_only_update")
    db.execute("DROP TRIGGER events_append_only_delete")
    prev = GENESIS
    for event_id, idx, at, frm, to, detail in db.execute(
        "SELECT id, idx, at, from_state, to_state, detail FROM events ORDER BY id"
    ).fetchall():
        digest = event_hash(prev, event_id, idx, at, frm, to, detail, None, None)
        db.execute(
            "UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (prev, digest, event_id)
        )
        prev = digest
    for statement in _statements(_APPEND_ONLY):
        db.execute(statement)


_UPDATABLE = {
    "provider_status",
    "order_id",
    "debited",
    "error_code",
    "error_message",
    "refund_message",
    "suggested",
    "card_code",
    "num_trans",
    "cards",
    "fulfilled_quantity",
    "sent_at",
    "provider_sent_at",
    "settled_at",
    "attempts",
    "payload",
    "payload_hash",
    "date_traitement",
    "provider_done_at",
}


@dataclass(frozen=True)
class SentRow:
    """A row past PLANNED, in the few fields that tell what it paid and to whom."""

    idx: int
    ref: str
    state: RowState
    recipient: str | None
    person: str | None
    payload_hash: str | None


@dataclass
class Row:
    idx: int
    sheet_row: int | None
    kind: str
    ref: str | None
    payload: dict[str, Any]
    payload_hash: str | None
    input: list[tuple[str, str]]
    label: str
    face_value: float
    cost: float
    problems: list[dict[str, Any]]
    state: RowState
    provider_status: str | None
    order_id: str | None
    debited: float | None
    error_code: str | None
    error_message: str | None
    refund_message: str | None
    suggested: list[dict[str, Any]]
    card_code: str | None
    num_trans: str | None
    cards: list[dict[str, str]]
    fulfilled_quantity: int | None
    attempts: int
    sent_at: str | None
    provider_sent_at: str | None
    settled_at: str | None
    updated_at: str | None
    in_sheet: bool
    recipient: str | None = None
    person: str | None = None
    user_ref: str | None = None
    operator: str | None = None
    date_traitement: str | None = None
    provider_done_at: str | None = None

    @classmethod
    def from_db(cls, r: sqlite3.Row) -> Row:
        d = dict(r)
        d["payload"] = json.loads(d["payload"])
        d["input"] = [tuple(x) for x in json.loads(d["input"])]
        d["problems"] = json.loads(d["problems"] or "[]")
        d["suggested"] = json.loads(d["suggested"] or "[]")
        d["cards"] = json.loads(d["cards"] or "[]")
        d["state"] = RowState(d["state"])
        d["in_sheet"] = bool(d["in_sheet"])
        return cls(**d)

    def describe(self) -> Text:
        """The order in words (English as a value; `shown()` in the reader's language)."""
        p = self.payload
        if self.kind == "mobile":
            return Text(
                TO_NUMBER,
                product=p.get("plan_code"),
                amount=p.get("amount"),
                target=p.get("MSSIDN"),
            )
        if self.kind == "internet":
            return Text(
                TO_LINE, product=p.get("type"), amount=p.get("value"), target=p.get("number")
            )
        return Text(
            N_("{quantity} x {label}"),
            quantity=p.get("quantity"),
            label=self.label or p.get("typeId"),
        )

    @property
    def where(self) -> str:
        return f"row {self.sheet_row}" if self.sheet_row else f"ref {self.ref}"


def batch_path(state_dir: Path, batch: str) -> Path:
    """The journal file of a batch: readable slug plus a hash, so keys never collide."""
    tag = hashlib.sha256(batch.encode()).hexdigest()[:8]
    return state_dir / "batches" / f"{batch_slug(batch)}-{tag}.sqlite"


class Journal:
    """The journal of one batch. Use `open_batch()`; close with `close()` or `with`."""

    def __init__(self, path: Path, lock: FileLock | None, now: Any) -> None:
        self.path = path
        self._lock = lock
        self._now = now  # () -> ISO time text
        self.actor = _os_user()  # who the events of this process are recorded as
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self._migrate()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise JournalError(
                _(
                    "{path} was written by a newer bulk-topup (journal version {version}); "
                    "upgrade to read it"
                ).format(path=self.path, version=version)
            )
        for number in range(version, len(MIGRATIONS)):
            step = MIGRATIONS[number]
            with self.transaction() as db:
                if isinstance(step, str):
                    for statement in _statements(step):
                        db.execute(statement)
                else:
                    step(db)
                db.execute(f"PRAGMA user_version = {number + 1}")

    # --- meta ------------------------------------------------------------------------------------

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as db:
            for key, value in values.items():
                if value is not None:
                    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(value)))

    def meta(self) -> dict[str, str]:
        return {k: v for k, v in self.db.execute("SELECT key, value FROM meta")}

    # --- rows ------------------------------------------------------------------------------------

    def rows(self, states: Iterable[RowState] | None = None) -> list[Row]:
        return list(self.iter_rows(states))

    def iter_rows(
        self, states: Iterable[RowState] | None = None, *, with_cards: bool = False
    ) -> Iterator[Row]:
        """Rows in input order, read lazily (a 100,000-row batch is never all in memory)."""
        where, args = [], []
        if states is not None:
            names = [s.value for s in states]
            where.append(f"state IN ({','.join('?' * len(names))})")
            args += names
        if with_cards:
            where.append("cards IS NOT NULL AND cards != '[]'")
        sql = "SELECT * FROM rows" + (" WHERE " + " AND ".join(where) if where else "")
        # A cursor of its own: writes elsewhere on the connection cannot disturb it.
        for r in self.db.cursor().execute(sql + " ORDER BY idx", args):
            yield Row.from_db(r)

    def input_columns(self) -> list[str]:
        """Every input column, in the order the sheet had them."""
        seen: dict[str, None] = {}
        for (text,) in self.db.execute("SELECT input FROM rows ORDER BY idx"):
            for column, _value in json.loads(text):
                seen.setdefault(column, None)
        return list(seen)

    def totals(self) -> dict[str, float]:
        """Face value of the valid rows, what was debited, what was refunded.

        A partly filled gift order is charged per card delivered (`debited`, the provider's
        fulfilled amount) and refunds the cards it did not deliver at the same price."""
        face, debited, refunds = self.db.execute(
            "SELECT COALESCE(SUM(CASE WHEN state != 'INVALID' THEN face_value END), 0), "
            "COALESCE(SUM(debited), 0), "
            "COALESCE(SUM(CASE WHEN state = 'REFUNDED' THEN cost "
            "WHEN state = 'PARTIALLY_FILLED' AND fulfilled_quantity > 0 THEN "
            "  COALESCE(debited, 0) * (json_extract(payload, '$.quantity') - fulfilled_quantity)"
            "  / fulfilled_quantity "
            "WHEN state = 'PARTIALLY_FILLED' THEN cost END), 0) "
            "FROM rows"
        ).fetchone()
        return {"face_value": round(face, 2), "debited": round(debited, 2),
                "refunds": round(refunds, 2)}  # fmt: skip

    def row(self, idx: int) -> Row:
        r = self.db.execute("SELECT * FROM rows WHERE idx = ?", (idx,)).fetchone()
        if r is None:
            raise JournalError(_("no row {idx} in {path}").format(idx=idx, path=self.path))
        return Row.from_db(r)

    def order_ids(self) -> set[str]:
        """Every provider order id some row of this batch holds."""
        return {
            i for (i,) in self.db.execute("SELECT order_id FROM rows WHERE order_id IS NOT NULL")
        }

    def counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())

    def row_count(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM rows").fetchone()[0])

    def count(self, states: Iterable[RowState]) -> int:
        return self.sums(states)[0]

    def sums(self, states: Iterable[RowState]) -> tuple[int, float, float]:
        """(rows, face value, cost) of the rows in `states` that the sheet holds."""
        names = [s.value for s in states]
        n, face, cost = self.db.execute(
            f"SELECT count(*), COALESCE(SUM(face_value), 0), COALESCE(SUM(cost), 0) FROM rows "
            f"WHERE state IN ({','.join('?' * len(names))}) AND in_sheet = 1",
            names,
        ).fetchone()
        return int(n), round(face, 2), round(cost, 2)

    def planned_ids(self, *, after: int, limit: int) -> list[int]:
        """The next PLANNED rows of the sheet, in input order: submission reads them in chunks."""
        return [
            i
            for (i,) in self.db.execute(
                "SELECT idx FROM rows WHERE state = 'PLANNED' AND in_sheet = 1 AND idx > ? "
                "ORDER BY idx LIMIT ?",
                (after, limit),
            )
        ]

    def holder_of(self, order_id: str) -> int | None:
        """The sheet row of this batch that holds `order_id` (None when no row does)."""
        found = self.db.execute(
            "SELECT COALESCE(sheet_row, idx) FROM rows WHERE order_id = ?", (order_id,)
        ).fetchone()
        return None if found is None else int(found[0])

    def drop(self, idx: int, detail: str) -> None:
        """Remove a row that was never placed and that the sheet no longer holds."""
        with self.transaction() as db:
            state = db.execute("SELECT state FROM rows WHERE idx = ?", (idx,)).fetchone()
            if state is None:
                return
            if RowState(state[0]) not in (S.PLANNED, S.SENDING, S.UNCERTAIN):
                raise JournalError(
                    _("row {idx}: a {state} row cannot be dropped").format(idx=idx, state=state[0])
                )
            self.add_event(idx, state[0], None, detail)
            db.execute("UPDATE rows SET state = 'PLANNED' WHERE idx = ?", (idx,))
            db.execute("DELETE FROM rows WHERE idx = ?", (idx,))

    def transition(self, idx: int, to: RowState, detail: str = "", **fields: Any) -> Row:
        """Move row `idx` to state `to` (checked), updating `fields`, in one transaction."""
        bad = set(fields) - _UPDATABLE
        if bad:
            raise JournalError(_("cannot update {fields}").format(fields=sorted(bad)))
        now = self._now()
        with self.transaction() as db:
            current = db.execute("SELECT state FROM rows WHERE idx = ?", (idx,)).fetchone()
            if current is None:
                raise JournalError(_("no row {idx}").format(idx=idx))
            frm = RowState(current[0])
            if to != frm and to not in TRANSITIONS[frm]:
                raise JournalError(
                    _("row {idx}: {frm} -> {to} is not a legal transition").format(
                        idx=idx, frm=frm.value, to=to.value
                    )
                )
            values = {k: _db_value(v) for k, v in fields.items()}
            values.update(state=to.value, updated_at=now)
            if to in FINAL and frm not in FINAL:
                values["settled_at"] = now
            sets = ", ".join(f"{k} = ?" for k in values)
            db.execute(f"UPDATE rows SET {sets} WHERE idx = ?", [*values.values(), idx])
            if to != frm or detail:
                self.add_event(idx, frm.value, to.value, detail, fields, at=now)
        return self.row(idx)

    def update(self, idx: int, detail: str = "", **fields: Any) -> Row:
        """Change fields without changing the state."""
        return self.transition(idx, self.row(idx).state, detail, **fields)

    def add_event(
        self,
        idx: int | None,
        from_state: str | None,
        to_state: str | None,
        detail: str,
        fields: dict[str, Any] | None = None,
        *,
        at: str | None = None,
        actor: str | None = None,
    ) -> None:
        """Append one event to the chain. Call inside a transaction (the chain's head is read
        and extended under the same write lock)."""
        last = self.db.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
        event_id = last[0] + 1 if last else 1
        prev = last[1] if last and last[1] else GENESIS
        at = at or self._now()
        actor = actor or self.actor
        data = event_data(fields or {})
        digest = event_hash(prev, event_id, idx, at, from_state, to_state, detail, data, actor)
        self.db.execute(
            "INSERT INTO events (id, idx, at, from_state, to_state, detail, data, actor, "
            "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, idx, at, from_state, to_state, detail, data, actor, prev, digest),
        )

    def record(
        self, detail: str, fields: dict[str, Any] | None = None, actor: str | None = None
    ) -> None:
        """A batch-level event (a plan approved, a run started, a code revealed), chained."""
        with self.transaction():
            self.add_event(None, None, None, detail, fields, actor=actor)

    def events(self, idx: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT * FROM events" + (" WHERE idx = ?" if idx is not None else "") + " ORDER BY id"
        return [dict(r) for r in self.db.execute(q, () if idx is None else (idx,))]

    # --- loading a sheet -------------------------------------------------------------------------

    def sent_index(self) -> list[SentRow]:
        """Every row past PLANNED (sent, being sent, or refused), in a few fields each."""
        return [
            SentRow(*r)
            for r in self.db.execute(
                "SELECT idx, ref, state, recipient, person, payload_hash FROM rows "
                "WHERE state NOT IN ('PLANNED', 'INVALID') AND ref IS NOT NULL ORDER BY idx"
            )
        ]

    def sync_orders(self, orders: list[Order]) -> None:
        """Make the journal's rows those of `orders`, keeping everything already sent.

        A ref already sent (any state past PLANNED) keeps its journal row and must carry the same
        payload: a changed row under a sent ref is refused. Refs never sent follow the sheet, and
        rows never sent that the sheet no longer holds are dropped. Rows sent earlier but gone
        from the sheet stay, marked as no longer in the sheet (and are never sent again).
        """
        sent = {r.ref: r for r in self.sent_index()}
        conflicts = []
        for o in orders:
            old = sent.get(o.ref) if o.valid else None
            if old is not None and old.payload_hash != o.payload_hash:
                conflicts.append(
                    _(
                        "row {row}: ref {ref} was already sent in this batch as {sent}, but the "
                        "sheet now says {now}"
                    ).format(
                        row=o.row,
                        ref=o.ref,
                        sent=shown(self.row(old.idx).describe()),
                        now=shown(o.describe()),
                    )
                )
        if conflicts:
            raise InvalidRowsError(
                _(
                    "the sheet changed under refs this batch has already sent; restore these "
                    "rows, or use a new --batch key for a new payment:\n  {rows}"
                ).format(rows="\n  ".join(conflicts)),
                conflicts,
            )
        now = self._now()
        with self.transaction() as db:
            db.execute("DELETE FROM rows WHERE state IN ('PLANNED', 'INVALID')")
            db.execute("UPDATE rows SET idx = -idx - 1000000, in_sheet = 0")  # park old indexes
            for i, o in enumerate(orders):
                problems = [_stored_problem(p) for p in o.errors + o.warnings]
                cells = json.dumps(list(o.cells.items()), ensure_ascii=False)
                common = (
                    i, o.row, cells, o.label, o.face_value, o.cost, json.dumps(problems),
                    o.recipient, o.person or None, o.user_ref, o.operator or None,
                )  # fmt: skip
                if o.valid and o.ref in sent:
                    db.execute(
                        "UPDATE rows SET idx = ?, sheet_row = ?, input = ?, label = ?, "
                        "face_value = ?, cost = ?, problems = ?, recipient = ?, person = ?, "
                        "user_ref = ?, operator = ?, in_sheet = 1 WHERE ref = ?",
                        (*common, o.ref),
                    )
                    continue
                state = S.PLANNED if o.valid else S.INVALID
                db.execute(
                    "INSERT INTO rows (idx, sheet_row, input, label, face_value, cost, problems, "
                    "recipient, person, user_ref, operator, kind, ref, payload, payload_hash, "
                    "state, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        *common,
                        o.kind,
                        o.ref if o.valid else None,
                        json.dumps(o.payload(), ensure_ascii=False),
                        o.payload_hash if o.valid else None,
                        state.value,
                        now,
                    ),
                )
                self.add_event(
                    i,
                    None,
                    state.value,
                    "from the sheet",
                    {"ref": o.ref if o.valid else None, "kind": o.kind, "row": o.row,
                     "payload_hash": o.payload_hash if o.valid else None},
                    at=now,
                )  # fmt: skip
            # Sent rows gone from the sheet: keep them after the sheet's rows, in their order.
            gone = [r for (r,) in db.execute("SELECT ref FROM rows WHERE idx < 0 ORDER BY idx")]
            for j, ref in enumerate(gone):
                db.execute("UPDATE rows SET idx = ? WHERE ref = ?", (len(orders) + j, ref))


def _stored_problem(p: Any) -> dict[str, Any]:
    """A row problem as the journal keeps it: its English, and its template when it has one
    (so a workbook written later says it in the reader's language)."""
    stored = {"column": p.column, "message": str(p.message), "severity": p.severity}
    if isinstance(p.message, Text):
        stored["text"] = p.message.to_json()
    return stored


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}"


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (a trigger's body holds `;` of its own)."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise JournalError(_("a migration ends with an incomplete statement"))


def _db_value(value: Any) -> Any:
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, StrEnum):
        return value.value
    return value


def open_batch(
    state_dir: Path, batch: str, *, now: Any, lock: bool = True, create: bool = True
) -> Journal:
    """Open (or create) the journal of `batch`, taking its lock unless `lock=False`."""
    path = batch_path(state_dir, batch)
    if not create and not path.exists():
        raise UsageError(
            _(
                "there is no batch {batch!r} in {state_dir} (bulk-topup batches lists them; "
                "--state-dir says where to look)"
            ).format(batch=batch, state_dir=state_dir)
        )
    prepare_state_dir(state_dir)
    private_folder(path.parent)
    file_lock = None
    if lock:
        file_lock = FileLock(str(path) + ".lock")
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            raise BatchLockedError(
                _(
                    "batch {batch!r} is being run by another process right now (lock {lock}); "
                    "nothing was sent"
                ).format(batch=batch, lock=file_lock.lock_file)
            ) from None
    try:
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)  # card codes live here: 0600
            os.close(fd)
        journal = Journal(path, file_lock, now)
    except BaseException:
        if file_lock is not None:
            file_lock.release()
        raise
    if journal.get_meta("batch") is None:
        journal.set_meta(batch=batch, created_at=now())
    return journal


def batch_locked(state_dir: Path, batch: str) -> bool:
    """Whether a run (of this process or another: a CLI run, a console run) holds the batch's
    lock right now. The probe takes the lock for an instant when it is free, so a run starting
    at that very instant would stop with exit 7 (safely: nothing sent); call it when a person
    looks, not in a loop."""
    path = batch_path(state_dir, batch)
    if not path.exists():
        return False
    probe = FileLock(str(path) + ".lock")
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return True
    probe.release()
    return False


def list_batches(state_dir: Path) -> list[tuple[str, Path, dict[str, int], dict[str, str]]]:
    """(batch key, path, counts per state, meta) of every journal in the state dir."""
    found: list[tuple[str, Path, dict[str, int], dict[str, str]]] = []
    folder = state_dir / "batches"
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob("*.sqlite")):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            counts = dict(db.execute("SELECT state, count(*) FROM rows GROUP BY state").fetchall())
            db.close()
        except sqlite3.Error:
            continue
        found.append((meta.get("batch", path.stem), path, counts, meta))
    return found
