"""Every simulator fault mode, probed through `uptime-probe check`, gets its reason."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from uptime_probe.simulator import start_simulator

CONFIG = """
variables: {{base_url: "{base}"}}
secrets: {{token: demo-token}}
defaults: {{timeout: 2s, interval: 5s}}
checks:
  - name: chat_load
    steps:
      - name: page
        request: {{url: "{{{{ base_url }}}}/"}}
        expect: {{status: 200, max_latency: 500ms, body_contains: "<title>SimChat</title>"}}
  - name: history_sidebar
    steps:
      - name: conversations
        request:
          url: "{{{{ base_url }}}}/backend-api/conversations?offset=0&limit=28"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
        expect:
          status: 200
          json: [{{query: "length(items)", gt: 0, reason: empty_history}}]
  - name: task_creation
    steps:
      - name: create
        request: {{method: POST, url: "{{{{ base_url }}}}/backend-api/tasks", json: {{prompt: "x"}}}}
        expect: {{status: 202}}
        extract: {{task_id: id}}
      - name: wait_completed
        request: {{url: "{{{{ base_url }}}}/backend-api/tasks/{{{{ task_id }}}}"}}
        poll: {{every: 100ms, within: 1s, reason: task_stuck}}
        expect: {{json: [{{query: status, equals: completed}}]}}
  - name: chat_answer
    steps:
      - name: answer
        stream:
          method: POST
          url: "{{{{ base_url }}}}/backend-api/conversation"
          headers: {{Authorization: "Bearer {{{{ token }}}}"}}
          json: {{messages: [{{role: user, content: "Say hello"}}]}}
          collect: "choices[0].delta.content"
          done: "[DONE]"
        expect:
          status: 200
          first_event_within: 1s
          max_first_event: 400ms
          max_gap: 500ms
          body_contains: "Hello"
"""

# (endpoint, fault, check, expected status, expected reason, failing step)
CASES = [
    ("chat", {"mode": "ok"}, "chat_load", "up", None, None),
    ("chat", {"mode": "slow", "latency": 0.8}, "chat_load", "degraded", None, "page"),
    ("chat", {"mode": "hang"}, "chat_load", "down", "timeout", "page"),
    ("chat", {"mode": "error", "status": 503}, "chat_load", "down", "http_5xx", "page"),
    ("chat", {"mode": "error", "status": 404}, "chat_load", "down", "http_4xx", "page"),
    ("chat", {"mode": "reset"}, "chat_load", "down", "connection_reset", "page"),
    ("chat", {"mode": "rate_limited"}, "chat_load", "down", "rate_limited", "page"),
    ("conversations", {"mode": "empty"}, "history_sidebar", "down", "empty_history", "conversations"),
    ("conversations", {"mode": "truncated"}, "history_sidebar", "down", "invalid_json", "conversations"),
    ("conversations", {"mode": "error", "status": 500}, "history_sidebar", "down", "http_5xx", "conversations"),
    ("task_create", {"mode": "hang"}, "task_creation", "down", "timeout", "create"),
    ("task_create", {"mode": "stuck"}, "task_creation", "down", "task_stuck", "wait_completed"),
    ("task_status", {"mode": "stuck"}, "task_creation", "down", "task_stuck", "wait_completed"),
    ("task_status", {"mode": "reset"}, "task_creation", "down", "connection_reset", "wait_completed"),
    ("answer", {"mode": "ok"}, "chat_answer", "up", None, None),
    ("answer", {"mode": "slow_first_token", "latency": 0.6}, "chat_answer", "degraded", None, "answer"),
    ("answer", {"mode": "slow_first_token", "latency": 5}, "chat_answer", "down", "first_event_timeout", "answer"),
    ("answer", {"mode": "stall", "latency": 5}, "chat_answer", "down", "stream_stalled", "answer"),
    ("answer", {"mode": "no_done"}, "chat_answer", "down", "stream_incomplete", "answer"),
    ("answer", {"mode": "error_event"}, "chat_answer", "down", "stream_error", "answer"),
    ("answer", {"mode": "empty"}, "chat_answer", "down", "empty_answer", "answer"),
    ("answer", {"mode": "html_page"}, "chat_answer", "down", "not_a_stream", "answer"),
    ("answer", {"mode": "hang"}, "chat_answer", "down", "first_event_timeout", "answer"),
    ("answer", {"mode": "truncated"}, "chat_answer", "down", "stream_incomplete", "answer"),
    ("answer", {"mode": "reset"}, "chat_answer", "down", "stream_incomplete", "answer"),
    ("answer", {"mode": "error", "status": 503}, "chat_answer", "down", "http_5xx", "answer"),
    ("answer", {"mode": "rate_limited"}, "chat_answer", "down", "rate_limited", "answer"),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "fault", "check", "status", "reason", "step"), CASES)
async def test_fault_mode_through_check_command(
    tmp_path: Path,
    endpoint: str,
    fault: dict[str, object],
    check: str,
    status: str,
    reason: str | None,
    step: str | None,
) -> None:
    async with await start_simulator(token="demo-token", task_complete_after=0.2) as simulator:
        simulator.set_faults({endpoint: fault})
        config = tmp_path / "probes.yaml"
        config.write_text(CONFIG.format(base=simulator.url))
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uptime_probe.cli", "check", "-c", str(config),
            "--check", check, "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == (1 if status == "down" else 0), stderr.decode()
    [line] = stdout.decode().splitlines()
    result = json.loads(line)
    assert (result["check"], result["status"], result["reason"], result["step"]) == (
        check,
        status,
        reason,
        step,
    ), result
    assert "demo-token" not in stdout.decode() + stderr.decode()
