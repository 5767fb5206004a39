"""Config regexes run on RE2: linear time on any text, RE2's documented syntax.

The load-time errors for patterns RE2 refuses are fixtures in invalid/ (`regex-*`).
"""

from __future__ import annotations

import pickle
import time

import pytest

from uptime_probe.config.types import LinearPattern, compile_regex

# Patterns that backtrack exponentially in Python's `re`, and a text that makes them.
BACKTRACKING = [
    ("^(a+)+$", "a" * 26 + "!"),  # held the daemon's loop 5.5-7 s
    ("(a|aa)*c", "a" * 40),
    ("^(\\w+\\s?)*$", "word " * 12 + "!"),
    ("(x+x+)+y", "x" * 30),
]


@pytest.mark.parametrize(("pattern", "text"), BACKTRACKING)
def test_a_backtracking_pattern_runs_in_linear_time(pattern: str, text: str) -> None:
    compiled = compile_regex(pattern)
    started = time.perf_counter()
    assert compiled.found_in(text) is False
    assert compiled.found_in(text * 40_000) is False  # a megabyte: still linear
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("pattern", "text", "found"),
    [
        ("^2\\.", "2.1.0", True),
        ("(?i)^application/JSON", "application/json; charset=utf-8", True),
        ("ok$", "ok", True),
        # RE2: `$` is the very end of the text, unless (?m); Python's also matched before
        # a final newline.
        ("ok$", "ok\n", False),
        ("ok\\n?$", "ok\n", True),
        ("(?m)^b$", "a\nb\nc", True),
        ("\\Aab\\z", "ab", True),
        # RE2: \d \w \s \b are ASCII; Unicode classes are spelled \pN, \pL.
        ("^\\d+$", "١٢", False),
        ("^\\pN+$", "١٢", True),
        ("\\pL", "é", True),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
    ],
)
def test_re2_syntax_as_documented(pattern: str, text: str, found: bool) -> None:
    assert compile_regex(pattern).found_in(text) is found


def test_a_lone_surrogate_is_matched_as_a_replacement_character() -> None:
    # aiohttp decodes a header's invalid UTF-8 with surrogateescape; JSON can hold "\ud800".
    assert compile_regex("^a.b$").found_in("a\udcffb") is True
    assert compile_regex("x").found_in("\ud800") is False


def test_a_pattern_survives_pickling_and_compares_by_its_text() -> None:
    pattern = compile_regex("^(a+)+$")
    copy = pickle.loads(pickle.dumps(pattern))
    assert copy == pattern
    assert hash(copy) == hash(pattern)
    assert isinstance(copy, LinearPattern)
    assert copy.found_in("aaa") is True
    assert compile_regex("a") != compile_regex("b")


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("<(\\w+)>.*</\\1>", "a backreference"),
        ("^(?!.*Secure)", "a lookahead"),
        ("(?<=task_)done", "a lookbehind"),
        ("a++", "a possessive repeat"),
        ("end\\Z", "`\\Z` (RE2 writes the end of text `\\z`)"),
    ],
)
def test_what_re2_refuses_is_named(pattern: str, names: str) -> None:
    with pytest.raises(ValueError, match="is not RE2 syntax") as raised:
        compile_regex(pattern)
    assert str(raised.value).startswith(f"invalid regex {pattern!r}: {names} is not RE2 syntax")
    assert "linear time" in str(raised.value)


def test_a_pattern_broken_in_any_dialect_keeps_pythons_located_message() -> None:
    with pytest.raises(ValueError, match="unterminated character set at position 0"):
        compile_regex("[abc")


def test_re2_writes_nothing_of_its_own_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="a lookahead"):
        compile_regex("(?=x)")
    assert capfd.readouterr().err == ""
