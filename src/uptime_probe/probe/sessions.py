"""HTTP sessions kept between runs, each handed back clean: no connection, no cookie.

Every run meets its target as a new user would: a fresh connection and an empty cookie
jar (probe/kinds/base.py, RunContext). Building an aiohttp ClientSession, its connector and
its jar for each run, and closing them after, cost about 55 µs of a run's 500 µs
(docs/benchmarks.md, "Issue 19: per-run work"); none of that is the target's business.

So a run borrows an idle session here and gives it back when it ends: its connector
closes every connection the run left open (keep-alive between the run's own steps and
redirect hops is kept) and its jar is emptied, so the next run that borrows it starts as
a new session would. A session that still has a connection out (a run cut in the middle
of an exchange) or that finds the pool full is closed instead, as before.

Which session a run gets does not matter: an idle session holds nothing of any run.
"""

from __future__ import annotations

import aiohttp

from uptime_probe.probe.tracing import TimedConnector

# Idle sessions kept: enough for the runs in flight now to be followed by as many again,
# and a few, never more than the cap. At saturation a thousand runs overlap (and a pool
# of 64 left most of them building their own); when runs thin out, each one given back
# beyond that is closed, so the idle ones (about 6 KB each) follow the load down without
# a timer of their own.
DEFAULT_IDLE = 1024
SPARE_IDLE = 16

_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)  # the journey's deadline is the engine's


def new_session(
    resolver: aiohttp.abc.AbstractResolver | None,
) -> tuple[aiohttp.ClientSession, TimedConnector]:
    """A session as a run needs it: a connector of its own (no DNS cache, no pool limit),
    an empty jar that keeps cookies of IP-address hosts too, no timeout of aiohttp's."""
    connector = TimedConnector(
        use_dns_cache=False, resolver=resolver, limit=0, enable_cleanup_closed=False
    )
    session = aiohttp.ClientSession(
        connector=connector,
        timeout=_NO_TIMEOUT,
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        raise_for_status=False,
    )
    return session, connector


class SessionPool:
    """Idle sessions for runs to borrow. One per daemon, made on the loop that uses it,
    with the resolver every run uses; `close` when the daemon stops."""

    def __init__(
        self, resolver: aiohttp.abc.AbstractResolver | None = None, *, idle: int = DEFAULT_IDLE
    ) -> None:
        self.resolver = resolver
        self._idle: list[tuple[aiohttp.ClientSession, TimedConnector]] = []
        self._keep = idle
        self._closed = False
        self.built = 0  # sessions made so far (a test reads it: runs reuse them)
        self.lent = 0  # sessions borrowed and not given back

    @property
    def idle(self) -> int:
        return len(self._idle)

    def borrow(self) -> tuple[aiohttp.ClientSession, TimedConnector]:
        self.lent += 1
        if self._idle:
            return self._idle.pop()
        self.built += 1
        return new_session(self.resolver)

    async def give_back(self, session: aiohttp.ClientSession, connector: TimedConnector) -> None:
        """The run is over: keep the session clean for the next one, or close it."""
        self.lent -= 1
        wanted = min(self._keep, 2 * self.lent + SPARE_IDLE)
        if not self._closed and len(self._idle) < wanted and _emptied(connector):
            session.cookie_jar.clear()
            self._idle.append((session, connector))
            return
        await session.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for session, _connector in idle:
            await session.close()


def _emptied(connector: TimedConnector) -> bool:
    """The connector's pool emptied for the next run; False when it cannot be: a connection
    is out, or an aiohttp release moved what `end_run` relies on (the session is then
    closed, as every run's was before the pool)."""
    try:
        return connector.end_run()
    except AttributeError:
        return False
