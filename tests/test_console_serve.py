"""`bulk-topup console` as a person starts it: a link printed once it serves, a token that works
once, one emulator for the life of the server, and a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.socket


def test_the_console_prints_a_one_time_link_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "BULK_TOPUP_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_topup", "console", "--emulator", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        link = next(m.group(0) for line in lines if (m := re.search(r"http://\S+/login\S+", line)))
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?token=[\w-]{40,}", link), lines
        with httpx.Client(follow_redirects=True) as browser:
            signed = browser.get(link)
            assert signed.status_code == 200 and "Upload an order sheet" in signed.text
            assert "SANDBOX" in signed.text  # the one emulator, asked at start
            template = browser.get(link.split("/login")[0] + "/template.xlsx")
            assert template.status_code == 200 and template.content[:2] == b"PK"
        with httpx.Client() as other:
            assert other.get(link).status_code == 403  # the token was used
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)  # closes the pipes


def test_stopping_the_console_stops_its_runs_as_ctrl_c_stops_the_cli(tmp_path: Path) -> None:
    from bulk_topup.batchfile import open_batch
    from bulk_topup.clock import SystemClock
    from bulk_topup.config import Settings
    from bulk_topup.emulator import SANDBOX_KEY, World, create_app

    from .consolekit import CSRF, FIGURES, console_app, serve

    world = World(clock=SystemClock(40))
    world.faults.update({"ref_dedup": False})
    provider = serve(create_app(world))
    settings = Settings(provider.url, SANDBOX_KEY, tmp_path / "state", SystemClock(40))
    app = console_app(settings, rate=2.0)
    console = serve(app)
    sheet = tmp_path / "staff.csv"
    sheet.write_text("phone,plan_code,amount\n" + "".join(
        f"06614{i:05d},PREPAID_MOBILIS,{100 + i}\n" for i in range(20)))  # fmt: skip
    try:
        with httpx.Client(base_url=console.url) as client:
            client.get(f"/login?token={app.state.sessions.new_token()}")
            csrf = CSRF.search(client.get("/").text).group(1)  # type: ignore[union-attr]
            with sheet.open("rb") as f:
                sent = client.post("/upload", data={"csrf": csrf, "batch": "shutdown"},
                                   files={"sheet": ("staff.csv", f)})  # fmt: skip
            where = sent.headers["location"]
            figures = dict(FIGURES.findall(client.get(f"{where}/run").text))
            assert client.post(f"{where}/run", data={"csrf": csrf, **figures}).status_code == 303
        deadline = time.monotonic() + 30
        while len(world.stats()["orders_per_ref"]) < 2:
            assert time.monotonic() < deadline, "nothing was sent"
            time.sleep(0.05)
        console.stop()  # uvicorn's shutdown: the console asks its runs to stop, then waits
        assert not console.thread.is_alive()
        with open_batch(settings.state_dir, "shutdown", now=lambda: "", create=False) as j:
            counts = j.counts()  # the lock is free again: taking it proves the run ended
            assert j.get_meta("stop_reason") == "the console was shut down"
        sent = dict(world.stats()["orders_per_ref"])
        assert 2 <= len(sent) < 20 and set(sent.values()) == {1}
        assert counts.get("PLANNED") == 20 - len(sent) and not counts.get("SENDING")
    finally:
        provider.stop()


def test_a_console_for_others_says_it_knows_nobody_and_prints_a_usable_link(
    tmp_path: Path,
) -> None:
    """--allow-remote on every address, without a sign-on header: the start says that nobody
    is identified and approvals are refused, and the link names this machine, not 0.0.0.0."""
    env = {**os.environ, "BULK_TOPUP_STATE_DIR": str(tmp_path / "state")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_topup", "console", "--emulator", "--allow-remote",
         "--host", "0.0.0.0", "--port", "0"],  # noqa: S104 (the address under test)
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(4)]
        link = next(m.group(0) for line in lines if (m := re.search(r"http://\S+/login\S+", line)))
        assert "0.0.0.0" not in link and "//:" not in link, link
        port = re.search(r":(\d+)/login", link).group(1)  # type: ignore[union-attr]
        with httpx.Client() as browser:  # this machine, by its loopback address
            signed = browser.get(f"http://127.0.0.1:{port}/login" + link.split("/login", 1)[1])
            assert signed.status_code == 303
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert "reachable from other machines" in err
    assert "knows nobody" in err and "approvals in the console are refused" in err


def test_a_refused_key_is_said_once_as_the_console_starts(served, tmp_path: Path) -> None:
    """The start names the refusal in one sentence, not "the API refused the key: the API
    refused the key (...)", and still prints the link: batches stay readable."""
    url, _world = served
    env = {**os.environ, "BULK_TOPUP_STATE_DIR": str(tmp_path / "state"),
           "ONECLICK_API_URL": url, "ONECLICK_API_KEY": "not-the-key"}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "bulk_topup", "console", "--port", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert any("/login?token=" in line for line in lines), lines
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert err.count("the API refused the key") == 1, err
    assert "INVALID_ACCESS_TOKEN" in err and "until the key is fixed" in err
