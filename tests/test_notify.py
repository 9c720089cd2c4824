"""Word sent when a batch ends, stops or needs a person: received over real HTTP by the test."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from click.testing import CliRunner

from bulk_topup.cli import main
from bulk_topup.clock import SystemClock
from bulk_topup.emulator import SANDBOX_KEY, World, create_app
from bulk_topup.notify import EXIT_WORDS, BatchNews, compose, send, worth_telling

from .conftest import free_port

SAMPLES = Path(__file__).parent.parent / "samples"


@dataclass
class Hook:
    """A webhook endpoint served by the test on 127.0.0.1."""

    port: int
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"


@pytest.fixture
def hook() -> Iterator[Hook]:
    box = Hook(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server name)
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.received.append({"path": self.path, **json.loads(body)})
            self.send_response(box.status)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def cards_in(state: Path) -> list[str]:
    """Every card code the journals of `state` hold (internet codes and gift card values)."""
    found = []
    for path in (state / "batches").glob("*.sqlite"):
        db = sqlite3.connect(path)
        for code, cards in db.execute("SELECT card_code, cards FROM rows"):
            if code:
                found.append(code)
            found += [c["value"] for c in json.loads(cards or "[]")]
        db.close()
    return found


def test_a_run_that_stops_tells_the_hook(hook: Hook, tmp_path: Path) -> None:
    state = tmp_path / "state"
    out = tmp_path / "results.xlsx"
    result = CliRunner().invoke(main, [
        "run", str(SAMPLES / "orders.csv"), "--batch", "pay-11", "--yes", "--out", str(out),
        "--notify", hook.url, "--emulator", "--emulator-speed", "200", "--state-dir", str(state),
    ])  # fmt: skip
    assert result.exit_code == 5, result.output
    assert len(hook.received) == 1
    message = hook.received[0]
    assert message["path"] == "/hook"
    assert message["title"] == (
        "bulk-topup pay-11: stopped with rows not final: resume or reconcile later (exit 5)"
    )
    body = message["message"]
    assert body.splitlines()[0] == (
        "run of batch pay-11 (SANDBOX): stopped with rows not final: resume or reconcile later "
        "(exit code 5)."
    )
    assert "rows: 13 (FULFILLED 9, PARTIALLY_FILLED 1, REFUNDED 2, UNKNOWN_ERROR 1)" in body
    # (sandbox gift cards are free: nothing debited, nothing refunded for them)
    assert "amounts: 12,280.00 DA face value, 8,134.00 DA debited, 992.50 DA refunded" in body
    assert f"results: {out}" in body
    assert "next: bulk-topup resume --batch pay-11" in body
    db = sqlite3.connect(next((state / "batches").glob("*.sqlite")))
    head = db.execute("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetchone()[0]
    db.close()
    assert f"journal head: {head[:16]} (bulk-topup audit --batch pay-11 --head {head[:16]}" in body
    # Cash and keys stay out of it.
    codes = cards_in(state)
    assert len(codes) == 7  # 5 gift cards and 2 internet cards were delivered...
    text = json.dumps(message)
    assert not [c for c in codes if c in text]  # ...and none is in the message
    assert "SANDBOX-CARD" not in text and SANDBOX_KEY not in text
    assert f"notified: json://127.0.0.1:{hook.port}/hook" in result.output


def test_a_failed_notification_changes_nothing(hook: Hook, tmp_path: Path) -> None:
    hook.status = 500
    sheet = tmp_path / "s.csv"  # one row ends UNKNOWN_ERROR: exit 5
    sheet.write_text("phone,plan,amount\n0600000003,PREPAID_DJEZZY,300\n0661234567,"
                     "PREPAID_MOBILIS,500\n")  # fmt: skip
    args = ["run", str(sheet), "--yes", "--emulator", "--emulator-speed", "200", "--allow-repeat",
            "--state-dir", str(tmp_path / "state")]  # fmt: skip
    failing = CliRunner().invoke(main, [*args, "--batch", "a", "--out", str(tmp_path / "a.xlsx"),
                                        "--notify", hook.url])  # fmt: skip
    assert failing.exit_code == 5, failing.output
    assert len(hook.received) == 1  # it was tried
    assert "warning: the notification was not delivered" in failing.output
    assert "the exit code is unchanged" in failing.output
    closed = f"json://127.0.0.1:{free_port()}/nobody"
    nobody = CliRunner().invoke(main, [*args, "--batch", "b", "--out", str(tmp_path / "b.xlsx"),
                                       "--notify", closed])  # fmt: skip
    assert nobody.exit_code == 5, nobody.output
    assert "warning: the notification was not delivered" in nobody.output
    nonsense = CliRunner().invoke(main, [*args, "--batch", "c", "--out", str(tmp_path / "c.xlsx"),
                                         "--notify", "nonsense://x"])  # fmt: skip
    assert nonsense.exit_code == 5
    assert "not one apprise understands" in nonsense.output


def test_a_refused_run_tells_why(hook: Hook, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULK_TOPUP_NOTIFY", hook.url)  # the environment default
    result = CliRunner().invoke(main, [
        "run", str(SAMPLES / "orders.csv"), "--batch", "cron-1", "--emulator",
        "--state-dir", str(tmp_path / "state"),
    ])  # fmt: skip
    assert result.exit_code == 6
    assert len(hook.received) == 1
    message = hook.received[0]
    assert message["title"] == (
        "bulk-topup cron-1: refused to start, nothing was sent: needs a person (exit 6)"
    )
    assert "why: run needs a confirmation and there is no terminal to ask on" in message["message"]


def test_invalid_rows_tell_too(hook: Hook, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, [
        "run", str(SAMPLES / "messy.csv"), "--batch", "m", "--yes", "--notify", hook.url,
        "--emulator", "--state-dir", str(tmp_path / "state"),
    ])  # fmt: skip
    assert result.exit_code == 3
    assert "invalid rows, nothing was sent" in hook.received[0]["title"]
    assert "3 invalid rows; nothing was sent" in hook.received[0]["message"]


@pytest.fixture
def fast_served() -> Iterator[tuple[str, World]]:
    """The emulator over a socket, its clock 200 times faster (the runner is told the same)."""
    world = World(clock=SystemClock(200))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(world), host="127.0.0.1", port=port, log_level="critical")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(5)


def test_reconcile_tells_what_changed_and_what_still_waits(
    hook: Hook, fast_served: tuple[str, World], tmp_path: Path
) -> None:
    url, world = fast_served
    sheet = tmp_path / "s.csv"
    sheet.write_text("phone,plan,amount\n0600000003,PREPAID_DJEZZY,300\n0661234567,"
                     "PREPAID_MOBILIS,500\n")  # fmt: skip
    env = {"ONECLICK_API_KEY": SANDBOX_KEY, "BULK_TOPUP_CLOCK_SPEED": "200"}
    common = ["--api-url", url, "--state-dir", str(tmp_path / "state"), "--notify", hook.url]

    def cli(*args: str):
        return CliRunner().invoke(main, [*args, *common], env=env)

    assert cli("run", str(sheet), "--batch", "r", "--yes").exit_code == 5
    waiting = cli("reconcile", "--batch", "r")
    assert waiting.exit_code == 5
    assert len(hook.received) == 2  # the run, then a reconcile that still waits on the provider
    assert hook.received[1]["title"].startswith("bulk-topup r: stopped with rows not final")
    assert hook.received[1]["message"].startswith("reconcile of batch r (SANDBOX)")
    world.clock.advance(3 * 3600)  # the UNKNOWN_ERROR becomes FULFILLED after 2 provider hours
    done = cli("reconcile", "--all")
    assert done.exit_code == 0, done.output
    assert len(hook.received) == 3
    assert hook.received[2]["title"] == "bulk-topup r: finished: every row fulfilled (exit 0)"
    quiet = cli("reconcile", "--all")  # nothing changed, nothing waits: no news
    assert quiet.exit_code == 0
    assert len(hook.received) == 3


def test_every_exit_code_has_words_and_the_key_is_scrubbed() -> None:
    for code in range(8):
        title, body = compose(BatchNews("b", "run", code))
        assert EXIT_WORDS[code] in title and f"(exit code {code})" in body
    assert worth_telling({"FULFILLED": 1}, {"FULFILLED": 1}, 0) is False
    assert worth_telling({"QUEUED": 1}, {"QUEUED": 1}, 5) is True
    assert worth_telling({"QUEUED": 1}, {"FULFILLED": 1}, 0) is True
    delivery = send("nonsense://x", BatchNews("b", "run", 0))
    assert not delivery.ok and "not one apprise understands" in delivery.detail


def test_the_message_sent_is_scrubbed_of_the_key(hook: Hook) -> None:
    news = BatchNews("b", "run", 6, problem="the API refused the key secret-key-123 (AUTH)")
    assert send(hook.url, news, secrets=["secret-key-123"]).ok
    assert "secret-key-123" not in json.dumps(hook.received[0])
    assert "the API refused the key ••• (AUTH)" in hook.received[0]["message"]
