"""The `bulk-topup` command line: options in, library calls, messages and exit codes out.

Only this module prints. Every command builds its objects, calls one library function, and turns
`BulkTopupError`s into a sentence and the exit code of DESIGN.md's contract.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from . import __version__
from .errors import BulkTopupError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_FAILED_ROWS, EXIT_NOT_FINAL, EXIT_REFUSED, EXIT_LOCKED = 4, 5, 6, 7


def _quick_retry() -> Any:
    from .client import RetryPolicy

    # Commands that only read the catalog fall back to the cache rather than wait long.
    return RetryPolicy(attempts=2, initial=0.3, max_wait=1.0, jitter=0.2)


QUICK_RETRY = _quick_retry()


def fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handle_errors(fn: F) -> F:
    """Turn library errors into one clear sentence and the contract's exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BulkTopupError as e:
            fail(e.message, e.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", EXIT_NOT_FINAL)

    return wrapper  # type: ignore[return-value]


def api_options(fn: F) -> F:
    """The options every command that talks to the API shares."""
    options = [
        click.option(
            "--api-url",
            envvar="ONECLICK_API_URL",
            default=None,
            help="API base URL [env ONECLICK_API_URL; default https://api.oneclickdz.com].",
        ),
        click.option(
            "--api-key-file",
            type=click.Path(dir_okay=False),
            default=None,
            help="File holding the API key (else env ONECLICK_API_KEY).",
        ),
        click.option(
            "--emulator",
            is_flag=True,
            help="Use the built-in emulator and its sandbox key (for trying things out).",
        ),
        click.option(
            "--emulator-speed",
            type=click.FloatRange(min=0.01),
            default=1.0,
            show_default=True,
            help="With --emulator: how much faster its clock runs.",
        ),
        click.option(
            "--state-dir",
            envvar="BULK_TOPUP_STATE_DIR",
            default=None,
            help="Where journals and caches live [env BULK_TOPUP_STATE_DIR; "
            "default ./.bulk-topup].",
        ),
        click.option(
            "--clock-speed",
            type=click.FloatRange(min=0.01),
            default=None,
            hidden=True,
            envvar="BULK_TOPUP_CLOCK_SPEED",
            help="Compress the runner's waits (for drills against a fast emulator).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_settings(kw: dict[str, Any]) -> Any:
    from .config import key_file_is_private, settings

    key_file = kw.get("api_key_file")
    emulated = kw.get("emulator")
    if key_file and not emulated and Path(key_file).exists() and not key_file_is_private(key_file):
        click.secho(
            f"warning: the key file {key_file} can be read by other users of this machine; "
            f"chmod 600 it",
            fg="yellow",
            err=True,
        )
    return settings(
        api_url=kw.pop("api_url"),
        key_file=kw.pop("api_key_file"),
        state_dir=kw.pop("state_dir"),
        emulator=kw.pop("emulator"),
        emulator_speed=kw.pop("emulator_speed"),
        clock_speed=kw.pop("clock_speed"),
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulk-topup")
def main() -> None:
    """Turn an order sheet (CSV or Excel) into paid OneClickDz top-ups, never paying twice."""


# --- emulator ------------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(min=0.01),
    default=1.0,
    show_default=True,
    help="How much faster than real time the provider's clock runs.",
)
@click.option(
    "--rate-limit",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Requests per second before answering 429 with Retry-After.",
)
@click.option(
    "--balance",
    type=float,
    default=500_000.0,
    show_default=True,
    help="The account balance in DZD.",
)
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests answered 500/503 before any work.",
)
@click.option(
    "--drop-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of POSTs committed, then dropped without an answer.",
)
@click.option(
    "--no-ref-dedup",
    is_flag=True,
    help="Let a reused ref create a second order (to prove a client never resends).",
)
@click.option("--production-key", default=None, help="Also accept this key, typed PRODUCTION.")
@click.option("--read-only-key", default=None, help="Also accept this key, READ-ONLY.")
@click.option("--seed", type=int, default=0, help="Seed of the fault dice.")
def emulator(
    host: str,
    port: int,
    speed: float,
    rate_limit: float | None,
    balance: float,
    latency: float,
    error_rate: float,
    drop_rate: float,
    no_ref_dedup: bool,
    production_key: str | None,
    read_only_key: str | None,
    seed: int,
) -> None:
    """Serve the OneClickDz API emulator over HTTP (uvicorn)."""
    import uvicorn

    from .clock import SystemClock
    from .emulator import SANDBOX_KEY, ApiKey, Faults, World, create_app

    keys = {SANDBOX_KEY: ApiKey(SANDBOX_KEY)}
    if production_key:
        keys[production_key] = ApiKey(production_key, "PRODUCTION")
    if read_only_key:
        keys[read_only_key] = ApiKey(read_only_key, "SANDBOX", "READ-ONLY")
    faults = Faults(
        latency=latency,
        error_rate=error_rate,
        drop_rate=drop_rate,
        ref_dedup=not no_ref_dedup,
        seed=seed,
    )
    world = World(
        clock=SystemClock(speed), balance=balance, keys=keys, rate_limit=rate_limit, faults=faults
    )
    click.echo(
        f"OneClickDz v3 emulator on http://{host}:{port}  (speed x{speed:g}, "
        f"rate limit {rate_limit or 'none'}, balance {balance:,.2f} DZD)"
    )
    click.echo(f"accepted key: {SANDBOX_KEY}  (header X-Access-Token)")
    click.echo("admin: GET /__emulator/stats, POST /__emulator/faults, /__emulator/reset")
    sys.stdout.flush()
    uvicorn.run(create_app(world), host=host, port=port, log_level="warning")


# --- validate, catalog, template -----------------------------------------------------------------


def _run(coro: Any) -> Any:
    import anyio

    result: list[Any] = []

    async def go() -> None:
        # The result is handed over in a box, not returned: on Python 3.11 asyncio's runner
        # builds repr(main task) when it restores the SIGINT handler, and a returned
        # 100,000-row result would be repr'd in full (seconds of CPU for nothing).
        result.append(await coro)

    anyio.run(go)
    return result[0]


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option("--sheet", "sheet_name", default=None, help="The sheet to read (default: the first).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--batch", default=None, help="Batch key the refs are made for (default: file name).")
@click.option("--allow-duplicates", is_flag=True, help="The same order twice is meant, not a slip.")
@api_options
@handle_errors
def validate(
    sheet: str,
    sheet_name: str | None,
    fmt: str,
    batch: str | None,
    allow_duplicates: bool,
    **kw: Any,
) -> None:
    """Check every row of SHEET and summarise it; nothing is sent, nothing is paid."""
    import json
    from pathlib import Path

    from .plan import validate_sheet

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await validate_sheet(
                sheet,
                batch=batch or Path(sheet).stem,
                client=client,
                state_dir=settings.state_dir,
                api_url=settings.api_url,
                sheet_name=sheet_name,
                allow_duplicates=allow_duplicates,
            )

    read, result = _run(go())
    if fmt == "json":
        click.echo(json.dumps(validation_json(result), ensure_ascii=False, indent=1))
    else:
        print_validation(read, result)
    sys.exit(EXIT_OK if not result.invalid else EXIT_INVALID)


def validation_json(result: Any) -> dict[str, Any]:
    rows = []
    for o in result.orders:
        rows.append(
            {
                "row": o.row,
                "kind": o.kind,
                "valid": o.valid,
                "ref": o.ref or None,
                "errors": [{"column": p.column, "message": p.message} for p in o.errors],
                "warnings": [{"column": p.column, "message": p.message} for p in o.warnings],
                "order": {
                    **o.payload(),
                    "face_value": o.face_value,
                    "cost": o.cost,
                    "operator": o.operator or None,
                    "label": o.label or None,
                },
            }
        )
    return {"rows": rows, "summary": {**result.summary, "catalog_notes": result.catalog_notes}}


def print_validation(sheet: Any, result: Any) -> None:
    where = f"{sheet.path}" + (f" [{sheet.name}]" if sheet.name else "")
    click.echo(f"{where}: {len(sheet.rows)} rows (header on row {sheet.header_row})")
    for note in result.catalog_notes:
        click.secho(f"note: {note}", fg="yellow")
    errors = [p for o in result.orders for p in o.errors]
    warnings = [p for o in result.orders for p in o.warnings]
    for p in errors:
        click.secho(f"error   {p}", fg="red")
    for p in warnings:
        click.secho(f"warning {p}", fg="yellow")
    s = result.summary
    click.echo("")
    kinds = ", ".join(
        f"{k} {v['valid']} valid / {v['invalid']} invalid"
        for k, v in s["per_kind"].items()
        if v["valid"] or v["invalid"]
    )
    click.echo(f"rows: {s['rows']} ({kinds or 'none'})")
    for key, entry in s["per_product"].items():
        click.echo(
            f"  {key:<48} {entry['rows']:>6} rows {entry['face_value']:>14,.2f} DA "
            f"face  {entry['cost']:>14,.2f} DA cost"
        )
    click.echo(
        f"total of valid rows: {s['face_value']:,.2f} DA face value, {s['cost']:,.2f} DA cost"
    )
    if s["duplicates"]:
        click.echo(f"duplicates: {len(s['duplicates'])} rows repeat an earlier row")
    if errors:
        verdict = f"{s['invalid']} invalid rows, nothing sent"
    elif result.catalog_notes:
        verdict = "every row passed the checks that could be made (see the notes above)"
    else:
        verdict = "every row is valid"
    click.secho(verdict, fg="green" if not errors else "red", bold=True)


@main.command()
@click.argument("what", type=click.Choice(["mobile", "internet", "gift", "all"]), default="all")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option("--refresh", is_flag=True, help="Fetch again even when the cache is fresh.")
@api_options
@handle_errors
def catalog(what: str, fmt: str, refresh: bool, **kw: Any) -> None:
    """Plans, internet products and gift cards, with prices and stock."""
    import json
    from dataclasses import asdict

    from .catalog import load_catalog

    settings = make_settings(kw)
    parts = {
        "mobile": ("plans",),
        "internet": ("internet",),
        "gift": ("gift",),
        "all": ("plans", "internet", "gift"),
    }[what]

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await load_catalog(
                client, settings.state_dir, settings.api_url, parts=parts, refresh=refresh
            )

    cat = _run(go())
    if cat.missing:
        fail(
            f"the API could not be reached and nothing is cached for: {', '.join(cat.missing)}",
            EXIT_NOT_FINAL,
        )
    if fmt == "json":
        out: dict[str, Any] = {}
        if "plans" in parts:
            out["mobile"] = [asdict(p) for p in cat.plans.values()]
        if "internet" in parts:
            out["internet"] = {k: [asdict(p) for p in v] for k, v in cat.internet.items()}
        if "gift" in parts:
            out["gift"] = [
                {**asdict(p), "types": [asdict(t) for t in cat.gift_types.get(p.id, [])]}
                for p in cat.gifts.values()
            ]
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for note in cat.stale:
        click.secho(f"note: {note} served from an old cache (API unreachable)", fg="yellow")
    if "plans" in parts:
        click.secho("Mobile plans", bold=True)
        for p in sorted(cat.plans.values(), key=lambda p: (p.operator, p.code)):
            rng = f"{p.amount} DA fixed" if p.is_fixed else f"{p.min_amount}-{p.max_amount} DA"
            state = "" if p.enabled else "  (switched off)"
            cost = f"cost x{p.cost:g}" if p.cost is not None else "cost n/a"
            click.echo(f"  {p.code:<22} {p.operator:<9} {rng:<16} {cost:<13} {p.name}{state}")
    if "internet" in parts:
        click.secho("Internet cards", bold=True)
        for kind, products in cat.internet.items():
            for p in products:
                stock = "in stock" if p.available else "OUT OF STOCK"
                click.echo(f"  {kind:<5} {p.value:>6} DA  cost {p.cost:>8,.2f}  {stock}")
    if "gift" in parts:
        click.secho("Gift cards (product_id / type_id)", bold=True)
        for p in cat.gifts.values():
            state = "" if p.enabled else "  (not on sale)"
            click.echo(f"  {p.id}  {p.title} [{p.category}]{state}")
            for t in cat.gift_types.get(p.id, []):
                click.echo(f"      {t.id:<14} {t.name:<32} {t.price:>9,.2f} DA  stock {t.quantity}")


@main.command()
@click.argument("out", type=click.Path(dir_okay=False))
@api_options
@handle_errors
def template(out: str, **kw: Any) -> None:
    """Write an empty order sheet OUT.xlsx with drop-down lists from the catalog."""
    from .catalog import load_catalog
    from .template import write_template

    settings = make_settings(kw)

    async def go() -> Any:
        async with settings.client(retry=QUICK_RETRY) as client:
            return await load_catalog(client, settings.state_dir, settings.api_url)

    cat = _run(go())
    write_template(out, cat)
    click.echo(f"wrote {out}: fill one row per order, then run: bulk-topup validate {out}")
    if cat.missing:
        click.secho(
            f"note: no catalog for {', '.join(cat.missing)}: those lists are empty", fg="yellow"
        )


# --- run, resume, reconcile, status, report, batches ---------------------------------------------


class Progress:
    """Bars on a terminal; a short line every so often without one (cron)."""

    def __init__(self, to_send: int, to_settle: int, interval: float = 10.0) -> None:
        import time

        self.tty = sys.stderr.isatty()
        self.counts: dict[str, int] = {}
        self.interval = interval
        self._time = time.monotonic
        self._last = self._time()
        self.bars: list[Any] = []
        if self.tty:
            from tqdm import tqdm

            self.sent = tqdm(
                total=to_send, desc="sent   ", unit="row", file=sys.stderr, dynamic_ncols=True
            )
            self.settled = tqdm(
                total=to_settle, desc="settled", unit="row", file=sys.stderr, dynamic_ncols=True
            )
            self.bars = [self.sent, self.settled]

    def __call__(self, event: str, row: Any) -> None:
        self.counts[event] = self.counts.get(event, 0) + 1
        if self.tty:
            if event in ("submitted", "rejected"):
                self.sent.update(1)
            if event in ("settled", "parked", "rejected"):
                self.settled.update(1)
            return
        now = self._time()
        if now - self._last >= self.interval:
            self._last = now
            parts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
            click.echo(f"progress: {parts}")

    def close(self) -> None:
        for bar in self.bars:
            bar.close()


def run_options(fn: F) -> F:
    options = [
        click.option(
            "--out",
            type=click.Path(dir_okay=False),
            default=None,
            help="Results file (default: <sheet>-<batch>-results.xlsx next to the sheet).",
        ),
        click.option(
            "--rate",
            type=click.FloatRange(min=0.1),
            default=10.0,
            show_default=True,
            help="API calls per second, all calls together; never exceeded.",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(1, 64),
            default=8,
            show_default=True,
            help="Rows in flight at once.",
        ),
        click.option("--yes", is_flag=True, help="Do not ask for confirmation (for cron)."),
        click.option(
            "--resend-uncertain-gifts",
            is_flag=True,
            help="Resend a gift order whose outcome is unknown and that the provider's "
            "list does not show (gift orders have no ref: this may pay twice).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _options(
    rate: float, concurrency: int, max_total: float | None, resend_uncertain_gifts: bool
) -> Any:
    from .runner import RunOptions

    return RunOptions(
        rate=rate,
        concurrency=concurrency,
        max_total=max_total,
        resend_uncertain_gifts=resend_uncertain_gifts,
    )


def _confirm(pre: Any, yes: bool, what: str) -> None:
    from .errors import RefusedError

    env = pre.key_type or "unknown"
    colour = "red" if env == "PRODUCTION" else "cyan"
    click.secho(f"environment: {env} key ({pre.key_scope})", fg=colour, bold=True)
    click.echo(
        f"to send: {pre.rows} rows, {pre.face_value:,.2f} DA face value, "
        f"{pre.cost:,.2f} DA estimated cost; balance {pre.balance:,.2f} DA"
        + (f"; {pre.already_done} rows already handled in this batch" if pre.already_done else "")
    )
    if pre.rows == 0 or yes:
        return
    if not sys.stdin.isatty():
        raise RefusedError(
            f"{what} needs a confirmation and there is no terminal to ask on; "
            f"pass --yes to run unattended (cron); nothing was sent"
        )
    if not click.confirm(f"Send these {pre.rows} top-ups?", default=False):
        raise RefusedError("not confirmed; nothing was sent")


async def _with_signals(runner: Any, coro: Any) -> Any:
    """Run `coro`; SIGINT/SIGTERM ask the runner to stop cleanly (rows in flight settle)."""
    import signal

    import anyio

    result: list[Any] = []

    async def watch(scope: Any) -> None:
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    name = signal.Signals(signum).name
                    click.echo(
                        f"\n{name}: stopping: no new rows; rows in flight settle into the journal",
                        err=True,
                    )
                    runner.request_stop(f"interrupted ({name})")
        except (ValueError, NotImplementedError):  # not the main thread: no signal handling
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, tg.cancel_scope)
        result.append(await coro)
        tg.cancel_scope.cancel()
    return result[0]


async def _drive(
    journal: Any, client: Any, settings: Any, options: Any, yes: bool, what: str
) -> Any:
    """Pre-flight, confirmation, then the run itself with progress and signal handling."""
    from .journal import RowState
    from .runner import Runner

    runner = Runner(journal, client, settings.clock, options)
    pre = await runner.preflight()
    _confirm(pre, yes, what)
    in_flight = journal.rows([RowState.SUBMITTED, RowState.SENDING, RowState.UNCERTAIN])
    progress = Progress(pre.rows, pre.rows + len(in_flight))
    runner.progress = progress
    try:
        return await _with_signals(runner, runner.execute())
    finally:
        progress.close()


def _report_and_exit(
    journal: Any, outcome: Any, out: Any, batch: str, state_dir: Any, emulated: bool
) -> None:
    from .report import write_results

    path = write_results(
        journal,
        out,
        "xlsx" if str(out).endswith(".xlsx") else "json" if str(out).endswith(".json") else "csv",
    )
    counts = outcome.counts
    click.echo("")
    click.echo("rows: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    click.echo(
        f"API calls: {outcome.api_calls}"
        + (f", rate limited {outcome.rate_limited}x" if outcome.rate_limited else "")
    )
    cards = [(r.sheet_row, c.get("value", "")) for r in journal.rows() for c in r.cards]
    if cards:
        from .client import mask

        shown = ", ".join(f"row {row}: {mask(code)}" for row, code in cards[:5])
        more = f" and {len(cards) - 5} more" if len(cards) > 5 else ""
        click.echo(
            f"gift cards delivered: {len(cards)} ({shown}{more}); the codes are in the "
            f"results file only"
        )
    click.echo(f"results: {path}")
    if outcome.stop_reason:
        click.secho(f"stopped: {outcome.stop_reason}", fg="yellow")
    code = EXIT_REFUSED if outcome.refused else outcome.exit_code
    if code == EXIT_NOT_FINAL:
        extra = f" --state-dir {state_dir}" if str(state_dir) != ".bulk-topup" else ""
        click.secho(
            f"some rows are not final yet; continue with:\n"
            f"  bulk-topup resume --batch {batch}{extra}\n"
            f"  (or later: bulk-topup reconcile --batch {batch}{extra})",
            fg="yellow",
        )
        if emulated:
            click.echo(
                "note: the built-in emulator lives for one command only; resume and reconcile "
                "need the real API or a served emulator (bulk-topup emulator)"
            )
    elif code == EXIT_FAILED_ROWS:
        click.secho(
            "finished; some rows failed: see 'Needs attention' and 'Retry' in the results",
            fg="yellow",
        )
    elif code == EXIT_OK:
        click.secho("finished: every row fulfilled", fg="green")
    sys.exit(code)


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option(
    "--batch",
    required=True,
    help="Batch key, e.g. payroll-2026-11: the same key resumes, never resends.",
)
@click.option("--sheet", "sheet_name", default=None, help="The sheet to read (default: the first).")
@click.option("--dry-run", is_flag=True, help="Validate and check balance and key; send nothing.")
@click.option("--skip-invalid", is_flag=True, help="Send the valid rows even if some are invalid.")
@click.option("--allow-duplicates", is_flag=True, help="The same order twice is meant, not a slip.")
@click.option(
    "--max-total",
    type=click.FloatRange(min=0),
    default=None,
    help="Refuse to start if this run's face value exceeds this many DA.",
)
@run_options
@api_options
@handle_errors
def run(
    sheet: str,
    batch: str,
    sheet_name: str | None,
    dry_run: bool,
    skip_invalid: bool,
    allow_duplicates: bool,
    max_total: float | None,
    out: str | None,
    rate: float,
    concurrency: int,
    yes: bool,
    resend_uncertain_gifts: bool,
    **kw: Any,
) -> None:
    """Validate SHEET, confirm, submit, poll to the end and write the results."""
    import hashlib
    import json
    from pathlib import Path

    from .clock import iso
    from .errors import InvalidRowsError
    from .journal import open_batch
    from .plan import validate_sheet
    from .report import default_path
    from .runner import AdaptiveThrottle

    settings = make_settings(kw)
    options = _options(rate, concurrency, max_total, resend_uncertain_gifts)
    now = lambda: iso(settings.clock.wall())  # noqa: E731
    if dry_run:
        _dry_run(settings, sheet, batch, sheet_name, allow_duplicates, skip_invalid, options)
        return
    # The lock comes first: a second run of the batch stops here, before any API call.
    journal = open_batch(settings.state_dir, batch, now=now)
    created = not journal.rows()
    try:
        result_path = Path(out) if out else default_path(sheet, batch)

        async def go() -> Any:
            throttle = AdaptiveThrottle(options.rate)
            async with settings.client(throttle=throttle) as client:
                read, validation = await validate_sheet(
                    sheet,
                    batch=batch,
                    client=client,
                    state_dir=settings.state_dir,
                    api_url=settings.api_url,
                    sheet_name=sheet_name,
                    allow_duplicates=allow_duplicates,
                )
                if validation.invalid:
                    print_validation(read, validation)
                    if not skip_invalid:
                        raise InvalidRowsError(
                            f"{len(validation.invalid)} invalid rows; nothing "
                            f"was sent (fix them, or pass --skip-invalid)"
                        )
                journal.sync_orders(validation.orders)
                digest = hashlib.sha256(Path(sheet).read_bytes()).hexdigest()[:16]
                journal.set_meta(
                    sheet=str(Path(sheet).resolve()),
                    fingerprint=digest,
                    sheet_name=read.name or None,
                    out=str(result_path.resolve()),
                    api_url=settings.api_url,
                    headers=json.dumps(
                        dict(zip(read.columns, read.headers, strict=True)), ensure_ascii=False
                    ),
                )
                return await _drive(journal, client, settings, options, yes, "run")

        outcome = _run(go())
        _report_and_exit(
            journal, outcome, result_path, batch, settings.state_dir, settings.emulated
        )
    finally:
        empty = created and not journal.rows()
        journal.close()
        if empty:  # refused before anything was journaled: leave no empty batch behind
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(str(journal.path) + suffix).unlink(missing_ok=True)


def _dry_run(
    settings: Any,
    sheet: str,
    batch: str,
    sheet_name: str | None,
    allow_duplicates: bool,
    skip_invalid: bool,
    options: Any,
) -> None:
    from .errors import RefusedError
    from .plan import validate_sheet

    async def go() -> Any:
        async with settings.client() as client:
            read, validation = await validate_sheet(
                sheet,
                batch=batch,
                client=client,
                state_dir=settings.state_dir,
                api_url=settings.api_url,
                sheet_name=sheet_name,
                allow_duplicates=allow_duplicates,
            )
            key = await client.validate_key()
            return read, validation, key, await client.balance()

    read, validation, key, balance = _run(go())
    print_validation(read, validation)
    if validation.invalid and not skip_invalid:
        sys.exit(EXIT_INVALID)
    cost = validation.summary["cost"]
    face = validation.summary["face_value"]
    click.echo(
        f"dry run: {key.type} key ({key.scope}); balance {balance:,.2f} DA; would send "
        f"{len(validation.valid)} rows, {face:,.2f} DA face value, {cost:,.2f} DA cost"
    )
    if key.scope != "READ-WRITE":
        raise RefusedError(f"this API key is {key.scope}: it can look but not buy")
    if cost > balance:
        raise RefusedError(f"the balance ({balance:,.2f} DA) does not cover {cost:,.2f} DA")
    if options.max_total is not None and face > options.max_total:
        raise RefusedError(f"{face:,.2f} DA is more than --max-total {options.max_total:,.2f} DA")
    click.echo("nothing was sent")


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@run_options
@api_options
@handle_errors
def resume(
    batch: str,
    out: str | None,
    rate: float,
    concurrency: int,
    yes: bool,
    resend_uncertain_gifts: bool,
    **kw: Any,
) -> None:
    """Continue a batch from its journal alone: reconcile, send what is left, poll."""
    from pathlib import Path

    from .clock import iso
    from .journal import open_batch
    from .report import default_path
    from .runner import AdaptiveThrottle

    settings = make_settings(kw)
    options = _options(rate, concurrency, None, resend_uncertain_gifts)
    journal = open_batch(
        settings.state_dir, batch, now=lambda: iso(settings.clock.wall()), create=False
    )
    try:
        result_path = Path(out or journal.get_meta("out") or default_path(None, batch))

        async def go() -> Any:
            async with settings.client(throttle=AdaptiveThrottle(options.rate)) as client:
                return await _drive(journal, client, settings, options, yes, "resume")

        outcome = _run(go())
        _report_and_exit(
            journal, outcome, result_path, batch, settings.state_dir, settings.emulated
        )
    finally:
        journal.close()


@main.command()
@click.option("--batch", default=None, help="The batch to re-check.")
@click.option("--all", "all_", is_flag=True, help="Every batch in the state dir.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@api_options
@handle_errors
def reconcile(batch: str | None, all_: bool, rate: float, **kw: Any) -> None:
    """Re-check every row that is not final and refresh the results (a daily cron job)."""
    from pathlib import Path

    from .clock import iso
    from .errors import BatchLockedError, UsageError
    from .journal import list_batches, open_batch
    from .report import default_path, write_results
    from .runner import AdaptiveThrottle, Runner, RunOptions

    if bool(batch) == bool(all_):
        raise UsageError("give --batch KEY or --all")
    settings = make_settings(kw)
    keys = [batch] if batch else [b[0] for b in list_batches(settings.state_dir)]
    codes = []
    for key in keys:
        try:
            journal = open_batch(
                settings.state_dir, key, now=lambda: iso(settings.clock.wall()), create=False
            )
        except BatchLockedError as e:
            click.secho(f"{key}: skipped: {e.message}", fg="yellow")
            codes.append(EXIT_LOCKED)
            continue
        try:

            async def go(journal: Any = journal) -> Any:
                async with settings.client(throttle=AdaptiveThrottle(rate)) as client:
                    return await Runner(
                        journal, client, settings.clock, RunOptions(rate=rate)
                    ).reconcile()

            outcome = _run(go())
            path = write_results(journal, Path(journal.get_meta("out") or default_path(None, key)))
            counts = ", ".join(f"{k} {v}" for k, v in sorted(outcome.counts.items()))
            click.echo(f"{key}: {counts}; results: {path}")
            codes.append(outcome.exit_code)
        finally:
            journal.close()
    sys.exit(max(codes, default=EXIT_OK))


@main.command()
@click.option("--batch", required=True)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=".bulk-topup", show_default=True
)
@handle_errors
def status(batch: str, fmt: str, state_dir: str) -> None:
    """Counts per state of a batch, from its journal (no API call)."""
    import json
    from pathlib import Path

    from .journal import open_batch
    from .runner import exit_code_for

    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        counts = journal.counts()
        meta = journal.meta()
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "batch": batch,
                    "counts": counts,
                    "rows": sum(counts.values()),
                    "environment": meta.get("environment"),
                    "finished_at": meta.get("finished_at"),
                    "exit_code": exit_code_for(counts),
                }
            )
        )
        return
    click.echo(
        f"batch {batch}: {sum(counts.values())} rows"
        + (f" ({meta['environment']})" if meta.get("environment") else "")
    )
    for state, n in sorted(counts.items()):
        click.echo(f"  {state:<17} {n}")


@main.command()
@click.option("--batch", required=True)
@click.option("--out", type=click.Path(dir_okay=False), default=None)
@click.option(
    "--format", "fmt", type=click.Choice(["xlsx", "csv", "json"]), default="xlsx", show_default=True
)
@click.option(
    "--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=".bulk-topup", show_default=True
)
@handle_errors
def report(batch: str, out: str | None, fmt: str, state_dir: str) -> None:
    """Rebuild the results of a batch from its journal (no API call)."""
    from pathlib import Path

    from .journal import open_batch
    from .report import default_path, write_results

    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        if out is None:
            saved = journal.get_meta("out")
            target = Path(saved).with_suffix(f".{fmt}") if saved else default_path(None, batch, fmt)
        else:
            target = Path(out)
        path = write_results(journal, target, fmt)
    click.echo(f"wrote {path}")


@main.command()
@click.option(
    "--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=".bulk-topup", show_default=True
)
def batches(state_dir: str) -> None:
    """The batches in the state dir, with their counts per state."""
    from pathlib import Path

    from .journal import list_batches

    found = list_batches(Path(state_dir))
    if not found:
        click.echo(f"no batches in {state_dir}")
        return
    for key, _, counts, meta in found:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        when = meta.get("finished_at") or meta.get("created_at") or ""
        click.echo(f"{key:<30} {when:<25} {parts}")
