"""Runs started from the console: tasks of the server's event loop, not of a request, so closing
the browser stops nothing; each takes the batch's lock inside the service, as the CLI's does.

A face's part only: the hooks that refuse a run whose real pre-flight facts are not the ones the
person confirmed (`preview.Expected`), that keep the runner so Stop can ask it to settle and stop
(`runner.request_stop`, what SIGINT does in the CLI), and that wake the pages watching the batch.
What a run did is in its journal; what is kept here (the last outcome, a refusal's sentence) only
adds words until the console restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..batchfile import batch_locked
from ..config import redact
from ..crash import describe, leaf, write_report
from ..errors import BatchLockedError, BulkTopupError, RefusedError
from ..i18n import N_, _
from ..preview import Expected
from ..runner import Preflight, Runner
from ..service import BatchResult, Hooks

#: The stop reason a console's Stop leaves in the journal (shown translated in the results).
STOP_REASON = N_("stopped from the console")
SHUTDOWN_REASON = N_("the console was shut down")


@dataclass
class ConsoleRun:
    batch: str
    what: str  # run | resume | reconcile
    user: str
    task: asyncio.Task[None] | None = None
    runner: Runner | None = None
    facts: Preflight | None = None
    result: BatchResult | None = None
    error: str | None = None
    stop_asked_by: str | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def poke(self) -> None:
        """Wake every page watching this run (each waits on the event of its time)."""
        event, self.wake = self.wake, asyncio.Event()
        event.set()


class ConsoleHooks(Hooks):
    def __init__(self, run: ConsoleRun, expected: Expected | None) -> None:
        self.run = run
        self.expected = expected

    def confirm(self, facts: Preflight) -> bool:
        self.run.facts = facts
        if self.run.stop_asked_by:
            raise RefusedError(_("stopped before anything was sent; nothing was sent"))
        problem = self.expected.differs(facts) if self.expected else None
        if problem:
            raise RefusedError(problem)
        return True

    def progress(self, event: str, row: object) -> None:
        self.run.poke()

    def started(self, runner: Runner) -> None:
        self.run.runner = runner
        if self.run.stop_asked_by:
            runner.request_stop(STOP_REASON)
        self.run.poke()


Call = Callable[[Hooks], Awaitable[BatchResult]]


class Runs:
    """The runs of this console, one at a time per batch."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._runs: dict[str, ConsoleRun] = {}

    def get(self, batch: str) -> ConsoleRun | None:
        return self._runs.get(batch)

    def batches(self) -> list[str]:
        """The batches this console ran since it started."""
        return list(self._runs)

    def busy(self, batch: str) -> str | None:
        """Who is running the batch right now: "console", "other" (the CLI, another console),
        or None."""
        run = self._runs.get(batch)
        if run is not None and run.running:
            return "console"
        return "other" if batch_locked(self.state_dir, batch) else None

    def start(
        self, batch: str, what: str, user: str, call: Call, expected: Expected | None = None
    ) -> ConsoleRun:
        """Start `call` as a task of the server's loop. Raises BatchLockedError when the batch
        is being run here or by another process (then nothing is started)."""
        busy = self.busy(batch)
        if busy == "console":
            raise BatchLockedError(
                _("batch {batch!r} is being run from this console already").format(batch=batch)
            )
        if busy == "other":
            raise BatchLockedError(
                _(
                    "batch {batch!r} is being run by another process right now (the command "
                    "line, or another console); nothing was sent"
                ).format(batch=batch)
            )
        run = ConsoleRun(batch, what, user)
        hooks = ConsoleHooks(run, expected)
        run.task = asyncio.get_running_loop().create_task(self._go(run, call, hooks))
        self._runs[batch] = run
        return run

    async def _go(self, run: ConsoleRun, call: Call, hooks: Hooks) -> None:
        try:
            run.result = await call(hooks)
        except BaseException as raised:  # noqa: BLE001  (every end is told on the batch's page)
            e = leaf(raised)
            if isinstance(e, BulkTopupError):
                run.error = redact(e.message)
            elif isinstance(e, asyncio.CancelledError):
                run.error = _(SHUTDOWN_REASON)
                raise
            else:
                report = write_report(raised, self.state_dir)
                run.error = describe(e) or _(
                    "an unexpected error stopped the run ({kind}); what was committed to the "
                    "journal is safe; the details are in {report}"
                ).format(kind=type(e).__name__, report=report)
        finally:
            run.poke()

    def stop(self, batch: str, user: str) -> bool:
        """Ask the batch's run to stop: no new rows; rows in flight settle into the journal.
        False when no run of this console is going on."""
        run = self._runs.get(batch)
        if run is None or not run.running:
            return False
        run.stop_asked_by = user
        if run.runner is not None:
            run.runner.request_stop(STOP_REASON)
            with contextlib.suppress(BulkTopupError):
                run.runner.journal.record(
                    f"stop asked from the console by {user}", {"what": "stop asked"}, actor=user
                )
        run.poke()
        return True

    async def shutdown(self, grace: float = 60.0) -> None:
        """The console is stopping: every run is asked to stop and given `grace` seconds to
        settle its rows in flight (like SIGINT in the CLI); what is left is cancelled, and its
        journal keeps every state change committed."""
        going = [r for r in self._runs.values() if r.running]
        for run in going:
            run.stop_asked_by = run.stop_asked_by or "console shutdown"
            if run.runner is not None:
                run.runner.request_stop(SHUTDOWN_REASON)
        tasks = [r.task for r in going if r.task is not None]
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
