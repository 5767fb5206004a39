"""Name resolution that a test controls, for aiohttp clients.

aiohttp asks its connector's resolver for every host that is not an IP
literal.  Inject a ``StaticResolver`` there and names resolve only as the test
says::

    resolver = StaticResolver({"api.test": "127.0.0.1"})
    connector = aiohttp.TCPConnector(resolver=resolver)
    async with aiohttp.ClientSession(connector=connector) as session:
        await session.get(f"http://api.test:{server.port}/ok")   # reaches HostileServer
        await session.get("http://missing.test/")   # raises ClientConnectorDNSError

The session closes the connector and the connector closes the resolver.  The
connector caches answers for ``ttl_dns_cache`` seconds (10 by default); pass
``use_dns_cache=False`` if a test changes ``mapping`` between requests.

To test the real resolver (c-ares, `uptime_probe.probe.resolve`) or a daemon
subprocess, use the real DNS server on loopback in ``dns_server.py`` instead.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping

from aiohttp.abc import AbstractResolver, ResolveResult

__all__ = ["StaticResolver"]

# aiohttp marks resolved addresses numeric so the connector never resolves them again.
_NUMERIC_FLAGS = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class StaticResolver(AbstractResolver):
    """Resolve names from a fixed mapping of name -> IP address; fail all others.

    An unknown name raises ``socket.gaierror(EAI_NONAME)``, exactly what
    aiohttp's default ``ThreadedResolver`` lets through from ``getaddrinfo``.
    ``gaierror`` is an ``OSError``, which the connector wraps into
    ``aiohttp.ClientConnectorDNSError`` (a ``ClientConnectorError``), with the
    ``gaierror`` as ``os_error`` and ``__cause__``.

    Names match case-insensitively and ignore a trailing dot.  ``lookups``
    records every name asked for, in order, for tests that assert a lookup
    happened (or did not, with the connector's cache).
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping = {
            _normalise(name): ipaddress.ip_address(address) for name, address in mapping.items()
        }
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        address = self._mapping.get(_normalise(host))
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        address_family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        if family not in (socket.AF_UNSPEC, address_family):
            # What getaddrinfo says when the name exists only in the other family.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=str(address),
                port=port,
                family=address_family,
                proto=socket.IPPROTO_TCP,
                flags=_NUMERIC_FLAGS,
            )
        ]

    async def close(self) -> None:
        """Nothing to release."""


def _normalise(name: str) -> str:
    return name.rstrip(".").casefold()
