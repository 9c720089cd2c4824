"""Shared fixtures: a fresh emulator per test, reached in-process or over a real socket."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import settings as hypothesis_settings

from bulk_topup.client import OneClickClient, RetryPolicy
from bulk_topup.clock import VirtualClock
from bulk_topup.emulator import SANDBOX_KEY, EmulatorApp, EmulatorTransport, World, create_app

from .runkit import Kit

BASE = "http://emulator.test"

# Property tests repeat exactly, in CI and on a laptop; HYPOTHESIS_PROFILE=explore searches anew.
hypothesis_settings.register_profile("repeatable", derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


async def no_wait(seconds: float) -> None:
    """Retry sleeps in tests take no time."""


@pytest.fixture(autouse=True)
def private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's state dir, config or environment defaults."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    for name in ("BULK_TOPUP_STATE_DIR", "ONECLICK_API_KEY", "ONECLICK_API_URL",
                 "BULK_TOPUP_CLOCK_SPEED"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def own_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test reads the developer's own approval keys, policy or notification address."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("BULK_TOPUP_CONFIG_DIR", str(folder))
    monkeypatch.delenv("BULK_TOPUP_POLICY", raising=False)
    monkeypatch.delenv("BULK_TOPUP_NOTIFY", raising=False)
    return folder


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def world(clock: VirtualClock) -> World:
    return World(clock=clock)


@pytest.fixture
def app(world: World) -> EmulatorApp:
    return create_app(world)


@pytest.fixture
async def http(app: EmulatorApp) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client on the emulator, with the sandbox key."""
    async with httpx.AsyncClient(
        transport=EmulatorTransport(app), base_url=BASE, headers={"X-Access-Token": SANDBOX_KEY}
    ) as h:
        yield h


@pytest.fixture
async def client(app: EmulatorApp) -> AsyncIterator[OneClickClient]:
    async with OneClickClient(
        BASE, SANDBOX_KEY, transport=EmulatorTransport(app), retry=RetryPolicy(sleep=no_wait)
    ) as c:
        yield c


@pytest.fixture
def kit(app: EmulatorApp, clock: VirtualClock, tmp_path: Path) -> Kit:
    """A batch run in-process in virtual time; a resent ref would show as a second order."""
    app.world.faults.update({"ref_dedup": False})
    return Kit(app, clock, tmp_path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served() -> Iterator[tuple[str, World]]:
    """The emulator served by uvicorn on a thread, over a real socket."""
    world = World()
    port = free_port()
    config = uvicorn.Config(create_app(world), host="127.0.0.1", port=port, log_level="critical")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", world
    server.should_exit = True
    thread.join(5)
