"""The journal's event log is a hash chain, and a journal of the first version migrates into one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bulk_topup.batchfile import open_batch
from bulk_topup.journal import GENESIS, MIGRATIONS, _statements, event_hash

from .runkit import Kit, gift, mobile


def chain_breaks(path: Path) -> list[int]:
    """Ids of the events whose stored hash is not what their content and predecessor give."""
    db = sqlite3.connect(path)
    prev, broken = GENESIS, []
    for row in db.execute(
        "SELECT id, idx, at, from_state, to_state, detail, data, actor, prev_hash, hash "
        "FROM events ORDER BY id"
    ):
        event_id, *content, stored_prev, stored = row
        if stored_prev != prev or event_hash(prev, event_id, *content) != stored:
            broken.append(event_id)
        prev = stored
    db.close()
    return broken


@pytest.mark.anyio
async def test_every_event_is_chained_and_card_codes_are_not_in_it(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), gift())
    await kit.run()
    with kit.journal() as j:
        path = j.path
        events = j.events()
        assert events and all(e["hash"] for e in events)
        assert events[0]["prev_hash"] == GENESIS
        assert all(e["actor"] for e in events)
        text = "\n".join(str(e["data"]) for e in events)
        assert "SANDBOX-CARD" not in text  # the cards' hash is recorded, not the codes
        assert '"cards":{"sha256"' in text
    assert chain_breaks(path) == []
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER events_append_only_update")
    db.execute("UPDATE events SET detail = 'accepted twice' WHERE id = 4")
    db.commit()
    db.close()
    assert chain_breaks(path)[0] == 4


def test_a_first_version_journal_is_migrated_and_chained(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:2]:
        assert isinstance(step, str)
        for statement in _statements(step):
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.execute(
        "INSERT INTO rows (idx, sheet_row, kind, ref, payload, input, state) VALUES "
        """(0, 2, 'mobile', 'b-x', '{"plan_code": "P", "MSSIDN": "0661234567", "amount": 500}',"""
        " '[]', 'FULFILLED')"
    )
    for detail in ("from the sheet", "intent committed before the POST", "accepted"):
        db.execute(
            "INSERT INTO events (idx, at, from_state, to_state, detail) "
            "VALUES (0, 't', 'A', 'B', ?)",
            (detail,),
        )
    db.close()
    folder = tmp_path / "state" / "batches"
    folder.mkdir(parents=True)
    from bulk_topup.batchfile import batch_path

    target = batch_path(tmp_path / "state", "old")
    path.rename(target)
    with open_batch(tmp_path / "state", "old", now=lambda: "now") as j:
        assert j.row(0).recipient == "mobile:0661234567"
        j.record("checked after the upgrade")
        assert [e["id"] for e in j.events()] == [1, 2, 3, 4]
    assert chain_breaks(target) == []
