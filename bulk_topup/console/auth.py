"""Who may use the console: a one-time sign-in token, then a session cookie; a CSRF token per
session for every request that changes something.

Hand-written rather than a session library: the whole of it is a dictionary of random session
ids held in the server (nothing signed to trust in a cookie, nothing to configure), which is all
one console needs; `secrets` makes the tokens and compares them in constant time.

The sign-in token is printed when the console starts (as notebook servers do) or made by a
signed-in person for a colleague (`invite`); it is exchanged once for a session cookie (HttpOnly,
SameSite=Strict) and is void from then on. Sessions live in memory: a restarted console prints a
new token, and the batches, which live in their journals, are all still there.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

COOKIE = "bulk_topup_session"  # the start of every console's cookie name (`cookie_name`)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
TOKEN_LIFE = 24 * 3600.0  # an unused sign-in link expires after a day
SESSION_LIFE = 12 * 3600.0  # a working day; then sign in again


@dataclass
class Session:
    user: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    language: str | None = None  # chosen in the console; else the browser's Accept-Language
    created: float = field(default_factory=time.monotonic)
    #: codes revealed on purpose and not shown yet: (batch id, row idx, card) -> code. The reveal
    #: is a POST that redirects to the Results page, which shows each of them once.
    revealed: dict[tuple[str, int, int], str] = field(default_factory=dict)


class Sessions:
    """The sign-in tokens not yet used and the sessions they opened."""

    def __init__(self) -> None:
        self._tokens: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}

    def new_token(self) -> str:
        """A sign-in token, good once."""
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic()
        return token

    def sign_in(self, token: str, user: str) -> tuple[str, Session] | None:
        """Exchange `token` for a new session (its id goes into the cookie); None when the token
        is unknown, used already or expired."""
        made = self._tokens.pop(token, None) if token else None
        if made is None or time.monotonic() - made > TOKEN_LIFE:
            return None
        sid = secrets.token_urlsafe(32)
        session = Session(user)
        self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        session = self._sessions.get(sid) if sid else None
        if session is not None and time.monotonic() - session.created > SESSION_LIFE:
            self._sessions.pop(sid or "", None)
            return None
        return session

    def sign_out(self, sid: str | None) -> None:
        self._sessions.pop(sid or "", None)


def cookie_name(state_dir: Path, port: int | None = None) -> str:
    """The session cookie's name, one per console: a browser keeps a cookie per host and path,
    not per port, so two consoles of one machine named theirs alike would sign each other's
    users out. The name holds the console's port (as notebook servers do) and a digest of its
    state dir, so consoles on two ports, or over two state dirs, each keep their own."""
    where = hashlib.sha256(str(Path(state_dir).resolve()).encode()).hexdigest()[:8]
    return f"{COOKIE}_{port}_{where}" if port else f"{COOKIE}_{where}"


def csrf_ok(session: Session, given: str | None) -> bool:
    """Whether a request that changes something carries its session's CSRF token."""
    return bool(given) and secrets.compare_digest(session.csrf, str(given))
