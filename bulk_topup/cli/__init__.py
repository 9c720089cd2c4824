"""The `bulk-topup` command line: options in, library calls, messages and exit codes out.

This package is the only place that prints, prompts or imports click and tqdm:
`sheets` (validate, catalog, template), `batch` (run, resume, reconcile, status, report,
batches) and `serve` (the emulator).

Every command builds its objects, calls one library function, and turns
`BulkTopupError`s into a sentence and the exit code of DESIGN.md's contract.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import __version__
from ..errors import BulkTopupError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_FAILED_ROWS, EXIT_NOT_FINAL, EXIT_REFUSED, EXIT_LOCKED = 4, 5, 6, 7


def _quick_retry() -> Any:
    from ..client import RetryPolicy

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
    from ..config import key_file_is_private, settings

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
from . import approvals, batch, serve, sheets  # noqa: E402, F401
