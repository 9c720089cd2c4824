"""run, resume and reconcile: the commands that move money.

Each builds its request, calls one function of `service`, and hands the `BatchResult` (or the
error) to `terminal`, which turns it into lines and the exit code of the contract.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..i18n import _, listed, money, ngettext
from ..texts import display
from . import (
    EXIT_INVALID,
    EXIT_LOCKED,
    EXIT_OK,
    F,
    FiniteRange,
    api_options,
    handle_errors,
    main,
    make_settings,
    new_batch_key,
    run_async,
)
from .approvals import (
    notify_option,
    plan_option,
    policy_option,
    show_delivery,
    tells_refusal,
)
from .reporting import report_options, report_settings
from .sheets import print_validation
from .terminal import CliHooks, drive, report_end


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
            type=FiniteRange(min=0.1),
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


def repeat_options(f: Any) -> Any:
    """--allow-repeat and --repeat-window, for run and resume alike."""
    f = click.option(
        "--repeat-window",
        type=FiniteRange(min=0, max=3650),
        default=25.0,
        show_default=True,
        help="Days in which a payment of another batch counts as a repeat.",
    )(f)
    return click.option(
        "--allow-repeat",
        is_flag=True,
        help="Send rows whose recipient and amount another batch paid within the repeat window "
        "(and the same sheet under another batch key), on purpose.",
    )(f)


@main.command()
@click.argument("sheet", type=click.Path(dir_okay=False))
@click.option(
    "--batch",
    required=True,
    callback=new_batch_key,
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
    type=FiniteRange(min=0),
    default=None,
    help="Refuse to start if this run's face value exceeds this many DA.",
)
@click.option(
    "--send-edited-rows",
    is_flag=True,
    help="Send rows that pay again someone this batch already sent to (an edited or added "
    "row), as new orders, on purpose.",
)
@repeat_options
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
    hooks = CliHooks(yes, "run", skip_invalid=request.skip_invalid)
    result = drive(lambda h: run_sheet(settings, request, h), hooks)
    show_delivery(result.notified)
    report_end(result, settings.emulated, report)


def _dry_run(settings: Any, request: Any) -> None:
    from ..errors import RefusedError
    from ..service import dry_run

    found = run_async(dry_run(settings, request))
    print_validation(found.sheet, found.validation, skip_invalid=request.skip_invalid)
    if found.validation.invalid and not request.skip_invalid:
        sys.exit(EXIT_INVALID)
    click.echo(
        ngettext(
            "dry run: {type} key ({scope}); balance {balance} DA; would send {n} row, {face} DA "
            "face value, {cost} DA cost",
            "dry run: {type} key ({scope}); balance {balance} DA; would send {n} rows, {face} DA "
            "face value, {cost} DA cost",
            found.to_send,
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
        click.echo(_("not sent now: {what}").format(what=listed(others)))
    for refusal in found.refusals:
        click.secho(_("a run would refuse: {why}").format(why=refusal), fg="red")
    if not found.validation.valid:  # a run stops here too (3), before the policy is asked
        click.echo(_("nothing was sent"))
        sys.exit(EXIT_INVALID)
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
@repeat_options
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
    allow_repeat: bool,
    repeat_window: float,
    **kw: Any,
) -> None:
    """Continue a batch from its journal alone: reconcile, send what is left, poll. Rows not yet
    sent are checked against the other batches' payments first, as run checks them."""
    from ..policy import load_policy
    from ..service import resume_batch

    report = report_settings(kw, out=out)
    settings = make_settings(kw)
    options = _options(rate, concurrency, None, resend_uncertain_gifts)
    hooks = CliHooks(yes, "resume")
    rules = load_policy(policy)
    result = drive(
        lambda h: resume_batch(
            settings,
            batch,
            options,
            h,
            Path(out) if out else None,
            report,
            rules,
            notify,
            allow_repeat=allow_repeat,
            repeat_window=repeat_window,
        ),  # fmt: skip
        hooks,
    )
    show_delivery(result.notified)
    report_end(result, settings.emulated, report)


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
    type=FiniteRange(min=0.1),
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
