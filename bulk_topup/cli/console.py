"""`bulk-topup console`: the finance console served by uvicorn, with a one-time sign-in link."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
from typing import Any

import click

from ..errors import UsageError
from ..i18n import _
from . import FiniteRange, api_options, handle_errors, main, make_settings
from .approvals import policy_option
from .serve import listen


def is_loopback(host: str) -> bool:
    """Whether every address `host` names is this machine's own (127.0.0.0/8, ::1)."""
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise UsageError(
            _("cannot listen on {host}: no such host or address").format(host=host)
        ) from None
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)


def link_host(host: str) -> str:
    """The host part of a link a browser can open: a wildcard address (0.0.0.0, ::) is where
    the console listens, not where it is reached, so this machine's name stands for it; an IPv6
    address goes in brackets."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return socket.getfqdn() or socket.gethostname() or "localhost"
    return f"[{address.compressed}]" if address.version == 6 else host


def warnings_for(
    allow_remote: bool, host_is_loopback: bool, user_header: str | None, user: str
) -> list[str]:
    """What the person starting the console must know of how it is reached and who it knows."""
    said = []
    if allow_remote and not host_is_loopback:
        said.append(_(
            "warning: the console is reachable from other machines; it serves plain HTTP: put "
            "it behind your team's TLS proxy and sign-on (see the README, Console)"))  # fmt: skip
    if allow_remote and not user_header:
        said.append(_(
            "warning: without --user-header the console knows nobody: everyone who signs in is "
            "recorded as {user}, and approvals in the console are refused (approvers sign with "
            "bulk-topup approve on their own machine); pass --user-header NAME with the header "
            "your sign-on proxy names each person in").format(user=user))  # fmt: skip
    return said


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
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="ADDR",
    help="An address (or network, 10.0.0.0/24) of the sign-on proxy: only from there are "
    "--user-header and X-Forwarded-Proto/-For believed. Repeatable; default: this machine.",
)
@click.option(
    "--max-upload-mb",
    type=FiniteRange(min=0.1),
    default=20.0,
    show_default=True,
    help="The largest sheet the console accepts.",
)
@click.option(
    "--rate",
    type=FiniteRange(min=0.1),
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
@click.option(
    "--tz",
    default=None,
    metavar="ZONE",
    help="The time zone pages and workbooks show times in (default: env BULK_TOPUP_TZ, else "
    "Africa/Algiers).",
)
@policy_option
@api_options
@handle_errors
def console(
    host: str,
    port: int,
    allow_remote: bool,
    user_header: str | None,
    trusted_proxies: tuple[str, ...],
    max_upload_mb: float,
    rate: float,
    concurrency: int,
    tz: str | None,
    policy: str | None,
    **kw: Any,
) -> None:
    """Serve the finance console: upload, check, approve, run and download, in a browser."""
    import uvicorn

    from ..console import ConsoleConfig, create_console
    from ..console.app import LOOPBACK, proxy_networks
    from ..journal import _os_user
    from ..policy import load_policy
    from ..report.settings import time_zone
    from ..runner import auth_refusal

    loopback = is_loopback(host)
    if not allow_remote and not loopback:
        raise UsageError(
            _(
                "{host} can be reached from other machines: the console serves plain HTTP and "
                "signs people in with a link; pass --allow-remote only behind your team's TLS "
                "proxy and sign-on"
            ).format(host=host)
        )
    try:
        proxy_networks(trusted_proxies)
    except ValueError as e:
        raise UsageError(
            _("--trusted-proxy takes an address or a network (10.0.0.5, 10.0.0.0/24): {reason}")
            .format(reason=e)
        ) from None  # fmt: skip
    load_policy(policy)  # a policy that cannot be read is said now, not on the first page
    settings = make_settings(kw)
    sock = listen(host, port)
    port = sock.getsockname()[1]
    config = ConsoleConfig(
        settings, policy=policy, upload_limit=int(max_upload_mb * 2**20),
        user_header=user_header, rate=rate, concurrency=concurrency,
        trusted_proxies=trusted_proxies or LOOPBACK, remote=allow_remote, port=port,
        tz=time_zone(tz),
    )  # fmt: skip
    app = create_console(config)
    link = f"http://{link_host(host)}:{port}/login?token={app.state.sessions.new_token()}"

    def banner() -> None:
        if settings.emulated:
            click.secho(_("the built-in emulator: test orders, no real money (for trying out)"),
                        fg="cyan")  # fmt: skip
        for line in warnings_for(allow_remote, loopback, user_header, _os_user()):
            click.secho(line, fg="yellow", err=True)
        if config.key_refused is not None:
            click.secho(
                _(
                    "{refusal}. The console shows the batches and their results, and asks "
                    "nothing of the API until the key is fixed and the console restarted."
                ).format(refusal=auth_refusal(config.key_refused)),
                fg="red", bold=True, err=True,
            )  # fmt: skip
        click.echo(
            _("bulk-topup console for {url}, state in {state}").format(
                url=settings.api_url, state=settings.state_dir
            )
        )
        click.echo(_("open this link to sign in (it works once; a signed-in person can invite "
                     "others from the console):"))  # fmt: skip
        click.secho(f"  {link}", bold=True)
        sys.stdout.flush()

    class Server(uvicorn.Server):
        """Prints the link once it serves, not before."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if self.started:
                banner()

    # The console believes a proxy's X-Forwarded-* itself, from the --trusted-proxy addresses
    # only (console.app.Shell), so uvicorn does not.
    server_config = uvicorn.Config(
        app, log_level="warning", access_log=False, timeout_graceful_shutdown=5,
        proxy_headers=False,
    )  # fmt: skip
    # uvicorn stops on Ctrl-C, then raises it again: for a server that is the normal end.
    with contextlib.suppress(KeyboardInterrupt):
        Server(server_config).run(sockets=[sock])
    click.echo(_("console stopped (its runs were asked to stop and settle; resume continues them)"))
