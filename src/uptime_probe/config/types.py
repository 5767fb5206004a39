"""Annotated field types for the config model: each parses, validates and compiles once, at load."""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Annotated, Any

import jmespath
import jmespath.exceptions
import jmespath.visitor
import re2
from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, WithJsonSchema

from uptime_probe.config.origin import Origin, parse_origin
from uptime_probe.config.template import Template
from uptime_probe.config.units import format_duration, parse_duration, parse_size

SLUG_PATTERN = r"^[a-z][a-z0-9_]*$"
VARIABLE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"

Slug = Annotated[str, Field(pattern=SLUG_PATTERN, max_length=63)]
VariableName = Annotated[str, Field(pattern=VARIABLE_PATTERN, max_length=63)]

_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": r"^\d+(\.\d+)?(ms|s|m|h|d)$"},
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": 'A duration such as "250ms", "10s", "5m" or "1h"; a bare number is seconds.',
}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_DURATION_SCHEMA),
]

Size = Annotated[
    int,
    BeforeValidator(parse_size),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\d+\s*(B|KB|KiB|MB|MiB|GB|GiB)?$"},
            ],
            "description": 'A size in bytes, or with a unit such as "512KiB" or "1MiB".',
        }
    ),
]

TemplateString = Annotated[
    Template,
    BeforeValidator(Template.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "Text with {{ variable }} placeholders."}),
]


# RFC 9110 §5.1 (was RFC 7230 §3.2): a field name is a token. aiohttp sends whatever it is
# given, so a space, a colon or an empty name left the probe as a malformed line (`: z`)
# and a CR/LF failed every run; refused here, once, at load.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What a field value may not hold (RFC 9110 §5.5: no CTL but HTAB), as aiohttp refuses it.
_HEADER_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
HEADER_VALUE_CONTROL = (
    "contains a control character (a line break?): a header value is one line, tabs allowed"
)


def check_header_name(value: str) -> str:
    if not value:
        raise ValueError("header name is empty")
    if not _TOKEN.fullmatch(value):
        raise ValueError(
            f"header name {value!r} is not an HTTP token: use letters, digits and "
            "!#$%&'*+-.^_`|~ only (no spaces, colons or line breaks)"
        )
    return value


def has_header_control(text: str) -> bool:
    """True when `text` cannot be (part of) a header value."""
    return _HEADER_VALUE_FORBIDDEN.search(text) is not None


def check_header_value(value: str) -> str:
    if has_header_control(value):
        raise ValueError(f"header value {HEADER_VALUE_CONTROL}")
    return value


def check_header_template(template: Template) -> Template:
    """The template's own text, placeholders left out: what is known before any value."""
    check_header_value(template.render(dict.fromkeys(template.names, "")))
    return template


HeaderName = Annotated[
    str,
    AfterValidator(check_header_name),
    WithJsonSchema({"type": "string", "pattern": r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$"}),
]
HeaderValue = Annotated[str, AfterValidator(check_header_value)]
HeaderTemplate = Annotated[
    Template,
    BeforeValidator(Template.parse),
    AfterValidator(check_header_template),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "Text with {{ variable }} placeholders."}),
]


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error is ours to report, located, not RE2's on stderr
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class LinearPattern:
    """A regular expression compiled by RE2 (google-re2): a search takes time linear in the
    text, whatever the pattern, so no body or header a target sends can make it backtrack.

    Python's `re` backtracks: `^(a+)+$` against 26 `a`s and a `!` ran for 5-7 s, holding
    the event loop. RE2's syntax is Go's and Prometheus's (what blackbox_exporter uses):
    no backreferences or lookaround, `\\d \\w \\s \\b` are ASCII, `$` without `(?m)` is
    the very end of the text (`\\z`; Python's `\\Z` is not accepted). A pattern RE2 cannot
    compile is a load error that says so (docs/configuration.md, "Regular expressions").
    """

    __slots__ = ("_compiled", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        try:
            self._compiled = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            raise ValueError(_regex_error(pattern, exc)) from None

    def found_in(self, text: str) -> bool:
        """True when the pattern matches somewhere in `text` (a search, not anchored)."""
        return self._search(text) is not None

    def named_groups_in(self, text: str) -> dict[str, str] | None:
        """The named groups of the first match in `text` (those that took part in it), or
        None when the pattern matches nowhere in it."""
        match = self._search(text)
        if match is None:
            return None
        return {name: value for name, value in match.groupdict().items() if value is not None}

    def _search(self, text: str) -> Any:
        try:
            return self._compiled.search(text)
        except UnicodeEncodeError:
            # RE2 reads UTF-8; a lone surrogate (a header's undecodable byte, a JSON
            # "\\ud800") cannot be encoded: it matches as U+FFFD, as body text does.
            return self._compiled.search(_LONE_SURROGATE.sub("\ufffd", text))

    def __reduce__(self) -> tuple[type[LinearPattern], tuple[str]]:
        return LinearPattern, (self.pattern,)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinearPattern) and other.pattern == self.pattern

    def __hash__(self) -> int:
        return hash(self.pattern)

    def __repr__(self) -> str:
        return f"LinearPattern({self.pattern!r})"


def _regex_error(pattern: str, exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    if isinstance(detail, bytes):
        detail = detail.decode("utf-8", errors="replace")
    try:
        re.compile(pattern)
    except re.error as python_error:
        # Python's message gives the position; the pattern is broken in any dialect.
        return f"invalid regex {pattern!r}: {python_error}"
    return (
        f"invalid regex {pattern!r}: {_unsupported(detail)} is not RE2 syntax ({detail}); "
        "regexes run on RE2, which matches in linear time and so has no backreferences, "
        "lookaround or possessive repeats"
    )


def _unsupported(detail: str) -> str:
    """What a user wrote that RE2 refused, named from RE2's message."""
    if re.match(r"invalid escape sequence: \\[1-9]", detail):
        return "a backreference"
    if detail.startswith(("invalid perl operator: (?=", "invalid perl operator: (?!")):
        return "a lookahead"
    if detail.startswith(("invalid perl operator: (?<=", "invalid perl operator: (?<!")):
        return "a lookbehind"
    if detail.startswith("bad repetition operator: ") and detail.endswith("+"):
        return "a possessive repeat"
    if detail == "invalid escape sequence: \\Z":
        return "`\\Z` (RE2 writes the end of text `\\z`)"
    return "the pattern"


OriginString = Annotated[
    Origin,
    BeforeValidator(parse_origin),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([Hh][Tt][Tt][Pp]|[Ww][Ss])[Ss]?://[^/?#@]+/?$",
            "description": "An origin: scheme://host[:port], no path.",
        }
    ),
]


def compile_regex(value: Any) -> LinearPattern:
    if isinstance(value, LinearPattern):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a regular expression string, got {type(value).__name__}")
    return LinearPattern(value)


Regex = Annotated[
    LinearPattern,
    BeforeValidator(compile_regex),
    PlainSerializer(lambda pattern: pattern.pattern, return_type=str),
    WithJsonSchema({"type": "string", "format": "regex"}),
]


class QueryTooSlow(Exception):
    """A query spent the time it was given (see Query.search)."""


class CpuBudget:
    """Some seconds of the calling thread's CPU, cheap to check often.

    The wall clock (`time.perf_counter`, tens of nanoseconds) says when to look; the
    thread's CPU clock (`time.thread_time`, a system call of ~0.6 µs) decides, once the
    wall clock says the budget might be spent. A process the kernel descheduled meanwhile
    has not spent it: on a loaded machine, a 2 ms budget on the wall clock sent small
    answers to the judging process (starting it, 58 MB) only because the daemon waited
    for a core (docs/benchmarks.md, issue 19).
    """

    __slots__ = ("_cpu_until", "until")

    def __init__(self, seconds: float) -> None:
        self.until = time.perf_counter() + seconds  # when to look at the CPU clock
        self._cpu_until = time.thread_time() + seconds

    def spent(self) -> bool:
        """Whether the budget is spent; look only once `time.perf_counter()` is past `until`."""
        left = self._cpu_until - time.thread_time()
        if left <= 0:
            return True
        self.until = time.perf_counter() + left
        return False

    def check(self) -> bool:
        """Whether the budget is spent (the cheap test first)."""
        return time.perf_counter() > self.until and self.spent()


class _BoundedInterpreter(jmespath.visitor.TreeInterpreter):  # type: ignore[misc]
    """JMESPath's own interpreter, made to give up at an instant.

    Every node of the expression, for every value it is applied to, goes through `visit`
    (functions' `&expr` arguments too), so the clock is read between any two steps: a
    query stops within one step of its instant. A step itself (one function call such as
    `sort`, `contains`, `to_string`) is linear or n-log-n in the document it is given.
    """

    def __init__(self, budget: CpuBudget) -> None:
        super().__init__()
        self._budget = budget

    def visit(self, node: Any, *args: Any, **kwargs: Any) -> Any:
        budget = self._budget
        if time.perf_counter() > budget.until and budget.spent():
            raise QueryTooSlow
        return super().visit(node, *args, **kwargs)


class Query:
    """A JMESPath expression compiled at load."""

    __slots__ = ("_compiled", "expression")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            self._compiled = jmespath.compile(expression)
        except jmespath.exceptions.JMESPathError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            # The lines after the first repeat the expression with a caret under the fault.
            detail = detail.rstrip(": ").removesuffix(", for expression")
            raise ValueError(f"invalid JMESPath {expression!r}: {detail}") from None

    @classmethod
    def parse(cls, value: Any) -> Query:
        if isinstance(value, Query):
            return value
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expected a JMESPath expression string")
        return cls(value)

    def search(self, document: Any, budget: CpuBudget | None = None) -> Any:
        """The query's value in `document`; with a `budget`, QueryTooSlow is raised once
        the query has spent it."""
        if budget is None:
            return self._compiled.search(document)
        return _BoundedInterpreter(budget).visit(self._compiled.parsed, document)

    def __str__(self) -> str:
        return self.expression

    def __repr__(self) -> str:
        return f"Query({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Query) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(self.expression)


JmesPath = Annotated[
    Query,
    BeforeValidator(Query.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "A JMESPath expression."}),
]


class StatusMatcher:
    """Accepted HTTP statuses: 200, [200, 201], "2xx", or a list mixing both."""

    __slots__ = ("codes", "text")

    def __init__(self, codes: frozenset[int], text: str) -> None:
        self.codes = codes
        self.text = text

    @classmethod
    def parse(cls, value: Any) -> StatusMatcher:
        if isinstance(value, StatusMatcher):
            return value
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError("status list is empty")
        codes: set[int] = set()
        for item in items:
            if isinstance(item, bool):
                raise ValueError(f"invalid status {item!r}")
            if isinstance(item, int):
                if not 100 <= item <= 599:
                    raise ValueError(f"invalid status {item}: must be 100..599")
                codes.add(item)
            elif isinstance(item, str) and re.fullmatch(r"[1-5]xx", item):
                base = int(item[0]) * 100
                codes.update(range(base, base + 100))
            else:
                raise ValueError(
                    f"invalid status {item!r}: use a code like 200 or a class like 2xx"
                )
        text = " or ".join(str(item) for item in items)
        return cls(frozenset(codes), text)

    def __contains__(self, code: object) -> bool:
        return code in self.codes

    def __str__(self) -> str:
        return self.text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StatusMatcher) and other.codes == self.codes

    def __hash__(self) -> int:
        return hash(self.codes)


StatusExpectation = Annotated[
    StatusMatcher,
    BeforeValidator(StatusMatcher.parse),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 100, "maximum": 599},
                {"type": "string", "pattern": "^[1-5]xx$"},
                {
                    "type": "array",
                    "items": {
                        "anyOf": [
                            {"type": "integer", "minimum": 100, "maximum": 599},
                            {"type": "string", "pattern": "^[1-5]xx$"},
                        ]
                    },
                },
            ]
        }
    ),
]


def as_list(value: Any) -> Any:
    """Let a single string stand for a list of one."""
    return [value] if isinstance(value, str) else value


# One string stands for a list of one, and the JSON Schema says so (editors accept both).
StringList = Annotated[
    list[str],
    BeforeValidator(as_list),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}),
]


def nameserver_address(value: Any) -> str:
    """A DNS server as c-ares takes it: `IP`, `IP:PORT` or `[IPv6]:PORT`, normalised."""
    if not isinstance(value, str):
        raise ValueError(f"expected a DNS server address, got {type(value).__name__}")
    text = value.strip()
    port: str | None = None
    version = 0  # either
    if text.startswith("["):
        address, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"invalid DNS server {value!r}")
        port, version = rest[1:] or None, 6
    elif text.count(":") == 1:
        address, _, port = text.partition(":")
        version = 4
    else:
        address = text
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(
            f"invalid DNS server {value!r}: give its IP address, like 10.0.0.2, "
            "10.0.0.2:5353 or [fd00::2]:53"
        ) from None
    if version and parsed.version != version:
        raise ValueError(f"invalid DNS server {value!r}")
    if port is None:
        return str(parsed)
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid port in DNS server {value!r}")
    return f"[{parsed}]:{int(port)}" if parsed.version == 6 else f"{parsed}:{int(port)}"


Nameserver = Annotated[
    str,
    BeforeValidator(nameserver_address),
    WithJsonSchema(
        {"type": "string", "description": "A DNS server's IP address, with an optional port."}
    ),
]


# A credential the daemon checks (server.auth) or signs with (a webhook's hmac_secret).
# NIST SP 800-63B (rev. 4) asks 15 characters of a password that is the only factor;
# 16 rounds that up, and any generated token is longer. Messages never quote the value.
MIN_CREDENTIAL_CHARS = 16
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_credential(value: str) -> str:
    if not value:
        raise ValueError(
            "credential is empty (is the environment variable it comes from set but empty?); "
            f"use a random value of at least {MIN_CREDENTIAL_CHARS} characters"
        )
    if len(value) < MIN_CREDENTIAL_CHARS:
        raise ValueError(
            f"credential is {len(value)} characters; use a random value of at least "
            f"{MIN_CREDENTIAL_CHARS} (`openssl rand -hex 16` prints one)"
        )
    if _CONTROL.search(value):
        raise ValueError(
            "credential contains a control character (a line break at the end of the file "
            "or variable it comes from?)"
        )
    return value


def check_bearer_token(value: str) -> str:
    check_credential(value)
    # RFC 6750's token has no whitespace, and the server strips what surrounds the one it
    # is sent: a token with a space could never be presented, or never match.
    if any(ch.isspace() for ch in value):
        raise ValueError(
            "bearer token contains whitespace: give the token alone, without the word Bearer "
            "(RFC 6750 tokens have no spaces)"
        )
    return value


def check_basic_username(value: str) -> str:
    if not value:
        raise ValueError("username is empty")
    # RFC 7617: the first colon ends the user-id, so a name with one could never log in.
    if ":" in value:
        raise ValueError("username contains ':', which ends the username in basic auth")
    if _CONTROL.search(value):
        raise ValueError("username contains a control character")
    return value


_CREDENTIAL_SCHEMA = {"type": "string", "minLength": MIN_CREDENTIAL_CHARS}
Credential = Annotated[str, AfterValidator(check_credential), WithJsonSchema(_CREDENTIAL_SCHEMA)]
BearerToken = Annotated[
    str,
    AfterValidator(check_bearer_token),
    WithJsonSchema({**_CREDENTIAL_SCHEMA, "pattern": r"^\S+$"}),
]
BasicUsername = Annotated[
    str,
    AfterValidator(check_basic_username),
    WithJsonSchema({"type": "string", "minLength": 1, "pattern": "^[^:]+$"}),
]
