"""The `bulk-topup` command line: options in, library calls, messages and exit codes out.

This package is the only place that prints, prompts or imports click and tqdm:
`sheets` (validate, catalog, template), `batch` (run, resume, reconcile, status, report,
batches) and `serve` (the emulator).

Every command builds its objects, calls one library function, and turns
`BulkTopupError`s into a sentence and the exit code of DESIGN.md's contract.

`--lang` (env BULK_TOPUP_LANG) is one option, defined here: given before the command
(`bulk-topup --lang fr run ...`) or after it (`bulk-topup run ... --lang fr`), it sets the language
of everything the command says and writes, for the command's duration.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import __version__
from ..errors import AuthError, BulkTopupError, UsageError
from ..i18n import ENV_LANGUAGE, LANGUAGES, _, normalise_language, use_language

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_FAILED_ROWS, EXIT_NOT_FINAL, EXIT_REFUSED, EXIT_LOCKED = 4, 5, 6, 7


def _quick_retry() -> Any:
    from ..client import RetryPolicy

    # Commands that only read the catalog fall back to the cache rather than wait long.
    return RetryPolicy(attempts=2, initial=0.3, max_wait=1.0, jitter=0.2)


QUICK_RETRY = _quick_retry()


def fail(message: str, code: int) -> None:
    """Say `message` (an API client's English sentence in the reader's language) and exit."""
    from ..config import redact
    from ..texts import display

    click.echo(_("error: {message}").format(message=redact(display(message))), err=True)
    sys.exit(code)


#: Commands after which a batch may hold rows to resume.
BATCH_COMMANDS = {"run", "resume", "reconcile"}


def handle_errors(fn: F) -> F:
    """Turn every error into one sentence and the contract's exit code.

    Our own errors carry their sentence. For the unforeseen: a sentence for what has a plain
    cause (a full disk, a damaged journal), the whole traceback in a crash report (0600, secrets
    redacted) whose path is printed, and for a batch its results rewritten from the journal and
    the command that continues it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..crash import describe, leaf, write_report

        try:
            return fn(*args, **kwargs)
        except (SystemExit, click.exceptions.Exit, click.ClickException):
            raise
        except BaseException as raised:
            e = leaf(raised)
            if isinstance(e, SystemExit):
                raise e from None
            if isinstance(e, AuthError):
                from ..runner import auth_refusal

                fail(auth_refusal(e), e.exit_code)  # one wording for a refused key, everywhere
            if isinstance(e, BulkTopupError):
                fail(e.message, e.exit_code)
            if isinstance(e, KeyboardInterrupt):
                fail(_("interrupted"), EXIT_NOT_FINAL)
            state_dir = _state_dir_of(kwargs)
            batch = kwargs.get("batch") if fn.__name__ in BATCH_COMMANDS else None
            sentence = describe(e) or _(
                "an unexpected error stopped bulk-topup ({name}); what was committed to the "
                "journal is safe"
            ).format(name=type(e).__name__)
            click.echo(_("error: {message}").format(message=sentence), err=True)
            report = write_report(raised, state_dir)
            if batch:
                _salvage(str(batch), state_dir)
            if fn.__name__ in BATCH_COMMANDS:
                _tell_crash(kwargs, fn.__name__, sentence)
            if report is not None:
                click.echo(
                    _(
                        "the details are in {path} (no key in it): keep it for whoever maintains "
                        "bulk-topup"
                    ).format(path=report),
                    err=True,
                )
            # A batch command may have left rows open: 5 says "resume"; anything else is ours: 1.
            sys.exit(EXIT_NOT_FINAL if batch else EXIT_INTERNAL)

    return wrapper  # type: ignore[return-value]


def _tell_crash(kwargs: dict[str, Any], command: str, sentence: str) -> None:
    """A batch command that broke tells the notification address too (a cron run that crashed
    after sending is the run that most needs a person)."""
    try:
        from ..service import tell_refusal
        from .approvals import show_delivery

        problem = BulkTopupError(sentence)
        problem.exit_code = EXIT_NOT_FINAL
        batch = kwargs.get("batch") or _("(all batches)")
        show_delivery(tell_refusal(kwargs.get("notify"), str(batch), command, problem))
    except Exception:  # noqa: BLE001  (telling must never hide the error it tells of)
        pass


def _state_dir_of(kwargs: dict[str, Any]) -> Path | None:
    import os

    from ..statedir import default_state_dir

    given = kwargs.get("state_dir") or os.environ.get("BULK_TOPUP_STATE_DIR")
    try:
        return Path(given) if given else default_state_dir()
    except Exception:  # noqa: BLE001  (no home folder: the report goes to the temp folder)
        return None


def _salvage(key: str, state_dir: Path | None) -> None:
    """After a crash in a batch command: the results rewritten from the journal, and the
    command that continues the batch (each only if it can be done)."""
    if state_dir is None:
        return
    from ..batchfile import batch_path, open_batch
    from ..runner import exit_code_for
    from ..service import next_steps, write_batch_results

    if not batch_path(state_dir, key).exists():
        return
    try:
        with open_batch(state_dir, key, now=lambda: "", lock=False, create=False) as journal:
            out = journal.get_meta("out")
            code = exit_code_for(journal.counts())
            if out:
                path = write_batch_results(journal, Path(out))
                click.echo(_("results: {path}").format(path=path), err=True)
    except Exception:  # noqa: BLE001  (the journal itself is what failed: nothing more to do)
        click.echo(_("the results could not be rewritten from the journal"), err=True)
        code = EXIT_NOT_FINAL
    steps = next_steps(key, state_dir, code)
    if steps:
        click.echo(_("continue with: {command}").format(command=steps[0]), err=True)


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
            type=FiniteRange(min=0.01),
            default=1.0,
            show_default=True,
            help="With --emulator: how much faster its clock runs.",
        ),
        click.option(
            "--state-dir",
            envvar="BULK_TOPUP_STATE_DIR",
            default=None,
            help="Where journals and caches live [env BULK_TOPUP_STATE_DIR; "
            "default ~/.local/state/bulk-topup].",
        ),
        click.option(
            "--clock-speed",
            type=FiniteRange(min=0.01),
            default=None,
            hidden=True,
            envvar="BULK_TOPUP_CLOCK_SPEED",
            help="Compress the runner's waits (for drills against a fast emulator).",
        ),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _state_dir(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
    if value:
        return value
    from ..statedir import default_state_dir

    return str(default_state_dir())


#: The journal-only commands (status, report, batches, discard) need the state dir alone.
state_dir_option = click.option(
    "--state-dir",
    envvar="BULK_TOPUP_STATE_DIR",
    default=None,
    callback=_state_dir,
    help="Where journals live [env BULK_TOPUP_STATE_DIR; default: the user's state dir, "
    "~/.local/state/bulk-topup].",
)


def make_settings(kw: dict[str, Any]) -> Any:
    from ..config import key_file_is_private, settings

    key_file = kw.get("api_key_file")
    emulated = kw.get("emulator")
    if key_file and not emulated and Path(key_file).exists() and not key_file_is_private(key_file):
        click.secho(
            _(
                "warning: the key file {path} can be read by other users of this machine; chmod "
                "600 it"
            ).format(path=key_file),
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


def new_batch_key(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A `--batch` that may start a batch: refused (exit 2) when empty, too long or holding a
    character nobody can see."""
    from ..batchfile import check_batch_key

    try:
        return check_batch_key(value)
    except UsageError as e:
        raise click.BadParameter(str(e)) from None


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses `nan` and `inf`: click lets both through (`nan` is never
    out of range), and an option such as `--max-total nan` would then switch its control off
    without a word, `--rate inf` divide by zero, `--rate nan` wait for ever."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        import math

        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(_("{value!r} is not a number; write digits, such as 10").format(value=value))
        return number


class LanguageType(click.ParamType):
    """`fr`, `en`, and locale names such as `fr_DZ.UTF-8`."""

    name = "language"

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return "[" + "|".join(LANGUAGES) + "]"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        language = normalise_language(str(value))
        if language is None:
            self.fail(
                _("{value!r} is not a language bulk-topup speaks ({languages})").format(
                    value=value, languages=", ".join(LANGUAGES)
                )
            )
        return language


def _speak(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Eager: the language is set before any other option is read, so their errors speak it too.
    if value is not None:
        ctx.with_resource(use_language(value))


def language_option() -> click.Option:
    """`--lang`: one option, on the group and on every command (see the module docstring).
    Without it, env BULK_TOPUP_LANG decides (an unknown value there means English, never an
    error in a cron job)."""
    return click.Option(
        ["--lang"],
        type=LanguageType(),
        default=None,
        expose_value=False,
        is_eager=True,
        callback=_speak,
        help=f"Language of the messages and of the files written: fr or en [env {ENV_LANGUAGE}; "
        "default en]; before or after the command's name.",
    )


class SpeakingGroup(click.Group):
    """A group whose commands (and subgroups' commands) all take `--lang`."""

    group_class = type  # subgroups (`keys`) are SpeakingGroups too

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "lang" for p in cmd.params):
            cmd.params.append(language_option())
        super().add_command(cmd, name)


@click.group(
    cls=SpeakingGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="bulk-topup")
def main() -> None:
    """Turn an order sheet (CSV or Excel) into paid OneClickDz top-ups, never paying twice."""


main.params.append(language_option())


class GuardedOutput:
    """Standard output that survives its reader going away (`bulk-topup validate x | head -1`):
    the rest of the output is dropped, the command finishes its work and keeps its exit code,
    and one line on standard error says the output was cut."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.cut = False
        self.full = False  # the output's device is full (`> /dev/full`, a full disk)

    def write(self, text: str) -> int:
        if not self.cut:
            try:
                return int(self._stream.write(text))
            except OSError as e:  # the reader went away, or the output's disk is full
                self._cut(e)
        return len(text)

    def flush(self) -> None:
        if not self.cut:
            try:
                self._stream.flush()
            except OSError as e:
                self._cut(e)

    def _cut(self, error: OSError) -> None:
        import errno
        import os

        self.cut = True
        self.full = error.errno in (errno.ENOSPC, errno.EDQUOT)
        try:  # the interpreter's own flush at exit must not fail either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
        except (OSError, ValueError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _usable(stream: Any) -> bool:
    """False for a standard stream the process was started without (`>&-`: Python gives None)
    or whose descriptor is closed."""
    import os

    if stream is None:
        return False
    try:
        os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return True


def entry() -> None:
    """The `bulk-topup` console script."""
    import atexit
    import os

    # Started with its output closed (a daemon, some cron set-ups): what it would print goes
    # nowhere, and the command still does its work and keeps its exit code.
    for name in ("stdout", "stderr"):
        if not _usable(getattr(sys, name)):
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115

    out = GuardedOutput(sys.stdout)
    sys.stdout = out

    def note() -> None:
        if out.cut:
            with contextlib.suppress(OSError):
                said = (
                    _("note: the output could not all be written (no space left where it goes)")
                    if out.full
                    else _("note: the output was closed before it was all written")
                )
                sys.stderr.write(said + "\n")

    def quiet_teardown(unraisable: Any) -> None:
        # A file object closed by the garbage collector after a full disk already reported:
        # no second report, and no traceback, on the terminal.
        if not isinstance(unraisable.exc_value, OSError):
            sys.__unraisablehook__(unraisable)

    sys.unraisablehook = quiet_teardown
    atexit.register(note)
    main()


def run_async(coro: Any) -> Any:
    import anyio

    result: list[Any] = []

    async def go() -> None:
        # The result is handed over in a box, not returned: on Python 3.11 asyncio's runner
        # builds repr(main task) when it restores the SIGINT handler, and a returned
        # 100,000-row result would be repr'd in full (seconds of CPU for nothing).
        result.append(await coro)

    anyio.run(go)
    return result[0]


# The commands live in modules of their own; importing them registers them on `main`.
from . import approvals, batch, console, journals, serve, sheets  # noqa: E402, F401
