"""A run on a terminal: the confirmation prompt, progress bars (or a line every so often for
cron), SIGINT/SIGTERM turned into a clean stop once sending has begun, and the closing lines and
exit code of run, resume and reconcile. The commands themselves are in `batch`."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..i18n import _, listed, money, ngettext
from ..texts import INTERRUPTED_BY, display
from . import (
    EXIT_FAILED_ROWS,
    EXIT_NOT_FINAL,
    EXIT_OK,
    run_async,
)
from .reporting import echo_written
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


class CliHooks:
    """The service's questions, asked on the terminal; its progress, shown there; SIGINT and
    SIGTERM, turned into a clean stop once sending has begun."""

    def __init__(self, yes: bool, what: str, *, skip_invalid: bool = False) -> None:
        self.yes = yes
        self.skip_invalid = skip_invalid
        self.what = what
        self.runner: Any = None
        self.task_group: Any = None
        self.bars: Progress | None = None

    def validated(self, sheet: Any, validation: Any) -> None:
        if validation.invalid:
            print_validation(sheet, validation, skip_invalid=self.skip_invalid)
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
        import signal

        def terminated(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # SIGTERM at the prompt: as Ctrl-C, nothing was sent

        previous = signal.signal(signal.SIGTERM, terminated)
        try:
            return click.confirm(_("Send these {n} top-ups?").format(n=facts.rows), default=False)
        except click.Abort:  # Ctrl-C, SIGTERM or end of input at the prompt
            click.echo("")
            return False
        finally:
            signal.signal(signal.SIGTERM, previous)

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
    line = ngettext(
        "to send: {n} row, {face} DA face value, {cost} DA estimated cost; balance {balance} DA",
        "to send: {n} rows, {face} DA face value, {cost} DA estimated cost; balance {balance} DA",
        facts.rows,
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
        click.echo(_("not sent: {what}").format(what=listed(others)))


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


def drive(call: Any, hooks: CliHooks) -> Any:
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


def report_end(result: Any, emulated: bool, report: Any = None) -> None:
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
        resume, reconcile = result.next_steps[:2]
        click.secho(
            _(
                "some rows are not final yet; continue with:\n  {resume}\n  (or later: {reconcile})"
            ).format(resume=resume, reconcile=reconcile),
            fg="yellow",
        )
        if result.uncertain_gifts:
            click.secho(
                ngettext(
                    "{n} gift card row is UNCERTAIN: no order of its own was found at the "
                    "provider, and resume leaves it to a person. Check the provider's gift card "
                    "orders; if none is there, send it again with:\n  {command}",
                    "{n} gift card rows are UNCERTAIN: no order of their own was found at the "
                    "provider, and resume leaves them to a person. Check the provider's gift card "
                    "orders; if none is there, send them again with:\n  {command}",
                    result.uncertain_gifts,
                ).format(n=result.uncertain_gifts, command=result.next_steps[2]),
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
