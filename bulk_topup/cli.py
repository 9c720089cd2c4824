"""The `bulk-topup` command line: options in, library calls, messages and exit codes out.

Only this module prints. Every command builds its objects, calls one library function, and turns
`BulkTopupError`s into a sentence and the exit code of DESIGN.md's contract.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from .errors import BulkTopupError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INTERNAL, EXIT_USAGE, EXIT_INVALID = 0, 1, 2, 3
EXIT_FAILED_ROWS, EXIT_NOT_FINAL, EXIT_REFUSED, EXIT_LOCKED = 4, 5, 6, 7


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
        click.option("--api-url", envvar="ONECLICK_API_URL", default=None,
                     help="API base URL [env ONECLICK_API_URL; default https://api.oneclickdz.com]."),
        click.option("--api-key-file", type=click.Path(dir_okay=False), default=None,
                     help="File holding the API key (else env ONECLICK_API_KEY)."),
        click.option("--emulator", is_flag=True,
                     help="Use the built-in emulator and its sandbox key (for trying things out)."),
        click.option("--emulator-speed", type=click.FloatRange(min=0.01), default=1.0,
                     show_default=True, help="With --emulator: how much faster its clock runs."),
        click.option("--state-dir", envvar="BULK_TOPUP_STATE_DIR", default=None,
                     help="Where journals and caches live [env BULK_TOPUP_STATE_DIR; "
                          "default ./.bulk-topup]."),
        click.option("--clock-speed", type=click.FloatRange(min=0.01), default=None, hidden=True,
                     envvar="BULK_TOPUP_CLOCK_SPEED",
                     help="Compress the runner's waits (for drills against a fast emulator)."),
    ]  # fmt: skip
    for option in reversed(options):
        fn = option(fn)
    return fn


def make_settings(kw: dict[str, Any]) -> Any:
    from .config import settings

    return settings(api_url=kw.pop("api_url"), key_file=kw.pop("api_key_file"),
                    state_dir=kw.pop("state_dir"), emulator=kw.pop("emulator"),
                    emulator_speed=kw.pop("emulator_speed"),
                    clock_speed=kw.pop("clock_speed"))  # fmt: skip


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="bulk-topup")
def main() -> None:
    """Turn an order sheet (CSV or Excel) into paid OneClickDz top-ups, never paying twice."""


# --- emulator -----------------------------------------------------------------------------------


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--speed", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="How much faster than real time the provider's clock runs.")
@click.option("--rate-limit", type=click.FloatRange(min=0.1), default=None,
              help="Requests per second before answering 429 with Retry-After.")
@click.option("--balance", type=float, default=500_000.0, show_default=True,
              help="The account balance in DZD.")
@click.option("--latency", type=float, default=0.0, help="Seconds added to every answer.")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Share of requests answered 500/503 before any work.")
@click.option("--drop-rate", type=click.FloatRange(0, 1), default=0.0,
              help="Share of POSTs committed, then dropped without an answer.")
@click.option("--no-ref-dedup", is_flag=True,
              help="Let a reused ref create a second order (to prove a client never resends).")
@click.option("--production-key", default=None, help="Also accept this key, typed PRODUCTION.")
@click.option("--read-only-key", default=None, help="Also accept this key, READ-ONLY.")
@click.option("--seed", type=int, default=0, help="Seed of the fault dice.")
def emulator(host: str, port: int, speed: float, rate_limit: float | None, balance: float,
             latency: float, error_rate: float, drop_rate: float, no_ref_dedup: bool,
             production_key: str | None, read_only_key: str | None, seed: int) -> None:  # fmt: skip
    """Serve the OneClickDz API emulator over HTTP (uvicorn)."""
    import uvicorn

    from .clock import SystemClock
    from .emulator import SANDBOX_KEY, ApiKey, Faults, World, create_app

    keys = {SANDBOX_KEY: ApiKey(SANDBOX_KEY)}
    if production_key:
        keys[production_key] = ApiKey(production_key, "PRODUCTION")
    if read_only_key:
        keys[read_only_key] = ApiKey(read_only_key, "SANDBOX", "READ-ONLY")
    faults = Faults(latency=latency, error_rate=error_rate, drop_rate=drop_rate,
                    ref_dedup=not no_ref_dedup, seed=seed)  # fmt: skip
    world = World(clock=SystemClock(speed), balance=balance, keys=keys, rate_limit=rate_limit,
                  faults=faults)  # fmt: skip
    click.echo(f"OneClickDz v3 emulator on http://{host}:{port}  (speed x{speed:g}, "
               f"rate limit {rate_limit or 'none'}, balance {balance:,.2f} DZD)")  # fmt: skip
    click.echo(f"accepted key: {SANDBOX_KEY}  (header X-Access-Token)")
    click.echo("admin: GET /__emulator/stats, POST /__emulator/faults, /__emulator/reset")
    sys.stdout.flush()
    uvicorn.run(create_app(world), host=host, port=port, log_level="warning")
