"""Helpers to run batches in-process against the emulator, in virtual time."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bulk_topup.batchfile import open_batch
from bulk_topup.catalog import load_catalog
from bulk_topup.client import OneClickClient, RetryPolicy
from bulk_topup.clock import VirtualClock, iso
from bulk_topup.emulator import SANDBOX_KEY, EmulatorApp, EmulatorTransport
from bulk_topup.journal import Journal
from bulk_topup.runner import Outcome, Runner, RunOptions
from bulk_topup.sheet import Sheet, SheetRow
from bulk_topup.throttle import AdaptiveThrottle
from bulk_topup.validation import build_orders

BASE = "http://emulator.test"


async def instant(seconds: float) -> None:
    """Waits that take no time."""


def sheet_of(*rows: dict[str, str]) -> Sheet:
    columns = sorted({k for r in rows for k in r})
    return Sheet(
        Path("t.csv"),
        "",
        columns,
        columns,
        [SheetRow(i + 2, dict(r)) for i, r in enumerate(rows)],
        1,
    )


def mobile(phone: str, amount: int = 500, plan: str = "PREPAID_MOBILIS") -> dict[str, str]:
    return {"phone": phone, "plan_code": plan, "amount": str(amount)}


def internet(number: str, value: int = 1000, kind: str = "ADSL") -> dict[str, str]:
    return {"internet_type": kind, "number": number, "value": str(value)}


def gift(
    type_id: str = "type_001", qty: int = 1, product: str = "507f1f77bcf86cd799439011"
) -> dict[str, str]:
    return {"product_id": product, "type_id": type_id, "quantity": str(qty)}


@dataclass
class Kit:
    app: EmulatorApp
    clock: VirtualClock
    state: Path
    batch: str = "b"
    key: str = SANDBOX_KEY

    def __post_init__(self) -> None:
        self.app.world.rate_clock = self.clock.now  # the rate limit runs on virtual time too

    def client(
        self,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> OneClickClient:
        kw: dict[str, Any] = {"timeout": timeout} if timeout else {}
        return OneClickClient(
            BASE,
            self.key,
            transport=transport or EmulatorTransport(self.app),
            retry=RetryPolicy(sleep=self.clock.sleep),
            throttle=AdaptiveThrottle(2000, sleep=self.clock.sleep, now=self.clock.now),
            wall=self.clock.wall,
            **kw,
        )

    def journal(self) -> Journal:
        return open_batch(self.state, self.batch, now=lambda: iso(self.clock.wall()))

    async def load(
        self, *rows: dict[str, str], allow_duplicates: bool = False, allow_invalid: bool = False
    ) -> None:
        async with self.client() as client:
            catalog = await load_catalog(
                client,
                self.state,
                BASE,
                gift_products={r["product_id"] for r in rows if "product_id" in r},
            )
        validation = build_orders(
            sheet_of(*rows), self.batch, catalog, allow_duplicates=allow_duplicates
        )
        assert allow_invalid or not validation.invalid, [str(p) for p in validation.problems]
        with self.journal() as j:
            j.sync_orders(validation.orders)

    async def run(
        self,
        options: RunOptions | None = None,
        *,
        preflight: bool = True,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> Outcome:
        with self.journal() as j:
            async with self.client(timeout, transport) as client:
                runner = Runner(j, client, self.clock, options or RunOptions(concurrency=4))
                if preflight:
                    await runner.preflight()
                return await runner.execute()

    async def reconcile(self) -> Outcome:
        with self.journal() as j:
            async with self.client() as client:
                return await Runner(j, client, self.clock).reconcile()

    def states(self) -> list[str]:
        with self.journal() as j:
            return [r.state.value for r in j.rows()]

    def stats(self) -> dict[str, Any]:
        self.app.world.settle()
        return self.app.world.stats()


def write_sheet(path: Path, rows: list[dict[str, str]]) -> Path:
    """A CSV order sheet with the union of the rows' columns, in first-seen order."""
    import csv

    columns: dict[str, None] = {}
    for r in rows:
        for c in r:
            columns.setdefault(c, None)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)
    return path


@dataclass
class Desk:
    """Batches run through the service, as the faces run them, against the emulator in virtual
    time (in-process, or over a real socket when `transport` says so)."""

    app: EmulatorApp
    clock: VirtualClock
    folder: Path
    transport: httpx.AsyncBaseTransport | None = None
    base: str = BASE

    def __post_init__(self) -> None:
        self.app.world.rate_clock = self.clock.now
        self.state = self.folder / "state"

    def settings(self, state: Path | None = None) -> Any:
        from bulk_topup.config import Settings

        return Settings(
            self.base,
            SANDBOX_KEY,
            state or self.state,
            self.clock,
            self.transport or EmulatorTransport(self.app),
        )

    def sheet(self, name: str, *rows: dict[str, str]) -> Path:
        return write_sheet(self.folder / name, list(rows))

    async def run(self, sheet: Path, batch: str, hooks: Any = None, **kw: Any) -> Any:
        from bulk_topup.service import SheetRun, run_sheet

        options = kw.pop("options", None) or RunOptions(concurrency=4, rate=2000)
        state = kw.pop("state", None)
        request = SheetRun(sheet=sheet, batch=batch, options=options, **kw)
        return await run_sheet(self.settings(state), request, hooks)

    async def resume(self, batch: str, hooks: Any = None, **kw: Any) -> Any:
        from bulk_topup.service import resume_batch

        options = kw.pop("options", None) or RunOptions(concurrency=4, rate=2000)
        return await resume_batch(self.settings(), batch, options, hooks, **kw)

    async def reconcile(self, batch: str) -> Any:
        from bulk_topup.service import reconcile_batch

        return await reconcile_batch(self.settings(), batch, 2000)

    def journal(self, batch: str) -> Journal:
        return open_batch(self.state, batch, now=lambda: iso(self.clock.wall()), lock=False)

    def orders(self, kind: str | None = None) -> list[Any]:
        self.app.world.settle()
        return [o for o in self.app.world.orders if kind is None or o.kind == kind]
