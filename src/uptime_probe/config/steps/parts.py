"""What every step kind shares: its name, extraction, polling, expectations, HTTP parts.

The request, TLS and expectation parts are shared by the HTTP-based kinds (`request`,
`stream`, ...); a kind that needs none of them simply does not declare those fields.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.template import Template
from uptime_probe.config.types import (
    SLUG_PATTERN,
    Duration,
    HeaderName,
    HeaderTemplate,
    JmesPath,
    OriginString,
    Regex,
    Size,
    Slug,
    StatusExpectation,
    StringList,
    TemplateString,
    VariableName,
    compile_regex,
)

DEFAULT_MAX_BODY = 1024 * 1024
MAX_REDIRECTS = 10
# A DNS name (labels of letters, digits and hyphens) or an IP literal.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOSTNAME_PATTERN = rf"^{_LABEL}(?:\.{_LABEL})*\.?$|^\[?[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*\]?$"
DEFAULT_MAX_HEADER_SIZE = 64 * 1024
# Response header lines a step accepts; a flood beyond it is not HTTP we can judge.
MAX_RESPONSE_HEADERS = 1000

JSON_OPERATORS = (
    "equals",
    "not_equals",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "matches",
    "exists",
    "empty",
)
JsonOperator = Literal[
    "equals", "not_equals", "gt", "gte", "lt", "lte", "contains", "matches", "exists", "empty"
]
Severity = Literal["critical", "warning"]
HttpMethod = Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class JsonAssertion(Model):
    """One JMESPath query and one operator: `{query: "length(items)", gt: 0}`."""

    query: JmesPath
    operator: JsonOperator
    expected: Any = None
    reason: Slug | None = None
    severity: Severity = "critical"

    @classmethod
    def __get_pydantic_json_schema__(cls, _core: Any, _handler: Any) -> dict[str, Any]:
        # The schema users write, not the internal operator/expected split.
        return {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "A JMESPath expression."},
                **{op: {"description": f"Operator {op}."} for op in JSON_OPERATORS},
                "reason": {"type": "string", "pattern": SLUG_PATTERN},
                "severity": {"enum": ["critical", "warning"]},
            },
            "required": ["query"],
            "additionalProperties": False,
            "minProperties": 2,
        }

    @model_validator(mode="before")
    @classmethod
    def _split_operator(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "operator" in data:
            return data
        present = [key for key in data if key in JSON_OPERATORS]
        unknown = [
            key for key in data if key not in (*JSON_OPERATORS, "query", "reason", "severity")
        ]
        if unknown:
            raise ValueError(
                f"unknown operator {unknown[0]!r}; expected one of {', '.join(JSON_OPERATORS)}"
            )
        if len(present) != 1:
            raise ValueError(
                f"needs exactly one operator ({', '.join(JSON_OPERATORS)}), got {len(present)}"
            )
        operator = present[0]
        rest = {key: value for key, value in data.items() if key != operator}
        return {**rest, "operator": operator, "expected": data[operator]}

    @model_validator(mode="after")
    def _check_expected(self) -> JsonAssertion:
        op, expected = self.operator, self.expected
        if op in ("gt", "gte", "lt", "lte") and (
            isinstance(expected, bool) or not isinstance(expected, int | float)
        ):
            raise ValueError(f"{op} needs a number, got {expected!r}")
        if op in ("exists", "empty") and not isinstance(expected, bool):
            raise ValueError(f"{op} needs true or false, got {expected!r}")
        if op == "matches":
            object.__setattr__(self, "expected", compile_regex(expected))
        return self

    def expectation(self) -> str:
        """`> 0`, `== 'completed'`, `not empty`: the right-hand side as a person reads it."""
        symbols = {
            "gt": ">",
            "gte": ">=",
            "lt": "<",
            "lte": "<=",
            "equals": "==",
            "not_equals": "!=",
        }
        if self.operator in symbols:
            return f"{symbols[self.operator]} {self.expected!r}"
        if self.operator in ("exists", "empty"):
            return self.operator if self.expected else f"not {self.operator}"
        if self.operator == "matches":
            return f"to match {self.expected.pattern!r}"
        return f"to contain {self.expected!r}"


class ExpectBase(Model):
    """What every kind's `expect` has: a latency above which a passing step is degraded."""

    max_latency: Duration | None = None


class JsonExpect(ExpectBase):
    """JMESPath assertions on a JSON document: a body, or the document a kind makes of
    what it received (a DNS answer, a certificate), the same one `extract` reads."""

    json_assertions: list[JsonAssertion] = Field(default=[], alias="json")


class ContentExpect(JsonExpect):
    """Assertions on a body that a target sent (an HTTP body, a WebSocket message)."""

    body_contains: StringList = []
    body_not_contains: StringList = []
    body_matches: Regex | None = None
    json_schema: str | None = None
    # The schema document, read by the loader (the model does no I/O).
    _schema_document: Any = PrivateAttr(default=None)

    @property
    def schema_document(self) -> Any:
        return self._schema_document

    @property
    def needs_json(self) -> bool:
        return bool(self.json_assertions) or self.json_schema is not None


class Expect(ContentExpect):
    """`expect` of the HTTP kinds: the status and headers, then the body."""

    status: StatusExpectation = Field(default="2xx", validate_default=True)
    headers: dict[HeaderName, Regex] = {}
    # Fewer days than this left on the certificate the target presented: cert_expiring.
    cert_min_days: float | None = Field(default=None, gt=0)


class RequestSpec(Model):
    method: HttpMethod = "GET"
    url: TemplateString
    headers: dict[HeaderName, HeaderTemplate] = {}
    body: TemplateString | None = None
    json_body: Any = Field(default=None, alias="json")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_body(self) -> RequestSpec:
        if self.body is not None and self.json_body is not None:
            raise ValueError("set either body or json, not both")
        return self


class PollConfig(Model):
    every: Duration
    within: Duration
    reason: Slug = "poll_timeout"

    @model_validator(mode="after")
    def _every_within(self) -> PollConfig:
        if self.every > self.within:
            raise ValueError("poll.every is longer than poll.within: it would never repeat")
        return self


class TlsConfig(Model):
    verify: bool = True
    ca_file: str | None = None
    # The name sent as SNI and verified against the certificate; by default the `Host`
    # header when the step sets one, else the URL's host (as blackbox_exporter does).
    server_name: str | None = Field(default=None, max_length=253, pattern=HOSTNAME_PATTERN)


class StepBase(Model):
    """What every kind of step has. A kind adds exactly one handler key (its `handler`)."""

    # The key that names this kind in probes.yaml (`request`, `stream`, ...).
    handler: ClassVar[str]
    # The module under uptime_probe.probe.kinds that runs it, imported on first use so a
    # config without, say, browser steps never imports the browser's dependencies.
    runner: ClassVar[str]
    # Whether the step opens with an HTTP exchange of its own (a request, a stream, a
    # websocket's upgrade): its status code and the phases of that exchange are exported.
    exchanges_http: ClassVar[bool] = False

    name: Slug
    extract: dict[VariableName, JmesPath] = {}
    poll: PollConfig | None = None

    @property
    def kind(self) -> str:
        return self.handler

    @property
    def headers_sent(self) -> Mapping[str, Template] | None:
        """The HTTP headers this step's config sends, which the check's `headers` are merged
        under; None for a kind that sends no HTTP headers of its own."""
        return None

    def templates(self) -> Iterator[tuple[Path, Any]]:
        """Every value of the step that holds placeholders, with its path under the step.

        Templates or JSON-like values (whose strings are templates): the loader checks each
        names only variables that exist by then.
        """
        return iter(())

    def urls(self) -> Iterator[tuple[Path, Template, tuple[str, ...]]]:
        """The step's URL templates and the schemes each may have, checked at load when the
        scheme does not come from an extracted value."""
        return iter(())

    # Headers the kind sends on its HTTP request unless the check or the step sets them
    # (User-Agent aside): a stream's `Accept: text/event-stream`.
    default_headers: ClassVar[tuple[tuple[str, str], ...]] = ()

    def http_headers(self) -> Mapping[str, Template] | None:
        """The headers the step sends on an HTTP request of its own, or None when it sends
        none (a DNS query, a TCP exchange). The check's headers are merged under them."""
        return None

    def reasons(self) -> frozenset[str]:
        """Failure reasons this step's config names."""
        named: set[str] = set()
        expect = getattr(self, "expect", None)
        if isinstance(expect, JsonExpect):
            named |= {a.reason for a in expect.json_assertions if a.reason}
        if self.poll is not None:
            named.add(self.poll.reason)
        return frozenset(named)


class SecretOriginsAllowed(Model):
    """`send_secrets_to`, for the kinds whose request a redirect or an extracted value can
    take to another origin: the HTTP kinds and `websocket` (probe/secret_origins.py)."""

    # Origins besides the URL's own that may receive the headers and body (or frames)
    # carrying a secret.
    send_secrets_to: list[OriginString] = []


class HttpStepBase(StepBase, SecretOriginsAllowed):
    """The parts of every kind that speaks HTTP to its target (`request`, `stream`)."""

    exchanges_http: ClassVar[bool] = True
    # Whether `extract` runs on the one JSON body once it is in (False: the kind extracts
    # as it reads, a stream from its events).
    extract_from_body: ClassVar[bool] = True

    expect: Expect = Expect()
    follow_redirects: bool = True
    max_body: Size = DEFAULT_MAX_BODY
    max_header_size: Size = Field(default=DEFAULT_MAX_HEADER_SIZE, ge=1024, le=16 * 1024 * 1024)
    tls: TlsConfig = TlsConfig()

    @model_validator(mode="after")
    def _certificate_needs_https(self) -> HttpStepBase:
        url = self.http_request.url.source
        if self.expect.cert_min_days is not None and url.startswith("http://"):
            raise ValueError(
                "expect.cert_min_days needs an https:// url: plain HTTP has no certificate"
            )
        return self

    @property
    def http_request(self) -> RequestSpec:
        """The request this step sends: its handler key's value."""
        spec = getattr(self, self.handler)
        assert isinstance(spec, RequestSpec), "HTTP-based kinds hold a RequestSpec"
        return spec

    def http_headers(self) -> Mapping[str, Template] | None:
        return self.http_request.headers

    def reasons(self) -> frozenset[str]:
        named = super().reasons()
        return named | {"cert_expiring"} if self.expect.cert_min_days is not None else named

    def templates(self) -> Iterator[tuple[Path, Any]]:
        request, key = self.http_request, self.handler
        yield (key, "url"), request.url
        for header, value in request.headers.items():
            yield (key, "headers", header), value
        if request.body is not None:
            yield (key, "body"), request.body
        if request.json_body is not None:
            yield (key, "json"), request.json_body

    def urls(self) -> Iterator[tuple[Path, Template, tuple[str, ...]]]:
        yield (self.handler, "url"), self.http_request.url, ("http", "https")
