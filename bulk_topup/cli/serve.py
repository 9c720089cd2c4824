"""`bulk-topup emulator`: the emulator served over HTTP by uvicorn."""

from __future__ import annotations

import errno
import socket
import sys
from typing import Any

import click

from ..errors import UsageError
from ..i18n import _
from . import FiniteRange, handle_errors, main


def _variant(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    chosen = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(
                _("{value!r} is not NAME=VALUE (e.g. pagination=meta)").format(value=value)
            )
        chosen[name.strip()] = setting.strip()
    return chosen


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, before anything is printed: a port in use is one sentence
    (`UsageError`, exit 2), not a banner followed by the server's own traceback. The socket is
    handed to uvicorn as it is, so no other program can take the port in between."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror:
        raise UsageError(
            _("cannot listen on {host}: no such host or address").format(host=host)
        ) from None
    sock = socket.socket(family, kind, proto)
    # As uvicorn does: a port left in TIME_WAIT by a previous run can be bound again at once;
    # a port another program listens on still cannot.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise UsageError(
                _(
                    "port {port} on {host} is already in use (another console or emulator?): stop "
                    "that program or choose another --port"
                ).format(port=port, host=host)
            ) from None
        if e.errno == errno.EACCES:
            raise UsageError(
                _("not allowed to listen on port {port} on {host}: choose a port above 1023")
                .format(port=port, host=host)
            ) from None  # fmt: skip
        raise UsageError(
            _("cannot listen on {host}:{port}: {reason}").format(
                host=host, port=port, reason=e.strerror or e
            )
        ) from None
    return sock


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8080,
    show_default=True,
    help="0 picks a free port (printed).",
)
@click.option(
    "--speed",
    type=FiniteRange(min=0.01),
    default=1.0,
    show_default=True,
    help="How much faster than real time the provider's clock runs.",
)
@click.option(
    "--rate-limit",
    type=FiniteRange(min=0.1),
    default=None,
    help="Requests per second before answering 429 with Retry-After.",
)
@click.option(
    "--balance",
    type=FiniteRange(min=0),
    default=500_000.0,
    show_default=True,
    help="The account balance in DZD.",
)
@click.option(
    "--latency", type=FiniteRange(min=0), default=0.0, help="Seconds added to every answer."
)
@click.option(
    "--error-rate",
    type=FiniteRange(0, 1),
    default=0.0,
    help="Share of requests answered 500/503 before any work.",
)
@click.option(
    "--drop-rate",
    type=FiniteRange(0, 1),
    default=0.0,
    help="Share of POSTs committed, then dropped without an answer.",
)
@click.option(
    "--no-ref-dedup",
    is_flag=True,
    help="Let a reused ref create a second order (to prove a client never resends).",
)
@click.option(
    "--gift-refs",
    type=click.Choice(["ignore", "honour", "refuse"]),
    default="ignore",
    show_default=True,
    help="A `ref` sent with a gift order: ignored (the English reference), honoured "
    "(answered as orderRef, unique, shown on the order: the Arabic guide) or refused (400).",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    callback=_variant,
    metavar="NAME=VALUE",
    help="Where the docs disagree, which reading to answer (repeatable), e.g. "
    "pagination=meta, products_type=meta, balance_currency=true, sandbox_gift_free=false; "
    "see GET /__emulator/variants.",
)
@click.option("--production-key", default=None, help="Also accept this key, typed PRODUCTION.")
@click.option("--read-only-key", default=None, help="Also accept this key, READ-ONLY.")
@click.option("--seed", type=int, default=0, help="Seed of the fault dice.")
@handle_errors
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
    gift_refs: str,
    variants: dict[str, str],
    production_key: str | None,
    read_only_key: str | None,
    seed: int,
) -> None:
    """Serve the OneClickDz API emulator over HTTP (uvicorn)."""
    import uvicorn

    from ..clock import SystemClock
    from ..emulator import SANDBOX_KEY, ApiKey, Faults, Variants, World, create_app

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
        gift_refs=gift_refs,
        seed=seed,
    )
    readings = Variants()
    try:
        readings.update(variants)
    except ValueError as e:
        raise UsageError(_("--variant: {reason}").format(reason=e)) from None
    world = World(
        clock=SystemClock(speed),
        balance=balance,
        keys=keys,
        rate_limit=rate_limit,
        faults=faults,
        variants=readings,
    )
    sock = listen(host, port)
    port = sock.getsockname()[1]

    def banner() -> None:
        click.echo(
            f"OneClickDz v3 emulator on http://{f'[{host}]' if ':' in host else host}:{port}  "
            f"(speed x{speed:g}, "
            f"rate limit {rate_limit or 'none'}, balance {balance:,.2f} DZD)"
        )
        click.echo(f"accepted key: {SANDBOX_KEY}  (header X-Access-Token)")
        click.echo(
            "admin: GET /__emulator/stats, POST /__emulator/faults, /__emulator/variants, "
            "/__emulator/reset"
        )
        sys.stdout.flush()

    class Server(uvicorn.Server):
        """Prints the banner once it serves, not before."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                banner()

    config = uvicorn.Config(create_app(world), host=host, port=port, log_level="warning")
    Server(config).run(sockets=[sock])
