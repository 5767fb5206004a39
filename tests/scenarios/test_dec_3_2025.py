"""The 3 December 2025 incident, replayed at 100x against the real daemon.

Asserts what a user must see: task creation down with `timeout` while creation
hangs and `task_stuck` while tasks stick; the history down with `empty_history`
while it is empty; the chat page degraded while slow; the streamed answer down with
`first_event_timeout` while answers start late and `stream_stalled` while they stall;
every check back up after the fix; and each failure detected within interval x
failure_threshold plus one interval of its phase starting (measured to the start of
the deciding run).
"""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.daemon.support import DaemonProcess
from uptime_probe.simulator import load_scenario, start_simulator

SPEED = 100.0  # 55 minutes in 33 seconds; a 10-minute phase lasts 6 s

# Short intervals so every phase is detected well within it. chat_load's page is 3 s
# slow in the incident (latencies are not scaled), so its timeout must exceed that.
CONFIG = """
defaults: {{failure_threshold: 2, success_threshold: 1}}
variables: {{base_url: "{base}"}}
secrets: {{token: demo-token}}
checks:
  - name: chat_load
    interval: 3500ms
    timeout: 3400ms
    steps:
      - name: page
        request: {{url: "{{{{ base_url }}}}/"}}
        expect: {{status: 200, max_latency: 2s, body_contains: "<title>SimChat</title>"}}
  - name: history_sidebar
    interval: 500ms
    timeout: 400ms
    steps:
      - name: conversations
        request:
          url: "{{{{ base_url }}}}/backend-api/conversations?offset=0&limit=28"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          status: 200
          json: [{{query: "length(items)", gt: 0, reason: empty_history}}]
  - name: task_creation
    interval: 1s
    timeout: 900ms
    steps:
      - name: create
        request: {{method: POST, url: "{{{{ base_url }}}}/backend-api/tasks", json: {{prompt: "x"}}}}
        expect: {{status: 202}}
        extract: {{task_id: id}}
      - name: wait_completed
        request: {{url: "{{{{ base_url }}}}/backend-api/tasks/{{{{ task_id }}}}"}}
        poll: {{every: 100ms, within: 700ms, reason: task_stuck}}
        expect: {{json: [{{query: status, equals: completed}}]}}
  - name: chat_answer
    interval: 1s
    timeout: 900ms
    steps:
      - name: answer
        stream:
          method: POST
          url: "{{{{ base_url }}}}/backend-api/conversation"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
          json: {{messages: [{{role: user, content: "Say hello"}}]}}
          collect: "choices[0].delta.content"
          done: "[DONE]"
        expect: {{first_event_within: 500ms, max_gap: 400ms}}
"""

INTERVALS = {"chat_load": 3.5, "history_sidebar": 0.5, "task_creation": 1.0, "chat_answer": 1.0}
THRESHOLD = 2


def _bound(check: str) -> float:
    return INTERVALS[check] * THRESHOLD + INTERVALS[check]


def _changes(events: list[dict[str, Any]], check: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == "check_state_changed" and e["check"] == check]


def _first_after(changes: list[dict[str, Any]], state: str, after: float) -> dict[str, Any]:
    found = [e for e in changes if e["state"] == state and e["run_started_at"] >= after]
    assert found, f"no change to {state} after {after}: {changes}"
    return found[0]


async def test_dec_3_2025_is_detected_and_classified(tmp_path: Path) -> None:
    scenario = load_scenario("dec-3-2025")
    simulator = await start_simulator(scenario=scenario, speed=SPEED, token="demo-token")
    config = tmp_path / "probes.yaml"
    config.write_text(CONFIG.format(base=simulator.url))
    phase_started: dict[str, float] = {}
    daemon = DaemonProcess(config, log_level="debug")
    try:
        daemon.start()
        await daemon.started()
        # Watch the scenario until it reaches its last phase, noting when each began.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = simulator.current_phase()
            phase_started.setdefault(status.name, time.time() - status.seconds_in)
            if status.name == "resolved":
                break
            await asyncio.sleep(0.05)  # observing the scenario's clock, not synchronising
        assert "resolved" in phase_started, f"scenario did not finish: {phase_started}"
        # Let a run of every check start inside the last phase before reading the log.
        settle = phase_started["resolved"] + max(INTERVALS.values()) + 3.4
        while time.time() < settle:
            await asyncio.sleep(0.05)
        events = daemon.logs()
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit() == 0
    finally:
        daemon.kill()
        await simulator.stop()

    hang = phase_started["task-creation-hang"]
    stuck = phase_started["tasks-stuck-history-empty"]

    # Task creation hangs: down with `timeout` at step `create`, in time.
    tasks = _changes(events, "task_creation")
    down = _first_after(tasks, "down", hang)
    assert (down["reason"], down["step"]) == ("timeout", "create")
    assert down["run_started_at"] - hang <= _bound("task_creation")

    # Tasks accepted but stuck: the failures turn to `task_stuck` at `wait_completed`.
    stuck_failures = [
        e
        for e in events
        if e.get("event") == "check_failed"
        and e["check"] == "task_creation"
        and e["reason"] == "task_stuck"
    ]
    assert stuck_failures, "task_creation never failed with task_stuck"
    assert all(e["step"] == "wait_completed" for e in stuck_failures)

    # History empty with 200: down with `empty_history`, in time.
    history = _changes(events, "history_sidebar")
    down = _first_after(history, "down", stuck)
    assert (down["reason"], down["step"]) == ("empty_history", "conversations")
    assert down["run_started_at"] - stuck <= _bound("history_sidebar")

    # The page loads slowly: degraded, not down, in time.
    chat = _changes(events, "chat_load")
    degraded = _first_after(chat, "degraded", stuck)
    assert degraded["run_started_at"] - stuck <= _bound("chat_load")
    assert not [e for e in chat if e["state"] == "down"], "a slow page is not an outage"

    # Answers start late while tasks hang: down with `first_event_timeout`, in time.
    answers = _changes(events, "chat_answer")
    down = _first_after(answers, "down", hang)
    assert (down["reason"], down["step"]) == ("first_event_timeout", "answer")
    assert down["run_started_at"] - hang <= _bound("chat_answer")

    # Then they stall mid-answer while tasks stick: the failures turn to `stream_stalled`.
    history_empty = phase_started["history-empty"]
    stalled = [
        e
        for e in events
        if e.get("event") == "check_failed"
        and e["check"] == "chat_answer"
        and e["reason"] == "stream_stalled"
    ]
    assert stalled, "chat_answer never failed with stream_stalled"
    # Every stall is the stuck phase's: logged after it began, and before it ended but for
    # a run that started at its very end (a run takes at most its 900 ms timeout).
    logged = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in stalled]
    assert all(stuck <= at < history_empty + 1.0 for at in logged), (stuck, logged)
    assert all(e["step"] == "answer" for e in stalled)

    # Recovery: after the fix every check's latest state is up, reached after monitoring
    # began (the page is still 1.5 s slow then, under its 2 s max_latency).
    monitoring = phase_started["monitoring"]
    for check in INTERVALS:
        last = _changes(events, check)[-1]
        assert last["state"] == "up", f"{check} ended {last['state']}"
        assert last["run_started_at"] >= hang, f"{check} never recovered: {last}"
    assert _first_after(chat, "up", monitoring)
    assert _first_after(answers, "up", monitoring)  # answers come back with the fix

    # Nothing in the whole replay was an internal error.
    assert not [e for e in events if e.get("reason") == "internal"]
