"""Name resolution for probe runs: asynchronous (c-ares), and each lookup bounded in time.

Why not the loop's `getaddrinfo` (aiohttp's `ThreadedResolver`): it blocks one pooled
thread per lookup until the system resolver gives up, and the pool is shared. On uvloop
it is libuv's pool of 4 threads, which uvloop also uses to connect: four names whose
server never answered held all four, and a check of `http://127.0.0.1:PORT/` failed 9
runs in 10 as `connect_timeout`. On asyncio's loop it is the loop's default executor,
which the web layer also used: `/metrics` took 20 s. Cutting the run at its deadline
does not free the thread; nothing can.

c-ares (through aiodns and aiohttp's own `AsyncResolver`) sends the questions from its
one event thread and never blocks: a lookup that gets no answer costs a timer, not a
thread, and every other lookup and connection goes on meanwhile.

What stays fast whatever the DNS servers do:
- IP literals are never resolved: aiohttp's connector short-circuits them before it
  asks the resolver (tests/probe/test_resolve.py proves the resolver is not called).
- `localhost` and `*.localhost` never reach a DNS server: c-ares answers them itself
  (from the hosts file, else loopback, as RFC 6761 asks). It does not for the fully
  qualified form (`localhost.`), which it sends to the servers: `ProbeResolver` drops
  that dot first. The tests prove both with a DNS server that answers nothing.
- Names in the hosts file are answered from it first, as the system resolver does.

Answers are cached by c-ares for their TTL (at most an hour), as a caching stub
resolver does; failures and timeouts are not cached.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

import aiodns.error
import pycares.errno
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import AsyncResolver

from uptime_probe.config.model import DnsConfig

__all__ = ["LookupTimedOut", "ProbeResolver"]

# c-ares asks again (the next server, or the same one) when a try gets no answer in half
# the bound; its later tries wait longer, so it would give up after the bound, which
# `ProbeResolver` enforces itself.
_TRIES = 2


class LookupTimedOut(OSError):
    """No answer for a name within the lookup's bound.

    An OSError, so aiohttp's connector reports it as it reports any resolver failure
    (a `ClientConnectorDNSError`, reason `dns`); errno ETIMEDOUT tells the classifier it
    was a timeout. Not a `TimeoutError`: aiohttp lets those through unwrapped, and the
    engine would read one as its own journey deadline.
    """

    def __init__(self, host: str, seconds: float) -> None:
        super().__init__(errno.ETIMEDOUT, f"no answer in {seconds:.1f}s")
        self.host = host


class ProbeResolver(AbstractResolver):
    """aiohttp's `AsyncResolver` on its own c-ares channel, with a hard bound per lookup.

    One per daemon (or per `uptime-probe check`), shared by every run: a c-ares channel
    owns an event thread. Create it on the loop that will use it. No `servers` means the
    system's (`/etc/resolv.conf`, which c-ares re-reads when it changes).
    """

    def __init__(self, config: DnsConfig | None = None) -> None:
        config = config or DnsConfig()
        self.timeout = config.timeout
        # The top-level `dns.servers` (empty: the system's), which a `dns` step without a
        # `server` of its own asks too (probe/kinds/dns.py).
        self.servers: tuple[str, ...] = tuple(config.servers)
        self._inner = AsyncResolver(
            nameservers=list(config.servers) or None,
            timeout=config.timeout / _TRIES,
            tries=_TRIES,
        )

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        started = time.perf_counter()
        if _is_localhost(host):
            host = host.rstrip(".")  # see the module docstring: c-ares answers it locally
        try:
            async with asyncio.timeout(self.timeout):
                return await self._inner.resolve(host, port, family)
        except TimeoutError:
            raise LookupTimedOut(host, time.perf_counter() - started) from None
        except OSError as exc:
            # AsyncResolver keeps c-ares's error code only as the cause.
            cause = exc.__cause__
            if (
                isinstance(cause, aiodns.error.DNSError)
                and cause.args
                and cause.args[0] == pycares.errno.ARES_ETIMEOUT
            ):
                raise LookupTimedOut(host, time.perf_counter() - started) from exc
            raise

    async def close(self) -> None:
        await self._inner.close()


def _is_localhost(host: str) -> bool:
    """`localhost` or a name under it (RFC 6761 section 6.3), in any case, dot or not."""
    name = host.rstrip(".").casefold()
    return name == "localhost" or name.endswith(".localhost")
