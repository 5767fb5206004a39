"""The `stream` step against a real SSE server on 127.0.0.1: OpenAI- and Anthropic-style
answers, every failure reason of the step, its figures, and a journey around it."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tests.hostile.server import refused_port
from uptime_probe.probe import CheckResult, Status
from uptime_probe.probe.kinds.stream import StreamFigures
from uptime_probe.probe.model import KIND_REASONS

from ..journeys import hold_the_loop_after_connecting, plan_of, run
from .sse_target import ANSWER, CONVERSATION_ID, TOKENS, build_sse_app

ServeApp = Callable[..., Awaitable[str]]
MARGIN = 1.0  # how late a limit may be noticed on a loaded machine; far below "never"
PROMPT = {"model": "gpt-test", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
OPENAI = {"collect": "choices[0].delta.content", "done": "[DONE]"}
ANTHROPIC = {"collect": "delta.text", "done_event": "message_stop"}
SEEN = web.AppKey("seen", list[Any])  # the request headers an app received


@pytest.fixture
async def sse(serve_app: ServeApp) -> str:
    return await serve_app(build_sse_app())


def stream_step(
    url: str, name: str = "answer", style: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A POST stream step; `style` adds collect/done keys, the rest are step keys."""
    spec: dict[str, Any] = {"method": "POST", "url": url, "json": PROMPT, **(style or OPENAI)}
    for key in ("headers",):
        if key in fields:
            spec[key] = fields.pop(key)
    return {"name": name, "stream": spec, **fields}


def figures(result: CheckResult, index: int = -1) -> StreamFigures:
    found = result.steps[index].figures
    assert isinstance(found, StreamFigures), result
    return found


# --- answers that are right --------------------------------------------------------------


async def test_openai_style_answer_is_collected_and_timed(sse: str) -> None:
    step = stream_step(
        f"{sse}/openai?first_delay=0.2&gap=0.05",
        expect={"body_contains": "world", "first_event_within": "5s"},
    )

    result = await run(plan_of(step))

    assert result.status is Status.UP, result
    (answer,) = result.steps
    assert answer.kind == "stream"
    assert answer.http_status == 200
    assert answer.message == f"HTTP 200, {len(TOKENS) + 3} events, {len(ANSWER)} characters"
    got = figures(result)
    # The role chunk, one chunk per token, the finish chunk, then [DONE].
    assert got.events == len(TOKENS) + 3
    assert got.answer_chars == len(ANSWER)
    assert got.head_seconds is not None
    assert got.head_seconds < 0.2
    assert got.first_event_seconds is not None
    assert got.first_event_seconds >= 0.2
    # The first event carries an empty content: the first token comes one gap later.
    assert got.first_token_seconds is not None
    assert got.first_token_seconds - got.first_event_seconds >= 0.04
    assert got.longest_gap_seconds is not None
    assert 0.04 <= got.longest_gap_seconds < 0.2 + MARGIN
    assert got.total_seconds is not None
    assert got.first_token_seconds <= got.total_seconds <= answer.duration_seconds + 0.01
    assert got.total_seconds >= 0.2 + 0.05 * len(TOKENS) - 0.02
    assert answer.assertions[0].passed
    assert answer.assertions[0].subject == "body"


async def test_anthropic_style_answer_ends_at_its_done_event(sse: str) -> None:
    step = stream_step(
        f"{sse}/anthropic",
        style=ANTHROPIC,
        expect={"answer_min_chars": len(ANSWER), "body_matches": "^Hello, world!$"},
    )

    result = await run(plan_of(step))

    assert result.status is Status.UP, result
    got = figures(result)
    # message_start, content_block_start, ping, the deltas, content_block_stop,
    # message_delta, message_stop.
    assert got.events == 3 + len(TOKENS) + 3
    assert got.answer_chars == len(ANSWER)


async def test_without_done_the_stream_ends_when_the_server_closes_it(sse: str) -> None:
    step = stream_step(f"{sse}/openai?no_done=1", style={"collect": "choices[0].delta.content"})

    result = await run(plan_of(step))

    assert result.status is Status.UP, result
    assert figures(result).events == len(TOKENS) + 2


async def test_without_collect_body_checks_read_every_events_data(sse: str) -> None:
    step = stream_step(
        f"{sse}/anthropic",
        style={"done_event": "message_stop"},
        expect={"body_contains": ['"text": "ld"', '"type": "ping"']},
    )

    result = await run(plan_of(step))

    assert result.status is Status.UP, result
    assert figures(result).answer_chars is None
    assert figures(result).first_token_seconds is None


async def test_a_get_stream_sends_the_event_stream_accept_header(serve_app: ServeApp) -> None:

    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Accept", ""))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        await response.write(b"data: one\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/events", handler)
    url = await serve_app(app)

    result = await run(plan_of({"name": "events", "stream": {"url": f"{url}/events"}}))

    assert result.status is Status.UP, result
    assert seen == ["text/event-stream"]
    assert figures(result).events == 1


# --- every failure of the table, with its reason -----------------------------------------

FAILURES = [
    pytest.param(
        "/openai?first_delay=3",
        {"expect": {"first_event_within": "300ms"}},
        "first_event_timeout",
        "no event within 0.3s of the request: the head came after",
        id="first-event-late",
    ),
    pytest.param(
        "/openai?comments=100&gap=0.05",
        {"expect": {"first_event_within": "300ms"}},
        "first_event_timeout",
        "comments",
        id="only-comments",
    ),
    pytest.param(
        "/openai?stall_after=2",
        {"expect": {"max_gap": "300ms"}},
        "stream_stalled",
        "no event for 0.3",
        id="stall-mid-answer",
    ),
    pytest.param(
        "/openai?empty=1",
        {},
        "empty_answer",
        "the answer has 0 characters, expected at least 1 (3 events)",
        id="empty",
    ),
    pytest.param(
        "/anthropic",
        {"style": ANTHROPIC, "expect": {"answer_min_chars": 100}},
        "empty_answer",
        "the answer has 13 characters, expected at least 100",
        id="short",
    ),
    pytest.param(
        "/openai?no_done=1",
        {},
        "stream_incomplete",
        "the stream ended after 8 events without its done data '[DONE]'",
        id="no-done",
    ),
    pytest.param(
        "/anthropic?no_done=1",
        {"style": ANTHROPIC},
        "stream_incomplete",
        "without its done event 'message_stop'",
        id="no-done-event",
    ),
    pytest.param(
        "/openai?drop=1",
        {},
        "stream_incomplete",
        "the stream broke after 8 events",
        id="dropped",
    ),
    pytest.param(
        "/openai?error=1",
        {},
        "stream_error",
        "the service sent an error in the stream (event 3): The server is overloaded "
        "[server_error]",
        id="openai-error",
    ),
    pytest.param(
        "/anthropic?error=1",
        {"style": ANTHROPIC},
        "stream_error",
        "(event 5): The server is overloaded [overloaded_error]",
        id="error-event",
    ),
    pytest.param(
        "/openai?invalid=1",
        {},
        "invalid_event",
        "event 1 is not JSON, which collect needs: data '<html>not json</html>'",
        id="invalid",
    ),
    pytest.param(
        "/openai?html=1",
        {},
        "not_a_stream",
        "HTTP 200 with Content-Type 'text/html; charset=utf-8', not text/event-stream",
        id="html",
    ),
    pytest.param("/openai?status=503", {}, "http_5xx", "HTTP 503, expected 2xx", id="503"),
    pytest.param("/openai?status=401", {}, "http_4xx", "HTTP 401, expected 2xx", id="401"),
    pytest.param(
        "/openai",
        {"expect": {"body_contains": "goodbye"}},
        "assertion_failed",
        "body = 13 bytes without it, expected to contain 'goodbye'",
        id="answer-assertion",
    ),
    pytest.param(
        "/openai",
        {"expect": {"headers": {"X-Request-Id": "."}}},
        "assertion_failed",
        "header X-Request-Id = null",
        id="header-assertion",
    ),
    pytest.param(
        "/openai",
        {"max_body": 300},
        "body_too_large",
        "stream exceeds max_body 300 bytes (decoded) after 1 event",
        id="max-body",
    ),
    pytest.param(
        "/openai?forever=1&gap=0.05",
        {},
        "timeout",
        "the stream was still open after",
        id="never-ends",
    ),
]


@pytest.mark.parametrize(("path", "fields", "reason", "says"), FAILURES)
async def test_stream_failure_reason(
    sse: str, path: str, fields: dict[str, Any], reason: str, says: str
) -> None:
    fields = dict(fields)
    step = stream_step(f"{sse}{path}", style=fields.pop("style", None), **fields)
    started = time.perf_counter()

    result = await run(plan_of(step, timeout="2s"))

    elapsed = time.perf_counter() - started
    assert result.reason == reason, result
    assert result.failed_step == "answer"
    assert says in result.message, result
    (answer,) = result.steps
    assert answer.kind == "stream"
    assert isinstance(answer.figures, StreamFigures), answer
    if reason in ("first_event_timeout", "stream_stalled"):
        # Enforced while reading: at the limit, long before the stream would go on.
        assert elapsed < 0.3 + MARGIN, elapsed
    if reason != "timeout":
        assert elapsed < 2.0, elapsed


def test_every_stream_reason_has_a_failure_case() -> None:
    """A new reason of the stream kind must be shown here before it can be reported."""
    covered = {param.values[2] for param in FAILURES}
    assert set(KIND_REASONS["stream"]) <= covered


async def test_a_late_first_event_within_the_limit_is_degraded(sse: str) -> None:
    step = stream_step(
        f"{sse}/openai?first_delay=0.3",
        expect={"first_event_within": "5s", "max_first_event": "100ms"},
    )

    result = await run(plan_of(step))

    assert result.status is Status.DEGRADED, result
    assert result.reason is None
    assert "above max_first_event 0.1s" in result.message
    assert result.message.startswith("answer: first event after 0.3")


async def test_a_slow_whole_stream_is_degraded_by_max_latency(sse: str) -> None:
    step = stream_step(f"{sse}/openai?gap=0.05", expect={"max_latency": "100ms"})

    result = await run(plan_of(step))

    assert result.status is Status.DEGRADED, result
    assert "above max_latency 0.1s" in result.message


async def test_the_status_is_judged_before_the_content_type(sse: str) -> None:
    """A 200 HTML page where a 200 was not expected: the status speaks first."""
    step = stream_step(f"{sse}/openai?html=1", expect={"status": 201})

    result = await run(plan_of(step))

    assert result.reason == "unexpected_status", result


async def test_not_a_stream_keeps_the_page_as_its_sample(sse: str) -> None:
    result = await run(plan_of(stream_step(f"{sse}/openai?html=1")))

    sample = result.steps[0].response_sample
    assert sample is not None
    assert "<title>Something went wrong</title>" in sample


async def test_a_failure_sample_holds_the_last_events(sse: str) -> None:
    result = await run(plan_of(stream_step(f"{sse}/openai?error=1")))

    sample = result.steps[0].response_sample
    assert sample is not None
    assert sample.endswith('"type": "server_error", "code": null}}\n\n'), sample
    assert sample.startswith("data: {")
    assert len(sample.encode()) <= 2048


async def test_the_sample_is_at_most_2_kib_of_the_newest_events(sse: str) -> None:
    result = await run(plan_of(stream_step(f"{sse}/openai?forever=1&gap=0.001"), timeout="1s"))

    (answer,) = result.steps
    assert answer.reason == "timeout", result
    assert answer.response_sample is not None
    assert 1500 < len(answer.response_sample.encode()) <= 2048
    assert answer.response_sample.endswith('"finish_reason": null}]}\n\n')
    got = figures(result)
    assert got.events > 20
    assert got.total_seconds is None  # it never ended
    assert f"after {got.events} events" in answer.message
    assert "(journey deadline 1s)" in answer.message


async def test_a_deadline_before_the_head_says_so(serve_app: ServeApp) -> None:
    import asyncio

    async def never(request: web.Request) -> web.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    app = web.Application()
    app.router.add_post("/never", never)
    url = await serve_app(app)

    result = await run(plan_of(stream_step(f"{url}/never"), timeout="300ms"))

    assert result.reason == "timeout", result
    assert result.message == "answer: no response head before the deadline (journey deadline 0.3s)"
    assert figures(result).head_seconds is None


async def test_the_services_error_is_quoted_with_secrets_redacted(sse: str) -> None:
    step = stream_step(
        f"{sse}/openai?error=1&echo_auth=1", headers={"Authorization": "Bearer {{ token }}"}
    )

    result = await run(plan_of(step, secrets={"token": "s3cr3t-t0ken"}))

    assert result.reason == "stream_error", result
    assert "The server is overloaded for Bearer" in result.message
    assert "s3cr3t-t0ken" not in result.message
    sample = result.steps[0].response_sample
    assert sample is not None
    assert "overloaded" in sample
    assert "s3cr3t-t0ken" not in sample


async def test_a_refused_connection_is_connect_refused_with_no_events() -> None:
    port = await refused_port()
    result = await run(plan_of(stream_step(f"http://127.0.0.1:{port}/openai")))

    assert result.reason == "connect_refused", result
    assert figures(result).events == 0
    assert figures(result).head_seconds is None


# --- journeys ----------------------------------------------------------------------------


async def test_a_journey_creates_a_conversation_streams_into_it_and_reads_it_back(
    sse: str,
) -> None:
    """The request step's cookie and extracted id reach the stream step; the stream step's
    extracted value reaches the step after it."""
    create = {
        "name": "create",
        "request": {"method": "POST", "url": f"{sse}/conversations"},
        "expect": {"status": 201},
        "extract": {"conversation": "id"},
    }
    answer = {
        "name": "answer",
        "stream": {
            "method": "POST",
            "url": f"{sse}/openai?need_conversation=1",
            "json": {**PROMPT, "conversation_id": "{{ conversation }}"},
            **OPENAI,
        },
        "extract": {"completion": "id"},
    }
    read = {
        "name": "read",
        "request": {"url": f"{sse}/conversations/{{{{ completion }}}}"},
        "expect": {"json": [{"query": "id", "equals": "chatcmpl-1"}]},
    }

    result = await run(plan_of(create, answer, read))

    assert result.status is Status.UP, result
    assert [step.kind for step in result.steps] == ["request", "stream", "request"]
    assert result.steps[1].figures is not None
    assert result.steps[0].figures is None
    assert CONVERSATION_ID  # the target checked it arrived


async def test_a_stream_without_what_it_extracts_is_extraction_failed(sse: str) -> None:
    step = stream_step(f"{sse}/openai", extract={"missing": "no_such_key"})

    result = await run(plan_of(step))

    assert result.reason == "extraction_failed", result
    assert "extract missing: query no_such_key found nothing in 9 events" in result.message


# --- the request's machinery: encoding, judging, redaction, secrets' origins -------------


def _event_app(
    *events: bytes, encoding: str | None = None, cut: bool = False, path: str = "/events"
) -> web.Application:
    """An app answering POST `path` with these events, gzip-compressed with a flush after
    each when `encoding` is set (and labelled with it); `cut` ends the body before the gzip
    stream's end."""
    import zlib

    seen: list[Any] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers)
        headers = {"Content-Type": "text/event-stream"}
        if encoding:
            headers["Content-Encoding"] = encoding
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        compressor = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
        for event in events:
            if encoding:
                await response.write(
                    compressor.compress(event) + compressor.flush(zlib.Z_SYNC_FLUSH)
                )
            else:
                await response.write(event)
        if encoding and not cut:
            await response.write(compressor.flush())
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post(path, handler)
    app[SEEN] = seen
    return app


def _openai_events(*tokens: str) -> list[bytes]:
    import json

    return [
        b"data: " + json.dumps({"choices": [{"delta": {"content": token}}]}).encode() + b"\n\n"
        for token in tokens
    ] + [b"data: [DONE]\n\n"]


async def test_a_gzip_stream_is_decoded_as_it_arrives(serve_app: ServeApp) -> None:
    app = _event_app(*_openai_events(*TOKENS), encoding="gzip")
    url = await serve_app(app)

    result = await run(plan_of(stream_step(f"{url}/events")))

    assert result.status is Status.UP, result
    assert figures(result).answer_chars == len(ANSWER)
    assert figures(result).events == len(TOKENS) + 1
    # What it decodes, said as a request step says it (probe/decoding.py).
    assert "gzip" in app[SEEN][0]["Accept-Encoding"]


async def test_a_compressed_stream_cut_short_is_invalid_encoding(serve_app: ServeApp) -> None:
    """Without a done event the end of the body ends the stream: a gzip stream that stops
    before its own end is a broken body, not a whole answer."""
    app = _event_app(*_openai_events(*TOKENS)[:-1], encoding="gzip", cut=True)
    url = await serve_app(app)
    step = stream_step(f"{url}/events", style={"collect": "choices[0].delta.content"})

    result = await run(plan_of(step))

    assert result.reason == "invalid_encoding", result
    assert "gzip body ends before its compressed stream does" in result.message
    assert figures(result).answer_chars == len(ANSWER)


async def test_an_encoding_we_did_not_offer_is_invalid_encoding(serve_app: ServeApp) -> None:
    url = await serve_app(_event_app(*_openai_events("hi"), encoding="compress"))

    result = await run(plan_of(stream_step(f"{url}/events")))

    assert result.reason == "invalid_encoding", result
    assert "unsupported Content-Encoding 'compress'" in result.message


async def test_a_large_answer_is_judged_off_the_loop(serve_app: ServeApp) -> None:
    """body_* on the answer go through the step's StepJudge, as a request's body does:
    an answer over the loop's budget (256 KiB of text) is judged in a worker."""
    from uptime_probe.probe.judging import JudgingPool

    tokens = ["word " * 1000] * 60 + ["the end"]  # about 300 KB of answer
    url = await serve_app(_event_app(*_openai_events(*tokens)))
    async with JudgingPool(max_workers=1) as pool:
        passing = stream_step(f"{url}/events", max_body="2MiB", expect={"body_contains": "the end"})
        failing = stream_step(
            f"{url}/events", max_body="2MiB", expect={"body_not_contains": "the end"}
        )

        passed = await run(plan_of(passing, judging=pool))
        failed = await run(plan_of(failing, judging=pool))

        assert pool.started >= 1  # a worker judged them
    assert passed.status is Status.UP, passed
    assert failed.reason == "assertion_failed", failed
    assert "not to contain 'the end'" in failed.message
    assert figures(failed).answer_chars == sum(map(len, tokens))


async def test_a_deadline_while_the_answer_waits_for_judging_says_so(
    serve_app: ServeApp,
) -> None:
    """Cut while its answer waits for the judging worker (busy with another check's slow
    query): `timeout` naming the judging, as for a request step, the figures kept."""
    import asyncio

    from uptime_probe.probe.judging import JudgingPool

    from ..journeys import step
    from ..test_judging import SLOW_QUERY, hostile_app

    hostile = await serve_app(hostile_app())
    url = await serve_app(_event_app(*_openai_events(*["word " * 1000] * 60)))
    async with JudgingPool(max_workers=1) as pool:
        slow = step(hostile + "/big", expect={"json": [{"query": SLOW_QUERY, "gt": 0}]})
        busy = asyncio.create_task(run(plan_of(slow, timeout="20s", judging=pool)))
        for _ in range(2000):  # until the slow check holds the only worker's slot (bounded)
            if pool.workers == 1:
                break
            await asyncio.sleep(0.005)
        answer = stream_step(f"{url}/events", max_body="2MiB", expect={"body_contains": "x"})

        result = await run(plan_of(answer, judging=pool, timeout="500ms"))
        busy.cancel()
        await asyncio.gather(busy, return_exceptions=True)

    assert result.reason == "timeout", result
    assert result.message == (
        "answer: judging the response (waiting for a free judging worker) did not finish "
        "before the deadline (journey deadline 0.5s)"
    ), result
    assert figures(result).events == 61
    assert figures(result).answer_chars == 60 * 5000


async def test_a_secret_straddling_a_cut_is_redacted_whole(serve_app: ServeApp) -> None:
    """The service's error is quoted cut at 200 characters, and the sample at 2 KiB: a
    secret lying across either cut is redacted before the cut, never half kept."""
    import json

    secret = "s3cr3t-t0ken-0123456789"
    # The message's cut (200 characters) falls inside the secret.
    message = "m" * 190 + secret + "!" * 10
    error = b'data: {"error": {"message": ' + json.dumps(message).encode() + b"}}\n\n"
    # One event longer than the sample, the secret across its 2,048th byte.
    prefix = b'data: {"error": {"message": "'
    long_error = prefix + b"q" * (2048 - len(prefix) - 10) + secret.encode() + b'"}}\n\n'
    url = await serve_app(_event_app(*_openai_events("Hi")[:1], error, path="/error"))
    url2 = await serve_app(_event_app(long_error, path="/long"))
    headers = {"Authorization": "Bearer {{ token }}"}

    quoted = await run(
        plan_of(stream_step(f"{url}/error", headers=headers), secrets={"token": secret})
    )
    sampled = await run(
        plan_of(stream_step(f"{url2}/long", headers=headers), secrets={"token": secret})
    )

    assert (quoted.reason, sampled.reason) == ("stream_error", "stream_error")
    assert "mmmm" in quoted.message
    for result in (quoted, sampled):
        sample = result.steps[0].response_sample
        assert sample is not None
        for text in (result.message, sample):
            for size in range(6, len(secret) + 1):
                assert secret[:size] not in text, (size, text[-80:])
    sample = sampled.steps[0].response_sample
    assert sample is not None
    assert sample.startswith(prefix.decode() + "qqq")
    assert sample.endswith("[REDACTED]"), sample[-40:]


async def test_a_secret_header_does_not_follow_the_stream_to_another_origin(
    serve_app: ServeApp,
) -> None:
    """The stream's request is a request's (prepare_request): a header carrying a secret
    is withheld from a redirect to another origin, and the message says so."""
    other = _event_app(*_openai_events(*TOKENS))
    elsewhere = await serve_app(other)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{elsewhere}/events")

    home = web.Application()
    home.router.add_post("/events", moved)
    url = await serve_app(home)
    step = stream_step(f"{url}/events", headers={"X-Api-Key": "{{ token }}"})

    result = await run(plan_of(step, secrets={"token": "s3cr3t-t0ken"}))

    assert result.status is Status.UP, result
    assert "X-Api-Key" not in other[SEEN][0]
    assert "withheld X-Api-Key from http://127.0.0.1:" in result.steps[0].message, result


async def test_a_busy_loop_before_the_request_is_sent_is_not_the_streams_time(
    sse: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop is held for 300 ms (other runs' work) after the connection came up and
    before the request is written: the step's duration and every figure of the stream count
    from the request going out, as an http step's latency does. They counted from the
    step's start, so a busy daemon reported a slow first token."""
    hold_the_loop_after_connecting(monkeypatch, 0.3)
    step = stream_step(f"{sse}/openai", expect={"first_event_within": "5s"})

    started = time.perf_counter()
    result = await run(plan_of(step))
    wall = time.perf_counter() - started

    assert result.status is Status.UP, result
    assert wall >= 0.3
    (answer,) = result.steps
    got = figures(result)
    for figure in (got.head_seconds, got.first_event_seconds, got.total_seconds):
        assert figure is not None
        assert figure < wall - 0.25
    assert answer.duration_seconds < wall - 0.25
    assert result.duration_seconds < wall - 0.25
    assert got.total_seconds <= answer.duration_seconds + 1e-6
