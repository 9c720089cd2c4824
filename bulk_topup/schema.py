"""The journal's tables, their numbered migrations, and the hash chain of its events.

The event log is a hash chain: each event's hash covers the one before it, so an event altered or
removed in the file breaks the chain from there on (`audit` names the first such event). An
event records the fields it set (card codes only as their hash).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import Any

from .errors import JournalError
from .i18n import _
from .refs import canonical_json

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
