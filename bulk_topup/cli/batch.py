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

from ..i18n import _, money, ngettext
from ..texts import INTERRUPTED_BY, display
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

            sent, settled = _("sent"), _("settled")
            width = max(len(sent), len(settled))
            self.sent = tqdm(
                total=to_send, desc=f"{sent:<{width}}", unit=_("row"), file=sys.stderr,
                dynamic_ncols=True,
            )  # fmt: skip
            self.settled = tqdm(
                total=to_settle, desc=f"{settled:<{width}}", unit=_("row"), file=sys.stderr,
                dynamic_ncols=True,
            )  # fmt: skip
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
            click.echo(_("progress: {counts}").format(counts=parts))

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
                _(
                    "{command} needs a confirmation and there is no terminal to ask on; pass "
                    "--yes to run unattended (cron); nothing was sent"
                ).format(command=self.what)
            )
        try:
            return click.confirm(_("Send these {n} top-ups?").format(n=facts.rows), default=False)
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
    env = facts.key_type or _("unknown")
    colour = "red" if facts.key_type == "PRODUCTION" else "cyan"
    click.secho(
        _("environment: {env} key ({scope})").format(env=env, scope=facts.key_scope),
        fg=colour,
        bold=True,
    )
    line = _(
        "to send: {n} rows, {face} DA face value, {cost} DA estimated cost; balance {balance} DA"
    ).format(
        n=facts.rows, face=money(facts.face_value), cost=money(facts.cost),
        balance=money(facts.balance),
    )  # fmt: skip
    if facts.resend:
        line += _(" ({n} of them checked with the provider: never placed, sent again)").format(
            n=facts.resend
        )
    click.echo(line)
    others = []
    if facts.already_done:
        others.append(_("{n} already final in this batch").format(n=facts.already_done))
    if facts.in_flight:
        others.append(
            _("{n} sent earlier and still being settled (not sent again)").format(n=facts.in_flight)
        )
    if facts.to_check:
        others.append(
            _("{n} of unknown outcome (left for a person, not sent)").format(n=facts.to_check)
        )
    if facts.skipped_invalid:
        others.append(_("{n} invalid, skipped (never sent)").format(n=facts.skipped_invalid))
    if others:
        click.echo(_("not sent: {what}").format(what="; ".join(others)))


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
                    click.echo(
                        "\n"
                        + _("{signal} again: leaving at once; run resume later").format(
                            signal=name
                        ),
                        err=True,
                    )
                    os._exit(EXIT_NOT_FINAL)
                click.echo(
                    "\n"
                    + _(
                        "{signal}: stopping: no new rows; rows in flight settle into the journal "
                        "(again to leave at once)"
                    ).format(signal=name),
                    err=True,
                )
                runner.request_stop(INTERRUPTED_BY.format(signal=name))  # stored in English
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
            raise RefusedError(
                _("interrupted before anything was sent; nothing was sent")
            ) from None
        raise
    finally:
        hooks.close()


def _report(result: Any, emulated: bool, report: Any = None) -> None:
    """The end of a run, resume or reconcile, in words; then the exit code."""
    from ..report import sheet_name
    from ..service import standing

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
        click.secho(_("stopped: {reason}").format(reason=display(result.stop_reason)), fg="yellow")
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
    elif code == EXIT_FAILED_ROWS and standing(result.counts) == "skipped":
        n = result.counts.get("INVALID", 0)
        click.secho(
            ngettext(
                "finished: every valid row fulfilled; {n} invalid row was not sent (see '{sheet}' "
                "in the results)",
                "finished: every valid row fulfilled; {n} invalid rows were not sent (see "
                "'{sheet}' in the results)",
                n,
            ).format(n=n, sheet=sheet_name("attention")),
            fg="yellow",
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
        _(
            "dry run: {type} key ({scope}); balance {balance} DA; would send {n} rows, {face} DA "
            "face value, {cost} DA cost"
        ).format(
            type=found.key_type, scope=found.key_scope, balance=money(found.balance),
            n=found.to_send, face=money(found.face_value), cost=money(found.cost),
        )
    )  # fmt: skip
    others = []
    if found.already_handled:
        others.append(_("{n} already sent in this batch").format(n=found.already_handled))
    if found.to_check:
        others.append(
            _(
                "{n} of unknown outcome, checked with the provider first (sent again only if it "
                "never got them)"
            ).format(n=found.to_check)
        )
    if found.skipped_invalid:
        others.append(_("{n} invalid, skipped").format(n=found.skipped_invalid))
    if others:
        click.echo(_("not sent now: {what}").format(what="; ".join(others)))
    for refusal in found.refusals:
        click.secho(_("a run would refuse: {why}").format(why=refusal), fg="red")
    if found.unauthorised:
        raise RefusedError(found.unauthorised)
    if found.key_scope != "READ-WRITE":
        raise RefusedError(
            _("this API key is {scope}: it can look but not buy").format(scope=found.key_scope)
        )
    if found.cost > found.balance:
        raise RefusedError(
            _("the balance ({balance} DA) does not cover {cost} DA").format(
                balance=money(found.balance), cost=money(found.cost)
            )
        )
    max_total = request.options.max_total
    if max_total is not None and found.face_value > max_total:
        raise RefusedError(
            _("{face} DA is more than --max-total {cap} DA").format(
                face=money(found.face_value), cap=money(max_total)
            )
        )
    click.echo(_("nothing was sent"))
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
        raise UsageError(_("give --batch KEY or --all"))
    report = report_settings(kw)
    settings = make_settings(kw)
    keys = [batch] if batch else batches_needing_reconcile(settings.state_dir)
    if all_ and not keys:
        click.echo(
            _("no batch of {state_dir} has rows left to settle").format(
                state_dir=settings.state_dir
            )
        )
    codes = []
    for key in keys:
        try:
            result = run_async(reconcile_batch(settings, key, rate, report, notify))
        except BatchLockedError as e:
            click.secho(
                _("{batch}: skipped: {why}").format(batch=key, why=display(e.message)),
                fg="yellow",
            )
            codes.append(EXIT_LOCKED)
            continue
        except BulkTopupError as e:
            if batch:
                raise
            click.secho(
                _("{batch}: skipped: {why}").format(batch=key, why=display(e.message)),
                fg="yellow",
            )
            codes.append(e.exit_code)
            continue
        counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items()))
        click.echo(
            _("{batch}: {counts}; results: {path}").format(
                batch=key, counts=counts, path=result.results
            )
        )
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

    from ..batchfile import open_batch
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
                    "finished_at": meta.get("finished_at") or None,  # "" while a run goes on
                    "stop_reason": meta.get("stop_reason") or None,
                    "exit_code": exit_code_for(counts),
                }
            )
        )
        return
    click.echo(
        _("batch {batch}: {n} rows").format(batch=batch, n=rows)
        + (f" ({meta['environment']})" if meta.get("environment") else "")
    )
    if not rows:
        click.echo(
            _(
                "  it holds no rows: the run that created it stopped before the sheet's rows "
                "were written; run the sheet again, or discard the batch"
            )
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

    from ..batchfile import open_batch
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
    from ..batchfile import list_batches

    found = list_batches(Path(state_dir))
    if not found:
        click.echo(_("no batches in {state_dir}").format(state_dir=state_dir))
        return
    for key, _path, counts, meta in found:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or _("no rows")
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
            raise RefusedError(_("discard needs a confirmation; pass --yes"))
        question = _("Discard batch {batch!r} (nothing of it was sent)?").format(batch=batch)
        if not click.confirm(question, default=False):
            raise RefusedError(_("not confirmed; nothing was discarded"))
    rows = discard_batch(Path(state_dir), batch)
    click.echo(
        _("discarded batch {batch}: {n} rows, none of them sent").format(batch=batch, n=rows)
    )
