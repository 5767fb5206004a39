"""The streamed answer of `POST /backend-api/conversation`, as OpenAI's API frames it.

Server-sent events, one `chat.completion.chunk` per event: the assistant's role first
(with empty content), then one token per event, then an empty delta whose
`finish_reason` is `stop`, then `data: [DONE]`. A client gathers the answer with
`choices[0].delta.content`. The text is always the same, so a prober can check it.
"""

from __future__ import annotations

import json
from typing import Any

TOKENS = ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")
ANSWER = "".join(TOKENS)
MODEL = "simchat-1"
CHUNK_ID = "chatcmpl-simchat"
CREATED = 1764720000  # 2025-12-03T00:00:00Z: fixed, so two answers are byte for byte alike
DONE = b"data: [DONE]\n\n"
EVENT_STREAM = "text/event-stream"

# The service's own words for a failure mid-answer, as OpenAI sends them in the stream.
SERVER_ERROR = {
    "message": "The server had an error while processing your request. Sorry about that!",
    "type": "server_error",
    "param": None,
    "code": None,
}


def _event(data: Any) -> bytes:
    return b"data: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


def _chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
    return _event(
        {
            "id": CHUNK_ID,
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def role_event() -> bytes:
    """The first event: who speaks, and no content yet."""
    return _chunk({"role": "assistant", "content": ""})


def token_event(token: str) -> bytes:
    return _chunk({"content": token})


def stop_event() -> bytes:
    """The last chunk: nothing more to say (`finish_reason: stop`); `[DONE]` follows."""
    return _chunk({}, finish="stop")


def error_event() -> bytes:
    return _event({"error": SERVER_ERROR})


def whole_answer(tokens: tuple[str, ...] = TOKENS) -> bytes:
    """Every event of a healthy answer at once, `[DONE]` included."""
    return b"".join([role_event(), *map(token_event, tokens), stop_event(), DONE])


def message_problem(body: Any, max_chars: int) -> str | None:
    """What is wrong with a request body, or None: `{"messages": [..., {"role": "user",
    "content": "..."}]}`, the last message the user's, non-empty, at most `max_chars`."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list) or not messages:
        return '\'messages\' must be a non-empty list of {"role", "content"} objects'
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return 'the last message must be the user\'s ({"role": "user", ...})'
    content = last.get("content")
    if not isinstance(content, str) or not content.strip():
        return "the user's message must have a non-empty string 'content'"
    if len(content) > max_chars:
        return f"the user's message must be at most {max_chars} characters"
    return None
