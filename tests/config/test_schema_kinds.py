"""`uptime-probe schema` covers every step kind: editors validate them as the loader does."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from uptime_probe.config.model import Config

SCHEMA = Config.model_json_schema(mode="validation")  # what `uptime-probe schema` prints
STEPS: list[dict[str, Any]] = [
    {"name": "page", "request": {"url": "https://chat.example/"}, "expect": {"cert_min_days": 14}},
    {
        "name": "resolve",
        "dns": {"name": "chat.example", "type": "AAAA", "server": "9.9.9.9:53", "transport": "tcp"},
        "expect": {"rcode": "NOERROR", "answers": {"min_count": 1, "matches": "^2001:"}},
        "extract": {"address": "answers[0]"},
    },
    {
        "name": "smtp",
        "tcp": {"host": "mail.example", "port": 25, "exchanges": [{"receive": "^220 "}]},
    },
    {"name": "redis", "tcp": {"host": "cache", "port": 6379, "send": "PING\r\n"},
     "expect": {"receive": "^\\+PONG"}},
    {"name": "certificate", "certificate": {"host": "chat.example"},
     "expect": {"cert_min_days": 14}, "tls": {"verify": False}},
    {"name": "push", "websocket": {"url": "wss://chat.example/ws", "send": "hi"},
     "expect": {"message_within": "5s", "json": [{"query": "type", "equals": "answer"}]}},
]  # fmt: skip


def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def _document(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"checks": [{"name": "c", "steps": list(steps)}]}


def test_a_step_of_every_kind_is_valid() -> None:
    errors = list(_validator().iter_errors(_document(*STEPS)))
    assert not errors, [error.message for error in errors]


@pytest.mark.parametrize(
    "step",
    [
        {"name": "r", "dns": {"name": "chat.example", "type": "PTR"}},
        {"name": "r", "dns": {"name": "chat.example", "transport": "quic"}},
        {"name": "t", "tcp": {"host": "mail.example", "port": 70000}},
        {"name": "t", "tcp": {"host": "mail.example"}},
        {"name": "c", "certificate": {"host": "chat.example"}, "expect": {"status": 200}},
        {"name": "w", "websocket": {"url": "wss://chat.example/ws", "method": "POST"}},
        {"name": "b", "request": {"url": "https://x/"}, "dns": {"name": "chat.example"}},
    ],
)
def test_what_the_loader_refuses_in_a_kind_the_schema_refuses(step: dict[str, Any]) -> None:
    assert not _validator().is_valid(_document(step))
