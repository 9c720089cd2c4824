"""A gift card is never handed to two rows, and a gift order is adopted only if it was born during
that row's POST. Gift orders carry no ref: these are the cases where a time window and a claim
check are all that stand between a row and a neighbour's card."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import anyio
import httpx
import pytest

from bulk_topup.clock import VirtualClock, iso
from bulk_topup.context import RunOptions
from bulk_topup.emulator import EmulatorTransport, World, create_app
from bulk_topup.journal import RowState

from .runkit import Desk, gift

pytestmark = pytest.mark.anyio
S = RowState
PSN = "507f1f77bcf86cd799439011"


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    clock = VirtualClock()
    world = World(clock=clock)
    return Desk(create_app(world), clock, tmp_path)


def card_owners(desk: Desk, *batches: str) -> Counter[str]:
    """How many rows (over these batches) hold each card code."""
    owners: Counter[str] = Counter()
    for batch in batches:
        with desk.journal(batch) as j:
            for row in j.rows():
                for card in row.cards:
                    owners[card["value"]] += 1
    return owners


def delivered_rows(desk: Desk, batch: str) -> int:
    with desk.journal(batch) as j:
        return sum(1 for r in j.rows() if r.state in (S.FULFILLED, S.PARTIALLY_FILLED))


async def test_identical_gifts_under_faults_never_share_a_card(desk: Desk) -> None:
    world = desk.app.world
    world.faults.update({"error_rate": 0.4, "drop_rate": 0.25, "seed": 11})
    world.reset()
    sheet = desk.sheet("gifts.csv", *[gift() for _ in range(12)])
    options = RunOptions(concurrency=2, rate=2000, breaker_threshold=200, retry_budget=500)
    await desk.run(sheet, "g", allow_duplicates=True, options=options)
    for _ in range(3):  # what a person would do: resume until nothing is left to send
        world.faults.update({"error_rate": 0.0})
        desk.clock.advance(120)
        await desk.resume("g", options=options)
    owners = card_owners(desk, "g")
    assert owners and max(owners.values()) == 1, owners
    # Every order the provider made belongs to exactly one row (none lost, none shared), and
    # rows whose POST made no order were left for a person rather than given someone's card.
    with desk.journal("g") as j:
        rows = j.rows()
    held = [r.order_id for r in rows if r.order_id]
    assert sorted(held) == sorted(o.id for o in desk.orders("gift"))
    assert len(held) == len(set(held)) == delivered_rows(desk, "g")
    assert world.faults_injected["drop"] >= 1 and world.faults_injected["500"] >= 1
    assert all(r.state in (S.FULFILLED, S.UNCERTAIN) for r in rows)


async def _killed_while_sending(desk: Desk, batch: str, qty: int = 1) -> int:
    """A batch whose one gift row was left SENDING by a kill before its POST left."""
    from bulk_topup.service import Hooks

    class No(Hooks):
        def confirm(self, facts):  # type: ignore[no-untyped-def]
            return False

    with pytest.raises(Exception, match="not confirmed"):
        await desk.run(desk.sheet(f"{batch}.csv", gift(qty=qty)), batch, hooks=No())
    with desk.journal(batch) as j:
        idx = j.rows()[0].idx
        async with desk.settings().client() as client:
            await client.ping()  # learn the provider's clock, as the run did
            sent = iso(client.provider_now())
        j.transition(idx, S.SENDING, "intent committed before the POST", provider_sent_at=sent)
    return idx


async def test_another_batchs_later_order_is_never_adopted(desk: Desk) -> None:
    await _killed_while_sending(desk, "first")
    desk.clock.advance(3 * 86400)
    await desk.run(desk.sheet("second.csv", gift()), "second", allow_repeat=True)
    assert delivered_rows(desk, "second") == 1
    result = await desk.resume("first")
    with desk.journal("first") as j:
        row = j.rows()[0]
    assert row.state == S.UNCERTAIN and row.order_id is None
    assert "no matching order" in (row.error_message or "")
    assert result.exit_code == 5
    assert len(desk.orders("gift")) == 1
    await desk.reconcile("first")
    assert card_owners(desk, "first", "second") == Counter({"SANDBOX-CARD-1": 1})


async def test_an_unclaimed_order_born_after_the_post_is_never_adopted(desk: Desk) -> None:
    """Someone buys the same gift on the same account later (the dashboard, another tool): no
    batch claims that order, but it was born after this row's POST could have made anything."""
    await _killed_while_sending(desk, "first")
    desk.clock.advance(3 * 86400)
    async with desk.settings().client() as client:
        await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    await desk.resume("first")
    with desk.journal("first") as j:
        row = j.rows()[0]
    assert row.state == S.UNCERTAIN and row.order_id is None
    assert len(desk.orders("gift")) == 1


async def test_an_order_born_in_the_window_but_claimed_elsewhere_is_not_adopted(
    desk: Desk,
) -> None:
    """Another batch placed the same gift during this row's POST and holds its order: the row
    stays uncertain rather than take the other batch's card."""
    await _killed_while_sending(desk, "first")
    await desk.run(desk.sheet("second.csv", gift()), "second", allow_repeat=True)
    await desk.resume("first")
    with desk.journal("first") as j:
        row = j.rows()[0]
    assert row.state == S.UNCERTAIN and row.order_id is None
    assert "1 matching held by other rows" in (row.error_message or "")
    assert card_owners(desk, "first", "second") == Counter({"SANDBOX-CARD-1": 1})


async def test_exactly_one_unclaimed_order_in_the_window_is_adopted(desk: Desk) -> None:
    idx = await _killed_while_sending(desk, "first")
    async with desk.settings().client() as client:  # the POST did leave: the order exists
        await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    desk.clock.advance(30)
    result = await desk.resume("first")
    assert result.exit_code == 0
    with desk.journal("first") as j:
        assert j.row(idx).state == S.FULFILLED
        assert any("gift order found in the list" in e["detail"] for e in j.events(idx))


async def test_two_matching_orders_leave_the_row_uncertain(desk: Desk) -> None:
    await _killed_while_sending(desk, "first")
    async with desk.settings().client() as client:
        for _ in range(2):
            await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    await desk.resume("first")
    with desk.journal("first") as j:
        row = j.rows()[0]
    assert row.state == S.UNCERTAIN and "2 matching orders" in (row.error_message or "")


async def test_the_quantity_must_match(desk: Desk) -> None:
    await _killed_while_sending(desk, "first", qty=2)
    async with desk.settings().client() as client:
        await client.place_gift_order(product_id=PSN, type_id="type_001", quantity=1)
    await desk.resume("first")
    with desk.journal("first") as j:
        assert j.rows()[0].state == S.UNCERTAIN


async def test_a_503_beside_a_concurrent_identical_gift_never_takes_its_order(
    desk: Desk,
) -> None:
    """Two batches buy the same gift at the same moment; one POST fails with a 503 (no order
    made). The failed row must not adopt the other batch's order: identical gift POSTs never
    overlap (one lock per product, type and quantity across the state dir)."""
    desk.transport = FirstGiftPostFails(EmulatorTransport(desk.app))
    a = desk.sheet("a.csv", gift())
    b = desk.sheet("b.csv", gift())
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: desk.run(a, "a", allow_repeat=True))
        tg.start_soon(lambda: desk.run(b, "b", allow_repeat=True))
    owners = card_owners(desk, "a", "b")
    assert max(owners.values()) == 1
    states = []
    for batch in ("a", "b"):
        with desk.journal(batch) as j:
            states.append(j.rows()[0].state)
    assert sorted(states) == [S.FULFILLED, S.UNCERTAIN]
    assert len(desk.orders("gift")) == 1


class FirstGiftPostFails(httpx.AsyncBaseTransport):
    """The worst interleaving: the first gift order's 503 arrives just after an identical order
    was made by another POST whose own answer is still on its way (if such a POST can start at
    all while the first is in flight: the first waits up to half a second for it)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.posts = 0
        self.second_made = anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.endswith("/placeOrder"):
            return await self.inner.handle_async_request(request)
        self.posts += 1
        if self.posts == 1:
            with anyio.move_on_after(0.5):
                await self.second_made.wait()
            return httpx.Response(503, text="Service Unavailable", request=request)
        response = await self.inner.handle_async_request(request)
        if self.posts == 2:
            self.second_made.set()
            await anyio.sleep(0.3)
        return response
