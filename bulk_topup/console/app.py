"""The console's Starlette app: its routes, its templates, and what every response carries.

Every request but the static files and the sign-in link needs a session (auth.py); every request
that changes something goes through `changes()`, which refuses it without the session's CSRF
token. Every response, an error's too, carries a strict Content-Security-Policy (no inline
script or style: htmx and the console's own script are files of /static), `X-Frame-Options:
DENY`, `Referrer-Policy: no-referrer`, and pages are never cached: the `Shell` adds them outside
everything else, Starlette's own error handler included. A request speaks its user's language:
the one chosen in the console, else the browser's.

Behind a sign-on proxy (`user_header`) the header naming the user is believed only from the
proxy's addresses (`trusted_proxies`, loopback by default); from them only, too, the proxy's
`X-Forwarded-Proto` and `X-Forwarded-For` (uvicorn's own middleware, given the same addresses).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from ..config import Settings
from ..crash import describe, write_report
from ..errors import AuthError, BatchLockedError, BulkTopupError
from ..i18n import (
    LANGUAGES,
    _,
    current_language,
    ngettext,
    normalise_language,
    npgettext,
    pgettext,
    shown,
    use_language,
)
from ..journal import _os_user
from ..report.settings import time_zone
from ..runner import auth_refusal
from .auth import Sessions, cookie_name
from .runs import Runs
from .web import (
    accept_language,
    changes,
    clerk_words,
    local_time,
    money,
    refuse,
    render,
    session_of,
    size,
    state,
)

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
]
LOOPBACK = ("127.0.0.0/8", "::1")
VIA_PROXY = "bulk_topup.via_proxy"  # scope key: the request came from a trusted proxy
LANGUAGE = "bulk_topup.language"  # scope key: the request's language, for its error page


@dataclass
class ConsoleConfig:
    settings: Settings
    policy: str | None = None  # --policy (else env BULK_TOPUP_POLICY, else the config dir's)
    upload_limit: int = 20 * 2**20
    user_header: str | None = None  # the header a sign-on proxy names the user in
    rate: float = 10.0
    concurrency: int = 8
    shutdown_grace: float = 60.0
    #: the addresses (or networks) of the proxies whose user header and X-Forwarded-* are believed
    trusted_proxies: tuple[str, ...] = LOOPBACK
    remote: bool = False  # --allow-remote: other people reach this console
    port: int | None = None  # the port it serves on (names its cookie)
    tz: ZoneInfo = field(default_factory=lambda: time_zone(None))  # times shown in this zone
    environment: str = field(default="", init=False)  # the key's, once the API said it
    key_refused: AuthError | None = field(default=None, init=False)  # the API refused the key

    @property
    def cookie(self) -> str:
        return cookie_name(self.settings.state_dir, self.port)

    @property
    def identified(self) -> bool:
        """Whether the console knows who each signed-in person is: named by the sign-on proxy,
        or the one person of this machine. A console others reach without a sign-on header
        knows nobody: everyone signs in as the account running it."""
        return bool(self.user_header) or not self.remote


def proxy_networks(addresses: tuple[str, ...] | list[str]) -> list[Any]:
    """The networks of `--trusted-proxy` values (an address, or a network as 10.0.0.0/24).
    Raises ValueError for one that is neither."""
    return [ipaddress.ip_network(a.strip(), strict=False) for a in addresses]


def from_networks(host: str | None, networks: list[Any]) -> bool:
    """Whether the address `host` is in one of `networks` (an IPv4 address seen as IPv6 too)."""
    try:
        address = ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return any(a in n for a in (address, mapped) if a is not None for n in networks
               if a.version == n.version)  # fmt: skip


class Shell:
    """Outside everything (Starlette's own error handler too): the security headers on every
    response, and the proxy's headers believed only when the request came from a trusted proxy
    (the Guard then reads `scope[VIA_PROXY]`)."""

    def __init__(self, app: ASGIApp, config: ConsoleConfig) -> None:
        self.app, self.config = app, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        networks = proxy_networks(self.config.trusted_proxies)
        peer = scope.get("client")
        scope[VIA_PROXY] = from_networks(peer[0] if peer else None, networks)
        app: Any = self.app
        if scope[VIA_PROXY]:
            app = ProxyHeadersMiddleware(app, [str(n) for n in networks])
        await app(scope, receive, with_headers)


class Guard:
    """A session on every request but the sign-in and the static files; the user's language for
    the request's duration; behind a sign-on proxy, no request but through it."""

    def __init__(self, app: ASGIApp, sessions: Sessions, config: ConsoleConfig) -> None:
        self.app, self.sessions, self.config = app, sessions, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        path = scope["path"]
        free = path.startswith("/static/") or path == "/favicon.ico"
        language = accept_language(request.headers.get("accept-language", ""))
        header = self.config.user_header
        if header and not scope.get(VIA_PROXY) and not free:
            with use_language(language):
                response = not_through_proxy(request, header)
            await response(scope, receive, send)
            return
        session = self.sessions.get(request.cookies.get(self.config.cookie))
        if session is not None and header and request.headers.get(header) != session.user:
            session = None  # another person behind the proxy: their own sign-in, please
        if session is not None:
            language = session.language or language
            scope.setdefault("state", {})["session"] = session
        elif not (free or path == "/login"):
            with use_language(language):
                response = signed_out(request)
            await response(scope, receive, send)
            return
        scope[LANGUAGE] = language
        with use_language(language):
            await self.app(scope, receive, send)


def signed_out(request: Request) -> Response:
    text = _(
        "Sign in with the link bulk-topup console printed when it started (it holds a one-time "
        "token), or with an invitation from a colleague who is signed in."
    )
    return request.app.state.templates.TemplateResponse(
        request, "signin.html", {"message": text}, status_code=401
    )


def not_through_proxy(request: Request, header: str) -> Response:
    text = _(
        "This console learns who you are from your team's sign-on, and this request did not "
        "come through it: open the console at your team's address. (The {header} header is "
        "believed only from the sign-on proxy's addresses.)"
    ).format(header=header)
    return request.app.state.templates.TemplateResponse(
        request, "signin.html", {"message": text}, status_code=401
    )


async def login(request: Request) -> Response:
    config: ConsoleConfig = state(request).config
    user = _os_user()
    if config.user_header:
        user = request.headers.get(config.user_header, "").strip()
        if not user:
            return signed_out(request)
    opened = state(request).sessions.sign_in(request.query_params.get("token", ""), user)
    if opened is None:
        return render(request, "signin.html", 403, message=_(
            "This sign-in link was used already, or it is not one this console made. Ask "
            "whoever started the console for a new one, or a signed-in colleague for an "
            "invitation."))  # fmt: skip
    sid, _session = opened
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(config.cookie, sid, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")  # fmt: skip
    return response


@changes()
async def logout(request: Request, form: FormData) -> Response:
    cookie = state(request).config.cookie
    state(request).sessions.sign_out(request.cookies.get(cookie))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(cookie, path="/")
    return response


@changes()
async def invite(request: Request, form: FormData) -> Response:
    token = state(request).sessions.new_token()
    link = str(request.url_for("login").include_query_params(token=token))
    return render(request, "invite.html", link=link)


@changes()
async def language(request: Request, form: FormData) -> Response:
    session_of(request).language = normalise_language(str(form.get("language", "")))
    back = str(form.get("back", "/"))
    return RedirectResponse(back if back.startswith("/") and not back.startswith("//") else "/",
                            status_code=303)  # fmt: skip


async def favicon(request: Request) -> Response:
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


async def failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return refuse(request, str(exc.detail), exc.status_code)
    assert isinstance(exc, BulkTopupError)
    if isinstance(exc, AuthError):
        state(request).config.key_refused = exc  # said on every page; not asked again
        return refuse(request, auth_refusal(exc), 400)
    return refuse(request, exc.message, 409 if isinstance(exc, BatchLockedError) else 400)


async def crashed(request: Request, exc: Exception) -> Response:
    """What nobody foresaw: a sentence, and the story in a crash report of the state dir."""
    report = write_report(exc, state(request).config.settings.state_dir)
    with use_language(request.scope.get(LANGUAGE)):
        text = describe(exc) or _(
            "something unexpected went wrong in the console ({kind}); what was already saved "
            "is safe; the details are in the crash report {report} of the state dir"
        ).format(kind=type(exc).__name__, report=report.name if report else "-")
        try:
            return refuse(request, text, 500)
        except Exception:  # noqa: BLE001  (the page itself broke: the sentence alone)
            return PlainTextResponse(text, status_code=500)


class Console(Starlette):
    """Starlette with the `Shell` outside its whole stack, error handler included."""

    def build_middleware_stack(self) -> ASGIApp:
        return Shell(super().build_middleware_stack(), self.state.config)


def create_console(config: ConsoleConfig, sessions: Sessions | None = None) -> Starlette:
    """The console app over `config.settings`. Print a sign-in link with
    `app.state.sessions.new_token()`."""
    from . import batches, results, sheets

    sessions = sessions or Sessions()
    runs = Runs(config.settings.state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The key is asked about once: a refused key is said on every page and not tried again
        # (each refusal spends one of the provider's few attempts before it blocks the address).
        try:
            async with config.settings.client() as client:
                config.environment = (await client.validate_key()).type
        except AuthError as e:
            config.key_refused = e
        except Exception:  # noqa: BLE001, S110  (unreachable now: the pages that need it say so)
            pass
        yield
        await runs.shutdown(config.shutdown_grace)

    routes = [
        Route("/login", login, name="login"),
        Route("/logout", logout, methods=["POST"]),
        Route("/invite", invite, methods=["POST"]),
        Route("/language", language, methods=["POST"]),
        Route("/favicon.ico", favicon),
        *sheets.ROUTES,
        *batches.ROUTES,
        *results.ROUTES,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Console(
        routes=routes,
        exception_handlers={HTTPException: failed, BulkTopupError: failed, Exception: crashed},
        lifespan=lifespan,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(_, ngettext, newstyle=False, pgettext=pgettext,  # type: ignore[attr-defined]
                                  npgettext=npgettext)  # fmt: skip
    env.filters["money"] = money
    env.filters["shown"] = shown
    env.filters["size"] = size
    env.filters["when"] = lambda text: local_time(text, config.tz)
    env.filters["clerk"] = lambda text: clerk_words(str(text), config.settings.state_dir)

    def common(request: Request) -> dict[str, Any]:
        session = request.scope.get("state", {}).get("session")
        return {
            "session": session,
            "csrf": session.csrf if session else "",
            "language": current_language(),
            "languages": LANGUAGES,
            "environment": config.environment,
            "key_refused": auth_refusal(config.key_refused) if config.key_refused else None,
            "api_url": config.settings.api_url,
            "path": request.url.path,
            "tz": config.tz.key,
        }

    app.state.templates = Jinja2Templates(env=env, context_processors=[common])
    app.state.config = config
    app.state.sessions = sessions
    app.state.runs = runs
    app.add_middleware(Guard, sessions=sessions, config=config)
    return app
