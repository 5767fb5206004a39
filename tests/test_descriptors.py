"""Sharing the descriptor limit between the probes and the daemon's server."""

from __future__ import annotations

import pytest

from uptime_probe.descriptors import (
    LISTEN_BACKLOG,
    MIN_RUNS,
    MIN_SERVER_CONNECTIONS,
    PER_RUN,
    RESERVED,
    share_descriptors,
)

OVERHEAD = RESERVED + LISTEN_BACKLOG


@pytest.mark.parametrize(
    ("soft", "checks", "server", "runs", "fits"),
    [
        # Unlimited, or plenty: the config as it is (256 connections, 512 runs).
        (None, 10_000, 256, 512, True),
        (1 << 20, 10_000, 256, 512, True),
        # The common 1,024 with 20 checks (one run each at most): the server gets its 256,
        # runs what is left, far more than 20.
        (1024, 20, 256, (1024 - OVERHEAD - 256) // PER_RUN, True),
        # 1,024 and 1,000 checks: probes first, the server down to its floor.
        (1024, 1000, MIN_SERVER_CONNECTIONS, (1024 - OVERHEAD - 16) // PER_RUN, False),
        # A tiny limit: both at their floors.
        (OVERHEAD, 100, MIN_SERVER_CONNECTIONS, MIN_RUNS, False),
        # The faults test's 300 and one check: the server capped to what the run leaves.
        (300, 1, 300 - OVERHEAD - PER_RUN, MIN_RUNS, False),
    ],
)
def test_the_share(soft: int | None, checks: int, server: int, runs: int, fits: bool) -> None:
    share = share_descriptors(soft, max_connections=256, max_concurrency=512, checks=checks)
    assert (share.server_connections, share.max_concurrency, share.fits) == (server, runs, fits)
    if soft is not None and fits:
        # What was shared out fits in the limit, beside the process's own reserve.
        assert OVERHEAD + share.server_connections + PER_RUN * min(512, checks) <= soft
