"""The replayed incident in a real browser: the rendered sidebar goes empty exactly when
the history API does, and back when it recovers; the status page shows the screenshot.

The real daemon (a subprocess, as `uptime-probe run`) probes the real simulator playing
`dec-3-2025`. Its phases are stepped through by hand (`advance_to`), so the test knows to
the millisecond when the history went empty and came back, and need not wait out a
scenario's minutes. The page is 3 s slow in the incident's phases (latencies are not
scaled), so the browser journey's timeout is above that.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from tests.daemon.support import DaemonProcess
from uptime_probe.simulator import load_scenario, start_simulator

CONFIG = """
defaults: {{failure_threshold: 1, success_threshold: 1}}
variables: {{base_url: "{base}"}}
secrets: {{token: demo-token}}
checks:
  - name: history_sidebar
    interval: 1s
    timeout: 900ms
    steps:
      - name: conversations
        request:
          url: "{{{{ base_url }}}}/backend-api/conversations?offset=0&limit=28"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          status: 200
          json: [{{query: "length(items)", gt: 0, reason: empty_history}}]
  - name: sidebar_renders
    interval: 6s
    timeout: 6s
    steps:
      - name: sidebar
        browser:
          url: "{{{{ base_url }}}}/"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          status: 200
          elements: [{{selector: "#history li", min_count: 1, reason: empty_history}}]
"""
PHASES = ("lead-in", "task-creation-hang", "tasks-stuck-history-empty", "history-empty",
          "monitoring", "resolved")  # fmt: skip
# A run of sidebar_renders lasts at most this (its timeout): one in flight at a switch may
# have fetched the history on either side of it.
RUN = 6.0
INTERVAL = 6.0


async def test_the_rendered_sidebar_goes_empty_exactly_when_the_api_does(tmp_path: Path) -> None:
    scenario = load_scenario("dec-3-2025")
    assert tuple(phase.name for phase in scenario.phases) == PHASES
    simulator = await start_simulator(scenario=scenario, speed=1.0, token="demo-token")
    config = tmp_path / "probes.yaml"
    config.write_text(CONFIG.format(base=simulator.url))
    daemon = DaemonProcess(config)
    try:
        daemon.start()
        await daemon.started()
        await daemon.wait_for_log(
            "check_state_changed", check="sidebar_renders", state="up", timeout=30
        )

        # The history goes empty (200, no items): the API check and the rendered sidebar.
        mark = daemon.log_count
        emptied = time.time()
        simulator.advance_to(PHASES.index("tasks-stuck-history-empty"))
        api_down = await daemon.wait_for_log(
            "check_state_changed", check="history_sidebar", state="down", after=mark
        )
        rendered_down = await daemon.wait_for_log(
            "check_state_changed", check="sidebar_renders", state="down", after=mark,
            timeout=INTERVAL + RUN + 10,
        )  # fmt: skip
        assert (api_down["reason"], rendered_down["reason"]) == ("empty_history", "empty_history")
        assert rendered_down["step"] == "sidebar"
        assert rendered_down["run_started_at"] >= emptied - RUN
        assert rendered_down["run_started_at"] - emptied <= INTERVAL

        # The status page shows the page as users saw it, served by the daemon.
        status, html, _ = await daemon.request("GET", "/")
        assert status == 200
        shots = re.findall(r'<img src="(/artifacts/sidebar_renders/[^"]+\.png)"', html)
        assert len(shots) == 1, html
        async with aiohttp.ClientSession() as client, client.get(daemon.url + shots[0]) as image:
            assert image.status == 200
            assert image.content_type == "image/png"
            assert (await image.read()).startswith(b"\x89PNG\r\n\x1a\n")
        saved = list((tmp_path / "data" / "artifacts" / "sidebar_renders").glob("*.png"))
        assert saved, "the screenshot is kept under the data directory"

        # The fix: both come back, the rendered sidebar with the API.
        mark = daemon.log_count
        fixed = time.time()
        simulator.advance_to(PHASES.index("resolved"))
        await daemon.wait_for_log(
            "check_state_changed", check="history_sidebar", state="up", after=mark
        )
        rendered_up = await daemon.wait_for_log(
            "check_state_changed", check="sidebar_renders", state="up", after=mark,
            timeout=INTERVAL + RUN + 10,
        )  # fmt: skip
        assert rendered_up["run_started_at"] - fixed <= INTERVAL
        # Never empty while the history was not: every rendered failure is logged (when its
        # run ended) inside the incident, give or take one run in flight at a switch.
        failures = daemon.logs("check_failed", check="sidebar_renders")
        assert failures
        for failure in failures:
            ended = datetime.fromisoformat(failure["timestamp"]).timestamp()
            assert failure["reason"] == "empty_history", failure
            assert emptied <= ended <= fixed + RUN, (failure, emptied, fixed)
    finally:
        daemon.kill()
        await simulator.stop()
