"""A secret never survives redaction, in whatever encoding a target echoes it back."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from uptime_probe.config.redaction import REDACTED, Redactor

SECRET = "p@ss word/+=é"


@pytest.mark.parametrize(
    "echoed",
    [
        pytest.param(SECRET, id="plain"),
        pytest.param(quote(SECRET, safe=""), id="quote"),
        pytest.param(quote(SECRET), id="quote-keeps-slash"),
        pytest.param(quote_plus(SECRET), id="quote_plus"),
        pytest.param(quote(SECRET, safe="").lower(), id="lowercase-hex"),
        pytest.param("p%40ss%20word/%2B%3D%C3%A9", id="mixed-like-yarl"),
        pytest.param(json.dumps(SECRET)[1:-1], id="json-escaped"),
        pytest.param(json.dumps(SECRET, ensure_ascii=False)[1:-1], id="json-unicode"),
        # The padding is left behind; it says nothing about the secret.
        pytest.param(base64.b64encode(SECRET.encode()).decode().rstrip("="), id="base64"),
    ],
)
def test_every_encoding_of_a_secret_is_redacted(echoed: str) -> None:
    redact = Redactor([SECRET])
    text = redact(f"before {echoed} after")
    assert text == f"before {REDACTED} after"


def test_longest_secret_is_removed_whole() -> None:
    redact = Redactor(["abc", "abcdef"])
    assert redact("x abcdef y abc") == f"x {REDACTED} y {REDACTED}"


def test_no_secrets_changes_nothing() -> None:
    redact = Redactor(["", ""])
    assert not redact.active
    assert redact("anything $%^") == "anything $%^"


def test_regex_characters_in_a_secret_are_literal() -> None:
    redact = Redactor(["a.b*c"])
    assert redact("aXbbbc a.b*c") == f"aXbbbc {REDACTED}"
