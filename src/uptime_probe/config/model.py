"""The configuration model: frozen types, every default declared here and nowhere else.

Defaults are values on the fields; `Config` lays `defaults:` over each check that
does not set its own, so everything downstream reads a fully resolved `CheckConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from uptime_probe.config.types import (
    SLUG_PATTERN,
    Duration,
    JmesPath,
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
LOCATION_PATTERN = r"^[A-Za-z0-9_.-]{1,63}$"
MAX_REDIRECTS = 10

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


class Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, populate_by_name=True
    )


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


class Expect(Model):
    status: StatusExpectation = Field(default="2xx", validate_default=True)
    max_latency: Duration | None = None
    headers: dict[str, Regex] = {}
    body_contains: StringList = []
    body_not_contains: StringList = []
    body_matches: Regex | None = None
    json_assertions: list[JsonAssertion] = Field(default=[], alias="json")
    json_schema: str | None = None
    # The schema document, read by the loader (the model does no I/O).
    _schema_document: Any = PrivateAttr(default=None)

    @property
    def schema_document(self) -> Any:
        return self._schema_document

    @property
    def needs_json(self) -> bool:
        return bool(self.json_assertions) or self.json_schema is not None


class RequestSpec(Model):
    method: HttpMethod = "GET"
    url: TemplateString
    headers: dict[str, TemplateString] = {}
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


class StepConfig(Model):
    name: Slug
    request: RequestSpec
    expect: Expect = Expect()
    extract: dict[VariableName, JmesPath] = {}
    poll: PollConfig | None = None
    follow_redirects: bool = True
    max_body: Size = DEFAULT_MAX_BODY
    tls: TlsConfig = TlsConfig()

    def reasons(self) -> frozenset[str]:
        """Failure reasons this step's config names."""
        named = {a.reason for a in self.expect.json_assertions if a.reason}
        if self.poll is not None:
            named.add(self.poll.reason)
        return frozenset(named)


class CheckConfig(Model):
    name: Slug
    description: str = ""
    steps: list[StepConfig] = Field(min_length=1)
    # None means "take it from defaults"; Config resolves every one of these.
    interval: Duration | None = None
    timeout: Duration | None = None
    headers: dict[str, TemplateString] = {}
    slo: float | None = Field(default=None, gt=0, lt=1)
    failure_threshold: int | None = Field(default=None, ge=1, le=100)
    success_threshold: int | None = Field(default=None, ge=1, le=100)
    notifiers: list[Slug] | None = None
    locations: list[Annotated[str, Field(pattern=LOCATION_PATTERN)]] | None = None

    @property
    def interval_seconds(self) -> float:
        assert self.interval is not None, "Config resolves defaults"
        return self.interval

    @property
    def timeout_seconds(self) -> float:
        assert self.timeout is not None, "Config resolves defaults"
        return self.timeout

    @property
    def slo_objective(self) -> float:
        assert self.slo is not None, "Config resolves defaults"
        return self.slo

    @property
    def failure_threshold_runs(self) -> int:
        assert self.failure_threshold is not None, "Config resolves defaults"
        return self.failure_threshold

    @property
    def success_threshold_runs(self) -> int:
        assert self.success_threshold is not None, "Config resolves defaults"
        return self.success_threshold

    def reasons(self) -> frozenset[str]:
        found: frozenset[str] = frozenset()
        for step in self.steps:
            found |= step.reasons()
        return found


class DefaultsConfig(Model):
    interval: Duration = 30.0
    timeout: Duration = 10.0
    headers: dict[str, TemplateString] = {}
    slo: float = Field(default=0.999, gt=0, lt=1)
    failure_threshold: int = Field(default=2, ge=1, le=100)
    success_threshold: int = Field(default=1, ge=1, le=100)
    notifiers: list[Slug] = []


class BasicAuth(Model):
    username: str
    password: str


class AuthConfig(Model):
    basic: BasicAuth | None = None
    bearer_token: str | None = None
    protect_metrics: bool = False

    @model_validator(mode="after")
    def _one_kind(self) -> AuthConfig:
        if self.basic is None and self.bearer_token is None:
            raise ValueError("auth needs basic or bearer_token")
        return self


class ServerConfig(Model):
    # All interfaces: the daemon is scraped from elsewhere (a container's port is reached
    # through its network namespace). Strangers' connections are bounded by the two
    # settings below, so exposure costs them nothing (docs/configuration.md, server).
    listen: str = "0.0.0.0:9713"
    # The most connections the server holds at once; fewer when the descriptor limit
    # leaves no room beside the probes' (app.py, descriptors.py).
    max_connections: int = Field(default=256, ge=1, le=100_000)
    # From a connection's first byte (or its accept) to the end of the request's headers.
    header_timeout: Duration = Field(default=5.0, gt=0)
    enable_lifecycle: bool = False
    watch_interval: Duration = 5.0
    public_url: str | None = None
    auth: AuthConfig | None = None

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, got {value!r}")
        return value


class WebhookNotifier(Model):
    kind: Literal["webhook"]
    url: str
    hmac_secret: str | None = None
    headers: dict[str, str] = {}
    timeout: Duration = 5.0
    reminder_interval: Duration | None = None


class SlackNotifier(Model):
    kind: Literal["slack"]
    url: str
    timeout: Duration = 5.0
    reminder_interval: Duration | None = None


class AlertmanagerNotifier(Model):
    kind: Literal["alertmanager"]
    url: str
    timeout: Duration = 5.0
    # Alertmanager forgets an alert it does not hear about again: re-post while firing.
    reminder_interval: Duration | None = 60.0


NotifierConfig = Annotated[
    WebhookNotifier | SlackNotifier | AlertmanagerNotifier, Field(discriminator="kind")
]


class StoreConfig(Model):
    raw_retention: Duration = 14 * 86400.0
    rollup_retention: Duration = 400 * 86400.0
    # How often the daemon tries again to open a store it could not open (full or
    # read-only data dir): it probes and serves meanwhile.
    retry_interval: Duration = Field(default=30.0, gt=0)


class StatusPageConfig(Model):
    title: str = "Service status"


class Config(Model):
    location: str = Field(default="local", pattern=LOCATION_PATTERN)
    max_concurrency: int = Field(default=512, ge=1, le=100_000)
    defaults: DefaultsConfig = DefaultsConfig()
    variables: dict[VariableName, str] = {}
    secrets: dict[VariableName, str] = {}
    checks: list[CheckConfig] = Field(min_length=1)
    server: ServerConfig = ServerConfig()
    notifiers: dict[Slug, NotifierConfig] = {}
    store: StoreConfig = StoreConfig()
    status_page: StatusPageConfig = StatusPageConfig()

    @model_validator(mode="after")
    def _resolve_defaults(self) -> Config:
        d = self.defaults
        resolved = [
            check.model_copy(
                update={
                    "interval": check.interval if check.interval is not None else d.interval,
                    "timeout": check.timeout if check.timeout is not None else d.timeout,
                    "headers": {**d.headers, **check.headers},
                    "slo": check.slo if check.slo is not None else d.slo,
                    "failure_threshold": check.failure_threshold or d.failure_threshold,
                    "success_threshold": check.success_threshold or d.success_threshold,
                    "notifiers": check.notifiers if check.notifiers is not None else d.notifiers,
                }
            )
            for check in self.checks
        ]
        object.__setattr__(self, "checks", resolved)
        return self

    def check(self, name: str) -> CheckConfig:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)
