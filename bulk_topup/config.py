"""Where the API is, which key to use, where state lives, and the emulator wiring.

The key comes from the environment (`ONECLICK_API_KEY`) or a key file, never from argv: other users
of the machine can read a process's arguments.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .client import DEFAULT_TIMEOUT, OneClickClient, RetryPolicy, Throttle
from .clock import Clock, SystemClock
from .errors import UsageError

DEFAULT_API_URL = "https://api.oneclickdz.com"
DEFAULT_STATE_DIR = ".bulk-topup"
EMULATOR_URL = "http://emulator.local"


@dataclass
class Settings:
    """Everything a command needs to reach the API and its own state."""

    api_url: str
    api_key: str = field(repr=False)
    state_dir: Path
    clock: Clock = field(default_factory=SystemClock)
    transport: httpx.AsyncBaseTransport | None = None
    emulated: bool = False

    def client(
        self,
        throttle: Throttle | None = None,
        retry: RetryPolicy | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> OneClickClient:
        """A fresh API client for this configuration (use it as `async with`)."""
        return OneClickClient(
            self.api_url,
            self.api_key,
            transport=self.transport,
            throttle=throttle,
            retry=retry,
            timeout=timeout,
            wall=self.clock.wall,
        )


def read_key(key_file: str | None) -> str:
    """The API key from `--api-key-file`, else `ONECLICK_API_KEY`; a clear error when neither."""
    if key_file:
        path = Path(key_file)
        try:
            key = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise UsageError(f"cannot read the API key file {path}: {e.strerror}") from None
        if not key:
            raise UsageError(f"the API key file {path} is empty")
        return key
    key = os.environ.get("ONECLICK_API_KEY", "").strip()
    if not key:
        raise UsageError(
            "no API key: set ONECLICK_API_KEY, pass --api-key-file PATH, "
            "or try the built-in emulator with --emulator"
        )
    return key


def key_file_is_private(key_file: str) -> bool:
    """False when group or others can read the key file."""
    mode = Path(key_file).stat().st_mode
    return not mode & (stat.S_IRWXG | stat.S_IRWXO)


def settings(
    *,
    api_url: str | None,
    key_file: str | None,
    state_dir: str | None,
    emulator: bool,
    emulator_speed: float = 1.0,
    clock_speed: float | None = None,
) -> Settings:
    """Build the settings of one command from its options and the environment."""
    state = Path(state_dir or os.environ.get("BULK_TOPUP_STATE_DIR") or DEFAULT_STATE_DIR)
    if emulator:
        from .emulator import SANDBOX_KEY, EmulatorTransport, World, create_app

        # One clock for the emulator and the runner: both see the same compressed time.
        clock = SystemClock(emulator_speed)
        app = create_app(World(clock=clock))
        return Settings(EMULATOR_URL, SANDBOX_KEY, state, clock, EmulatorTransport(app), True)
    url = api_url or os.environ.get("ONECLICK_API_URL") or DEFAULT_API_URL
    return Settings(url, read_key(key_file), state, SystemClock(clock_speed or 1.0))
