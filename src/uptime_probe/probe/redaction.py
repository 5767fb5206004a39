"""Removes secret values from every string that leaves the engine."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"


class Redactor:
    """Replaces each secret, and the encodings a target could echo it back in, by [REDACTED]."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            variants.update(
                {
                    secret,
                    quote(secret, safe=""),
                    quote_plus(secret),
                    json.dumps(secret)[1:-1],
                    base64.b64encode(secret.encode()).decode().rstrip("="),
                }
            )
        # Longest first, so a secret that contains another is removed whole.
        ordered = sorted((v for v in variants if v), key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    @property
    def active(self) -> bool:
        return self._pattern is not None
