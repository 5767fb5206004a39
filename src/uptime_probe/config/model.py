"""The configuration model: frozen types, every default declared here and nowhere else.

Defaults are values on the fields; `Config` lays `defaults:` over each check that
does not set its own, so everything downstream reads a fully resolved `CheckConfig`.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from uptime_probe.config.apprise_url import cached_url_secrets, check_apprise_url
from uptime_probe.config.base import Model
from uptime_probe.config.maintenance import MaintenanceConfig
from uptime_probe.config.steps import StepConfig
from uptime_probe.config.types import (
    BasicUsername,
    BearerToken,
    Credential,
    Duration,
    HeaderName,
    HeaderTemplate,
    HeaderValue,
    Nameserver,
    Slug,
    VariableName,
)

LOCATION_PATTERN = r"^[A-Za-z0-9_.-]{1,63}$"
MAX_DNS_TIMEOUT = 60.0
MAX_RETRIES = 10


class RetriesConfig(Model):
    """A down run tried again within the same run slot before it counts."""

    count: int = Field(default=0, ge=0, le=MAX_RETRIES)
    delay: Duration = 1.0


class CheckConfig(Model):
    name: Slug
    description: str = ""
    steps: list[StepConfig] = Field(min_length=1)
    # None means "take it from defaults"; Config resolves every one of these.
    interval: Duration | None = None
    timeout: Duration | None = None
    headers: dict[HeaderName, HeaderTemplate] = {}
    slo: float | None = Field(default=None, gt=0, lt=1)
    failure_threshold: int | None = Field(default=None, ge=1, le=100)
    success_threshold: int | None = Field(default=None, ge=1, le=100)
    notifiers: list[Slug] | None = None
    locations: list[Annotated[str, Field(pattern=LOCATION_PATTERN)]] | None = None
    tags: list[Slug] = []
    depends_on: list[Slug] = []
    retries: RetriesConfig | None = None

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
    def retry_policy(self) -> RetriesConfig:
        assert self.retries is not None, "Config resolves defaults"
        return self.retries

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
    headers: dict[HeaderName, HeaderTemplate] = {}
    slo: float = Field(default=0.999, gt=0, lt=1)
    failure_threshold: int = Field(default=2, ge=1, le=100)
    success_threshold: int = Field(default=1, ge=1, le=100)
    notifiers: list[Slug] = []
    retries: RetriesConfig = RetriesConfig()


class BasicAuth(Model):
    username: BasicUsername
    password: Credential


class AuthConfig(Model):
    basic: BasicAuth | None = None
    bearer_token: BearerToken | None = None
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
    hmac_secret: Credential | None = None
    headers: dict[HeaderName, HeaderValue] = {}
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


AppriseUrl = Annotated[
    str,
    AfterValidator(check_apprise_url),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://"}),
]
MAX_APPRISE_URLS = 20


class AppriseNotifier(Model):
    """Any service Apprise supports (PagerDuty, Opsgenie, Teams, Discord, Telegram, email,
    ntfy, Matrix...), one URL per target. Every URL is a secret (alerting/apprise_notifier.py)."""

    kind: Literal["apprise"]
    urls: list[AppriseUrl] = Field(min_length=1, max_length=MAX_APPRISE_URLS, repr=False)
    # Longer than the HTTP notifiers': email takes a few round trips (EHLO, STARTTLS, AUTH).
    timeout: Duration = 10.0
    reminder_interval: Duration | None = None


NotifierConfig = Annotated[
    WebhookNotifier | SlackNotifier | AlertmanagerNotifier | AppriseNotifier,
    Field(discriminator="kind"),
]


# Where the history lives when neither `--data-dir` nor `store.data_dir` says: the working
# folder's `data/`, as it always was (the image's working folder is its volume).
DEFAULT_DATA_DIR = "data"


class StoreConfig(Model):
    # Relative to the config's folder (the loader resolves it); `--data-dir` (or
    # $UPTIME_PROBE_DATA_DIR) wins over it, for `run`, `demo` and `incidents` alike.
    data_dir: str | None = Field(default=None, min_length=1)
    raw_retention: Duration = 14 * 86400.0
    rollup_retention: Duration = 400 * 86400.0
    # How often the daemon tries again to open a store it could not open (full or
    # read-only data dir): it probes and serves meanwhile.
    retry_interval: Duration = Field(default=30.0, gt=0)

    @property
    def data_dir_path(self) -> FilePath:
        return FilePath(self.data_dir or DEFAULT_DATA_DIR)


class StatusPageConfig(Model):
    title: str = "Service status"


class DnsConfig(Model):
    """How probes resolve names (probe/resolve.py): servers, and a bound per lookup."""

    servers: list[Nameserver] = []  # empty: the system's, from /etc/resolv.conf
    timeout: Duration = 5.0

    @field_validator("timeout")
    @classmethod
    def _bounded(cls, value: float) -> float:
        if value > MAX_DNS_TIMEOUT:
            raise ValueError(f"a lookup may wait at most {MAX_DNS_TIMEOUT:g}s, got {value:g}s")
        return value


class BrowserConfig(Model):
    """How browser steps run (probe/browser_pool.py): one Chromium for the whole daemon."""

    # Chromium's (or Chrome's) binary; None: the first of `chromium`, `chromium-browser`,
    # `google-chrome-stable`, `google-chrome` on PATH. Resolved once, at load.
    executable: str | None = Field(default=None, min_length=1)
    # Browser runs at once: a page costs far more memory than an HTTP probe.
    max_concurrent: int = Field(default=2, ge=1, le=64)
    # Screenshots of failed browser steps kept per check (the newest); 0 keeps none.
    keep_screenshots: int = Field(default=20, ge=0, le=10_000)
    # Whether each kept screenshot has its run's Playwright trace beside it: every run then
    # records one, about 50 ms more CPU on a 500 ms run (docs/configuration.md, "What a
    # browser run costs"), and the page's responses are kept on disk with it.
    keep_traces: bool = True
    # Where Chromium or Playwright is missing: refuse the config (`fail`), or drop its
    # checks that have browser steps and say so (`skip`).
    when_missing: Literal["fail", "skip"] = "fail"


class JudgingConfig(Model):
    """The process that judges heavy answers off the event loop (probe/judging.py)."""

    # `on_demand`: started by the first answer over the inline budget (that run waits for
    # its imports, about a second, within its deadline), or with a config that has a JSON
    # schema; a daemon whose answers are all small never runs it (about 58 MB).
    # `at_start`: started with the daemon, ready for the first heavy answer.
    start: Literal["on_demand", "at_start"] = "on_demand"


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
    dns: DnsConfig = DnsConfig()
    maintenance: list[MaintenanceConfig] = []
    browser: BrowserConfig = BrowserConfig()
    judging: JudgingConfig = JudgingConfig()
    # Set by the loader when `browser.when_missing: skip` dropped checks: their names, and
    # why (what is missing, how to install it).
    _skipped_checks: tuple[str, ...] = PrivateAttr(default=())
    _skipped_because: str = PrivateAttr(default="")

    @property
    def skipped_checks(self) -> tuple[str, ...]:
        return self._skipped_checks

    @property
    def skipped_because(self) -> str:
        return self._skipped_because

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
                    "retries": check.retries if check.retries is not None else d.retries,
                }
            )
            for check in self.checks
        ]
        object.__setattr__(self, "checks", resolved)
        return self

    def secret_values(self) -> list[str]:
        """Every value to redact from logs and messages: `secrets:`, and each Apprise URL
        with the tokens and passwords in it."""
        found = list(self.secrets.values())
        for notifier in self.notifiers.values():
            if isinstance(notifier, AppriseNotifier):
                found += (s for url in notifier.urls for s in cached_url_secrets(url))
        return found

    def check(self, name: str) -> CheckConfig:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)
