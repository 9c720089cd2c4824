"""What every page handler of the console shares: the app's state, the session's user, a page
rendered, a refusal, numbers and times the reader's way, and `changes()`, the gate of every
request that changes something (refused without the session's CSRF token, its form read within
a size limit)."""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..clock import parse_iso
from ..config import redact
from ..errors import RefusedError
from ..i18n import _, current_language, normalise_language
from ..runner import auth_refusal
from .auth import CSRF_FIELD, CSRF_HEADER, Session, csrf_ok
from .uploads import TooLarge, limited

FORM_LIMIT = 64 * 1024  # a form that is not an upload
MOST_FIELDS = 50


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


def size(limit: int) -> str:
    """A number of bytes in megabytes, the reader's way: `20 MB`, `0,1 Mo`."""
    text = f"{round(limit / 2**20, 1):g}"
    if current_language() == "fr":
        text = text.replace(".", ",")
    return _("{n} MB").format(n=text)


def local_time(text: str | None, tz: ZoneInfo) -> str:
    """A time of the journal (ISO, UTC) as the wall-clock time of `tz`: `2026-11-28 09:05`."""
    if not text:
        return ""
    try:
        moment = parse_iso(str(text))
    except ValueError:
        return str(text)
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def clerk_words(message: str, state_dir: Path) -> str:
    """A message as the clerk may read it: no secret, and an uploaded sheet named by the name
    it was uploaded with, not by the server's folder it is kept in."""
    text = redact(message)
    for root in {str(state_dir / "uploads"), str(state_dir.resolve() / "uploads")}:
        text = re.sub(re.escape(root) + r"/[^/\s]+/", "", text)
    return text


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
    words = clerk_words(message, state(request).config.settings.state_dir)
    return render(request, "error.html", status_code, message=words)


def needs_api(request: Request) -> None:
    """Before a page asks the API anything: a key the API refused at start is not tried again
    (each refusal spends one of the few attempts the provider allows before blocking)."""
    refused = state(request).config.key_refused
    if refused is not None:
        raise RefusedError(
            _(
                "{refusal}. Fix the console's API key (ONECLICK_API_KEY or --api-key-file) and "
                "restart the console: until then it asks nothing of the API."
            ).format(refusal=auth_refusal(refused))
        )


def changes(upload: bool = False) -> Callable[..., Any]:
    """A handler of a request that changes something. Its CSRF token is looked for in the
    `X-CSRF-Token` header or the address first (the console's upload form puts it there), and a
    wrong one is refused before the body is read; else it must be a field of the form, read
    within a size limit (the console's upload limit for an upload, a small one else). Nothing
    reaches the handler without the session's token."""

    def wrap(handler: Callable[[Request, FormData], Awaitable[Response]]) -> Any:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            early = request.headers.get(CSRF_HEADER) or request.query_params.get(CSRF_FIELD)
            if early is not None and not csrf_ok(session_of(request), early):
                return forged(request)
            most = state(request).config.upload_limit if upload else FORM_LIMIT
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > most:
                return too_large(request, most, upload)
            reader = Request(request.scope, limited(request.receive, most))
            try:
                form = await reader.form(max_files=1 if upload else 0, max_fields=MOST_FIELDS)
            except TooLarge:
                return too_large(request, most, upload)
            except HTTPException:  # Starlette's words for a malformed or overfull form
                return refuse(request, _(
                    "the form could not be read: it is malformed, or holds more than the "
                    "console's forms do (one sheet at a time); nothing was done"))  # fmt: skip
            try:
                if not csrf_ok(session_of(request), str(early or form.get(CSRF_FIELD) or "")):
                    return forged(request)
                return await handler(request, form)
            finally:
                await form.close()

        return endpoint

    return wrap


def forged(request: Request) -> Response:
    return refuse(request, _("this request has no valid form token (CSRF); reload the page and "
                             "try again"), 403)  # fmt: skip


def too_large(request: Request, limit: int, upload: bool) -> Response:
    if not upload:
        return refuse(request, _("the form is too large for the console; nothing was done"), 413)
    return refuse(request, _("the file is larger than the console accepts ({size})").format(
        size=size(limit)), 413)  # fmt: skip
