"""The status page in headless Chromium (Debian's), served by the real daemon probing real
targets: the simulator with an injected `empty_history` fault, and a target whose body
is a script.

Screenshots are saved under artifacts/ at the repository root.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import BrowserContext, ConsoleMessage, Page, expect

from .live import ARTIFACTS, Programs

pytestmark = pytest.mark.e2e

UI_TIMEOUT_MS = 5_000
# The page refreshes itself every 10 s; waiting on that proves it does, in a browser.
REFRESH_TIMEOUT_MS = 25_000

SIMULATOR_CONFIG = """\
location: browser-test
defaults:
  interval: 500ms
  timeout: 500ms
  failure_threshold: 2
  success_threshold: 1
secrets:
  token: demo-token
status_page:
  title: SimChat status
checks:
  - name: chat_load
    description: Chat page loads
    steps:
      - name: page
        request:
          url: "{sim}/"
        expect:
          status: 200
          body_contains: "<title>SimChat</title>"
  - name: history_sidebar
    description: Conversation history loads and is not empty
    steps:
      - name: conversations
        request:
          url: "{sim}/backend-api/conversations?offset=0&limit=20"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          status: 200
          json:
            - query: "length(items)"
              gt: 0
              reason: empty_history
"""


async def api(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        if response.status == 404 and "/api/v1/checks/" not in url:
            # Permanent, not "not yet": fail now, saying why.
            raise AssertionError(
                f"{url}: 404; the daemon serves no status API: app.py must pass "
                "status=self to DaemonControl"
            )
        response.raise_for_status()
        return await response.json()


async def check_of(http: aiohttp.ClientSession, daemon: str, name: str) -> dict[str, Any]:
    body = await api(http, f"{daemon}/api/v1/checks")
    found: dict[str, Any] = next(c for c in body["checks"] if c["name"] == name)
    return found


async def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    await page.screenshot(path=str(path), full_page=True)
    return path


async def test_empty_history_incident_opens_and_resolves(
    programs: Programs, chromium: BrowserContext, tmp_path: Path
) -> None:
    sim = await programs.simulator()
    config = tmp_path / "probes.yaml"
    config.write_text(SIMULATOR_CONFIG.format(sim=sim), encoding="utf-8")
    daemon = await programs.daemon(config, tmp_path / "data")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

        async def both_up() -> bool:
            checks = (await api(http, f"{daemon}/api/v1/checks"))["checks"]
            return all(check["state"] == "up" for check in checks)

        await programs.poll(both_up, what="both checks to be up")
        page = await chromium.new_page()
        await page.goto(f"{daemon}/")
        await expect(page.locator("#banner")).to_have_text("All systems operational")
        history = page.locator("#check-history_sidebar")
        await expect(history).to_have_attribute("data-state", "up")
        await expect(history).to_contain_text("Conversation history loads and is not empty")

        async with http.post(
            f"{sim}/_sim/faults", json={"conversations": {"mode": "empty"}}
        ) as response:
            assert response.status == 200, await response.text()

        async def incident_open() -> list[Any]:
            query = "status=open&check=history_sidebar"
            found: list[Any] = (await api(http, f"{daemon}/api/v1/incidents?{query}"))["incidents"]
            return found

        (incident,) = await programs.poll(incident_open, what="an open incident")
        assert incident["first_reason"] == "empty_history"

        await page.reload()
        await expect(history).to_have_attribute("data-state", "down")
        await expect(history.locator(".reason")).to_contain_text(
            "empty history (HTTP 200) at step conversations"
        )
        await expect(history.locator(".message")).to_contain_text("length(items) = 0")
        await expect(page.locator("#banner")).to_have_text("Partial outage")
        await expect(page.locator("#check-chat_load")).to_have_attribute("data-state", "up")
        open_incident = page.locator('section.open article[data-check="history_sidebar"]')
        await expect(open_incident).to_have_count(1)
        await expect(open_incident).to_contain_text("history_sidebar: empty history")
        await expect(open_incident.locator(".incident-meta")).to_contain_text("Investigating")
        await expect(open_incident.locator(".timeline li").first).to_contain_text(
            "empty_history at step conversations"
        )
        await screenshot(page, "status-page-incident.png")
        phone = await chromium.new_page()
        await phone.set_viewport_size({"width": 390, "height": 844})
        await phone.goto(f"{daemon}/")
        # Readable on a phone: nothing wider than the screen.
        overflow = await phone.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        await screenshot(phone, "status-page-incident-phone.png")
        await phone.close()

        async with http.delete(f"{sim}/_sim/faults") as response:
            assert response.status == 200, await response.text()

        # No reload from here: the page refreshes itself.
        await expect(history).to_have_attribute("data-state", "up", timeout=REFRESH_TIMEOUT_MS)
        resolved = page.locator(f'section.past article[id="incident-{incident["id"]}"]')
        await expect(resolved).to_have_count(1, timeout=REFRESH_TIMEOUT_MS)
        await expect(resolved.locator(".incident-meta")).to_contain_text("Resolved")
        await expect(resolved.locator(".incident-meta")).to_contain_text("lasted")
        await expect(page.locator("section.open")).to_have_count(0)
        await expect(page.locator("#banner")).to_have_text("All systems operational")
        await resolved.locator("summary").click()
        await expect(resolved.locator(".timeline")).to_contain_text("Monitoring")
        await screenshot(page, "status-page-resolved.png")


SCRIPT_BODY = "<script>window.__pwned=1</script>"
SCRIPT_DESCRIPTION = "Target that answers <script>window.__pwned=2</script> & <b>bold</b>"


async def test_target_returning_a_script_shows_text(
    programs: Programs,
    chromium: BrowserContext,
    tmp_path: Path,
    serve_app: Any,
) -> None:
    async def hostile(_request: web.Request) -> web.Response:
        return web.Response(text=SCRIPT_BODY, content_type="text/html")

    target = web.Application()
    target.router.add_get("/", hostile)
    url = await serve_app(target)
    config = tmp_path / "probes.yaml"
    config.write_text(
        f"""\
defaults: {{interval: 500ms, timeout: 500ms, failure_threshold: 2}}
checks:
  - name: hostile
    description: "{SCRIPT_DESCRIPTION}"
    steps:
      - name: page
        request: {{url: "{url}/"}}
        expect: {{status: 200, body_contains: "<title>SimChat</title>"}}
""",
        encoding="utf-8",
    )
    daemon = await programs.daemon(config, tmp_path / "data")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

        async def down() -> bool:
            check = await check_of(http, daemon, "hostile")
            return check["state"] == "down" and check["open_incident"] is not None

        await programs.poll(down, what="the hostile check to be down with an incident")

    page = await chromium.new_page()
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("console", on_console)
    await page.goto(f"{daemon}/")
    card = page.locator("#check-hostile")
    await expect(card).to_have_attribute("data-state", "down", timeout=UI_TIMEOUT_MS)
    await expect(card.locator(".description")).to_have_text(SCRIPT_DESCRIPTION)
    sample = card.locator("details.sample")
    await sample.locator("summary").click()
    await expect(sample.locator("pre")).to_have_text(SCRIPT_BODY)
    await expect(sample.locator("pre")).to_be_visible()
    incident_sample = page.locator('section.open article[data-check="hostile"] details.sample')
    await incident_sample.locator("summary").click()
    await expect(incident_sample.locator("pre")).to_have_text(SCRIPT_BODY)

    assert await page.evaluate("() => typeof window.__pwned") == "undefined"
    assert await page.evaluate("() => document.scripts.length") == 0
    assert await page.evaluate("() => document.querySelectorAll('b, img').length") == 0
    # Not even a blocked attempt: the CSP never had a script to refuse.
    assert [m for m in console if "Content Security Policy" in m] == []
    await screenshot(page, "status-page-hostile-target.png")
