"""A check made ready to run: templates merged, assertions compiled, TLS contexts built once."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from uptime_probe import __version__
from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import Expect, HttpStepBase, StepBase, TlsConfig
from uptime_probe.config.template import Template
from uptime_probe.probe.assertions import Assertion, compile_expect
from uptime_probe.probe.decoding import ACCEPT_ENCODING
from uptime_probe.probe.kinds import StepKind, kind_of

USER_AGENT = f"uptime-probe/{__version__}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    config: StepBase
    kind: StepKind
    # The check's and the step's headers, merged (kinds that send HTTP headers; empty for
    # others).
    headers: tuple[tuple[str, Template], ...]
    assertions: tuple[Assertion, ...]
    ssl: ssl.SSLContext | bool
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
) -> CheckPlan:
    steps = [_compile_step(step, check, tls, frozenset(secrets)) for step in check.steps]
    return CheckPlan(
        check=check,
        steps=tuple(steps),
        values={**variables, **secrets},
        redact=Redactor(secrets.values()),
    )


def _compile_step(
    step: StepBase, check: CheckConfig, tls: TlsContexts, secrets: frozenset[str] = frozenset()
) -> StepPlan:
    headers: dict[str, tuple[str, Template]] = {}
    settings = getattr(step, "tls", None)
    own = step.headers_sent
    if own is not None:
        headers = {name.lower(): (name, value) for name, value in check.headers.items()}
        headers.update({name.lower(): (name, value) for name, value in own.items()})
    if isinstance(step, HttpStepBase):
        headers.setdefault("user-agent", ("User-Agent", Template(USER_AGENT)))
        # What we decode, said explicitly (aiohttp's default depends on what is installed).
        headers.setdefault("accept-encoding", ("Accept-Encoding", Template(ACCEPT_ENCODING)))
    expect = getattr(step, "expect", None)
    return StepPlan(
        config=step,
        kind=kind_of(step),
        headers=tuple(headers.values()),
        assertions=compile_expect(expect) if isinstance(expect, Expect) else (),
        ssl=tls.for_settings(settings) if isinstance(settings, TlsConfig) else False,
        secret_headers=frozenset(
            key for key, (_name, template) in headers.items() if template.names & secrets
        ),
    )


def compile_checks(config: Config, tls: TlsContexts | None = None) -> dict[str, CheckPlan]:
    contexts = tls or TlsContexts()
    return {
        check.name: compile_check(
            check, variables=config.variables, secrets=config.secrets, tls=contexts
        )
        for check in config.checks
    }
