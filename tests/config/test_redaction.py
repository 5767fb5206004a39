"""A secret never survives redaction, in whatever encoding a target echoes it back,
and a cut never keeps part of one."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from uptime_probe.config.redaction import ELLIPSIS, REDACTED, Redactor

SECRET = "p@ss word/+=é"
# Every kind of character an encoder treats differently: URL-, form-, HTML- and
# JSON-special ones, upper and lower case letters, and non-ASCII.
HOSTILE = 'sk_Live&Zx9/Qa+Vb=7%C "q"<x>?>\\é'


def every_char(fmt: Callable[[str], str]) -> Callable[[str], str]:
    return lambda secret: "".join(fmt(char) for char in secret)


def mixed(*encoders: Callable[[str], str]) -> Callable[[str], str]:
    """Each character in the next encoder's form, round robin."""
    return lambda secret: "".join(
        encoders[i % len(encoders)](char) for i, char in enumerate(secret)
    )


def json_u(char: str) -> str:
    return json.dumps(char, ensure_ascii=True)[1:-1] if ord(char) > 127 else f"\\u{ord(char):04x}"


def named_or_hex(char: str) -> str:
    escaped = html.escape(char)
    return escaped if escaped != char else f"&#x{ord(char):X};"


def plain(char: str) -> str:
    return char


def pct(char: str) -> str:
    return quote(char, safe="")


ENCODINGS: dict[str, Callable[[str], str]] = {
    "plain": lambda s: s,
    "upper-cased": str.upper,
    "lower-cased": str.lower,
    "case swapped": str.swapcase,
    "url-encoded": lambda s: quote(s, safe=""),
    "url-encoded, / kept": quote,
    "form-encoded": quote_plus,
    "url-encoded, lower-case hex": lambda s: quote(s, safe="").lower(),
    "every character url-encoded": every_char(lambda c: "".join(f"%{b:02X}" for b in c.encode())),
    "json": lambda s: json.dumps(s)[1:-1],
    "json, unicode kept": lambda s: json.dumps(s, ensure_ascii=False)[1:-1],
    "json, PHP style \\/": lambda s: json.dumps(s)[1:-1].replace("/", "\\/"),
    "json, Go style \\u003c": lambda s: (
        json.dumps(s)[1:-1].replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    ),
    "json, every character \\u": every_char(json_u),
    "json, every character \\u upper-case hex": lambda s: (
        every_char(json_u)(s).upper().replace("\\U", "\\u")
    ),
    "json in json": lambda s: json.dumps(json.dumps(s))[3:-3],
    "json in json, PHP style": lambda s: json.dumps(json.dumps(s).replace("/", "\\/"))[3:-3],
    "html": html.escape,
    "html, quotes kept": lambda s: html.escape(s, quote=False),
    "html, every character decimal": every_char(lambda c: f"&#{ord(c)};"),
    "html, every character hex": every_char(lambda c: f"&#x{ord(c):x};"),
    "html, every character hex upper-case": every_char(lambda c: f"&#X{ord(c):X};"),
    "html, leading zeros": every_char(lambda c: f"&#000{ord(c)};"),
    "html, no semicolons": every_char(lambda c: f"&#x{ord(c):x}" if c.isalpha() else c),
    "html, named": every_char(named_or_hex),
    "mix of plain, url, json and html": mixed(plain, pct, json_u, named_or_hex),
    "mix of html and json": mixed(named_or_hex, json_u),
    "line break for a space": lambda s: s.replace(" ", "\n"),
}


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
@pytest.mark.parametrize("secret", [SECRET, HOSTILE])
def test_every_encoding_of_a_secret_is_redacted(secret: str, encode: Callable[[str], str]) -> None:
    echoed = encode(secret)
    redact = Redactor([secret])
    assert redact(f"before {echoed} after") == f"before {REDACTED} after"


PREFIXES = ["", "x", "xy", "Bearer ", "user:"]  # every alignment in a 3-byte group


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("suffix", ["", "!", "!?", "\n"])
@pytest.mark.parametrize(
    "encode",
    [
        base64.b64encode,
        base64.urlsafe_b64encode,
        lambda data: base64.b64encode(data).rstrip(b"="),
        lambda data: base64.urlsafe_b64encode(data).rstrip(b"="),
    ],
    ids=["base64", "base64url", "base64 unpadded", "base64url unpadded"],
)
def test_base64_of_any_text_holding_the_secret_is_redacted(
    prefix: str, suffix: str, encode: Callable[[bytes], bytes]
) -> None:
    encoded = encode(f"{prefix}{HOSTILE}{suffix}".encode()).decode()
    redacted = Redactor([HOSTILE])(f"[{encoded}]")
    assert redacted.count(REDACTED) == 1, redacted
    # What is left is the neighbours' characters: a few for the prefix, the suffix and the
    # padding, never a run of the secret's.
    left = redacted.replace(REDACTED, "")
    neighbours = len(base64.b64encode(prefix.encode())) + len(base64.b64encode(suffix.encode()))
    assert len(left) <= 2 + neighbours, redacted


@pytest.mark.parametrize(
    "wrap",
    [
        lambda b64: json.dumps(b64)[1:-1].replace("/", "\\/"),  # PHP's JSON
        lambda b64: quote(b64, safe=""),  # in a query string
    ],
    ids=["php-json", "url-encoded"],
)
def test_base64_inside_another_encoding_is_redacted(wrap: Callable[[str], str]) -> None:
    # `?>` and `\\é` make `/` and `+` appear in the standard alphabet.
    echoed = wrap(base64.b64encode(f"Bearer {HOSTILE}".encode()).decode())
    assert "%2F" in echoed or "\\/" in echoed
    redacted = Redactor([HOSTILE])(echoed)
    assert REDACTED in redacted
    assert len(redacted.replace(REDACTED, "")) <= 16, redacted


def test_longest_secret_is_removed_whole() -> None:
    redact = Redactor(["abc", "abcdef"])
    assert redact("x abcdef y abc") == f"x {REDACTED} y {REDACTED}"


def test_overlapping_secrets_leave_nothing_of_either() -> None:
    redact = Redactor(["abcdef", "defghi"])
    assert redact("x abcdefghi y") == f"x {REDACTED} y"


def test_no_secrets_changes_nothing() -> None:
    redact = Redactor(["", ""])
    assert not redact.active
    assert redact("anything $%^") == "anything $%^"
    assert redact.cut("0123456789", 8) == "01234..."


def test_regex_characters_in_a_secret_are_literal() -> None:
    redact = Redactor(["a.b*c"])
    assert redact("aXbbbc a.b*c") == f"aXbbbc {REDACTED}"


def test_ordinary_text_is_left_alone() -> None:
    redact = Redactor([HOSTILE])
    text = 'HTTP 500: {"error": "upstream timed out", "path": "/v1/chat?x=1&y=%20"} <b>&amp;</b>'
    assert redact(text) == text


# --- cut: redact first, then cut -----------------------------------------------------------

# The echo, and where in it the secret's part begins (base64: after "Bearer "'s 9 chars).
CUT_FORMS = {
    "plain": (HOSTILE, 0),
    "json": (json.dumps(HOSTILE)[1:-1], 0),
    "json, every character \\u": (every_char(json_u)(HOSTILE), 0),
    "html": (html.escape(HOSTILE), 0),
    "url": (quote(HOSTILE, safe=""), 0),
    "base64 of Bearer": (base64.b64encode(f"Bearer {HOSTILE}".encode()).decode(), 9),
}


@pytest.mark.parametrize(("form", "lead"), CUT_FORMS.values(), ids=CUT_FORMS.keys())
def test_a_cut_never_keeps_part_of_a_secret(form: str, lead: int) -> None:
    """The echo at every position around the cut: all of it or none of it goes, never a
    prefix (before, a cut first kept all but the last character of a secret)."""
    redact = Redactor([HOSTILE])
    limit = 40
    keep = limit - len(ELLIPSIS)
    for at in range(keep + 2):
        text = "." * at + form + "," * 60
        cut = redact.cut(text, limit)
        assert cut.endswith(ELLIPSIS)
        left = cut[: -len(ELLIPSIS)].replace(REDACTED, "")
        # Only the padding around the echo is left (and, for base64, "Bearer "'s own).
        assert set(left) <= set(".,") | set(base64.b64encode(b"Bearer ").decode()), (at, cut)
        if at + lead < keep:
            assert REDACTED in cut, (at, cut)
            assert cut.startswith("." * min(at, keep))
        elif at >= keep:
            assert cut == "." * keep + ELLIPSIS


def test_cut_reads_a_bounded_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The echo of a secret past the cut is never looked for: a 64 MiB text costs what a
    short one does, because only the window before the cut is ever scanned."""
    redact = Redactor([HOSTILE])
    scanned: list[int] = []
    replace = Redactor._replace

    def counting(self: Redactor, text: str, keep: int) -> str:
        scanned.append(len(text))
        return replace(self, text, keep)

    monkeypatch.setattr(Redactor, "_replace", counting)
    text = "a" * (64 << 20)
    assert redact.cut(text, 120) == "a" * 117 + ELLIPSIS
    assert scanned
    assert max(scanned) < 120 + 4096


def test_cut_bytes_is_the_sample() -> None:
    redact = Redactor([HOSTILE])
    body = ("x" * 2040 + HOSTILE + "y" * 100).encode()
    sample = redact.cut_bytes(body, 2048)
    assert sample == "x" * 2040 + REDACTED
    assert redact.cut_bytes(b"short " + HOSTILE.encode(), 2048) == f"short {REDACTED}"
    assert Redactor([]).cut_bytes(b"z" * 3000, 2048) == "z" * 2048


def test_short_text_is_redacted_not_cut() -> None:
    redact = Redactor([HOSTILE])
    assert redact.cut(f"a {HOSTILE}", 120) == f"a {REDACTED}"


def test_reach_covers_the_longest_echo() -> None:
    redact = Redactor([HOSTILE])
    longest = max(len(encode(HOSTILE)) for encode in ENCODINGS.values())
    assert redact.reach >= longest
    assert redact.reach >= len("\\" * 8 + "u0041") * len(HOSTILE)


def test_one_compilation_per_set_of_secrets() -> None:
    """Each check's plan builds a Redactor from the config's secrets: the patterns are
    compiled once, whatever the order."""
    first, second = Redactor(["one-secret", "two-secret"]), Redactor(["two-secret", "one-secret"])
    assert first._patterns is second._patterns


def test_many_long_secrets_still_match() -> None:
    """Dozens of long secrets are split across several patterns; each still matches."""
    secrets = [f"secret-{i:02d}-" + "Zq9/+x" * 20 for i in range(40)]
    redact = Redactor(secrets)
    assert len(redact._patterns) > 1
    for secret in secrets:
        assert redact(f"<{secret.upper()}>") == f"<{REDACTED}>"
        b64 = base64.b64encode(f"x{secret}".encode()).decode()
        assert REDACTED in redact(b64)


def test_a_redactor_travels_to_a_judging_worker_whole() -> None:
    """Judging workers get the check's redactor pickled (as its secrets) and rebuild it."""
    import pickle

    copy = pickle.loads(pickle.dumps(Redactor([HOSTILE])))
    assert copy(f"x {HOSTILE} y") == f"x {REDACTED} y"
    assert copy.cut("." * 100 + HOSTILE, 110) == Redactor([HOSTILE]).cut("." * 100 + HOSTILE, 110)
