"""The web layer renders and compresses on its own threads, never in the event loop's
default executor: what else uses that pool (asyncio's getaddrinfo did, for probes) must not
delay a scrape or a page (docs/reliability.md, "One slow DNS name")."""

from __future__ import annotations

import pytest

from tests.conftest import RefusingExecutor
from uptime_probe.metrics import OPENMETRICS_CONTENT_TYPE
from uptime_probe.probe.model import Status

from .conftest import MakeClient, MakeHarness
from .harness import make_config, now

CHECKS = [f"check_{i:03d}" for i in range(60)]  # enough for every body to be compressed


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/metrics", {"Accept-Encoding": "gzip"}),
        ("/metrics", {"Accept-Encoding": "gzip", "Accept": OPENMETRICS_CONTENT_TYPE}),
        ("/", {"Accept-Encoding": "gzip"}),
        ("/api/v1/checks", {}),
    ],
    ids=["metrics-text-gzip", "metrics-openmetrics-gzip", "status-page-gzip", "api-checks"],
)
async def test_served_without_the_default_executor(
    path: str,
    headers: dict[str, str],
    make_harness: MakeHarness,
    make_client: MakeClient,
    default_executor: RefusingExecutor,
) -> None:
    harness = await make_harness(make_config(*({"name": name} for name in CHECKS)))
    for name in CHECKS:
        harness.run(name, Status.UP, at=now())
    await harness.flush()
    client = await make_client(harness)
    default_executor.refuse()
    response = await client.get(path, headers=headers)
    body = await response.read()
    assert response.status == 200, body[:300]
    if "gzip" in headers.get("Accept-Encoding", ""):
        assert response.headers.get("Content-Encoding") == "gzip"  # the client undid it
    assert default_executor.refused == []
