"""Removes secret values from every string that leaves uptime-probe: results, logs, errors."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"


def _url_pattern(secret: str) -> str:
    """The secret with each character literal or percent-encoded, in any mix.

    A target echoes a URL back with whatever encoding its URL library chose
    (yarl leaves `/` bare in a query but encodes `+` and `=`), so listing a few
    fixed encodings is not enough.
    """
    parts = []
    for char in secret:
        encoded = "".join(f"%{byte:02X}" for byte in char.encode())
        options = [re.escape(char), "(?i:" + re.escape(encoded) + ")"]
        if char == " ":
            options.append(r"\+")
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


class Redactor:
    """Replaces each secret, and the encodings a target could echo it back in, by [REDACTED]."""

    __slots__ = ("_pattern",)

    def __init__(self, secrets: Iterable[str]) -> None:
        variants: dict[str, int] = {}
        for secret in secrets:
            if not secret:
                continue
            for literal in (
                json.dumps(secret)[1:-1],
                base64.b64encode(secret.encode()).decode().rstrip("="),
            ):
                if literal:
                    variants.setdefault(re.escape(literal), len(literal))
            variants.setdefault(_url_pattern(secret), len(secret))
        # Longest first, so a secret that contains another is removed whole.
        ordered = sorted(variants, key=lambda pattern: variants[pattern], reverse=True)
        self._pattern = re.compile("|".join(ordered)) if ordered else None

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(REDACTED, text)

    @property
    def active(self) -> bool:
        return self._pattern is not None
