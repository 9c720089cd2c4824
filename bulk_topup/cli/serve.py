"""`bulk-topup emulator`: the emulator served over HTTP by uvicorn."""

from __future__ import annotations

import sys

import click

from . import (
    main,
)


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

    from ..clock import SystemClock
    from ..emulator import SANDBOX_KEY, ApiKey, Faults, World, create_app

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
