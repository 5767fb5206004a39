"""A check made ready to run: templates merged, assertions compiled, TLS contexts built once."""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from uptime_probe import __version__
from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import (
    BrowserStep,
    ExpectBase,
    HttpStepBase,
    StepBase,
    TcpStep,
    TlsConfig,
    WebsocketStep,
)
from uptime_probe.config.template import Template
from uptime_probe.config.types import Query
from uptime_probe.probe.decoding import ACCEPT_ENCODING
from uptime_probe.probe.judging import JudgingPool, StepJudge
from uptime_probe.probe.kinds import StepKind, kind_of
from uptime_probe.probe.request_url import RequestUrl
from uptime_probe.probe.secret_origins import SecretPolicy

USER_AGENT = f"uptime-probe/{__version__}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    config: StepBase
    kind: StepKind
    # The check's and the step's headers, merged (kinds that send HTTP; empty for others).
    headers: tuple[tuple[str, Template], ...]
    # Judges a response against the step's `expect` and `extract` (None: a kind without them).
    judge: StepJudge | None
    ssl: ssl.SSLContext | bool
    redact: Redactor  # the check's: every cut of a target's text redacts first
    # The URL the step requests (HTTP-based kinds, websocket) with the config's values in
    # place, and (those, and tcp) what of the request carries a secret (None: nothing).
    url: RequestUrl | None = None
    secret_policy: SecretPolicy | None = None
    # Lower-case names of the headers whose template names a secret: a kind that can reach
    # other origins (a browser page's third-party requests) keeps them to the step's own.
    secret_headers: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.config.name


@dataclass(frozen=True, slots=True)
class CheckPlan:
    check: CheckConfig
    steps: tuple[StepPlan, ...]
    values: Mapping[str, str]
    redact: Redactor

    @property
    def name(self) -> str:
        return self.check.name

    @property
    def timeout(self) -> float:
        return self.check.timeout_seconds


class TlsContexts:
    """One SSLContext per distinct TLS setting: building one loads the CA store (milliseconds)."""

    def __init__(self) -> None:
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    @classmethod
    def of(cls, config: Config) -> TlsContexts:
        """Every context `config`'s steps need, built now: loading a CA store takes 20 ms,
        which a reload spends in a thread (OpenSSL lets go of the interpreter lock) rather
        than while it compiles checks on the event loop."""
        contexts = cls()
        for check in config.checks:
            for step in check.steps:
                settings = getattr(step, "tls", None)
                if isinstance(settings, TlsConfig):
                    contexts.for_settings(settings)
        return contexts

    def for_settings(self, tls: TlsConfig) -> ssl.SSLContext | bool:
        if not tls.verify:
            return False
        key = tls.ca_file
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=key)
            self._contexts[key] = context
        return context


def compile_check(
    check: CheckConfig,
    *,
    variables: Mapping[str, str],
    secrets: Mapping[str, str],
    tls: TlsContexts,
    judging: JudgingPool | None = None,
) -> CheckPlan:
    values = {**variables, **secrets}
    redact = Redactor(secrets.values())
    steps = [
        _compile_step(step, check, tls, redact, judging, values, frozenset(secrets))
        for step in check.steps
    ]
    return CheckPlan(
        check=check,
        steps=tuple(steps),
        values=values,
        redact=redact,
    )


def _compile_step(
    step: StepBase,
    check: CheckConfig,
    tls: TlsContexts,
    redact: Redactor,
    judging: JudgingPool | None,
    values: Mapping[str, str],
    secrets: frozenset[str],
) -> StepPlan:
    headers: dict[str, tuple[str, Template]] = {}
    settings = getattr(step, "tls", None)
    url = policy = None
    own = step.http_headers()
    if own is not None:
        headers = {name.lower(): (name, value) for name, value in check.headers.items()}
        headers.update({name.lower(): (name, value) for name, value in own.items()})
    if own is not None and not isinstance(step, BrowserStep):
        # Chromium sends its own User-Agent and decodes what it asks for; our client's
        # defaults are for the kinds whose HTTP client is ours.
        headers.setdefault("user-agent", ("User-Agent", Template(USER_AGENT)))
        for name, value in step.default_headers:
            headers.setdefault(name.lower(), (name, Template(value)))
        # What we decode, said explicitly (aiohttp's default depends on what is installed).
        headers.setdefault("accept-encoding", ("Accept-Encoding", Template(ACCEPT_ENCODING)))
    requested = [template for _where, template, _schemes in step.urls()]
    if len(requested) == 1:  # the URL an HTTP-based or websocket step requests
        url = RequestUrl.compile(requested[0], values)
    if isinstance(step, HttpStepBase | WebsocketStep):
        assert url is not None, "an HTTP-based or websocket step requests one URL"
        policy = SecretPolicy.compile(step, tuple(headers.values()), url, secrets)
    elif isinstance(step, TcpStep):
        policy = SecretPolicy.for_connection(step, values, secrets)
    expect = getattr(step, "expect", None)
    return StepPlan(
        config=step,
        kind=kind_of(step),
        headers=tuple(headers.values()),
        judge=StepJudge(expect, _judged_extract(step), judging, redact)
        if isinstance(expect, ExpectBase)
        else None,
        ssl=tls.for_settings(settings) if isinstance(settings, TlsConfig) else False,
        redact=redact,
        url=url,
        secret_policy=policy,
        secret_headers=frozenset(
            key for key, (_name, template) in headers.items() if template.names & secrets
        ),
    )


def _judged_extract(step: StepBase) -> Mapping[str, Query]:
    """The `extract` queries judged with the response (a stream extracts from its events)."""
    if isinstance(step, HttpStepBase) and not step.extract_from_body:
        return {}
    return step.extract


def judged_off_loop(plans: Iterable[CheckPlan]) -> bool:
    """Whether some step of `plans` is judged in a worker process whatever its response
    (a JSON schema): then the judging pool's zygote is worth starting with the config
    rather than at that step's first response (probe/judging.py)."""
    return any(
        step.judge is not None and step.judge.rules.always_off_loop
        for plan in plans
        for step in plan.steps
    )


def compile_checks(
    config: Config, tls: TlsContexts | None = None, judging: JudgingPool | None = None
) -> dict[str, CheckPlan]:
    """Every check's plan. `judging` judges heavy responses off the loop (probe/judging.py);
    without it every response is judged on the loop, unbounded (tests, benchmarks)."""
    return dict(compile_each(config, tls, judging))


def compile_each(
    config: Config, tls: TlsContexts | None = None, judging: JudgingPool | None = None
) -> Iterator[tuple[str, CheckPlan]]:
    """`compile_checks` a check at a time: a reload compiles 10,000 checks in short slices
    on the event loop (app.py) rather than in one long step."""
    contexts = tls or TlsContexts()
    for check in config.checks:
        yield (
            check.name,
            compile_check(
                check,
                variables=config.variables,
                secrets=config.secrets,
                tls=contexts,
                judging=judging,
            ),
        )
