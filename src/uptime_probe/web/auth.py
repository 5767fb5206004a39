"""Optional protection of the status page and API: HTTP basic auth or a bearer token.

Off unless `server.auth` is set. When on, every path needs credentials except
`/metrics`, `/healthz` and `/readyz`, which stay open for scrapers and orchestrators
unless `protect_metrics: true`. The exemption is by exact path, so anything not
listed (the page, the API, `/-/reload`, unknown paths) is protected: fail closed.

An empty credential, presented or configured, is a plain no (the loader refuses empty
or short ones; this holds whatever built the settings). Credentials are compared in
constant time, as bytes (`hmac.compare_digest` refuses non-ASCII `str`), and both halves
of a basic pair are always compared, so the time taken says nothing about which half
was wrong.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from multidict import CIMultiDict

from uptime_probe.config.model import AuthConfig

OPEN_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
REALM = "uptime-probe"


def _equal(given: bytes, expected: str) -> bool:
    return hmac.compare_digest(given, expected.encode("utf-8"))


def _basic_ok(auth: AuthConfig, credentials: str) -> bool:
    if auth.basic is None or not auth.basic.username or not auth.basic.password:
        return False
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    username, sep, password = decoded.partition(b":")
    if not sep:
        return False
    user_ok = _equal(username, auth.basic.username)
    password_ok = _equal(password, auth.basic.password)
    return user_ok and password_ok


def _bearer_ok(auth: AuthConfig, token: str) -> bool:
    given = token.strip()
    # `Authorization: Bearer ` with nothing after it is no credential, whatever is configured.
    if not auth.bearer_token or not given:
        return False
    return _equal(given.encode("utf-8"), auth.bearer_token)


def authorized(auth: AuthConfig, header: str | None) -> bool:
    """True when the Authorization header carries the configured credentials."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        return _basic_ok(auth, credentials)
    if scheme == "bearer":
        return _bearer_ok(auth, credentials)
    return False


def needs_auth(auth: AuthConfig | None, path: str) -> bool:
    return auth is not None and (auth.protect_metrics or path not in OPEN_PATHS)


def challenge(auth: AuthConfig) -> web.Response:
    """401 with one `WWW-Authenticate` challenge per accepted scheme."""
    headers: CIMultiDict[str] = CIMultiDict()
    if auth.basic is not None:
        headers.add("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"')
    if auth.bearer_token is not None:
        headers.add("WWW-Authenticate", f'Bearer realm="{REALM}"')
    headers["Cache-Control"] = "no-store"
    return web.Response(status=401, text="Authentication required.\n", headers=headers)


def auth_middleware(current: Callable[[], AuthConfig | None]) -> Middleware:
    """A middleware reading the auth settings on each request, so a reload applies at once."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = current()
        if auth is None or not needs_auth(auth, request.path):
            return await handler(request)
        if not authorized(auth, request.headers.get("Authorization")):
            return challenge(auth)
        return await handler(request)

    return middleware
