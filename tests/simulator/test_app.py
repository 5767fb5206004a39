"""The product endpoints when healthy: page, history list (auth, paging), task lifecycle."""

from __future__ import annotations

import aiohttp
import pytest

from uptime_probe.simulator import RunningSimulator, build_app, start_simulator
from uptime_probe.simulator.conversations import CONVERSATION_COUNT, seeded_conversations

from .fakes import AUTH, FakeClock

CONVERSATIONS = "/backend-api/conversations"
TASKS = "/backend-api/tasks"


async def test_the_chat_page_has_its_title(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    async with client.get(sim.url + "/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        assert "<title>SimChat</title>" in await response.text()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic demo-token"},
        {"Authorization": "Bearer "},
        {"Authorization": "demo-token"},
        {"Authorization": "Bearer demo-token-but-longer"},
    ],
)
async def test_the_history_needs_the_bearer_token(
    sim: RunningSimulator, client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with client.get(sim.url + CONVERSATIONS, headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
        assert body["error"]["code"] == "unauthorized"


async def test_the_scheme_is_case_insensitive(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    headers = {"Authorization": "bearer demo-token"}
    async with client.get(sim.url + CONVERSATIONS, headers=headers) as response:
        assert response.status == 200


async def test_the_token_is_configurable(client: aiohttp.ClientSession) -> None:
    async with await start_simulator(token="s3cret") as sim:
        async with client.get(sim.url + CONVERSATIONS, headers=AUTH) as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer s3cret"}
        async with client.get(sim.url + CONVERSATIONS, headers=headers) as response:
            assert response.status == 200


@pytest.mark.parametrize(
    ("query", "offset", "limit", "count"),
    [
        ("", 0, 20, 20),
        ("?offset=0&limit=5", 0, 5, 5),
        ("?offset=50&limit=20", 50, 20, 7),
        ("?offset=57", 57, 20, 0),
        ("?offset=1000", 1000, 20, 0),
        ("?limit=100", 0, 100, 57),
        ("?limit=500", 0, 100, 57),  # capped
        ("?offset=&limit=", 0, 20, 20),  # empty means default
    ],
)
async def test_the_history_is_paged(
    sim: RunningSimulator,
    client: aiohttp.ClientSession,
    query: str,
    offset: int,
    limit: int,
    count: int,
) -> None:
    async with client.get(sim.url + CONVERSATIONS + query, headers=AUTH) as response:
        assert response.status == 200
        body = await response.json()
    assert (body["offset"], body["limit"], body["total"]) == (offset, limit, CONVERSATION_COUNT)
    assert len(body["items"]) == count
    for item in body["items"]:
        assert set(item) == {"id", "title", "update_time"}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("?limit=0", "limit must be an integer >= 1, got '0'"),
        ("?limit=abc", "limit must be an integer >= 1, got 'abc'"),
        ("?limit=%2B5", "limit must be an integer >= 1, got '+5'"),
        ("?offset=-1", "offset must be an integer >= 0, got '-1'"),
        ("?offset=1.5", "offset must be an integer >= 0, got '1.5'"),
        ("?offset=%D9%A3", "offset must be an integer >= 0"),  # an Arabic-Indic digit
        ("?offset=99999999999999", "offset must be an integer >= 0"),
    ],
)
async def test_bad_paging_parameters_are_a_400(
    sim: RunningSimulator, client: aiohttp.ClientSession, query: str, message: str
) -> None:
    async with client.get(sim.url + CONVERSATIONS + query, headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["code"] == "invalid_request"
    assert message in body["error"]["message"]


async def test_the_pages_add_up_to_the_whole_seeded_history(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    seen: list[dict[str, str]] = []
    for offset in range(0, CONVERSATION_COUNT, 25):
        url = f"{sim.url}{CONVERSATIONS}?offset={offset}&limit=25"
        async with client.get(url, headers=AUTH) as response:
            seen.extend((await response.json())["items"])
    assert seen == [c.to_json() for c in seeded_conversations()]
    assert len({item["id"] for item in seen}) == CONVERSATION_COUNT
    times = [item["update_time"] for item in seen]
    assert times == sorted(times, reverse=True)  # newest first


def test_the_history_is_the_same_on_every_run() -> None:
    assert seeded_conversations() == seeded_conversations()
    assert seeded_conversations()[0].id != seeded_conversations(seed=1)[0].id


async def _create(client: aiohttp.ClientSession, sim: RunningSimulator) -> str:
    async with client.post(sim.url + TASKS, json={"prompt": "write a haiku"}) as response:
        assert response.status == 202
        body = await response.json()
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"{TASKS}/{body['id']}"
    return str(body["id"])


async def _status(client: aiohttp.ClientSession, sim: RunningSimulator, task_id: str) -> str:
    async with client.get(f"{sim.url}{TASKS}/{task_id}") as response:
        assert response.status == 200
        body = await response.json()
    assert body["id"] == task_id
    return str(body["status"])


@pytest.mark.parametrize(("speed", "complete_after"), [(1.0, 2.0), (2.0, 1.0), (10.0, 0.2)])
async def test_a_task_goes_queued_running_completed(
    clock: FakeClock, client: aiohttp.ClientSession, speed: float, complete_after: float
) -> None:
    async with await start_simulator(clock=clock, speed=speed) as sim:
        task_id = await _create(client, sim)
        assert await _status(client, sim, task_id) == "queued"
        clock.advance(complete_after / 3 + 0.001)
        assert await _status(client, sim, task_id) == "running"
        clock.advance(complete_after * 2 / 3 - 0.01)
        assert await _status(client, sim, task_id) == "running"
        clock.advance(0.01)
        async with client.get(f"{sim.url}{TASKS}/{task_id}") as response:
            body = await response.json()
        assert body["status"] == "completed"
        assert body["result"]["text"]


async def test_the_completion_delay_is_configurable(
    clock: FakeClock, client: aiohttp.ClientSession
) -> None:
    async with await start_simulator(clock=clock, task_complete_after=10.0) as sim:
        task_id = await _create(client, sim)
        clock.advance(9.9)
        assert await _status(client, sim, task_id) == "running"
        clock.advance(0.1)
        assert await _status(client, sim, task_id) == "completed"


async def test_an_unknown_task_is_a_404(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    async with client.get(f"{sim.url}{TASKS}/task_nope") as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "not_found"


async def test_an_evicted_task_is_a_404(clock: FakeClock, client: aiohttp.ClientSession) -> None:
    async with await start_simulator(clock=clock, max_tasks=2) as sim:
        first = await _create(client, sim)
        for _ in range(2):
            await _create(client, sim)
        async with client.get(f"{sim.url}{TASKS}/{first}") as response:
            assert response.status == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "body must be a JSON object"),
        (b"not json", "body must be a JSON object"),
        (b"\xff\xfe", "body must be a JSON object"),
        (b"[]", "'prompt' must be a non-empty string"),
        (b"{}", "'prompt' must be a non-empty string"),
        (b'{"prompt": ""}', "'prompt' must be a non-empty string"),
        (b'{"prompt": "   "}', "'prompt' must be a non-empty string"),
        (b'{"prompt": 42}', "'prompt' must be a non-empty string"),
        (b'{"prompt": null}', "'prompt' must be a non-empty string"),
        (b'{"prompt": "' + b"x" * 20_001 + b'"}', "'prompt' must be at most 20000 characters"),
    ],
)
async def test_a_bad_task_body_is_a_400(
    sim: RunningSimulator, client: aiohttp.ClientSession, body: bytes, message: str
) -> None:
    headers = {"Content-Type": "application/json"}
    async with client.post(sim.url + TASKS, data=body, headers=headers) as response:
        assert response.status == 400
        assert message in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": ""}, "token must not be empty"),
        ({"task_complete_after": -1.0}, "task_complete_after must be >= 0"),
        ({"task_complete_after": float("nan")}, "task_complete_after must be >= 0"),
        ({"speed": 0.0}, "speed must be a positive number"),
    ],
)
def test_build_app_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_app(**kwargs)  # type: ignore[arg-type]
