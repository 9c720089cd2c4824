"""run, resume, reconcile, status, report and batches: the commands that move money."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from . import (
    EXIT_FAILED_ROWS,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_NOT_FINAL,
    EXIT_OK,
    EXIT_REFUSED,
    F,
    api_options,
    handle_errors,
    main,
    make_settings,
    run_async,
)
from .sheets import print_validation, print_warnings


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


#: The journal-only commands (status, report, batches) need the state dir and nothing else.
state_dir_option = click.option(
    "--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=".bulk-topup", show_default=True
)


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
    from ..runner import RunOptions

    return RunOptions(
        rate=rate,
        concurrency=concurrency,
        max_total=max_total,
        resend_uncertain_gifts=resend_uncertain_gifts,
    )


def _confirm(pre: Any, yes: bool, what: str) -> None:
    from ..errors import RefusedError

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
                    if runner.stop_reason and runner.stop_reason.startswith("interrupted"):
                        # A second signal: leave now. Every state change is already committed;
                        # a POST cut short stays SENDING and is reconciled by resume.
                        click.echo(f"\n{name} again: leaving at once; run resume later", err=True)
                        os._exit(EXIT_NOT_FINAL)
                    click.echo(
                        f"\n{name}: stopping: no new rows; rows in flight settle into the journal "
                        f"(again to leave at once)",
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


def _same_api(journal: Any, api_url: str) -> None:
    """A batch belongs to the API it was started against: its orders exist only there."""
    from ..errors import RefusedError

    started = journal.get_meta("api_url")
    if started and started != api_url:
        raise RefusedError(
            f"this batch was started against {started}, not {api_url}: its orders exist only "
            f"there; use the same --api-url, or a new --batch key; nothing was sent"
        )


async def _drive(
    journal: Any, client: Any, settings: Any, options: Any, yes: bool, what: str
) -> Any:
    """Pre-flight, confirmation, then the run itself with progress and signal handling."""
    from ..journal import RowState
    from ..runner import Runner

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
    from ..report import write_results

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
    cards = [
        (r.sheet_row, c.get("value", ""))
        for r in journal.iter_rows(with_cards=True)
        for c in r.cards
    ]
    if cards:
        from ..models import mask

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
@click.option(
    "--sheet",
    "sheet_name",
    default=None,
    help="The sheet to read (default: the first visible worksheet).",
)
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

    from ..clock import iso
    from ..errors import InvalidRowsError
    from ..journal import open_batch
    from ..plan import validate_sheet
    from ..report import default_path
    from ..throttle import AdaptiveThrottle

    settings = make_settings(kw)
    options = _options(rate, concurrency, max_total, resend_uncertain_gifts)
    now = lambda: iso(settings.clock.wall())  # noqa: E731
    if dry_run:
        _dry_run(settings, sheet, batch, sheet_name, allow_duplicates, skip_invalid, options)
        return
    # The lock comes first: a second run of the batch stops here, before any API call.
    journal = open_batch(settings.state_dir, batch, now=now)
    created = not journal.counts()
    try:
        _same_api(journal, settings.api_url)
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
                else:
                    print_warnings(validation)
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

        outcome = run_async(go())
        _report_and_exit(
            journal, outcome, result_path, batch, settings.state_dir, settings.emulated
        )
    finally:
        empty = created and not journal.counts()
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
    from ..errors import RefusedError
    from ..plan import validate_sheet

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

    read, validation, key, balance = run_async(go())
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

    from ..clock import iso
    from ..journal import open_batch
    from ..report import default_path
    from ..throttle import AdaptiveThrottle

    settings = make_settings(kw)
    options = _options(rate, concurrency, None, resend_uncertain_gifts)
    journal = open_batch(
        settings.state_dir, batch, now=lambda: iso(settings.clock.wall()), create=False
    )
    try:
        _same_api(journal, settings.api_url)
        result_path = Path(out or journal.get_meta("out") or default_path(None, batch))

        async def go() -> Any:
            async with settings.client(throttle=AdaptiveThrottle(options.rate)) as client:
                return await _drive(journal, client, settings, options, yes, "resume")

        outcome = run_async(go())
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

    from ..clock import iso
    from ..errors import BatchLockedError, BulkTopupError, UsageError
    from ..journal import list_batches, open_batch
    from ..report import default_path, write_results
    from ..runner import Runner, RunOptions
    from ..throttle import AdaptiveThrottle

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
            try:
                _same_api(journal, settings.api_url)
            except BulkTopupError as e:
                click.secho(f"{key}: skipped: {e.message}", fg="yellow")
                codes.append(e.exit_code)
                continue

            async def go(journal: Any = journal) -> Any:
                async with settings.client(throttle=AdaptiveThrottle(rate)) as client:
                    return await Runner(
                        journal, client, settings.clock, RunOptions(rate=rate)
                    ).reconcile()

            outcome = run_async(go())
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
@state_dir_option
@handle_errors
def status(batch: str, fmt: str, state_dir: str) -> None:
    """Counts per state of a batch, from its journal (no API call)."""
    import json
    from pathlib import Path

    from ..journal import open_batch
    from ..runner import exit_code_for

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
@state_dir_option
@handle_errors
def report(batch: str, out: str | None, fmt: str, state_dir: str) -> None:
    """Rebuild the results of a batch from its journal (no API call)."""
    from pathlib import Path

    from ..journal import open_batch
    from ..report import default_path, write_results

    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        if out is None:
            saved = journal.get_meta("out")
            target = Path(saved).with_suffix(f".{fmt}") if saved else default_path(None, batch, fmt)
        else:
            target = Path(out)
        path = write_results(journal, target, fmt)
    click.echo(f"wrote {path}")


@main.command()
@state_dir_option
def batches(state_dir: str) -> None:
    """The batches in the state dir, with their counts per state."""
    from pathlib import Path

    from ..journal import list_batches

    found = list_batches(Path(state_dir))
    if not found:
        click.echo(f"no batches in {state_dir}")
        return
    for key, _, counts, meta in found:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        when = meta.get("finished_at") or meta.get("created_at") or ""
        click.echo(f"{key:<30} {when:<25} {parts}")
