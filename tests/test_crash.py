"""Crash drills over real sockets: the emulator under uvicorn, `bulk-topup run` in another process,
killed with SIGKILL at the worst moments, then `resume`. Exactly one order per row, always."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bulk_topup.batchfile import batch_path
from bulk_topup.clock import SystemClock
from bulk_topup.emulator import SANDBOX_KEY, World, create_app
from bulk_topup.journal import FINAL, PARKED, RowState

from .conftest import free_port

pytestmark = pytest.mark.socket
SPEED = 10.0
CHILDREN: list[subprocess.Popen[bytes]] = []


@pytest.fixture(autouse=True)
def no_child_left_behind() -> Iterator[None]:
    """A drill that fails or times out must not leave its `bulk-topup` running into the next."""
    try:
        yield
    finally:
        while CHILDREN:
            child = CHILDREN.pop()
            if child.poll() is None:
                child.kill()
                child.communicate(timeout=10)


@pytest.fixture
def provider() -> Iterator[tuple[str, World]]:
    """The emulator over a socket, its clock SPEED times faster, double sends made visible."""
    world = World(clock=SystemClock(SPEED))
    world.faults.update({"ref_dedup": False})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(10)


class Drill:
    def __init__(self, url: str, world: World, tmp: Path, rows: int,
                 lines: list[str] | None = None) -> None:  # fmt: skip
        self.world = world
        self.tmp = tmp
        self.state = tmp / "state"
        self.sheet = tmp / "orders.csv"
        if lines is None:
            lines = ["name,phone,plan_code,amount"]
            lines += [f"emp{i},06612{i:05d},PREPAID_MOBILIS,{100 + i}" for i in range(rows)]
        self.sheet.write_text("\n".join(lines) + "\n")
        self.rows = rows
        self.env = {
            **os.environ,
            "ONECLICK_API_KEY": SANDBOX_KEY,
            "ONECLICK_API_URL": url,
            "BULK_TOPUP_STATE_DIR": str(self.state),
            "BULK_TOPUP_CLOCK_SPEED": str(SPEED),
        }
        self.journal = batch_path(self.state, "crash")

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "bulk_topup", *args]

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            self.cli("run", str(self.sheet), "--batch", "crash", "--yes", *extra),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        CHILDREN.append(child)
        return child

    def finish(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(self.cli(*args), env=self.env, capture_output=True, timeout=timeout)

    def states(self) -> dict[str, str]:
        """ref -> state, read while another process writes."""
        if not self.journal.exists():
            return {}
        try:
            db = sqlite3.connect(f"file:{self.journal}?mode=ro", uri=True, timeout=5)
            try:
                return dict(db.execute("SELECT ref, state FROM rows WHERE ref IS NOT NULL"))
            finally:
                db.close()
        except sqlite3.OperationalError:
            return {}

    def orders(self) -> dict[str, int]:
        return dict(self.world.stats()["orders_per_ref"])

    def wait(self, what: str, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {what}; journal {self.states()}")
            time.sleep(0.01)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)

    def resume_and_check(self) -> dict[str, Any]:
        done = self.finish("resume", "--batch", "crash", "--yes", "--rate", "50")
        assert done.returncode == 0, done.stdout.decode()
        states = self.states()
        assert len(states) == self.rows
        assert all(RowState(s) in FINAL | PARKED for s in states.values()), states
        orders = self.orders()
        assert sorted(orders) == sorted(states), "an order is missing or foreign"
        assert set(orders.values()) == {1}, f"paid twice: {orders}"
        return states


class HoldingProxy:
    """Between bulk-topup and the provider: forwards every request, but holds each POST (never
    forwards it) while `holding` is set: a POST that left the process and never arrived."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.holding = True
        self.held = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import anyio
        import httpx
        from starlette.requests import Request
        from starlette.responses import Response

        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        if request.method == "POST" and self.holding:
            self.held += 1
            await anyio.sleep(3600)
        keep = ("x-access-token", "content-type", "accept", "user-agent")
        async with httpx.AsyncClient(base_url=self.target) as client:
            answer = await client.request(
                request.method, request.url.path, params=request.query_params, content=body,
                headers={k: v for k, v in request.headers.items() if k.lower() in keep},
            )  # fmt: skip
        headers = {k: v for k, v in answer.headers.items() if k.lower() in ("retry-after",)}
        response = Response(
            answer.content, answer.status_code, headers=headers,
            media_type=answer.headers.get("content-type"),
        )  # fmt: skip
        await response(scope, receive, send)


def test_kill_after_intent_before_post(provider, tmp_path: Path) -> None:
    """The intent is journaled, the POST leaves, the process is killed before the provider ever
    sees it: resume finds no order under the ref and sends it, once."""
    url, world = provider
    proxy = HoldingProxy(url)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            proxy, host="127.0.0.1", port=port, log_level="critical", timeout_graceful_shutdown=1
        )  # fmt: skip
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        d = Drill(f"http://127.0.0.1:{port}", world, tmp_path, rows=6)
        assert d.finish("validate", str(d.sheet)).returncode == 0  # warm the catalog cache
        proc = d.start("--rate", "20", "--concurrency", "3")
        d.wait("three POSTs held on their way", lambda: proxy.held >= 3)
        d.wait("their intents journaled", lambda: list(d.states().values()).count("SENDING") == 3)
        d.kill(proc)
        assert d.orders() == {}  # the provider never saw them
        proxy.holding = False
        d.resume_and_check()
    finally:
        server.should_exit = True
        thread.join(10)


def test_kill_after_provider_committed_before_answer(provider, tmp_path: Path) -> None:
    url, world = provider
    d = Drill(url, world, tmp_path, rows=4)
    world.faults.update({"slow_next": 1, "slow_seconds": 4.0})
    proc = d.start("--rate", "20", "--concurrency", "1")

    def committed_unanswered() -> bool:
        orders, states = d.orders(), d.states()
        return any(states.get(ref) == "SENDING" for ref in orders)

    d.wait("an order the provider holds while the journal still says SENDING", committed_unanswered)
    d.kill(proc)
    d.resume_and_check()


def test_kill_mid_poll(provider, tmp_path: Path) -> None:
    d = Drill(*provider, tmp_path, rows=5)
    proc = d.start("--rate", "50")
    d.wait(
        "every row submitted, none settled",
        lambda: len(d.states()) == 5 and set(d.states().values()) == {"SUBMITTED"},
    )
    d.kill(proc)
    states = d.resume_and_check()
    assert set(states.values()) == {"FULFILLED"}


def test_second_run_while_locked_exits_7_without_calling(provider, tmp_path: Path) -> None:
    d = Drill(*provider, tmp_path, rows=3)
    assert d.finish("validate", str(d.sheet)).returncode == 0
    proc = d.start("--rate", "1")
    d.wait("the first run is sending", lambda: "SUBMITTED" in d.states().values())
    proc.send_signal(signal.SIGSTOP)  # frozen: it makes no call while the second one tries
    try:
        calls = d.world.stats()["total_calls"]
        second = d.finish("run", str(d.sheet), "--batch", "crash", "--yes")
        assert second.returncode == 7, second.stdout.decode()
        assert b"is being run by another process" in second.stderr + second.stdout
        assert d.world.stats()["total_calls"] == calls
    finally:
        proc.send_signal(signal.SIGCONT)
    d.kill(proc)
    d.resume_and_check()


def test_sigterm_stops_cleanly_with_exit_5(provider, tmp_path: Path) -> None:
    d = Drill(*provider, tmp_path, rows=8)
    assert d.finish("validate", str(d.sheet)).returncode == 0
    proc = d.start("--rate", "2", "--concurrency", "2")
    d.wait("some rows submitted", lambda: "SUBMITTED" in d.states().values())
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 5, out.decode()
    assert b"bulk-topup resume --batch crash" in out
    assert "SENDING" not in d.states().values()  # in-flight POSTs settled into the journal
    assert (tmp_path / "orders-crash-results.xlsx").exists()
    d.resume_and_check()


def test_gift_order_committed_then_killed_is_found_in_the_list(provider, tmp_path: Path) -> None:
    """Gift orders have no ref: after a kill, the order is found by product, type, quantity and
    time in the provider's list (in the provider's clock, which runs apart from ours)."""
    url, world = provider
    lines = ["name,product_id,type_id,quantity",
             "a,507f1f77bcf86cd799439011,type_001,2",
             "b,507f1f77bcf86cd799439014,nf_1m,1"]  # fmt: skip
    d = Drill(url, world, tmp_path, rows=2, lines=lines)
    world.faults.update({"slow_next": 1, "slow_seconds": 4.0})
    proc = d.start("--rate", "20", "--concurrency", "1")
    d.wait("the provider holds a gift order the journal still has as SENDING",
           lambda: world.stats()["orders"] >= 1 and "SENDING" in d.states().values())  # fmt: skip
    d.kill(proc)
    done = d.finish("resume", "--batch", "crash", "--yes")
    assert done.returncode == 0, done.stdout.decode()
    assert set(d.states().values()) == {"FULFILLED"}
    assert world.stats()["orders"] == 2  # found and adopted, never ordered again


def test_a_second_sigint_leaves_at_once_and_resume_settles(provider, tmp_path: Path) -> None:
    d = Drill(*provider, tmp_path, rows=6)
    assert d.finish("validate", str(d.sheet)).returncode == 0
    provider[1].faults.update({"slow_next": 100, "slow_seconds": 3.0})  # POSTs hang
    proc = d.start("--rate", "5", "--concurrency", "2")
    d.wait("a POST in flight", lambda: "SENDING" in d.states().values())
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 5, out.decode()
    assert b"leaving at once" in out
    provider[1].faults.update({"slow_next": 0})
    d.resume_and_check()
