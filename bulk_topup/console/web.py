"""What every page handler of the console shares: the app's state, the session's user, a page
rendered, a refusal, and `changes()`, the gate of every request that changes something (its form
read within a size limit, refused without the session's CSRF token)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ..config import redact
from ..i18n import _, current_language, normalise_language
from .auth import CSRF_FIELD, CSRF_HEADER, Session, csrf_ok
from .uploads import TooLarge, limited

FORM_LIMIT = 64 * 1024  # a form that is not an upload


def accept_language(header: str) -> str | None:
    """The language of `Accept-Language` the console speaks, by the browser's preference.
    (Hand-written: five lines, where a library would bring a locale database.)"""
    ranked = []
    for n, part in enumerate(header.split(",")):
        tag, _sep, q = part.strip().partition(";q=")
        with contextlib.suppress(ValueError):
            ranked.append((-float(q or 1), n, tag))
    return next((lang for *_, tag in sorted(ranked) if (lang := normalise_language(tag))), None)


def money(value: Any) -> str:
    """`1234.5` -> `1,234.50 DA` (English), `1 234,50 DA` (French)."""
    text = f"{float(value or 0):,.2f}"
    if current_language() == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return _("{amount} DA").format(amount=text)


def state(request: Request) -> Any:
    return request.app.state


def session_of(request: Request) -> Session:
    session: Session = request.scope["state"]["session"]
    return session


def user_of(request: Request) -> str:
    return session_of(request).user


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    return state(request).templates.TemplateResponse(request, name, context, status_code)


def refuse(request: Request, message: str, status_code: int = 400) -> Response:
    return render(request, "error.html", status_code, message=redact(message))


def changes(upload: bool = False) -> Callable[..., Any]:
    """A handler of a request that changes something: its form is read within a size limit (the
    console's upload limit for an upload, a small one else), and the request is refused without
    the session's CSRF token, before the handler sees anything."""

    def wrap(handler: Callable[[Request, FormData], Awaitable[Response]]) -> Any:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            most = state(request).config.upload_limit if upload else FORM_LIMIT
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > most:
                return too_large(request, most)
            reader = Request(request.scope, limited(request.receive, most))
            try:
                async with reader.form(max_files=1, max_fields=50) as form:
                    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
                    if not csrf_ok(session_of(request), str(given or "")):
                        return refuse(request, _("this request has no valid form token (CSRF); "
                                                 "reload the page and try again"), 403)  # fmt: skip
                    return await handler(request, form)
            except TooLarge:
                return too_large(request, most)

        return endpoint

    return wrap


def too_large(request: Request, limit: int) -> Response:
    return refuse(request, _("the file is larger than the console accepts ({mb} MB)").format(
        mb=round(limit / 2**20, 1)), 413)  # fmt: skip
