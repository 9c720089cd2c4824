"""`bulk-topup console`: the finance console served by uvicorn, with a one-time sign-in link."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from typing import Any

import click

from ..errors import UsageError
from . import api_options, handle_errors, main, make_settings
from .approvals import policy_option
from .serve import listen


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's own (127.0.0.0/8, ::1)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UsageError(f"cannot listen on {host}: no such host or address") from None
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; beyond this machine only with --allow-remote.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="0 picks a free port (printed).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Listen on an address other machines reach: only behind the team's TLS proxy and sign-on.",
)
@click.option(
    "--user-header",
    default=None,
    metavar="NAME",
    help="The header in which the sign-on proxy names the user (e.g. X-Forwarded-User): "
    "the console records that name as who prepared, approved, ran or saw a code.",
)
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(min=0.1),
    default=20.0,
    show_default=True,
    help="The largest sheet the console accepts.",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="API calls per second of a run, all calls together.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Rows in flight at once in a run.",
)
@policy_option
@api_options
@handle_errors
def console(
    host: str,
    port: int,
    allow_remote: bool,
    user_header: str | None,
    max_upload_mb: float,
    rate: float,
    concurrency: int,
    policy: str | None,
    **kw: Any,
) -> None:
    """Serve the finance console: upload, check, approve, run and download, in a browser."""
    import uvicorn

    from ..console import ConsoleConfig, create_console
    from ..policy import load_policy

    if not allow_remote and not is_loopback(host):
        raise UsageError(
            f"{host} can be reached from other machines: the console serves plain HTTP and "
            f"signs people in with a link; pass --allow-remote only behind your team's TLS "
            f"proxy and sign-on"
        )
    load_policy(policy)  # a policy that cannot be read is said now, not on the first page
    settings = make_settings(kw)
    config = ConsoleConfig(
        settings, policy=policy, upload_limit=int(max_upload_mb * 2**20),
        user_header=user_header, rate=rate, concurrency=concurrency,
    )  # fmt: skip
    app = create_console(config)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{port}/login?token={app.state.sessions.new_token()}"

    def banner() -> None:
        if settings.emulated:
            click.secho("the built-in emulator: test orders, no real money (for trying out)",
                        fg="cyan")  # fmt: skip
        if allow_remote and not is_loopback(host):
            click.secho(
                "warning: the console is reachable from other machines; it serves plain HTTP: "
                "put it behind your team's TLS proxy and sign-on (see the README, Console)",
                fg="yellow", err=True,
            )  # fmt: skip
        click.echo(f"bulk-topup console for {settings.api_url}, state in {settings.state_dir}")
        click.echo("open this link to sign in (it works once; a signed-in person can invite "
                   "others from the console):")  # fmt: skip
        click.secho(f"  {link}", bold=True)
        sys.stdout.flush()

    class Server(uvicorn.Server):
        """Prints the link once it serves, not before."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                banner()

    server_config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
        proxy_headers=True,
    )  # fmt: skip
    # uvicorn stops on Ctrl-C, then raises it again: for a server that is the normal end.
    with contextlib.suppress(KeyboardInterrupt):
        Server(server_config).run(sockets=[sock])
    click.echo("console stopped (its runs were asked to stop and settle; resume continues them)")
