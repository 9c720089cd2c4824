"""One spelling per API address: `HTTPS://api.oneclickdz.com:443/` and `https://api.oneclickdz.com`
are the same provider, so they share one history, one set of locks, one batch."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}


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
