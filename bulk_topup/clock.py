"""Time, injected. Every wait and every timestamp in bulk_topup goes through a Clock.

`SystemClock(speed=X)` runs X times faster than the wall: the emulator uses it to compress the
provider's timelines, and a runner sharing it sees the same compressed time. `VirtualClock` never
waits: `sleep()` moves time forward at once, so state machines and backoff are tested instantly.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import anyio

#: The wall time a VirtualClock starts at: the day of the documentation's examples.
VIRTUAL_EPOCH = datetime(2025, 10, 29, 0, 0, 0, tzinfo=UTC)


class SystemClock:
    """Real time, optionally compressed by `speed`; `advance()` jumps forward (emulator admin)."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._mono0 = time.monotonic()
        self._wall0 = datetime.now(UTC)
        self._offset = 0.0

    def now(self) -> float:
        """Seconds since the clock was made, in this clock's (possibly compressed) time."""
        return (time.monotonic() - self._mono0) * self.speed + self._offset

    def wall(self, at: float | None = None) -> datetime:
        """The UTC date and time at clock second `at` (default: now)."""
        return self._wall0 + timedelta(seconds=self.now() if at is None else at)

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds) / self.speed)


class VirtualClock:
    """Time that moves only when told to, or when somebody sleeps."""

    def __init__(self, start: datetime = VIRTUAL_EPOCH) -> None:
        self._wall0 = start
        self._t = 0.0

    def now(self) -> float:
        return self._t

    def wall(self, at: float | None = None) -> datetime:
        return self._wall0 + timedelta(seconds=self._t if at is None else at)

    def advance(self, seconds: float) -> None:
        self._t += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.sleep(0)


Clock = SystemClock | VirtualClock


def iso(dt: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a Z, as the API writes times."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> datetime:
    """Parse the API's ISO 8601 times (with Z or an offset); naive times are taken as UTC."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
