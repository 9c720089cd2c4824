"""Never pay twice beyond the ref: edited sheets, deleted rows, renamed batches, other folders.

Each scenario runs through the service (as `run` does) against the emulator served over a real
socket, with the provider's ref check on (as the real API) and off (so a resent ref would show as
a second order instead of being saved by the provider).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from bulk_topup.clock import VirtualClock, iso
from bulk_topup.emulator import World, create_app
from bulk_topup.errors import InvalidRowsError
from bulk_topup.journal import RowState
from bulk_topup.service import NothingToSend

from .conftest import free_port
from .runkit import Desk, mobile

pytestmark = pytest.mark.anyio
S = RowState


@pytest.fixture(params=[True, False], ids=["ref-dedup", "no-ref-dedup"])
def desk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Desk]:
    import sys

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # the server's thread answers at once, not after 5 ms
    clock = VirtualClock()
    world = World(clock=clock)
    world.faults.update({"ref_dedup": request.param})
    app = create_app(world)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the emulator did not start"
        time.sleep(0.01)
    try:
        yield Desk(
            app, clock, tmp_path, httpx.AsyncHTTPTransport(), base=f"http://127.0.0.1:{port}"
        )
    finally:
        server.should_exit = True
        thread.join(10)
        sys.setswitchinterval(switch)


def payments(desk: Desk) -> Counter[tuple[str, int]]:
    """Orders at the provider per (number, amount): what was really paid."""
    return Counter((o.fields["MSSIDN"], o.fields["topup_amount"]) for o in desk.orders("mobile"))


def staff(*amounts: int, names: bool = True) -> list[dict[str, str]]:
    rows = []
    for i, amount in enumerate(amounts):
        row = {"name": f"Employee {i}"} if names else {}
        row.update(mobile(f"066100000{i}", amount))
        rows.append(row)
    return rows


async def test_an_edited_amount_is_refused_and_pays_nothing(desk: Desk) -> None:
    first = desk.sheet("staff.csv", *staff(500, 700))
    assert (await desk.run(first, "payroll-2026-11")).exit_code == 0
    edited = desk.sheet("staff.csv", *staff(600, 700))
    with pytest.raises(InvalidRowsError) as refused:
        await desk.run(edited, "payroll-2026-11")
    message = refused.value.message
    assert "row 2: this batch already sent PREPAID_MOBILIS 500 DA to 0661000000" in message
    assert "the sheet now says PREPAID_MOBILIS 600 DA to 0661000000" in message
    assert "nothing was sent" in message and "--send-edited-rows" in message
    assert payments(desk) == {("0661000000", 500): 1, ("0661000001", 700): 1}
    # On purpose, the difference goes out as a new order, and only it.
    result = await desk.run(edited, "payroll-2026-11", send_edited=True)
    assert result.exit_code == 0
    assert payments(desk) == {
        ("0661000000", 500): 1, ("0661000000", 600): 1, ("0661000001", 700): 1,
    }  # fmt: skip


async def test_a_corrected_number_is_recognised_by_the_person(desk: Desk) -> None:
    first = desk.sheet("staff.csv", *staff(500, 700))
    await desk.run(first, "b")
    rows = staff(500, 700)
    rows[0]["phone"] = "0661000009"  # the clerk corrects Employee 0's number
    with pytest.raises(InvalidRowsError, match="row 2: this batch already sent PREPAID_MOBILIS "
                       "500 DA to 0661000000 .*no longer in the sheet"):  # fmt: skip
        await desk.run(desk.sheet("staff.csv", *rows), "b")
    assert sum(payments(desk).values()) == 2


async def test_a_ref_column_added_for_accounting_takes_the_sent_refs(desk: Desk) -> None:
    await desk.run(desk.sheet("s.csv", *staff(500, 700)), "b")
    with_refs = [{**r, "ref": f"ACC-{i}"} for i, r in enumerate(staff(500, 700))]
    result = await desk.run(desk.sheet("s.csv", *with_refs), "b")
    assert result.exit_code == 0
    assert sum(payments(desk).values()) == 2
    with desk.journal("b") as j:
        rows = j.rows()
    assert [r.user_ref for r in rows] == ["ACC-0", "ACC-1"]
    assert all(r.ref and r.ref.startswith("b-") and r.state == S.FULFILLED for r in rows)


async def test_after_a_kill_a_deleted_row_is_dropped_and_a_corrected_one_refused(
    desk: Desk,
) -> None:
    sheet = desk.sheet("s.csv", *staff(500, 600, 700))
    await desk.run(sheet, "b")  # everything paid
    # A second batch is killed with all three rows SENDING, none of the POSTs having left.
    sheet2 = desk.sheet("s2.csv", *staff(100, 200, 300))
    await desk.run(sheet2, "c", allow_repeat=True)
    with desk.journal("c") as j:
        for row in j.rows():
            j.db.execute(
                "UPDATE rows SET state = 'PLANNED', order_id = NULL WHERE idx = ?", (row.idx,)
            )
            j.transition(row.idx, S.SENDING, "intent committed before the POST",
                         provider_sent_at=iso(desk.clock.wall()))  # fmt: skip
    desk.app.world.reset()  # the provider never saw those POSTs
    desk.clock.advance(60)
    rows = staff(100, 200, 300)
    del rows[1]  # the clerk deletes Employee 1
    rows[1]["amount"] = "350"  # and corrects Employee 2
    # The corrected row pays someone whose order is uncertain: refused, nothing sent.
    with pytest.raises(InvalidRowsError, match="this batch already sent PREPAID_MOBILIS 300 DA"):
        await desk.run(desk.sheet("s2.csv", *rows), "c", allow_repeat=True)
    assert desk.orders() == []
    rows[1]["amount"] = "300"  # restored as sent: the deleted row is dropped, not sent
    result = await desk.run(desk.sheet("s2.csv", *rows), "c", allow_repeat=True)
    assert result.exit_code == 0
    assert payments(desk) == {("0661000000", 100): 1, ("0661000002", 300): 1}
    with desk.journal("c") as j:
        assert len(j.rows()) == 2
        assert any("dropped, not sent" in e["detail"] for e in j.events())


async def test_the_same_sheet_under_another_key_is_named_and_refused(desk: Desk) -> None:
    sheet = desk.sheet("staff.csv", *staff(500, 700))
    await desk.run(sheet, "payroll-2026-11")
    desk.clock.advance(3 * 86400)
    with pytest.raises(InvalidRowsError) as refused:
        await desk.run(sheet, "Payroll-2026-11")
    message = refused.value.message
    assert "batch 'payroll-2026-11' already exists and differs from 'Payroll-2026-11' only" in (
        message
    )
    assert "this very sheet (fingerprint" in message and "as batch 'payroll-2026-11'" in message
    assert "row 2: PREPAID_MOBILIS 500 DA to 0661000000 was already sent by batch " in message
    assert "--allow-repeat" in message
    assert sum(payments(desk).values()) == 2


async def test_an_edited_sheet_under_a_new_key_is_caught_row_by_row(desk: Desk) -> None:
    await desk.run(desk.sheet("staff.csv", *staff(500, 700)), "nov")
    desk.clock.advance(2 * 86400)
    other = staff(500, 800)  # same first payment; the second changed
    with pytest.raises(InvalidRowsError) as refused:
        await desk.run(desk.sheet("staff2.csv", *other), "nov-bis")
    assert "row 2: PREPAID_MOBILIS 500 DA to 0661000000 was already sent by batch 'nov'" in (
        refused.value.message
    )
    assert "row 3" not in refused.value.message
    assert sum(payments(desk).values()) == 2


async def test_next_month_is_not_a_repeat(desk: Desk) -> None:
    sheet = desk.sheet("staff.csv", *staff(500, 700))
    await desk.run(sheet, "payroll-2026-11")
    desk.clock.advance(28 * 86400)  # the shortest gap between two monthly runs
    assert (await desk.run(sheet, "payroll-2026-12")).exit_code == 0
    assert sum(payments(desk).values()) == 4


async def test_another_folder_is_the_same_history(desk: Desk, tmp_path: Path) -> None:
    """The default state dir is the user's: a second folder sees the first one's batches."""
    from bulk_topup.statedir import default_state_dir

    sheet = desk.sheet("staff.csv", *staff(500, 700))
    desk.state = default_state_dir()
    await desk.run(sheet, "payroll")
    copy = tmp_path / "elsewhere" / "staff.csv"
    copy.parent.mkdir()
    copy.write_bytes(sheet.read_bytes())
    result = await desk.run(copy, "payroll")  # the same key: the same batch, resumed
    assert result.exit_code == 0 and sum(payments(desk).values()) == 2


async def test_a_headers_only_sheet_is_not_success(desk: Desk) -> None:
    sheet = desk.folder / "empty.csv"
    sheet.write_text("phone,plan_code,amount\n")
    with pytest.raises(NothingToSend, match="the sheet has no order rows below its header"):
        await desk.run(sheet, "empty")
    assert not any((desk.state / "batches").glob("*.sqlite"))


async def test_an_empty_journal_is_not_success(desk: Desk) -> None:
    with desk.journal("killed") as j:
        j.set_meta(api_url=desk.base)  # created, then killed before the rows were written
    with pytest.raises(NothingToSend, match="holds no rows .* bulk-topup run SHEET --batch killed"):
        await desk.resume("killed")
    with pytest.raises(NothingToSend):
        await desk.reconcile("killed")


async def test_the_confirmation_counts_what_will_be_resent(desk: Desk) -> None:
    from bulk_topup.service import Hooks

    sheet = desk.sheet("s.csv", *staff(500, 600, 700))
    seen = []

    class Refuse(Hooks):
        def confirm(self, facts):  # type: ignore[no-untyped-def]
            seen.append(facts)
            return False

    with pytest.raises(Exception, match="not confirmed; nothing was sent"):
        await desk.run(sheet, "b", hooks=Refuse())
    # The run is killed with two rows SENDING (one POST left, one did not).
    with desk.journal("b") as j:
        rows = j.rows()
        for row in rows[:2]:
            j.transition(row.idx, S.SENDING, "intent", provider_sent_at=iso(desk.clock.wall()))
    async with desk.settings().client() as client:
        await client.send_mobile(plan_code="PREPAID_MOBILIS", msisdn="0661000000", amount=500,
                                 ref=rows[0].ref)  # fmt: skip
    with pytest.raises(Exception, match="not confirmed"):
        await desk.resume("b", hooks=Refuse())
    facts = seen[-1]
    assert facts.rows == 2 and facts.resend == 1  # row 3 as planned, row 2 never placed
    assert facts.in_flight == 1  # row 1 adopted: not sent again
    assert facts.cost == round(600 * 0.96 + 700 * 0.96, 2)
    result = await desk.resume("b")
    assert result.exit_code == 0 and sum(payments(desk).values()) == 3


async def test_a_key_revoked_mid_run_leaves_rows_open_not_refused(desk: Desk) -> None:
    from bulk_topup.service import Hooks

    world = desk.app.world

    class Revoke(Hooks):
        def progress(self, event, row):  # type: ignore[no-untyped-def]
            if event == "submitted":
                world.keys.clear()  # the key is revoked in the dashboard after the first row

    result = await desk.run(
        desk.sheet("s.csv", *staff(500, 600, 700)), "b", hooks=Revoke(),
        options=__import__("bulk_topup.context").context.RunOptions(concurrency=1, rate=2000),
    )  # fmt: skip
    assert result.exit_code == 5
    assert "INVALID_ACCESS_TOKEN" in result.stop_reason
    assert result.next_steps[0] == "bulk-topup resume --batch b --state-dir " + str(desk.state)
    with desk.journal("b") as j:
        assert [r.state for r in j.rows()].count(S.PLANNED) == 2


@pytest.mark.parametrize("desk", [True], ids=["ref-dedup"], indirect=True)
async def test_a_planned_row_the_provider_already_holds_is_adopted(desk: Desk) -> None:
    """The run died after the POST but before SUBMITTED was written, and the row was found
    PLANNED again: the provider's DUPLICATED_REF (with its ref check on) makes it adopted."""
    assert desk.app.world.faults.ref_dedup
    sheet = desk.sheet("s.csv", *staff(500))
    from bulk_topup.service import Hooks

    class No(Hooks):
        def confirm(self, facts):  # type: ignore[no-untyped-def]
            return False

    with pytest.raises(Exception, match="not confirmed"):
        await desk.run(sheet, "b", hooks=No())
    with desk.journal("b") as j:
        ref = j.rows()[0].ref
    async with desk.settings().client() as client:
        await client.send_mobile(plan_code="PREPAID_MOBILIS", msisdn="0661000000", amount=500,
                                 ref=ref)  # fmt: skip
    assert (await desk.run(sheet, "b")).exit_code == 0
    assert sum(payments(desk).values()) == 1
    with desk.journal("b") as j:
        assert any("the provider already had this ref" in e["detail"] for e in j.events())
