"""The journal: one SQLite file per batch, the record of what was sent and what became of it.

WAL, `synchronous=FULL`, one transaction per state change, committed before the next network call.
Every transition is checked against the state machine (`states`) and appended to the hash-chained
`events` table (`schema`).

Where a batch's journal file lives, and how it is opened under the batch's lock: `batchfile`.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from filelock import FileLock

from .errors import InvalidRowsError, JournalError
from .i18n import N_, Text, _, shown
from .orders import TO_LINE, TO_NUMBER, Order
from .schema import GENESIS, MIGRATIONS, _statements, event_data, event_hash
from .states import (
    FAILED,
    FINAL,
    PARKED,
    PROVIDER_FINAL,
    PROVIDER_PARKED,
    TRANSITIONS,
    RowState,
)

S = RowState
__all__ = [
    "FAILED", "FINAL", "GENESIS", "MIGRATIONS", "PARKED", "PROVIDER_FINAL", "PROVIDER_PARKED",
    "TRANSITIONS", "Journal", "Row", "RowState", "SentRow", "event_data", "event_hash",
]  # fmt: skip


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
    kind: str = ""
    sheet_row: int | None = None
    in_sheet: bool = True


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
            current = db.execute(
                "SELECT state, error_code, error_message FROM rows WHERE idx = ?", (idx,)
            ).fetchone()
            if current is None:
                raise JournalError(_("no row {idx}").format(idx=idx))
            frm = RowState(current[0])
            if to == RowState.FULFILLED and frm != to and (current[1] or current[2]):
                # A row delivered in the end carries no earlier error (a dropped connection,
                # a timeout): its events keep that story, its result line says what is true.
                fields = {"error_code": None, "error_message": None, **fields}
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
                "SELECT idx, ref, state, recipient, person, payload_hash, kind, sheet_row, "
                "in_sheet FROM rows "
                "WHERE state NOT IN ('PLANNED', 'INVALID') AND ref IS NOT NULL ORDER BY idx"
            )
        ]

    def planned_index(self) -> list[Row]:
        """The rows still to send (PLANNED, in the sheet): what a resume would pay."""
        return self.rows([S.PLANNED])

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


def _db_value(value: Any) -> Any:
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, StrEnum):
        return value.value
    return value
