"""The process's file descriptors: raise the soft limit at start, and share them out.

Every probe's connection and every client of the daemon's own server take a descriptor
from one pool, RLIMIT_NOFILE's soft limit, which is 1,024 on most hosts while the hard
limit allows far more. With 1,100 strangers' connections open, the server took them all:
`/metrics` refused connections and a healthy check failed with "Too many open files".

So the soft limit is raised to the hard limit at start (as Go's runtime does), and what
there is gets shared out: a reserve for the process itself, room for every run that can be
in flight, and the server's connections capped to what is left. When the limit cannot hold
both, each side is cut back to a floor rather than one starving the other.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

import structlog

log = structlog.get_logger("uptime_probe.descriptors")

# What the daemon holds besides probes and clients: stdio, the loop's epoll and wake-up
# pipes, SQLite's database, WAL and shared-memory files, the listening socket, notifier
# connections, the resolver's. Measured at rest: ~30; the rest is headroom.
RESERVED = 64
# The server's listen backlog: the loop accepts up to this many connections in one burst
# before the connection cap sees them (web/connections.py), so they need room too.
LISTEN_BACKLOG = 128
# A run holds its connection, and a resolver socket or a redirect's next connection beside it.
PER_RUN = 2
# Neither side is cut below these, however short the limit: a scrape, a health check and a
# status page must still get in; some checks must still run.
MIN_SERVER_CONNECTIONS = 16
MIN_RUNS = 4
# Where the hard limit is "unlimited", the soft one goes this far (Linux's default
# fs.nr_open, above which setrlimit fails).
UNLIMITED_TARGET = 1 << 20


@dataclass(frozen=True, slots=True)
class DescriptorLimits:
    """RLIMIT_NOFILE now; `None` for unlimited."""

    soft: int | None
    hard: int | None


def _value(limit: int) -> int | None:
    return None if limit == resource.RLIM_INFINITY else limit


def current_limits() -> DescriptorLimits:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return DescriptorLimits(_value(soft), _value(hard))


def raise_soft_limit() -> DescriptorLimits:
    """Raise the soft limit as far as the hard limit allows; the limits after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("descriptor_limit_not_raised", soft=soft, hard=hard, error=str(exc))
    return current_limits()


@dataclass(frozen=True, slots=True)
class DescriptorShare:
    """How many server connections and concurrent runs the soft limit holds."""

    server_connections: int
    max_concurrency: int
    # False when the limit could not hold what the config asks: one side was cut back.
    fits: bool


def share_descriptors(
    soft: int | None, *, max_connections: int, max_concurrency: int, checks: int
) -> DescriptorShare:
    """The server's connection cap and the runs allowed in flight, within `soft`.

    Runs in flight are at most one per check, so a config of 20 checks needs room for 20
    runs whatever its `max_concurrency`. Probes are served first (they are the point), the
    server gets what is left up to `max_connections`; a limit too short for both cuts each
    back to its floor.
    """
    if soft is None:
        return DescriptorShare(max_connections, max_concurrency, fits=True)
    available = max(0, soft - RESERVED - LISTEN_BACKLOG)
    runs_wanted = min(max_concurrency, max(checks, 1))
    server = min(max_connections, max(available - PER_RUN * runs_wanted, MIN_SERVER_CONNECTIONS))
    runs = min(max_concurrency, max((available - server) // PER_RUN, MIN_RUNS))
    fits = runs >= runs_wanted and server == max_connections
    return DescriptorShare(server, runs, fits)
