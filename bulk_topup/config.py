"""Where the API is, which key to use, where state lives, and the emulator wiring.

The key comes from the environment (`ONECLICK_API_KEY`) or a key file, never from argv: other users
of the machine can read a process's arguments. It is checked where it is read (one line of
printable ASCII), so a malformed key never reaches an HTTP header, whose error would print it.

State (journals, caches, locks, crash reports) lives in one folder per user, the XDG state dir
(`~/.local/state/bulk-topup`), so every batch of a user shares one history wherever a command runs.
The tool creates it 0700; a folder that exists already is checked, never chmod-ed behind the
user's back.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from .apiurl import checked_url
from .client import DEFAULT_LIMITS, DEFAULT_TIMEOUT, OneClickClient, RetryPolicy, Throttle
from .clock import Clock, SystemClock, VirtualClock
from .errors import UsageError
from .i18n import _
from .statedir import default_state_dir
from .throttle import AdaptiveThrottle

DEFAULT_API_URL = "https://api.oneclickdz.com"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,512}$")
EMULATOR_URL = "http://emulator.local"

_SECRETS: set[str] = set()
MIN_SECRET = 8  # characters: a shorter string is redacted nowhere


def secrets() -> frozenset[str]:
    """Every secret read by this process (API keys): what crash reports must not show."""
    return frozenset(_SECRETS)


def redact(text: str) -> str:
    """`text` with every secret this process read replaced by a mark."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "[secret]")
    return text


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
        concurrency: int | None = None,
    ) -> OneClickClient:
        """A fresh API client for this configuration (use it as `async with`). `concurrency`
        sizes its connection pool: enough for every row in flight and the polls beside them (a
        pool far larger than that costs a scan of idle connections on every request)."""
        limits = DEFAULT_LIMITS
        if concurrency is not None:
            size = concurrency + 6
            limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        if retry is None and isinstance(self.clock, VirtualClock):
            retry = RetryPolicy(sleep=self.clock.sleep)  # tests: backoff in virtual time
        return OneClickClient(
            self.api_url,
            self.api_key,
            transport=self.transport,
            throttle=throttle,
            retry=retry,
            timeout=timeout,
            limits=limits,
            wall=self.clock.wall,
        )

    def throttle(self, rate: float) -> AdaptiveThrottle:
        """The one pace of a run's calls: in real seconds (a provider's limit counts real time),
        or in virtual time when the clock is a test's."""
        if isinstance(self.clock, VirtualClock):
            return AdaptiveThrottle(rate, sleep=self.clock.sleep, now=self.clock.now)
        return AdaptiveThrottle(rate)


def read_key(key_file: str | None) -> str:
    """The API key from `--api-key-file`, else `ONECLICK_API_KEY`; a clear error when neither, or
    when what is there cannot be a key (the error never shows what was read)."""
    if key_file:
        path = Path(key_file)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise UsageError(
                _("cannot read the API key file {path}: {reason}").format(
                    path=path, reason=e.strerror
                )
            ) from None
        where = _("the API key file {path}").format(path=path)
    else:
        raw = os.environ.get("ONECLICK_API_KEY", "").encode("utf-8", "surrogateescape")
        where = "ONECLICK_API_KEY"
        if not raw.strip():
            raise UsageError(
                _(
                    "no API key: set ONECLICK_API_KEY, pass --api-key-file PATH, or try the "
                    "built-in emulator with --emulator"
                )
            )
    text = raw.decode("utf-8", "replace").strip().removeprefix("\ufeff")
    if text:
        # Even a malformed key is kept out of every report (a string of a few characters cannot
        # be a key, and marking every "k" of a message would make it unreadable).
        for secret in (text, *text.splitlines()):
            if len(secret.strip()) >= MIN_SECRET:
                _SECRETS.add(secret.strip())
    if not text:
        raise UsageError(_("{where} is empty").format(where=where))
    if len(text.splitlines()) > 1:
        raise UsageError(
            _("{where} holds more than one line; it must hold the API key alone").format(
                where=where
            )
        )
    if not KEY_RE.match(text):
        raise UsageError(
            _(
                "{where} holds characters that cannot be part of an API key (spaces, accents or "
                "control characters); copy the key again from the OneClickDz dashboard"
            ).format(where=where)
        )
    return text


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
    state = Path(state_dir or os.environ.get("BULK_TOPUP_STATE_DIR") or default_state_dir())
    if emulator:
        from .emulator import SANDBOX_KEY, EmulatorTransport, World, create_app

        # One clock for the emulator and the runner: both see the same compressed time.
        clock = SystemClock(emulator_speed)
        app = create_app(World(clock=clock))
        return Settings(EMULATOR_URL, SANDBOX_KEY, state, clock, EmulatorTransport(app), True)
    given = api_url or os.environ.get("ONECLICK_API_URL")
    url = checked_url(given, "--api-url / ONECLICK_API_URL") if given else DEFAULT_API_URL
    return Settings(url, read_key(key_file), state, SystemClock(clock_speed or 1.0))
