"""Unreadable answers from the API through a whole run: a sentence and an open row, never a
traceback, and the row settles once the answers can be read again."""

from __future__ import annotations

import pytest

from bulk_topup.journal import RowState

from .runkit import Kit, mobile

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["null", "html", "types", "empty"])
async def test_resume_with_check_ref_unreadable_leaves_the_row_open(kit: Kit, kind: str) -> None:
    await kit.load(mobile("0661234567"))
    with kit.journal() as j:
        (row,) = j.rows()
        j.transition(row.idx, RowState.SENDING, "a crash between intent and answer")
    world = kit.app.world
    world.faults.update(
        {"garbage_next": 1000, "garbage": kind, "garbage_on": "GET /v3/mobile/check-ref"}
    )
    outcome = await kit.run()  # before: an ExceptionGroup of ~140 lines, on every resume
    assert outcome.exit_code == 5
    assert kit.states() in (["SENDING"], ["UNCERTAIN"])
    assert world.stats()["orders"] == 0  # nothing was sent while the ref could not be checked
    with kit.journal() as j:
        details = " ".join(e["detail"] or "" for e in j.events())
    assert "GET /v3/mobile/check-ref/" in details and "cannot read" in details
    world.faults.update({"garbage_next": 0})
    assert (await kit.run()).exit_code == 0
    assert kit.states() == ["FULFILLED"] and world.stats()["orders"] == 1


async def test_an_unreadable_status_is_checked_again_later(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    kit.app.world.faults.update(
        {"garbage_next": 2, "garbage": "null", "garbage_on": "GET /v3/mobile/check-ref"}
    )
    assert (await kit.run()).exit_code == 0
    assert kit.states() == ["FULFILLED"]
    assert kit.app.world.faults_injected["garbage"] == 2
