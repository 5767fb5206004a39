"""Every endpoint under every fault mode that applies, as a client sees it on the wire."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from uptime_probe.simulator import RunningSimulator
from uptime_probe.simulator.answers import DONE, role_event, stop_event, whole_answer
from uptime_probe.simulator.state import SIM_STATE

from .fakes import AUTH, FakeClock, wait_until

ENDPOINTS = ["chat", "conversations", "task_create", "task_status", "answer"]
TASKS = "/backend-api/tasks"
ANSWER_PATH = "/backend-api/conversation"
SHORT = aiohttp.ClientTimeout(total=0.3)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def _request(
    sim: RunningSimulator,
    client: aiohttp.ClientSession,
    endpoint: str,
    *,
    task_id: str = "",
    timeout: aiohttp.ClientTimeout | None = None,
    auth: bool = True,
) -> Answer:
    method, path, body = {
        "chat": ("GET", "/", None),
        "conversations": ("GET", "/backend-api/conversations", None),
        "task_create": ("POST", TASKS, {"prompt": "hello"}),
        "task_status": ("GET", f"{TASKS}/{task_id}", None),
        "answer": ("POST", ANSWER_PATH, {"messages": [{"role": "user", "content": "Hi"}]}),
    }[endpoint]
    headers = AUTH if auth else {}
    async with client.request(
        method, sim.url + path, json=body, headers=headers, timeout=timeout or client.timeout
    ) as response:
        return Answer(response.status, dict(response.headers), await response.read())


async def _task(sim: RunningSimulator, client: aiohttp.ClientSession) -> str:
    """A task made while task_create is ok, for the task_status cases."""
    answer = await _request(sim, client, "task_create")
    assert answer.status == 202
    return str(answer.json()["id"])


async def _faulted(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str, spec: object
) -> str:
    """Make a task if the endpoint needs one, then set the fault; returns the task id."""
    task_id = await _task(sim, client) if endpoint == "task_status" else ""
    sim.set_faults({endpoint: spec})
    return task_id


# endpoint -> (status, a check of the healthy answer)
HEALTHY = {
    "chat": 200,
    "conversations": 200,
    "task_create": 202,
    "task_status": 200,
    "answer": 200,
}


def _assert_healthy(endpoint: str, answer: Answer) -> None:
    assert answer.status == HEALTHY[endpoint]
    if endpoint == "chat":
        assert b"<title>SimChat</title>" in answer.body
        return
    if endpoint == "answer":
        assert answer.headers["Content-Type"].startswith("text/event-stream")
        assert answer.body == whole_answer()
        return
    body = answer.json()
    if endpoint == "conversations":
        assert (len(body["items"]), body["total"]) == (20, 57)
    else:
        assert body["status"] == "queued"
        assert body["id"].startswith("task_")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_ok_answers_normally(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str
) -> None:
    task_id = await _faulted(sim, client, endpoint, "ok")
    _assert_healthy(endpoint, await _request(sim, client, endpoint, task_id=task_id))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_slow_answers_normally_after_the_latency(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str
) -> None:
    task_id = await _faulted(sim, client, endpoint, {"mode": "slow", "latency": 0.2})
    started = time.monotonic()
    answer = await _request(sim, client, endpoint, task_id=task_id)
    assert time.monotonic() - started >= 0.2
    _assert_healthy(endpoint, answer)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_hang_never_answers_and_is_released_when_the_client_leaves(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str
) -> None:
    task_id = await _faulted(sim, client, endpoint, "hang")
    with pytest.raises(TimeoutError):
        await _request(sim, client, endpoint, task_id=task_id, timeout=SHORT)
    state = sim.app[SIM_STATE]
    await wait_until(lambda: not state.hanging)  # the held request went with its client
    assert len(state.tasks) == (1 if endpoint == "task_status" else 0)  # nothing was created


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("spec", "status"), [("error", 500), ({"mode": "error", "status": 503}, 503)]
)
async def test_error_answers_the_status(
    sim: RunningSimulator,
    client: aiohttp.ClientSession,
    endpoint: str,
    spec: object,
    status: int,
) -> None:
    task_id = await _faulted(sim, client, endpoint, spec)
    answer = await _request(sim, client, endpoint, task_id=task_id)
    assert answer.status == status
    if endpoint == "chat":
        assert answer.headers["Content-Type"].startswith("text/html")
        assert f"<title>Error {status}</title>".encode() in answer.body
        assert b"SimChat" not in answer.body
    else:
        assert answer.json() == {
            "error": {"code": "simulated_error", "message": f"simulated fault: status {status}"}
        }


@pytest.mark.parametrize(
    ("endpoint", "status", "body"),
    [
        ("chat", 200, b""),
        ("conversations", 200, b'{"items": [], "total": 0, "offset": 0, "limit": 20}'),
        ("task_create", 202, b"{}"),
        ("task_status", 200, b"{}"),
        ("answer", 200, role_event() + stop_event() + DONE),
    ],
)
async def test_empty_answers_success_with_nothing_in_it(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str, status: int, body: bytes
) -> None:
    task_id = await _faulted(sim, client, endpoint, "empty")
    answer = await _request(sim, client, endpoint, task_id=task_id)
    assert (answer.status, answer.body) == (status, body)
    if endpoint == "task_create":
        assert len(sim.app[SIM_STATE].tasks) == 0  # nothing was made


async def test_empty_history_still_needs_the_token(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"conversations": "empty"})
    assert (await _request(sim, client, "conversations", auth=False)).status == 401


@pytest.mark.parametrize(
    ("mode", "status"), [("error", 500), ("rate_limited", 429), ("truncated", 200)]
)
async def test_front_door_faults_come_before_authentication(
    sim: RunningSimulator, client: aiohttp.ClientSession, mode: str, status: int
) -> None:
    sim.set_faults({"conversations": mode})
    assert (await _request(sim, client, "conversations", auth=False)).status == status


async def test_stuck_task_create_makes_tasks_that_never_complete(
    sim: RunningSimulator, client: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.set_faults({"task_create": "stuck"})
    answer = await _request(sim, client, "task_create")
    assert answer.status == 202  # accepted as usual
    stuck_id = str(answer.json()["id"])
    clock.advance(1_000_000)
    assert (await _request(sim, client, "task_status", task_id=stuck_id)).json() == {
        "id": stuck_id,
        "status": "running",
    }
    sim.clear_faults()  # the fault goes, tasks made under it stay stuck
    fresh_id = await _task(sim, client)
    clock.advance(2)
    stuck = await _request(sim, client, "task_status", task_id=stuck_id)
    fresh = await _request(sim, client, "task_status", task_id=fresh_id)
    assert stuck.json()["status"] == "running"
    assert fresh.json()["status"] == "completed"


async def test_stuck_task_status_answers_running_for_every_task(
    sim: RunningSimulator, client: aiohttp.ClientSession, clock: FakeClock
) -> None:
    task_id = await _task(sim, client)
    clock.advance(10)

    async def status_of(some_id: str) -> tuple[int, Any]:
        answer = await _request(sim, client, "task_status", task_id=some_id)
        return answer.status, answer.json()

    assert (await status_of(task_id))[1]["status"] == "completed"
    sim.set_faults({"task_status": "stuck"})
    assert await status_of(task_id) == (200, {"id": task_id, "status": "running"})
    assert (await status_of("task_nope"))[0] == 404  # unknown ids are still unknown
    sim.clear_faults()
    assert (await status_of(task_id))[1]["status"] == "completed"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_reset_drops_the_connection_mid_body(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str
) -> None:
    task_id = await _faulted(sim, client, endpoint, "reset")
    with pytest.raises((aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        await _request(sim, client, endpoint, task_id=task_id)
    sim.clear_faults()  # the server itself is unharmed
    _assert_healthy(endpoint, await _request(sim, client, endpoint, task_id=task_id))


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_truncated_answers_success_with_a_cut_off_body(
    sim: RunningSimulator, client: aiohttp.ClientSession, endpoint: str
) -> None:
    task_id = await _faulted(sim, client, endpoint, "truncated")
    answer = await _request(sim, client, endpoint, task_id=task_id)
    assert answer.status == HEALTHY[endpoint]
    assert answer.body  # something came, completely by the transport's measure
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    if endpoint == "chat":
        assert answer.body.startswith(b"<!doctype html>")
        assert b"<title>SimChat</title>" not in answer.body
    elif endpoint == "answer":  # events cut off before the answer's end
        assert whole_answer().startswith(answer.body)
        assert DONE not in answer.body
    else:
        assert answer.headers["Content-Type"].startswith("application/json")
        with pytest.raises(json.JSONDecodeError):
            answer.json()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("spec", "retry_after"),
    [("rate_limited", "5"), ({"mode": "rate_limited", "retry_after": 30}, "30")],
)
async def test_rate_limited_answers_429_with_retry_after(
    sim: RunningSimulator,
    client: aiohttp.ClientSession,
    endpoint: str,
    spec: object,
    retry_after: str,
) -> None:
    task_id = await _faulted(sim, client, endpoint, spec)
    answer = await _request(sim, client, endpoint, task_id=task_id)
    assert (answer.status, answer.headers["Retry-After"]) == (429, retry_after)
    assert answer.json()["error"]["code"] == "rate_limited"
