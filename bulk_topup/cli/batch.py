"""run, resume, reconcile, status, report, batches and discard: the commands that move money.

Each builds its request, calls one function of `service`, and turns the `BatchResult` (or the
error) into lines and the exit code of the contract. Progress bars, the confirmation prompt and
SIGINT/SIGTERM handling live here; everything they act on lives in the library.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from . import (
    EXIT_FAILED_ROWS,
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_NOT_FINAL,
    EXIT_OK,
    F,
    api_options,
    handle_errors,
    main,
    make_settings,
    run_async,
    state_dir_option,
)
from .approvals import (
    notify_option,
    plan_option,
    policy_option,
    show_delivery,
    tells_refusal,
)
from .reporting import echo_written, report_options, report_settings
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
    from ..context import RunOptions

    return RunOptions(
        rate=rate,
        concurrency=concurrency,
        max_total=max_total,
        resend_uncertain_gifts=resend_uncertain_gifts,
    )


class CliHooks:
    """The service's questions, asked on the terminal; its progress, shown there; SIGINT and
    SIGTERM, turned into a clean stop once sending has begun."""

    def __init__(self, yes: bool, what: str) -> None:
        self.yes = yes
        self.what = what
        self.runner: Any = None
        self.task_group: Any = None
        self.bars: Progress | None = None

    def validated(self, sheet: Any, validation: Any) -> None:
        if validation.invalid:
            print_validation(sheet, validation)
        else:
            print_warnings(validation)

    def confirm(self, facts: Any) -> bool:
        _show_facts(facts)
        if facts.rows == 0 or self.yes:
            return True
        from ..errors import RefusedError

        if not sys.stdin.isatty():
            raise RefusedError(
                f"{self.what} needs a confirmation and there is no terminal to ask on; pass "
                f"--yes to run unattended (cron); nothing was sent"
            )
        try:
            return click.confirm(f"Send these {facts.rows} top-ups?", default=False)
        except click.Abort:  # Ctrl-C or end of input at the prompt
            click.echo("")
            return False

    def progress(self, event: str, row: Any) -> None:
        if self.bars is not None:
            self.bars(event, row)

    def started(self, runner: Any) -> None:
        self.runner = runner
        facts = self.facts
        self.bars = Progress(facts.rows, facts.rows + facts.in_flight + facts.to_check)
        if self.task_group is not None:
            self.task_group.start_soon(_watch_signals, runner)

    facts: Any = None

    def close(self) -> None:
        if self.bars is not None:
            self.bars.close()


def _show_facts(facts: Any) -> None:
    env = facts.key_type or "unknown"
    colour = "red" if env == "PRODUCTION" else "cyan"
    click.secho(f"environment: {env} key ({facts.key_scope})", fg=colour, bold=True)
    line = (
        f"to send: {facts.rows} rows, {facts.face_value:,.2f} DA face value, "
        f"{facts.cost:,.2f} DA estimated cost; balance {facts.balance:,.2f} DA"
    )
    if facts.resend:
        line += f" ({facts.resend} of them checked with the provider: never placed, sent again)"
    click.echo(line)
    others = []
    if facts.already_done:
        others.append(f"{facts.already_done} already final in this batch")
    if facts.in_flight:
        others.append(f"{facts.in_flight} sent earlier and still being settled (not sent again)")
    if facts.to_check:
        others.append(f"{facts.to_check} of unknown outcome (left for a person, not sent)")
    if facts.skipped_invalid:
        others.append(f"{facts.skipped_invalid} invalid, skipped (never sent)")
    if others:
        click.echo("not sent: " + "; ".join(others))


async def _watch_signals(runner: Any) -> None:
    """SIGINT/SIGTERM ask the runner to stop cleanly (rows in flight settle); a second one
    leaves at once (every state change is committed; a POST cut short stays SENDING and is
    reconciled by resume)."""
    import signal

    import anyio

    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                if runner.stop_reason and runner.stop_reason.startswith("interrupted"):
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


def _drive(call: Any, hooks: CliHooks) -> Any:
    """Run a service call with the hooks' task group (for the signal watcher). A SIGINT that
    comes before sending began leaves with exit 6: nothing was sent."""
    import anyio

    from ..errors import RefusedError

    async def go() -> Any:
        outcome: list[Any] = []
        async with anyio.create_task_group() as tg:
            hooks.task_group = tg
            try:
                outcome.append(await call(hooks))
            except Exception as e:  # raised as itself, not wrapped in the task group's group
                outcome.append(e)
            finally:
                tg.cancel_scope.cancel()  # the signal watcher
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    original_confirm = hooks.confirm

    def confirm(facts: Any) -> bool:
        hooks.facts = facts
        return original_confirm(facts)

    hooks.confirm = confirm  # type: ignore[method-assign]
    try:
        return run_async(go())
    except KeyboardInterrupt:
        if hooks.runner is None:
            raise RefusedError("interrupted before anything was sent; nothing was sent") from None
        raise
    finally:
        hooks.close()


def _report(result: Any, emulated: bool, report: Any = None) -> None:
    """The end of a run, resume or reconcile, in words; then the exit code."""
    from ..i18n import _
    from ..report import sheet_name

    outcome = result.outcome
    click.echo("")
    click.echo(
        _("rows: {counts}").format(
            counts=", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        )
    )
    if outcome is not None:
        click.echo(
            _("API calls: {n}").format(n=outcome.api_calls)
            + (
                _(", rate limited {n}x").format(n=outcome.rate_limited)
                if outcome.rate_limited
                else ""
            )
        )
    if result.cards:
        shown = ", ".join(result.cards_shown)
        more = _(" and {n} more").format(n=result.cards - 5) if result.cards > 5 else ""
        click.echo(
            _(
                "gift cards delivered: {n} ({shown}{more}); the codes are in the results file only"
            ).format(n=result.cards, shown=shown, more=more)
        )
    if result.results is not None:
        if report is not None:
            echo_written(result.results, report)
        else:
            click.echo(_("results: {path}").format(path=result.results))
    if result.stop_reason:
        click.secho(_("stopped: {reason}").format(reason=result.stop_reason), fg="yellow")
    code = result.exit_code
    if code == EXIT_NOT_FINAL:
        resume, reconcile = result.next_steps
        click.secho(
            _(
                "some rows are not final yet; continue with:\n  {resume}\n  (or later: {reconcile})"
            ).format(resume=resume, reconcile=reconcile),
            fg="yellow",
        )
        if emulated:
            click.echo(
                _(
                    "note: the built-in emulator lives for one command only; resume and "
                    "reconcile need the real API or a served emulator (bulk-topup emulator)"
                )
            )
    elif code == EXIT_FAILED_ROWS:
        click.secho(
            _("finished; some rows failed: see '{attention}' and '{retry}' in the results").format(
                attention=sheet_name("attention"), retry=sheet_name("retry")
            ),
            fg="yellow",
        )
    elif code == EXIT_OK:
        click.secho(_("finished: every row fulfilled"), fg="green")
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
@click.option(
    "--send-edited-rows",
    is_flag=True,
    help="Send rows that pay again someone this batch already sent to (an edited or added "
    "row), as new orders, on purpose.",
)
@click.option(
    "--allow-repeat",
    is_flag=True,
    help="Send rows whose recipient and amount another batch paid within the repeat window "
    "(and the same sheet under another batch key), on purpose.",
)
@click.option(
    "--repeat-window",
    type=click.FloatRange(min=0),
    default=25.0,
    show_default=True,
    help="Days in which a payment of another batch counts as a repeat.",
)
@plan_option
@policy_option
@notify_option
@run_options
@report_options
@api_options
@handle_errors
@tells_refusal("run")
def run(
    sheet: str,
    batch: str,
    sheet_name: str | None,
    dry_run: bool,
    skip_invalid: bool,
    allow_duplicates: bool,
    max_total: float | None,
    send_edited_rows: bool,
    allow_repeat: bool,
    repeat_window: float,
    plan_file: str | None,
    policy: str | None,
    notify: str | None,
    out: str | None,
    rate: float,
    concurrency: int,
    yes: bool,
    resend_uncertain_gifts: bool,
    **kw: Any,
) -> None:
    """Validate SHEET, confirm, submit, poll to the end and write the results."""
    from ..policy import load_policy
    from ..service import SheetRun, run_sheet

    report = report_settings(kw, out=out)  # a wrong zone or a missing password: before anything
    settings = make_settings(kw)
    request = SheetRun(
        sheet=Path(sheet),
        batch=batch,
        sheet_name=sheet_name,
        out=Path(out) if out else None,
        options=_options(rate, concurrency, max_total, resend_uncertain_gifts),
        skip_invalid=skip_invalid,
        allow_duplicates=allow_duplicates,
        send_edited=send_edited_rows,
        allow_repeat=allow_repeat,
        repeat_window=repeat_window,
        report=report,
        plan=Path(plan_file) if plan_file else None,
        policy=load_policy(policy),
        notify=notify,
    )
    if dry_run:
        _dry_run(settings, request)
        return
    hooks = CliHooks(yes, "run")
    result = _drive(lambda h: run_sheet(settings, request, h), hooks)
    show_delivery(result.notified)
    _report(result, settings.emulated, report)


def _dry_run(settings: Any, request: Any) -> None:
    from ..errors import RefusedError
    from ..service import dry_run

    found = run_async(dry_run(settings, request))
    print_validation(found.sheet, found.validation)
    if found.validation.invalid and not request.skip_invalid:
        sys.exit(EXIT_INVALID)
    click.echo(
        f"dry run: {found.key_type} key ({found.key_scope}); balance {found.balance:,.2f} DA; "
        f"would send {found.to_send} rows, {found.face_value:,.2f} DA face value, "
        f"{found.cost:,.2f} DA cost"
    )
    others = []
    if found.already_handled:
        others.append(f"{found.already_handled} already sent in this batch")
    if found.to_check:
        others.append(
            f"{found.to_check} of unknown outcome, checked with the provider first "
            f"(sent again only if it never got them)"
        )
    if found.skipped_invalid:
        others.append(f"{found.skipped_invalid} invalid, skipped")
    if others:
        click.echo("not sent now: " + "; ".join(others))
    for refusal in found.refusals:
        click.secho(f"a run would refuse: {refusal}", fg="red")
    if found.unauthorised:
        raise RefusedError(found.unauthorised)
    if found.key_scope != "READ-WRITE":
        raise RefusedError(f"this API key is {found.key_scope}: it can look but not buy")
    if found.cost > found.balance:
        raise RefusedError(
            f"the balance ({found.balance:,.2f} DA) does not cover {found.cost:,.2f} DA"
        )
    max_total = request.options.max_total
    if max_total is not None and found.face_value > max_total:
        raise RefusedError(
            f"{found.face_value:,.2f} DA is more than --max-total {max_total:,.2f} DA"
        )
    click.echo("nothing was sent")
    if found.refusals:
        sys.exit(EXIT_INVALID)
    if found.to_send == 0 and found.to_check == 0 and not found.already_handled:
        sys.exit(EXIT_INVALID)  # nothing at all to send is not a clean dry run


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@policy_option
@notify_option
@run_options
@report_options
@api_options
@handle_errors
@tells_refusal("resume")
def resume(
    batch: str,
    policy: str | None,
    notify: str | None,
    out: str | None,
    rate: float,
    concurrency: int,
    yes: bool,
    resend_uncertain_gifts: bool,
    **kw: Any,
) -> None:
    """Continue a batch from its journal alone: reconcile, send what is left, poll."""
    from ..policy import load_policy
    from ..service import resume_batch

    report = report_settings(kw, out=out)
    settings = make_settings(kw)
    options = _options(rate, concurrency, None, resend_uncertain_gifts)
    hooks = CliHooks(yes, "resume")
    rules = load_policy(policy)
    result = _drive(
        lambda h: resume_batch(
            settings, batch, options, h, Path(out) if out else None, report, rules, notify
        ),
        hooks,
    )
    show_delivery(result.notified)
    _report(result, settings.emulated, report)


@main.command()
@click.option("--batch", default=None, help="The batch to re-check.")
@click.option(
    "--all",
    "all_",
    is_flag=True,
    help="Every batch of the state dir that sent something and is not final.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="API calls per second, all calls together.",
)
@notify_option
@report_options
@api_options
@handle_errors
@tells_refusal("reconcile")
def reconcile(batch: str | None, all_: bool, rate: float, notify: str | None, **kw: Any) -> None:
    """Re-check every row that is not final and refresh the results (a daily cron job)."""
    from ..errors import BatchLockedError, BulkTopupError, UsageError
    from ..service import batches_needing_reconcile, reconcile_batch

    if bool(batch) == bool(all_):
        raise UsageError("give --batch KEY or --all")
    report = report_settings(kw)
    settings = make_settings(kw)
    keys = [batch] if batch else batches_needing_reconcile(settings.state_dir)
    if all_ and not keys:
        click.echo(f"no batch of {settings.state_dir} has rows left to settle")
    codes = []
    for key in keys:
        try:
            result = run_async(reconcile_batch(settings, key, rate, report, notify))
        except BatchLockedError as e:
            click.secho(f"{key}: skipped: {e.message}", fg="yellow")
            codes.append(EXIT_LOCKED)
            continue
        except BulkTopupError as e:
            if batch:
                raise
            click.secho(f"{key}: skipped: {e.message}", fg="yellow")
            codes.append(e.exit_code)
            continue
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        click.echo(f"{key}: {counts}; results: {result.results}")
        show_delivery(result.notified)
        codes.append(result.exit_code)
    sys.exit(max(codes, default=EXIT_OK))


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
    help="text for people, json for scripts.",
)  # fmt: skip
@state_dir_option
@handle_errors
def status(batch: str, fmt: str, state_dir: str) -> None:
    """Counts per state of a batch, from its journal (no API call)."""
    import json

    from ..journal import open_batch
    from ..runner import exit_code_for

    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        counts = journal.counts()
        meta = journal.meta()
    rows = sum(counts.values())
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "batch": batch,
                    "counts": counts,
                    "rows": rows,
                    "environment": meta.get("environment"),
                    "finished_at": meta.get("finished_at"),
                    "stop_reason": meta.get("stop_reason") or None,
                    "exit_code": exit_code_for(counts),
                }
            )
        )
        return
    click.echo(
        f"batch {batch}: {rows} rows"
        + (f" ({meta['environment']})" if meta.get("environment") else "")
    )
    if not rows:
        click.echo(
            "  it holds no rows: the run that created it stopped before the sheet's rows were "
            "written; run the sheet again, or discard the batch"
        )
    for state, n in sorted(counts.items()):
        click.echo(f"  {state:<17} {n}")


@main.command()
@click.option("--batch", required=True, help="The batch key given to run.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Results file; its extension (.xlsx, .csv, .json) says the format (default: the "
    "batch's results file).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["xlsx", "csv", "json"]),
    default=None,
    help="Format of the results, when --out's extension does not say it (default xlsx).",
)
@report_options
@state_dir_option
@handle_errors
def report(batch: str, out: str | None, fmt: str | None, state_dir: str, **kw: Any) -> None:
    """Rebuild the results of a batch from its journal (no API call)."""
    from pathlib import Path

    from ..journal import open_batch
    from ..report import default_path, output_format, write_results
    from .reporting import echo_written, report_settings

    fmt = output_format(out, fmt)
    with open_batch(Path(state_dir), batch, now=lambda: "", lock=False, create=False) as journal:
        if out is None:
            saved = journal.get_meta("out")
            target = Path(saved).with_suffix(f".{fmt}") if saved else default_path(None, batch, fmt)
        else:
            target = Path(out)
        settings = report_settings(kw, target)
        path = write_results(journal, target, fmt, settings=settings)
    echo_written(path, settings)


@main.command()
@state_dir_option
def batches(state_dir: str) -> None:
    """The batches in the state dir, with their counts per state."""
    from ..journal import list_batches

    found = list_batches(Path(state_dir))
    if not found:
        click.echo(f"no batches in {state_dir}")
        return
    for key, _, counts, meta in found:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "no rows"
        when = meta.get("finished_at") or meta.get("created_at") or ""
        click.echo(f"{key:<30} {when:<25} {parts}")


@main.command()
@click.option("--batch", required=True, help="The batch to discard.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@state_dir_option
@handle_errors
def discard(batch: str, yes: bool, state_dir: str) -> None:
    """Delete a batch that never sent anything (abandoned at the confirmation, or refused)."""
    from ..errors import RefusedError
    from ..service import discard_batch

    if not yes:
        if not sys.stdin.isatty():
            raise RefusedError("discard needs a confirmation; pass --yes")
        if not click.confirm(f"Discard batch {batch!r} (nothing of it was sent)?", default=False):
            raise RefusedError("not confirmed; nothing was discarded")
    rows = discard_batch(Path(state_dir), batch)
    click.echo(f"discarded batch {batch}: {rows} rows, none of them sent")
