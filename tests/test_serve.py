"""`bulk-topup emulator`: one sentence on a port in use, the banner only once it serves."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx
import pytest
from click.testing import CliRunner

from bulk_topup.cli import main
from bulk_topup.emulator import SANDBOX_KEY

pytestmark = pytest.mark.socket


def test_a_port_in_use_is_one_sentence_and_exit_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["emulator", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output == (
        f"error: port {port} on 127.0.0.1 is already in use (another console or emulator?): "
        "stop that program or choose another --port\n"
    )
    assert "emulator on http" not in result.output  # no banner before failing


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid"),
        (["--variant", "pagination=sideways"], "--variant: pagination must be one of"),
        (["--variant", "nonsense"], "is not NAME=VALUE"),
        (["--balance", "-5"], "--balance"),  # a balance below zero is no account
    ],
)
def test_bad_options_are_one_sentence(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["emulator", "--port", "0", *args])
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_the_banner_comes_once_it_serves_with_its_switches() -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bulk_topup",
            "emulator",
            "--port",
            "0",
            "--gift-refs",
            "honour",
            "--variant",
            "pagination=meta",
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith("OneClickDz v3 emulator on http://127.0.0.1:"), first
        url = first.split()[4]
        # The banner says it serves: it does, at once, with the switches asked for.
        with httpx.Client(base_url=url, headers={"X-Access-Token": SANDBOX_KEY}) as h:
            assert h.get("/v3/ping").json()["data"]["api"] == "ok"
            assert h.get("/__emulator/faults").json()["gift_refs"] == "honour"
            assert "pagination" in h.get("/v3/mobile/list").json()["meta"]
    finally:
        server.kill()
        server.communicate(timeout=10)
