"""`bulk-topup audit`: the hash chain, who did what, and the rows table against the events."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from bulk_topup.audit import audit_batch
from bulk_topup.batchfile import batch_path
from bulk_topup.cli import main

from .runkit import Kit, gift, internet, mobile

SAMPLES = Path(__file__).parent.parent / "samples"


def audit(state: Path, batch: str = "b"):
    return CliRunner().invoke(main, ["audit", "--batch", batch, "--state-dir", str(state)])


def tamper(path: Path, *statements: str) -> None:
    """Edit the journal file as an intruder would: the append-only triggers dropped first."""
    db = sqlite3.connect(path)
    db.execute("DROP TRIGGER IF EXISTS events_append_only_update")
    db.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
    for statement in statements:
        db.execute(statement)
    db.commit()
    db.close()


@pytest.fixture
async def ran(kit: Kit) -> Path:
    """A finished batch: mobile rows (one refunded), an internet card, gift cards."""
    await kit.load(mobile("0661234567"), mobile("0600000001"), internet("036362608"), gift(qty=2))
    await kit.run()
    return batch_path(kit.state, kit.batch)


@pytest.mark.anyio
async def test_an_untouched_journal_is_intact(kit: Kit, ran: Path) -> None:
    result = audit(kit.state)
    assert result.exit_code == 0, result.output
    assert "hash chain: intact" in result.output
    assert "rows table: agrees with the events" in result.output
    assert "sent: 4 rows" in result.output
    assert "FULFILLED              3 rows" in result.output
    assert "REFUNDED               1 rows            0.00 DA debited" in result.output


@pytest.mark.anyio
async def test_an_edited_event_is_named(kit: Kit, ran: Path) -> None:
    db = sqlite3.connect(ran)
    event_id, at = db.execute(
        "SELECT id, at FROM events WHERE detail = 'accepted' ORDER BY id LIMIT 1"
    ).fetchone()
    db.close()
    tamper(ran, f"UPDATE events SET detail = 'accepted twice' WHERE id = {event_id}")
    result = audit(kit.state)
    assert result.exit_code == 1
    assert f"hash chain: BROKEN at event {event_id} ({at})" in result.output
    says = 'row position 0 (sheet row 2 today): SENDING -> SUBMITTED "accepted twice"'
    assert f"event {event_id} now says: {says}" in result.output
    assert "the journal of batch b was altered after it was written" in result.output
    report = audit_batch(kit.state, "b")
    assert report.chain_break is not None and report.chain_break.event_id == event_id
    assert report.broken_events == 1 and not report.disagreements


@pytest.mark.anyio
async def test_an_edited_event_data_is_caught(kit: Kit, ran: Path) -> None:
    db = sqlite3.connect(ran)
    event_id, data = db.execute(
        "SELECT id, data FROM events WHERE data LIKE '%\"debited\"%' ORDER BY id LIMIT 1"
    ).fetchone()
    db.close()
    changed = json.loads(data)
    changed["debited"] = 1.0
    tamper(ran, f"UPDATE events SET data = '{json.dumps(changed)}' WHERE id = {event_id}")
    report = audit_batch(kit.state, "b")
    assert report.chain_break is not None and report.chain_break.event_id == event_id
    # The replay now disagrees with the table too: the table kept the true amount.
    assert any("debited" in d for d in report.disagreements)


@pytest.mark.anyio
async def test_a_removed_event_is_named(kit: Kit, ran: Path) -> None:
    tamper(ran, "DELETE FROM events WHERE id = 5")
    report = audit_batch(kit.state, "b")
    assert report.chain_break is not None
    assert report.chain_break.event_id == 6
    assert report.chain_break.why == "event 5 is missing before it: removed from the log"


@pytest.mark.anyio
async def test_an_edited_row_disagrees_with_the_events(kit: Kit, ran: Path) -> None:
    tamper(ran, "UPDATE rows SET state = 'FULFILLED', debited = 480 WHERE state = 'REFUNDED'")
    result = audit(kit.state)
    assert result.exit_code == 1, result.output
    assert "hash chain: intact" in result.output  # the events were not touched...
    assert "rows table: DISAGREES with the events (1)" in result.output  # ...the table was
    assert "row 3 (ref b-" in result.output
    assert "state FULFILLED in the table, REFUNDED in the events" in result.output
    assert "debited 480.0 in the table, 0.0 in the events" in result.output


ROW_EDITS = [
    (
        "UPDATE rows SET order_id = 'someone-else' WHERE idx = 0",
        "order_id 'someone-else' in the table",
    ),
    (
        "UPDATE rows SET card_code = '999999999999' WHERE kind = 'internet'",
        "card_code a different card in the table",
    ),
    ("UPDATE rows SET cards = '[]' WHERE kind = 'giftcard'", "cards a different card in the table"),
    (
        "UPDATE rows SET payload = json_set(payload, '$.MSSIDN', '0669999999'), "
        "payload_hash = 'x' WHERE idx = 0",
        "what is sent (the payload) is not what the sheet gave",
    ),
    (
        "DELETE FROM rows WHERE idx = 0",
        "was sent according to the events (FULFILLED) but the rows table has no such row",
    ),
    (
        "INSERT INTO rows (idx, sheet_row, kind, ref, payload, input, state) VALUES "
        "(9, 9, 'mobile', 'b-forged', '{}', '[]', 'FULFILLED')",
        "row 9 (ref b-forged) is in the rows table but no event created it",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("statement", "says"), ROW_EDITS)
async def test_rows_table_edits_are_caught(kit: Kit, ran: Path, statement: str, says: str) -> None:
    tamper(ran, "DROP TRIGGER IF EXISTS rows_sent_are_kept", statement)
    report = audit_batch(kit.state, "b")
    assert report.chain_break is None
    assert any(says in d for d in report.disagreements), report.disagreements
    assert "SANDBOX-CARD" not in " ".join(report.disagreements)  # cards are never shown


@pytest.mark.anyio
async def test_a_batch_run_again_with_moved_rows_still_agrees(kit: Kit) -> None:
    """Rows moved by a later sheet (no event records the move) are not taken for edits."""
    await kit.load(mobile("0600000003"), mobile("0661234567"))
    first = await kit.run()
    assert first.counts == {"UNKNOWN_ERROR": 1, "FULFILLED": 1}
    # The sheet, edited: two rows inserted above, the sent rows now further down.
    await kit.load(mobile("0771234567", 1000, "PREPAID_DJEZZY"), internet("036362608"),
                   mobile("0600000003"), mobile("0661234567"))  # fmt: skip
    await kit.run()
    kit.clock.advance(3 * 3600)  # the UNKNOWN_ERROR settles as FULFILLED after 2 provider hours
    settled = await kit.reconcile()
    assert settled.counts == {"FULFILLED": 4}
    report = audit_batch(kit.state, "b")
    assert report.chain_break is None
    assert report.disagreements == []
    assert report.per_state["FULFILLED"]["rows"] == 4


def test_audit_after_an_approved_run_names_the_people(tmp_path: Path) -> None:
    runner = CliRunner()
    state = str(tmp_path / "state")
    line = runner.invoke(main, ["keys", "new", "bob"]).output.strip().splitlines()[-1]
    policy = tmp_path / "policy.toml"
    policy.write_text(f"[approvers]\n{line}\n")
    plan = tmp_path / "p.json"
    emulate = ["--emulator", "--emulator-speed", "200", "--state-dir", state]
    made = runner.invoke(main, ["plan", str(SAMPLES / "orders.csv"), "--batch", "s", "--out",
                                str(plan), "--preparer", "alice", *emulate])  # fmt: skip
    assert made.exit_code == 0, made.output
    runner.invoke(main, ["approve", str(plan), "--key", "bob", "--yes"])
    ran = runner.invoke(main, ["run", str(SAMPLES / "orders.csv"), "--batch", "s", "--plan",
                               str(plan), "--policy", str(policy), "--yes", "--out",
                               str(tmp_path / "r.xlsx"), *emulate])  # fmt: skip
    assert ran.exit_code == 5, ran.output
    result = audit(Path(state), "s")
    assert result.exit_code == 0, result.output
    assert "plan prepared: alice at " in result.output
    assert "plan approved: bob at " in result.output
    assert "run started: " in result.output
    assert "sent: 13 rows" in result.output
    json_out = runner.invoke(main, ["audit", "--batch", "s", "--state-dir", state,
                                    "--format", "json"])  # fmt: skip
    data = json.loads(json_out.output)
    assert data["intact"] is True and data["chain_break"] is None
    assert [p["what"] for p in data["people"]] == ["plan prepared", "plan approved", "run started"]


def test_audit_of_an_unknown_batch(tmp_path: Path) -> None:
    result = audit(tmp_path, "nope")
    assert result.exit_code == 2 and "there is no batch 'nope'" in result.output


@pytest.mark.anyio
async def test_a_noted_head_shows_events_cut_off_the_end(kit: Kit, ran: Path) -> None:
    db = sqlite3.connect(ran)
    (last_id, head), (_, before) = db.execute(
        "SELECT id, hash FROM events ORDER BY id DESC LIMIT 2"
    ).fetchall()
    db.close()
    ok = CliRunner().invoke(main, ["audit", "--batch", "b", "--state-dir", str(kit.state),
                                   "--head", head[:16]])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    # The last event cut off: the chain that is left verifies, the noted head is gone.
    tamper(ran, f"DELETE FROM events WHERE id = {last_id}")
    cut = audit_batch(kit.state, "b", expect_head=head[:16])
    assert cut.chain_break is None and cut.head_missing == head[:16]
    result = CliRunner().invoke(main, ["audit", "--batch", "b", "--state-dir", str(kit.state),
                                       "--head", head[:16]])  # fmt: skip
    assert result.exit_code == 1
    assert f"the head {head[:16]} noted earlier is not in it" in result.output
    assert audit_batch(kit.state, "b", expect_head=before[:12]).head_missing is None
    bad = CliRunner().invoke(main, ["audit", "--batch", "b", "--state-dir", str(kit.state),
                                    "--head", "xyz"])  # fmt: skip
    assert bad.exit_code == 2 and "is not a chain head" in bad.output
