"""`bulk-topup console` as a person starts it: a link printed once it serves, a token that works
once, one emulator for the life of the server, and a clean stop on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
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
