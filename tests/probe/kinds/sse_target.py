"""A chat service on 127.0.0.1 that answers in server-sent events, as the big APIs do.

`POST /openai` streams OpenAI chat-completion chunks (`choices[0].delta.content`, ending
with `data: [DONE]`); `POST /anthropic` streams Anthropic Messages events (`event:
content_block_delta` with `delta.text`, ending with `event: message_stop`). Query
parameters make either misbehave, one way each:

    first_delay=S   wait S seconds before the first event (the head goes at once)
    gap=S           wait S seconds between tokens
    stall_after=N   after N tokens, wait `stall` seconds (default 30) before the rest
    comments=N      N keep-alive comments (`: ping`), every `gap` seconds, before the first event
    forever=1       after the answer, one event every `gap` seconds (default 0.05), never ending
    no_done=1       end the body without the done event
    drop=1          after the tokens, close the connection without ending the chunked body
    error=1         an error in the stream after the first token (the service's own format)
    empty=1         no token at all
    invalid=1       one event whose data is not JSON
    html=1          200 text/html: an error page where the stream should be
    status=N        answer HTTP N with a JSON error body
    echo_auth=1     put the Authorization header in the error (to test redaction)

`POST /conversations` answers `{"id": "conv-42"}` and sets a session cookie;
`POST /openai?need_conversation=1` then demands that cookie and `conversation_id` in the
JSON body, so a journey proves it carries both from one step to the next.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

TOKENS = ["Hel", "lo", ",", " wor", "ld", "!"]
ANSWER = "".join(TOKENS)
CONVERSATION_ID = "conv-42"
# A stall must outlast every test's limits, never the server's own cleanup (shutdown_timeout).
DEFAULT_STALL = 30.0


def _seconds(request: web.Request, name: str, default: float = 0.0) -> float:
    return float(request.query.get(name, default))


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name) == "1"


async def _pause(seconds: float) -> None:
    if seconds > 0:
        # The target being slow is the behaviour under test, not synchronisation.
        await asyncio.sleep(seconds)


def _openai_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def _anthropic_event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


class _Style:
    """How one API frames its stream."""

    def start(self) -> list[bytes]:
        raise NotImplementedError

    def token(self, text: str) -> bytes:
        raise NotImplementedError

    def end(self) -> list[bytes]:
        raise NotImplementedError

    def done(self) -> bytes:
        raise NotImplementedError

    def error(self, message: str) -> bytes:
        raise NotImplementedError

    def filler(self, index: int) -> bytes:
        raise NotImplementedError


class _OpenAI(_Style):
    def start(self) -> list[bytes]:
        return [_openai_chunk({"role": "assistant", "content": ""})]

    def token(self, text: str) -> bytes:
        return _openai_chunk({"content": text})

    def end(self) -> list[bytes]:
        return [_openai_chunk({}, finish="stop")]

    def done(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, message: str) -> bytes:
        body = {"error": {"message": message, "type": "server_error", "code": None}}
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    def filler(self, index: int) -> bytes:
        return _openai_chunk({"content": ""})


class _Anthropic(_Style):
    def start(self) -> list[bytes]:
        message = {"id": "msg_1", "type": "message", "role": "assistant", "content": []}
        return [
            _anthropic_event("message_start", {"type": "message_start", "message": message}),
            _anthropic_event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            _anthropic_event("ping", {"type": "ping"}),
        ]

    def token(self, text: str) -> bytes:
        return _anthropic_event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": text},
            },
        )

    def end(self) -> list[bytes]:
        return [
            _anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            _anthropic_event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": len(TOKENS)},
                },
            ),
        ]

    def done(self) -> bytes:
        return _anthropic_event("message_stop", {"type": "message_stop"})

    def error(self, message: str) -> bytes:
        return _anthropic_event(
            "error", {"type": "error", "error": {"type": "overloaded_error", "message": message}}
        )

    def filler(self, index: int) -> bytes:
        return _anthropic_event("ping", {"type": "ping"})


async def _stream(request: web.Request, style: _Style) -> web.StreamResponse:
    if "status" in request.query:
        return web.json_response(
            {"error": {"message": "upstream failed"}}, status=int(request.query["status"])
        )
    if _flag(request, "html"):
        return web.Response(
            text="<html><title>Something went wrong</title><body>Error 1033</body></html>",
            content_type="text/html",
        )
    if request.query.get("need_conversation") == "1":
        body = await request.json()
        if request.cookies.get("session") != "s1" or body.get("conversation_id") != CONVERSATION_ID:
            return web.json_response({"error": "no such conversation"}, status=404)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    response.headers["Cache-Control"] = "no-cache"
    response.headers["X-Accel-Buffering"] = "no"
    await response.prepare(request)
    gap = _seconds(request, "gap")
    for _ in range(int(request.query.get("comments", "0"))):
        await response.write(b": ping\n\n")
        await _pause(gap)
    await _pause(_seconds(request, "first_delay"))
    if _flag(request, "invalid"):
        await response.write(b"data: <html>not json</html>\n\n")
    for part in style.start():
        await response.write(part)
    tokens = [] if _flag(request, "empty") else TOKENS
    stall_after = int(request.query.get("stall_after", "-1"))
    for index, token in enumerate(tokens):
        if index == stall_after:
            await _pause(_seconds(request, "stall", DEFAULT_STALL))
        await _pause(gap)
        await response.write(style.token(token))
        if index == 0 and _flag(request, "error"):
            words = "The server is overloaded"
            if _flag(request, "echo_auth"):
                words += f" for {request.headers.get('Authorization', '')}"
            await response.write(style.error(words))
    for part in style.end():
        await response.write(part)
    if _flag(request, "forever"):
        # Bounded by the test's deadline; the range only keeps a lost client from looping on.
        for index in range(100_000):
            await _pause(gap or 0.05)
            await response.write(style.filler(index))
    if _flag(request, "drop"):
        assert request.transport is not None
        request.transport.abort()
        return response
    if not _flag(request, "no_done"):
        await response.write(style.done())
    await response.write_eof()
    return response


async def openai(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _OpenAI())


async def anthropic(request: web.Request) -> web.StreamResponse:
    return await _stream(request, _Anthropic())


async def conversations(request: web.Request) -> web.Response:
    response = web.json_response({"id": CONVERSATION_ID}, status=201)
    response.set_cookie("session", "s1")
    return response


async def conversation(request: web.Request) -> web.Response:
    return web.json_response({"id": request.match_info["id"], "title": "Greeting"})


def build_sse_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/openai", openai)
    app.router.add_post("/anthropic", anthropic)
    app.router.add_get("/openai", openai)
    app.router.add_post("/conversations", conversations)
    app.router.add_get("/conversations/{id}", conversation)
    return app
