"""The runner against the in-process emulator, in virtual time: outcomes, faults, never twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bulk_topup.batchfile import open_batch
from bulk_topup.emulator import ApiKey, EmulatorTransport
from bulk_topup.errors import BatchLockedError, InvalidRowsError, JournalError, RefusedError
from bulk_topup.journal import MIGRATIONS, RowState
from bulk_topup.runner import RunOptions
from bulk_topup.throttle import AdaptiveThrottle
from bulk_topup.validation import build_orders

from .runkit import Kit, gift, internet, mobile, sheet_of

pytestmark = pytest.mark.anyio


def assert_once_per_ref(kit: Kit, expected: int) -> None:
    stats = kit.stats()
    assert stats["max_orders_per_ref"] <= 1, stats["orders_per_ref"]
    assert len(stats["orders_per_ref"]) == expected


async def test_every_outcome_lands_in_the_journal(kit: Kit) -> None:
    await kit.load(
        mobile("0661234567"),
        mobile("0600000001", plan="PREPAID_DJEZZY"),
        mobile("0600000002", plan="PREPAID_DJEZZY"),
        mobile("0600000003", plan="PREPAID_DJEZZY"),
        internet("036362608"),
        internet("000000002"),
        gift(qty=2),
        gift("TEST_PARTIAL", 4),
        gift("TEST_REFUND", 1),
    )
    outcome = await kit.run()
    assert kit.states() == [
        "FULFILLED",
        "REFUNDED",
        "REFUNDED",
        "UNKNOWN_ERROR",
        "FULFILLED",
        "QUEUED",
        "FULFILLED",
        "PARTIALLY_FILLED",
        "REFUNDED",
    ]
    assert outcome.exit_code == 5
    with kit.journal() as j:
        rows = j.rows()
        assert rows[2].suggested == [
            {"typename": "📋 FACTURE | فاتورة", "plan_code": "FACTURE_DJEZZY", "amount": 500}
        ]
        assert rows[1].refund_message and rows[1].debited == 0
        assert rows[4].card_code and rows[4].num_trans.startswith("AT-")
        assert [c["value"][:13] for c in rows[6].cards] == ["SANDBOX-CARD-"] * 2
        # sandbox gift orders are free, as the documentation shows
        assert rows[7].fulfilled_quantity == 2 and rows[7].debited == 0
        assert rows[0].debited == 480
        events = j.events(rows[0].idx)
        # The first check comes after the settle time: one check, already final.
        assert [e["to_state"] for e in events] == ["PLANNED", "SENDING", "SUBMITTED", "FULFILLED"]
        assert events[1]["detail"] == "intent committed before the POST"
    assert_once_per_ref(kit, 6)


async def test_all_fulfilled_exits_0_and_a_rerun_sends_nothing(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), mobile("0661234568"), internet("036362608"))
    assert (await kit.run()).exit_code == 0
    posts = kit.stats()["calls"]
    again = await kit.run()
    assert again.exit_code == 0
    assert kit.stats()["calls"].get("POST /v3/mobile/send") == posts["POST /v3/mobile/send"]
    assert_once_per_ref(kit, 3)


async def test_refunds_exit_4(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), mobile("0600000001", plan="PREPAID_DJEZZY"))
    assert (await kit.run()).exit_code == 4


async def test_storm_of_5xx_never_pays_twice(kit: Kit) -> None:
    kit.app.world.faults.update({"error_rate": 0.35, "seed": 7})
    kit.app.world.reset()
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(12)])
    outcome = await kit.run(RunOptions(concurrency=4, breaker_threshold=50, retry_budget=200))
    assert set(kit.states()) <= {"FULFILLED"}, kit.states()
    assert outcome.exit_code == 0
    assert_once_per_ref(kit, 12)


async def test_breaker_parks_the_run_in_a_total_outage(kit: Kit) -> None:
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(6)])
    kit.app.world.faults.update({"error_rate": 1.0})
    outcome = await kit.run(RunOptions(concurrency=2, breaker_threshold=3), preflight=False)
    assert outcome.exit_code == 5
    assert "failed 3 times in a row" in outcome.stop_reason
    assert "PLANNED" in kit.states()
    kit.app.world.faults.update({"error_rate": 0.0})
    assert (await kit.run()).exit_code == 0
    assert_once_per_ref(kit, 6)


async def test_dropped_answers_are_adopted_not_resent(kit: Kit) -> None:
    kit.app.world.faults.update({"drop_rate": 0.5, "seed": 3})
    kit.app.world.reset()
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(10)], internet("036362608"))
    outcome = await kit.run()
    assert outcome.exit_code == 0, kit.states()
    assert kit.stats()["faults_injected"]["drop"] >= 3
    assert_once_per_ref(kit, 11)


async def test_read_timeout_on_post_is_reconciled(kit: Kit) -> None:
    kit.app.world.faults.update({"slow_next": 2, "slow_seconds": 0.3})
    await kit.load(mobile("0661234567"), mobile("0661234568"), mobile("0661234569"))
    outcome = await kit.run(timeout=httpx.Timeout(5, read=0.1))
    assert outcome.exit_code == 0
    with kit.journal() as j:
        details = [e["detail"] for e in j.events()]
    assert sum("reconciled by ref" in d for d in details) == 2
    assert_once_per_ref(kit, 3)


async def test_429_waits_and_lowers_the_pace(kit: Kit) -> None:
    kit.app.world.rate_limit = 5
    kit.app.world.reset()
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(8)])
    outcome = await kit.run(RunOptions(concurrency=8, retry_budget=500))
    assert outcome.exit_code == 0
    assert outcome.rate_limited > 0 and kit.stats()["rate_limited"] > 0
    assert_once_per_ref(kit, 8)


async def test_wrong_key_refused_before_sending(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    kit.key = "wrong"
    with pytest.raises(RefusedError, match="INVALID_ACCESS_TOKEN"):
        await kit.run()
    assert "POST /v3/mobile/send" not in kit.stats()["calls"]


async def test_read_only_key_refused(kit: Kit) -> None:
    kit.app.world.keys["ro"] = ApiKey("ro", "PRODUCTION", "READ-ONLY")
    await kit.load(mobile("0661234567"))
    kit.key = "ro"
    with pytest.raises(RefusedError, match="READ-ONLY: it can look but not buy"):
        await kit.run()
    assert kit.stats()["orders"] == 0


async def test_balance_below_cost_refused(kit: Kit) -> None:
    kit.app.world.balance = 100
    await kit.load(mobile("0661234567"))
    with pytest.raises(
        RefusedError,
        match=r"the balance is 100.00 DA but the 1 rows left to "
        r"send cost 480.00 DA",
    ):
        await kit.run()


async def test_max_total(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), mobile("0661234568"))
    with pytest.raises(RefusedError, match="more than --max-total 600.00 DA"):
        await kit.run(RunOptions(max_total=600))


async def test_max_total_counts_face_value_not_cost(kit: Kit) -> None:
    """1,000 DA of top-ups cost 960 DA: a cap of 980 DA is exceeded (the cap is on what the
    people receive, the safer side), and nothing is sent."""
    await kit.load(mobile("0661234567"), mobile("0661234568"))
    with pytest.raises(RefusedError, match="would send 1,000.00 DA of top-ups, more than"):
        await kit.run(RunOptions(max_total=980))
    assert kit.stats()["orders"] == 0
    assert (await kit.run(RunOptions(max_total=1000))).exit_code == 0


async def test_the_retry_budget_runs_out(kit: Kit) -> None:
    """In a storm that never ends, the run stops after its retry budget: it does not retry
    forever (the breaker is set out of the way here)."""
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(4)])

    class PostsNeverConnect(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = EmulatorTransport(kit.app)
            self.posts = 0

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "POST":
                self.posts += 1
                raise httpx.ConnectError("connection refused", request=request)
            return await self.inner.handle_async_request(request)

    transport = PostsNeverConnect()
    options = RunOptions(concurrency=1, breaker_threshold=10_000, retry_budget=3)
    outcome = await kit.run(options, preflight=False, transport=transport)
    assert outcome.exit_code == 5
    assert "more than 3 retries in this run" in (outcome.stop_reason or "")
    assert kit.states() == ["PLANNED"] * 4  # never sent: all still to send
    assert transport.posts == 4 * 6  # 4 tries of a row (6 attempts each), then the budget


async def test_an_internet_card_records_what_it_cost(kit: Kit) -> None:
    """The internet API reports no debit: the catalog price charged is recorded, so totals and
    the workbook's debited column are right."""
    await kit.load(internet("036362608", 1000), internet("213661234567", 500, "4G"))
    assert (await kit.run()).exit_code == 0
    with kit.journal() as j:
        rows = j.rows()
        assert [r.debited for r in rows] == [r.cost for r in rows]
        assert all(r.debited and r.debited > 0 for r in rows)
        assert j.totals()["debited"] == round(sum(r.cost for r in rows), 2)


async def test_balance_running_out_mid_run(kit: Kit) -> None:
    await kit.load(*[mobile(f"06612345{i:02d}") for i in range(6)])
    kit.app.world.balance = 1000  # somebody else spent it after the pre-flight
    outcome = await kit.run(RunOptions(concurrency=1), preflight=False)
    assert outcome.exit_code == 5
    assert "balance ran out" in outcome.stop_reason
    assert kit.states().count("FULFILLED") == 2
    assert kit.states().count("PLANNED") == 4
    kit.app.world.balance = 10_000
    assert (await kit.run()).exit_code == 0
    assert_once_per_ref(kit, 6)


async def test_rejected_rows(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), internet("036362608"))
    kit.app.world.internet["ADSL"][1]["available"] = False  # sold out since validation
    outcome = await kit.run()
    assert kit.states() == ["FULFILLED", "REJECTED"]
    assert outcome.exit_code == 4
    with kit.journal() as j:
        assert j.rows()[1].error_code == "ERR_VALIDATION"


async def test_reconcile_settles_unknown_and_queued(kit: Kit) -> None:
    await kit.load(mobile("0600000003", plan="PREPAID_DJEZZY"), internet("000000002"))
    assert (await kit.run()).exit_code == 5
    assert kit.states() == ["UNKNOWN_ERROR", "QUEUED"]
    assert (await kit.reconcile()).exit_code == 5
    kit.clock.advance(25 * 3600)
    outcome = await kit.reconcile()
    assert kit.states() == ["FULFILLED", "FULFILLED"]
    assert outcome.exit_code == 0


async def test_poll_deadline_leaves_rows_open(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    options = RunOptions(poll_first={"mobile": 1.0}, poll_deadline={"mobile": 8.0})
    outcome = await kit.run(options)
    assert kit.states() == ["SUBMITTED"] and outcome.exit_code == 5 and outcome.timed_out == 1
    kit.clock.advance(30)
    assert (await kit.run()).exit_code == 0


async def test_list_sweeps_replace_check_ref(kit: Kit) -> None:
    await kit.load(*[mobile(f"066123{i:04d}") for i in range(150)])
    outcome = await kit.run(RunOptions(concurrency=8))
    assert outcome.exit_code == 0
    calls = kit.stats()["calls"]
    assert calls["POST /v3/mobile/send"] == 150
    assert calls.get("GET /v3/mobile/list", 0) >= 1
    assert calls.get("GET /v3/mobile/check-ref/{ref}", 0) < 30
    assert outcome.api_calls / 150 < 1.3


async def test_uncertain_gift_found_in_the_list(kit: Kit) -> None:
    kit.app.world.faults.update({"drop_next": 1})
    await kit.load(gift(qty=2))
    assert (await kit.run()).exit_code == 0
    assert kit.stats()["orders"] == 1
    with kit.journal() as j:
        assert any("gift order found in the list" in e["detail"] for e in j.events())
        # Delivered in the end: the dropped connection is in its events, not on its result line.
        (row,) = j.rows()
        assert row.state == RowState.FULFILLED and row.error_message is None
        assert any("error_message" in (e["data"] or "") for e in j.events())


async def test_uncertain_gift_not_found_is_left_for_a_person(kit: Kit) -> None:
    kit.app.world.faults.update({"fail_next": 0})
    await kit.load(gift(qty=2))
    # A 500 on placeOrder: the emulator did no work, so the list shows nothing.
    kit.app.world.faults.update({"fail_next": 1})
    outcome = await kit.run(preflight=False)
    assert kit.states() == ["UNCERTAIN"] and outcome.exit_code == 5
    assert kit.stats()["orders"] == 0
    # Only an explicit option resends it.
    assert (await kit.run(RunOptions(resend_uncertain_gifts=True))).exit_code == 0
    assert kit.stats()["orders"] == 1


async def test_sending_rows_from_a_crash_are_reconciled_first(kit: Kit) -> None:
    await kit.load(mobile("0661234567"), mobile("0661234568"))
    with kit.journal() as j:
        a, b = j.rows()
        j.transition(a.idx, RowState.SENDING, "crash test")
        j.transition(b.idx, RowState.SENDING, "crash test")
    async with kit.client() as client:  # the first POST did reach the provider before the crash
        await client.send_mobile(
            plan_code="PREPAID_MOBILIS", msisdn="0661234567", amount=500, ref=a.ref
        )
    assert (await kit.run()).exit_code == 0
    assert_once_per_ref(kit, 2)


async def test_lock_held_means_exit_7_and_no_call(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    with kit.journal(), pytest.raises(BatchLockedError) as e:
        kit.journal()
    assert e.value.exit_code == 7


async def test_changed_row_under_a_sent_ref_is_refused(kit: Kit, tmp_path: Path) -> None:
    await kit.load({**mobile("0661234567"), "ref": "EMP-1"})
    await kit.run()
    async with kit.client() as client:
        from bulk_topup.catalog import load_catalog

        catalog = await load_catalog(client, kit.state, "http://emulator.test")
    changed = build_orders(sheet_of({**mobile("0661234567", 900), "ref": "EMP-1"}), "b", catalog)
    with (
        kit.journal() as j,
        pytest.raises(
            InvalidRowsError,
            match="row 2: ref EMP-1 was already sent in this batch as PREPAID_MOBILIS 500 DA",
        ),
    ):
        j.sync_orders(changed.orders)


async def test_illegal_transition_is_refused(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    with kit.journal() as j, pytest.raises(JournalError, match="PLANNED -> FULFILLED"):
        j.transition(0, RowState.FULFILLED)


def test_journal_file_is_private(tmp_path: Path) -> None:
    with open_batch(tmp_path, "x", now=lambda: "t") as j:
        assert (j.path.stat().st_mode & 0o777) == 0o600


async def test_throttle_halves_on_429_and_recovers() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)
        now[0] += s

    throttle = AdaptiveThrottle(40, recover_after=5, sleep=sleep, now=lambda: now[0])
    throttle.on_rate_limited(2.0)
    assert throttle.rate == 20 and throttle.rate_limited == 1
    await throttle.acquire()
    assert waits == [2.0]
    now[0] += 6
    await throttle.acquire()
    assert throttle.rate == 25


async def test_the_event_log_is_append_only_and_sent_rows_stay(kit: Kit) -> None:
    import sqlite3

    await kit.load(mobile("0661234567"))
    await kit.run()
    with kit.journal() as j:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            j.db.execute("UPDATE events SET detail = 'rewritten'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            j.db.execute("DELETE FROM events")
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            j.db.execute("DELETE FROM rows")
        assert j.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_an_acceptance_without_an_id_is_reconciled(kit: Kit) -> None:
    """A 200 whose body lacks topupId is not trusted: the ref is checked with the provider."""

    class NoId(httpx.AsyncBaseTransport):
        def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            if request.method == "POST":
                await response.aread()
                return httpx.Response(200, json={"success": True, "data": {}})
            return response

    from bulk_topup.emulator import EmulatorTransport

    await kit.load(mobile("0661234567"), mobile("0661234568"))
    outcome = await kit.run(transport=NoId(EmulatorTransport(kit.app)))
    assert outcome.exit_code == 0
    with kit.journal() as j:
        assert all(r.order_id for r in j.rows())
        assert sum("reconciled by ref" in e["detail"] for e in j.events()) == 2
    assert_once_per_ref(kit, 2)


async def test_a_batch_stays_in_its_environment(kit: Kit) -> None:
    await kit.load(mobile("0661234567"))
    await kit.run()
    kit.app.world.keys["prod"] = ApiKey("prod", "PRODUCTION")
    kit.key = "prod"
    with pytest.raises(RefusedError, match="started with a SANDBOX key and this key is PRODUCTION"):
        await kit.run()
