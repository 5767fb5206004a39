"""An origin: the scheme, host and port a request goes to (RFC 6454), compared exactly.

A secret in a header or body is sent only to the origin its step's URL names
(docs/configuration.md, send_secrets_to); this is the one definition of "same origin"
both the loader (the allow-list) and the probe (every request and redirect) use.

A WebSocket URL has the origin of the HTTP request that opens it: RFC 6455 upgrades an
HTTP/1.1 request to the same host and port, the WHATWG WebSockets standard fetches a
`ws:` URL as `http:` (and `wss:` as `https:`), and a redirect of the upgrade names an
`http(s)` URL. So `ws://h:8080` and `http://h:8080` are one origin, written `http://`.
"""

from __future__ import annotations

from typing import NamedTuple

from yarl import URL

_DEFAULT_PORTS = {"http": 80, "https": 443}
# The scheme of the HTTP request that opens a WebSocket (the default ports are the same).
_AS_HTTP = {"ws": "http", "wss": "https"}


class Origin(NamedTuple):
    scheme: str
    host: str  # lower-case; IDNA (punycode) for a name; no brackets for IPv6
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = _DEFAULT_PORTS.get(self.scheme)
        return f"{self.scheme}://{host}" + ("" if self.port == default else f":{self.port}")


def origin_of(url: URL) -> Origin | None:
    """The origin of an absolute URL; None when it has no host (not a URL a request can use).

    yarl already lower-cases the scheme and the host and IDNA-encodes a name, and gives
    the scheme's default port when none is written: `http://h` and `http://H:80` are one.
    A `ws`/`wss` URL has its HTTP request's origin: `ws://h` is `http://h`.
    """
    host = url.raw_host
    port = url.port
    if not host or port is None:
        return None
    scheme = url.scheme
    return Origin(_AS_HTTP.get(scheme, scheme), host.lower(), port)


def parse_origin(value: object) -> Origin:
    """`https://auth.example.com[:port]` (a trailing `/` allowed) -> Origin; ValueError else.

    `ws://` and `wss://` are accepted too, as the origin of `http://` and `https://`."""
    if isinstance(value, Origin):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected an origin such as https://auth.example.com, got {value!r}")
    try:
        url = URL(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an origin: {exc}") from None
    known = url.scheme in _DEFAULT_PORTS or url.scheme in _AS_HTTP
    if not known or not value.lower().startswith(url.scheme + "://"):
        raise ValueError(
            f"{value!r} is not an origin: it must start with http:// or https:// "
            "(or ws:// or wss://, the same origins)"
        )
    if url.raw_user is not None or url.raw_password is not None:
        raise ValueError(f"{value!r} is not an origin: an origin has no user or password")
    if url.raw_path not in ("", "/"):
        raise ValueError(f"{value!r} is not an origin: an origin has no path")
    if url.raw_query_string or url.raw_fragment or "?" in value or "#" in value:
        raise ValueError(f"{value!r} is not an origin: it takes no path, query or fragment")
    origin = origin_of(url)
    if origin is None:
        raise ValueError(f"{value!r} is not an origin: it has no host")
    return origin
