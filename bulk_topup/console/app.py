"""The console's Starlette app: its routes, its templates, and what every response carries.

Every request but the static files and the sign-in link needs a session (auth.py); every request
that changes something goes through `changes()`, which reads its form within a size limit and
refuses it without the session's CSRF token. Every response carries a strict Content-Security-
Policy (no inline script or style: htmx and the console's own script are files of /static),
`X-Frame-Options: DENY`, `Referrer-Policy: no-referrer`, and pages are never cached. A request
speaks its user's language: the one chosen in the console, else the browser's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..errors import BatchLockedError, BulkTopupError
from ..i18n import (
    LANGUAGES,
    _,
    current_language,
    ngettext,
    normalise_language,
    pgettext,
    use_language,
)
from ..journal import _os_user
from .auth import COOKIE, Sessions
from .runs import Runs
from .web import accept_language, changes, money, refuse, render, session_of, state

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
FORM_LIMIT = 64 * 1024  # a form that is not an upload


@dataclass
class ConsoleConfig:
    settings: Settings
    policy: str | None = None  # --policy (else env BULK_TOPUP_POLICY, else the config dir's)
    upload_limit: int = 20 * 2**20
    user_header: str | None = None  # the header a sign-on proxy names the user in
    rate: float = 10.0
    concurrency: int = 8
    shutdown_grace: float = 60.0
    environment: str = field(default="", init=False)  # the key's, once the API said it


class Guard:
    """Security headers on every response; a session on every request but the sign-in and the
    static files; the user's language for the request's duration."""

    def __init__(self, app: ASGIApp, sessions: Sessions, config: ConsoleConfig) -> None:
        self.app, self.sessions, self.config = app, sessions, config

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        request = Request(scope)
        path = scope["path"]
        session = self.sessions.get(request.cookies.get(COOKIE))
        header = self.config.user_header
        if session is not None and header and request.headers.get(header) != session.user:
            session = None  # another person behind the proxy: their own sign-in, please
        language = accept_language(request.headers.get("accept-language", ""))
        if session is not None:
            language = session.language or language
            scope.setdefault("state", {})["session"] = session
        elif not (path.startswith("/static/") or path in ("/login", "/favicon.ico")):
            with use_language(language):
                response = signed_out(request)
            await response(scope, receive, with_headers)
            return
        with use_language(language):
            await self.app(scope, receive, with_headers)


def signed_out(request: Request) -> Response:
    text = _(
        "Sign in with the link bulk-topup console printed when it started (it holds a one-time "
        "token), or with an invitation from a colleague who is signed in."
    )
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
    response.set_cookie(COOKIE, sid, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")  # fmt: skip
    return response


@changes()
async def logout(request: Request, form: FormData) -> Response:
    state(request).sessions.sign_out(request.cookies.get(COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
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


async def failed(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return refuse(request, str(exc.detail), exc.status_code)
    assert isinstance(exc, BulkTopupError)
    return refuse(request, exc.message, 409 if isinstance(exc, BatchLockedError) else 400)


def create_console(config: ConsoleConfig, sessions: Sessions | None = None) -> Starlette:
    """The console app over `config.settings`. Print a sign-in link with
    `app.state.sessions.new_token()`."""
    from . import batches, sheets

    sessions = sessions or Sessions()
    runs = Runs(config.settings.state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        with contextlib.suppress(Exception):  # the environment is shown once the API answers
            async with config.settings.client() as client:
                config.environment = (await client.validate_key()).type
        yield
        await runs.shutdown(config.shutdown_grace)

    routes = [
        Route("/login", login, name="login"),
        Route("/logout", logout, methods=["POST"]),
        Route("/invite", invite, methods=["POST"]),
        Route("/language", language, methods=["POST"]),
        *sheets.ROUTES,
        *batches.ROUTES,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: failed, BulkTopupError: failed},
        lifespan=lifespan,
    )
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_callables(_, ngettext, newstyle=False, pgettext=pgettext)  # type: ignore[attr-defined]
    env.filters["money"] = money

    def common(request: Request) -> dict[str, Any]:
        session = request.scope.get("state", {}).get("session")
        return {
            "session": session,
            "csrf": session.csrf if session else "",
            "language": current_language(),
            "languages": LANGUAGES,
            "environment": config.environment,
            "api_url": config.settings.api_url,
            "path": request.url.path,
        }

    app.state.templates = Jinja2Templates(env=env, context_processors=[common])
    app.state.config = config
    app.state.sessions = sessions
    app.state.runs = runs
    app.add_middleware(Guard, sessions=sessions, config=config)
    return app
