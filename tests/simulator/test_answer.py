"""`POST /backend-api/conversation`: the answer to a message, streamed as OpenAI streams it,
and each of its stream faults as a client reads it, event by event, with arrival times."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from uptime_probe.simulator import RunningSimulator
from uptime_probe.simulator.answers import ANSWER, DONE, TOKENS, role_event, stop_event
from uptime_probe.simulator.app import ERROR_AFTER, STALL_AFTER, TOKEN_INTERVAL
from uptime_probe.simulator.state import SIM_STATE

from .fakes import AUTH, wait_until

PATH = "/backend-api/conversation"
MESSAGE = {"messages": [{"role": "user", "content": "Say hello"}]}


@dataclass
class Streamed:
    """What a client read: the head, then each event's data with when its bytes came."""

    status: int
    content_type: str
    head_at: float
    events: list[tuple[float, str]] = field(default_factory=list)
    ended: bool = False

    @property
    def data(self) -> list[str]:
        return [data for _, data in self.events]

    def answer(self) -> str:
        pieces = []
        for data in self.data:
            if data != "[DONE]" and "choices" in (chunk := json.loads(data)):
                pieces.append(chunk["choices"][0]["delta"].get("content", ""))
        return "".join(pieces)

    def gaps(self) -> list[float]:
        times = [at for at, _ in self.events]
        return [b - a for a, b in itertools.pairwise(times)]


async def stream(
    sim: RunningSimulator,
    client: aiohttp.ClientSession,
    body: Any = MESSAGE,
    headers: dict[str, str] = AUTH,
) -> Streamed:
    started = time.monotonic()
    async with client.post(sim.url + PATH, json=body, headers=headers) as response:
        read = Streamed(response.status, response.content_type, time.monotonic() - started)
        buffer = b""
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                data = event.decode().removeprefix("data: ")
                read.events.append((time.monotonic() - started, data))
        read.ended = True
    return read


async def test_the_answer_streams_token_by_token_and_ends_with_done(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    read = await stream(sim, client)

    assert (read.status, read.content_type) == (200, "text/event-stream")
    assert read.answer() == ANSWER
    assert read.data[-1] == "[DONE]"
    # role first, one event per token, the stop chunk, [DONE]
    assert len(read.events) == len(TOKENS) + 3
    first = json.loads(read.data[0])
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert json.loads(read.data[-2])["choices"][0]["finish_reason"] == "stop"
    # Token by token: the answer takes about one interval per token.
    assert read.events[-1][0] - read.events[0][0] >= (len(TOKENS) - 1) * TOKEN_INTERVAL


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "demo-token"}]
)
async def test_the_answer_needs_the_bearer_token(
    sim: RunningSimulator, client: aiohttp.ClientSession, headers: dict[str, str]
) -> None:
    async with client.post(sim.url + PATH, json=MESSAGE, headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("not json", "'messages' must be a non-empty list"),
        ({"messages": []}, "'messages' must be a non-empty list"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, "must be the user's"),
        ({"messages": [{"role": "user", "content": "  "}]}, "non-empty string 'content'"),
        ({"messages": [{"role": "user", "content": "x" * 20_001}]}, "at most 20000"),
    ],
)
async def test_a_bad_message_is_400(
    sim: RunningSimulator, client: aiohttp.ClientSession, body: Any, says: str
) -> None:
    raw = body if isinstance(body, str) else json.dumps(body)
    async with client.post(sim.url + PATH, data=raw, headers=AUTH) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["code"] == "invalid_request"
    assert says in error["message"]


async def test_slow_first_token_sends_the_head_then_waits(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": {"mode": "slow_first_token", "latency": 0.4}})
    read = await stream(sim, client)

    assert read.head_at < 0.3  # the head at once: a 200 event stream
    assert read.events[0][0] >= 0.4  # nothing until the latency has passed
    assert read.answer() == ANSWER
    assert read.data[-1] == "[DONE]"


async def test_stall_goes_silent_mid_answer_then_finishes(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": {"mode": "stall", "latency": 0.5}})
    read = await stream(sim, client)

    longest = max(read.gaps())
    assert longest >= 0.5
    # The silence comes after the role event and STALL_AFTER tokens.
    assert read.gaps().index(longest) == STALL_AFTER
    assert read.answer() == ANSWER
    assert read.data[-1] == "[DONE]"


async def test_a_stall_is_released_when_the_client_leaves(sim: RunningSimulator) -> None:
    sim.set_faults({"answer": {"mode": "stall", "latency": 3600}})
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as impatient:
        with pytest.raises(TimeoutError):
            await stream(sim, impatient)
    state = sim.app[SIM_STATE]
    await wait_until(lambda: not state.hanging)


async def test_no_done_sends_the_whole_answer_without_its_end(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": "no_done"})
    read = await stream(sim, client)

    assert read.ended
    assert read.answer() == ANSWER
    assert "[DONE]" not in read.data
    assert json.loads(read.data[-1])["choices"][0]["finish_reason"] == "stop"


async def test_error_event_sends_a_few_tokens_then_the_services_error(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": "error_event"})
    read = await stream(sim, client)

    assert read.status == 200
    assert read.answer() == "".join(TOKENS[:ERROR_AFTER])
    error = json.loads(read.data[-1])["error"]
    assert (error["type"], error["message"][:24]) == ("server_error", "The server had an error ")
    assert "[DONE]" not in read.data


async def test_empty_streams_an_answer_with_no_token(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": "empty"})
    async with client.post(sim.url + PATH, json=MESSAGE, headers=AUTH) as response:
        assert response.status == 200
        assert await response.read() == role_event() + stop_event() + DONE
    sim.set_faults({"answer": "empty"})
    async with client.post(sim.url + PATH, json=MESSAGE) as response:
        assert response.status == 401  # an empty answer still needs the token


async def test_html_page_answers_200_with_a_page_before_any_check(
    sim: RunningSimulator, client: aiohttp.ClientSession
) -> None:
    sim.set_faults({"answer": "html_page"})
    async with client.post(sim.url + PATH, data=b"anything") as response:
        assert (response.status, response.content_type) == (200, "text/html")
        assert "<title>Just a moment...</title>" in await response.text()
