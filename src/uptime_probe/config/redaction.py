"""Removes secret values from every string that leaves uptime-probe: results, logs, errors.

A target can echo a secret back in whatever encoding its software chose, so each secret
is matched character by character, every character in any of the forms it can take
(`_char_forms`), in any mix: as is in any case, percent-encoded (`+` for a space), JSON
escaped (`\\/`, `\\u003e`, `\\u0041` for any character, with the backslash doubled by JSON
inside JSON), or an HTML entity (named, decimal or hex). Base64 and base64url are matched
by the characters the secret alone decides, at each of the three alignments it can have
in the encoded text (`_base64_echoes`), so `Bearer <secret>` encoded whole is caught too.

Text is redacted before it is cut, never after (`Redactor.cut`): a cut first could keep
all but the last character of a secret, which no pattern matches any more.

The patterns run on RE2 (google-re2), not `re`: one alternation of every form of every
secret is a large pattern, and RE2 scans text once, in linear time, whatever the text
holds. On a 2 KiB response sample with three secrets, `re` took 650 us and RE2 10 us
(docs/reliability.md). RE2's syntax covers everything used here.
"""

from __future__ import annotations

import base64
import functools
import html.entities
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import re2

REDACTED = "[REDACTED]"
ELLIPSIS = "..."

# What `reach` assumes of an echo: at most this many backslashes in front of a JSON escape
# (JSON in JSON in JSON) and leading zeros in an HTML numeric entity. The patterns accept
# any number; only a cut through an echo longer than that could keep part of it.
MAX_BACKSLASHES = 8
MAX_ENTITY_ZEROS = 8
# A base64 run shorter than this is too common in ordinary text to be removed on sight.
MIN_BASE64_CORE = 4
# Secrets are matched in groups of about this much pattern text: RE2 builds its DFA lazily
# within a memory budget (max_mem, a ceiling, not an allocation), and a pattern for dozens
# of secrets outgrows it, when RE2 falls back to an engine 100 times slower. Groups of this
# size keep the DFA: 40 secrets of 40 characters took 24 MiB and 0.2 ms per 2 KiB.
_GROUP_PATTERN_CHARS = 60_000
_RE2_MAX_MEM = 64 << 20

_JSON_SHORT_ESCAPES = {
    '"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"
}  # fmt: skip
_ESCAPE = r"\\+"  # one backslash per JSON level


@functools.cache
def _entity_names() -> dict[str, tuple[str, ...]]:
    """Character -> the HTML5 named references for it (`/` -> `sol;`), lower-cased."""
    names: dict[str, set[str]] = {}
    for name, value in html.entities.html5.items():
        if len(value) == 1:
            names.setdefault(value, set()).add(name.lower())
    return {char: tuple(sorted(found)) for char, found in names.items()}


def _escape(text: str) -> str:
    return str(re2.escape(text))


@functools.cache
def _char_forms(char: str) -> tuple[str, int]:
    """A pattern for one character in any form a target may echo it in, and the longest
    text it matches within the bounds `reach` assumes."""
    forms: dict[str, int] = {_escape(char): 1}
    data = char.encode("utf-8", "surrogatepass")
    forms["".join(f"%{byte:02x}" for byte in data)] = 3 * len(data)
    if char == " ":
        forms[r"\+"] = 1
    if char.isspace():
        # Another space character: a report or a terminal table puts a line on one line.
        forms[r"\s"] = 1
    units = char.encode("utf-16-be", "surrogatepass")
    forms["".join(f"{_ESCAPE}u{units[i : i + 2].hex()}" for i in range(0, len(units), 2))] = (
        len(units) // 2 * (MAX_BACKSLASHES + 5)
    )
    short = _JSON_SHORT_ESCAPES.get(char)
    if short is not None:
        forms[_ESCAPE + _escape(short)] = MAX_BACKSLASHES + 1
    # An entity's `;` may be left out (browsers accept `&#62` and `&gt`): over-matching
    # `&#620;` as `&#62` followed by `0;` is harmless.
    point = ord(char)
    forms[f"&#0*{point};?"] = 3 + MAX_ENTITY_ZEROS + len(str(point))
    forms[f"&#x0*{point:x};?"] = 4 + MAX_ENTITY_ZEROS + len(f"{point:x}")
    for name in _entity_names().get(char, ()):
        forms["&" + _escape(name)] = 1 + len(name)
    return "(?:" + "|".join(forms) + ")", max(forms.values())


@dataclass(frozen=True, slots=True)
class _Echo:
    """A pattern for every way one text can be echoed, and how long such an echo can be."""

    pattern: str
    longest: int  # within MAX_BACKSLASHES and MAX_ENTITY_ZEROS
    shortest: int


def _text_echo(text: str, alternatives: dict[str, str] | None = None) -> _Echo:
    """`text` with each character in any of its forms; `alternatives` adds characters that
    stand for the same one (base64url's `-` for `+`)."""
    parts: list[str] = []
    longest = 0
    for char in text:
        pattern, char_longest = _char_forms(char)
        other = (alternatives or {}).get(char)
        if other is not None:
            other_pattern, other_longest = _char_forms(other)
            pattern = f"(?:{pattern}|{other_pattern})"
            char_longest = max(char_longest, other_longest)
        parts.append(pattern)
        longest += char_longest
    # Every form of a character is at least one character long.
    return _Echo("".join(parts), longest, len(text))


_BASE64URL = {"+": "-", "/": "_"}


def _base64_class(chars: set[str]) -> str:
    both = chars | {_BASE64URL.get(char, char) for char in chars}
    return "[" + "".join(_escape(char) for char in sorted(both)) + "]"


def _base64_echoes(secret: str) -> list[_Echo]:
    """Base64 and base64url of any text holding the secret, by the characters it decides.

    A secret inside encoded text (`Bearer <secret>`) starts 0, 1 or 2 bytes into a 3-byte
    group. At offset k its bits start 8k bits into the stream; a base64 character covers 6
    bits. Those wholly inside the secret are known whatever surrounds it (the core); the
    one before and the one after share bits with the neighbours, so each is one of the few
    characters that agree with the secret's bits (found by trying every neighbouring byte).
    """
    data = secret.encode("utf-8", "surrogatepass")
    echoes = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        first = -(-8 * offset // 6)
        end = (8 * offset + 8 * len(data)) // 6
        core = encoded[first:end]
        if len(core) < MIN_BASE64_CORE:
            continue
        echo = _text_echo(core, _BASE64URL)
        pattern, longest = echo.pattern, echo.longest
        if first > 0:
            before = {
                base64.b64encode(bytes(offset - 1) + bytes([byte]) + data).decode()[first - 1]
                for byte in range(256)
            }
            pattern, longest = f"{_base64_class(before)}?{pattern}", longest + 1
        if (8 * offset + 8 * len(data)) % 6:
            after = {
                base64.b64encode(bytes(offset) + data + bytes([byte])).decode()[end]
                for byte in range(256)
            }
            pattern, longest = f"{pattern}{_base64_class(after)}?", longest + 1
        echoes.append(_Echo(pattern, longest, echo.shortest))
    return echoes


@dataclass(frozen=True, slots=True)
class _Compiled:
    patterns: tuple[Any, ...] = ()  # re2 patterns (google-re2 has no type hints)
    reach: int = 0  # the longest echo
    shortest: int = 0  # the shortest echo: a shorter text holds none


@functools.lru_cache(maxsize=16)
def _compile(secrets: tuple[str, ...]) -> _Compiled:
    """The RE2 patterns for a set of secrets. Cached: every check's plan and the log
    processor build a Redactor from the same secrets on each load."""
    if not secrets:
        return _Compiled()
    options = re2.Options()
    options.case_sensitive = False
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False  # RE2 would write to stderr, past the JSON log
    echoes = {
        echo.pattern: echo
        for secret in secrets
        for echo in (_text_echo(secret), *_base64_echoes(secret))
    }
    # Longest first, so where two could match at one place the longer is removed whole.
    ordered = sorted(echoes.values(), key=lambda echo: echo.longest, reverse=True)
    groups: list[list[str]] = [[]]
    size = 0
    for echo in ordered:
        if groups[-1] and size + len(echo.pattern) > _GROUP_PATTERN_CHARS:
            groups.append([])
            size = 0
        groups[-1].append(echo.pattern)
        size += len(echo.pattern)
    return _Compiled(
        patterns=tuple(re2.compile("|".join(group), options) for group in groups),
        reach=max(echo.longest for echo in ordered),
        shortest=min(echo.shortest for echo in ordered),
    )


class Redactor:
    """Replaces each secret, and the encodings a target could echo it back in, by [REDACTED]."""

    __slots__ = ("_patterns", "_reach", "_secrets", "_shortest")

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple(sorted({s for s in secrets if s}))
        compiled = _compile(self._secrets)
        self._patterns, self._reach, self._shortest = (
            compiled.patterns,
            compiled.reach,
            compiled.shortest,
        )

    def __reduce__(self) -> tuple[type[Redactor], tuple[tuple[str, ...]]]:
        # Compiled RE2 patterns do not pickle; a judging worker rebuilds them (cached).
        return Redactor, (self._secrets,)

    @property
    def active(self) -> bool:
        return bool(self._patterns)

    @property
    def reach(self) -> int:
        """The longest text one echo of a secret can span (within MAX_BACKSLASHES and
        MAX_ENTITY_ZEROS): a cut that looks this far past itself sees every echo whole."""
        return self._reach

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                spans.append(match.span())
                spans += self._overlapping(pattern, text, *match.span())
        spans.sort()
        return spans

    def _overlapping(self, pattern: Any, text: str, start: int, stop: int) -> list[tuple[int, int]]:
        """Echoes that begin inside the one at start:stop (a search resumes after a match):
        two secrets that overlap, or a secret whose end is also its beginning."""
        found: list[tuple[int, int]] = []
        while True:
            match = pattern.search(text[start + 1 : stop + self._reach])
            if match is None or start + 1 + match.start() >= stop:
                return found
            start, stop = start + 1 + match.start(), start + 1 + match.end()
            found.append((start, stop))

    def _replace(self, text: str, end: int) -> str:
        """text[:end] with every echo that starts before `end` replaced whole."""
        pieces: list[str] = []
        kept = 0
        for start, stop in self._spans(text):
            if start >= end:
                break
            if start < kept:  # overlaps an echo already replaced: one secret inside another
                kept = max(kept, stop)
                continue
            pieces += (text[kept:start], REDACTED)
            kept = stop
        if kept < end:
            pieces.append(text[kept:end])
        return "".join(pieces)

    def __call__(self, text: str) -> str:
        if not self._patterns or len(text) < self._shortest:
            return text
        return self._replace(text, len(text))

    def cut(self, text: str, limit: int, marker: str = ELLIPSIS) -> str:
        """`text` redacted, then cut to about `limit` characters (`marker` ends a cut one).

        Only the first `limit` characters and `reach` more are read, so a long text costs
        no more than a short one, and an echo that straddles the cut is replaced whole:
        no part of it survives (so the result can exceed `limit` by a REDACTED's length).
        """
        if len(text) <= limit:
            return self(text)
        keep = max(0, limit - len(marker))
        if not self._patterns:
            return text[:keep] + marker
        return self._replace(text[: keep + self._reach], keep) + marker

    def cut_bytes(self, data: bytes, limit: int) -> str:
        """The first `limit` bytes of a body as text, redacted first (the response sample)."""
        if len(data) <= limit:
            return self(data.decode("utf-8", errors="replace"))
        # A character of an echo takes at most 4 bytes of UTF-8 (most take one).
        text = data[: limit + 4 * self._reach].decode("utf-8", errors="replace")
        chars = len(data[:limit].decode("utf-8", errors="replace"))
        return self.cut(text, chars, marker="")
