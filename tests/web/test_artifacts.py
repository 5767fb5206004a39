"""Screenshots of failed browser steps, and their traces, on the status page and in the API,
served by the daemon from its artifact folder, and nothing else from there."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from uptime_probe.config.redaction import Redactor
from uptime_probe.probe.artifacts import ArtifactStore
from uptime_probe.probe.model import Status
from uptime_probe.web.server import build_web_app

from .conftest import MakeHarness
from .harness import Harness, control_for, make_config, now

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArtifactStore]:
    artifacts = ArtifactStore(tmp_path / "data" / "artifacts", keep=5)
    yield artifacts
    artifacts.close()


async def served(harness: Harness, store: ArtifactStore) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(
        TestServer(build_web_app(control_for(harness, store)), host="127.0.0.1")
    )
    await client.start_server()
    return client


async def sidebar_down(make_harness: MakeHarness, store: ArtifactStore, **top: Any) -> Harness:
    """`sidebar_renders` down twice (an incident), its second run leaving a screenshot."""
    harness = await make_harness(
        make_config({"name": "sidebar_renders"}, defaults={"failure_threshold": 2}, **top)
    )
    shot = await store.save("sidebar_renders", "sidebar", PNG)
    t = now()
    harness.run("sidebar_renders", Status.DOWN, at=t - 20, reason="empty_history", step="sidebar")
    harness.run(
        "sidebar_renders", Status.DOWN, at=t - 10, reason="empty_history", step="sidebar",
        artifact=shot,
    )  # fmt: skip
    return harness


async def test_the_incident_shows_the_screenshot_and_the_daemon_serves_it(
    make_harness: MakeHarness, store: ArtifactStore
) -> None:
    harness = await sidebar_down(make_harness, store)
    client = await served(harness, store)
    try:
        page = await client.get("/")
        html = await page.text()
        csp = page.headers["Content-Security-Policy"]
        assert "img-src 'self' data:" in csp  # the daemon's own images, nothing from afar
        urls = set(re.findall(r'<img src="(/artifacts/[^"]+)"', html))
        assert len(urls) == 1, html
        (url,) = urls
        assert re.fullmatch(r"/artifacts/sidebar_renders/\d{8}T\d{6}\.\d{3}Z-sidebar\.png", url)
        assert f'href="{url}">Screenshot of the last run' in html  # the check's own card
        image = await client.get(url)
        assert image.status == 200
        assert image.content_type == "image/png"
        assert await image.read() == PNG

        api = await (await client.get("/api/v1/incidents")).json()
        (incident,) = api["incidents"]
        assert incident["artifact_url"] == url
        assert incident["artifact"] == url.removeprefix("/artifacts/")
        checks = await (await client.get("/api/v1/checks")).json()
        (check,) = checks["checks"]
        assert check["last_run"]["artifact_url"] == url
    finally:
        await client.close()


async def test_the_trace_beside_the_screenshot_is_linked_and_served_as_a_zip(
    make_harness: MakeHarness, store: ArtifactStore, tmp_path: Path
) -> None:
    harness = await sidebar_down(make_harness, store)
    (incident,) = harness.incidents.open_incidents()
    assert incident.artifact is not None
    source = tmp_path / "trace.zip"
    with zipfile.ZipFile(source, "w") as trace:
        trace.writestr("trace.trace", '{"type":"context-options"}\n')
    saved = await store.save_trace(incident.artifact, source, Redactor([]))
    url = f"/artifacts/{saved}"
    assert url.endswith("-sidebar.zip")
    client = await served(harness, store)
    try:
        html = await (await client.get("/")).text()
        assert html.count(f'href="{url}" download>') == 2  # the incident, the check's card
        served_trace = await client.get(url)
        assert served_trace.status == 200
        assert served_trace.content_type == "application/zip"
        with zipfile.ZipFile(io.BytesIO(await served_trace.read())) as trace:
            assert trace.namelist() == ["trace.trace"]
        (api_incident,) = (await (await client.get("/api/v1/incidents")).json())["incidents"]
        assert api_incident["trace_url"] == url
        assert api_incident["trace"] == saved
        (check,) = (await (await client.get("/api/v1/checks")).json())["checks"]
        assert check["last_run"]["trace_url"] == url
    finally:
        await client.close()


async def test_a_run_that_kept_no_trace_links_none(
    make_harness: MakeHarness, store: ArtifactStore
) -> None:
    # `browser.keep_traces: false`, or a trace that could not be saved: the screenshot
    # alone. Linked by name, every such run showed a trace link that answered 404.
    harness = await sidebar_down(make_harness, store)
    client = await served(harness, store)
    try:
        html = await (await client.get("/")).text()
        assert "Screenshot of the last run" in html
        assert "trace-link" not in html
        assert "Playwright trace" not in html
        (api_incident,) = (await (await client.get("/api/v1/incidents")).json())["incidents"]
        assert api_incident["artifact_url"] is not None
        assert (api_incident["trace"], api_incident["trace_url"]) == (None, None)
        (check,) = (await (await client.get("/api/v1/checks")).json())["checks"]
        assert check["last_run"]["artifact_url"] is not None
        assert check["last_run"]["trace_url"] is None
    finally:
        await client.close()


async def test_only_the_stores_own_files_are_served(
    make_harness: MakeHarness, store: ArtifactStore, tmp_path: Path
) -> None:
    harness = await sidebar_down(make_harness, store)
    (tmp_path / "data" / "secret.txt").write_text("not for the web")
    (tmp_path / "data" / "artifacts" / "sidebar_renders" / "notes.png").write_bytes(PNG)
    client = await served(harness, store)
    try:
        for path in (
            "/artifacts/sidebar_renders/20251203T101502.123Z-gone.png",  # pruned, or never
            "/artifacts/sidebar_renders/notes.png",  # not a name the store gives
            "/artifacts/sidebar_renders/..%2F..%2Fsecret.txt",
            "/artifacts/..%2Fsecret.txt/x.png",
            "/artifacts/Sidebar/20251203T101502.123Z-sidebar.png",
        ):
            response = await client.get(path)
            assert response.status == 404, path
            assert b"not for the web" not in await response.read()
    finally:
        await client.close()


async def test_screenshots_are_behind_the_status_pages_auth(
    make_harness: MakeHarness, store: ArtifactStore
) -> None:
    token = "status-page-token-0123456789"
    harness = await sidebar_down(make_harness, store, server={"auth": {"bearer_token": token}})
    (url,) = {f"/artifacts/{i.artifact}" for i in harness.incidents.open_incidents()}
    client = await served(harness, store)
    try:
        assert (await client.get(url)).status == 401
        allowed = await client.get(url, headers={"Authorization": f"Bearer {token}"})
        assert allowed.status == 200
    finally:
        await client.close()
