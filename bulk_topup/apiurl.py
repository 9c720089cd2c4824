"""One spelling per API address: `HTTPS://api.oneclickdz.com:443/` and `https://api.oneclickdz.com`
are the same provider, so they share one history, one set of locks, one batch."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .errors import UsageError
from .i18n import _

_DEFAULT_PORTS = {"http": 80, "https": 443}


def checked_url(url: str, source: str) -> str:
    """The API's base URL as given (`source`: the option or variable it came from), without the
    spaces around it; a UsageError (exit 2) when no HTTP client could call it, before anything
    reaches the network (a URL the HTTP library refuses would otherwise stop a run half-way)."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError when out of range or not a number
    except ValueError:
        parts, port = None, None
    if parts is not None and parts.password:
        # Said without the address: it holds a password, which no output may show.
        raise UsageError(
            _(
                "the API address given by {source} holds a password; the API key is the only "
                "credential it needs: write the address as https://host"
            ).format(source=source)
        )
    if (
        parts is None
        or parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or port == 0
        or parts.query
        or parts.fragment
        or any(c.isspace() or not c.isprintable() for c in text)
    ):
        raise UsageError(
            _(
                "the API address {url!r} given by {source} is not one bulk-topup can call: write "
                "it as https://host or http://host:port (such as {example})"
            ).format(url=text[:200], source=source, example="https://api.oneclickdz.com")
        )
    return text


def canonical_url(url: str) -> str:
    """The API's base URL with its scheme and host in lower case, without a default port, a
    trailing slash, a query or a fragment. (Hand-written: a URL library would also resolve or
    re-encode parts that name the provider as the user wrote them.)"""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path.rstrip("/"), "", ""))
