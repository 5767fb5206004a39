"""A check made ready to run: templates merged, assertions compiled, TLS contexts built once."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from uptime_probe import __version__
from uptime_probe.config.model import CheckConfig, Config, StepConfig
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.template import Template
from uptime_probe.probe.judging import JudgingPool, StepJudge

USER_AGENT = f"uptime-probe/{__version__}"


@dataclass(frozen=True, slots=True)
class StepPlan:
    config: StepConfig
    headers: tuple[tuple[str, Template], ...]
    judge: StepJudge
    ssl: ssl.SSLContext | bool

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

    def for_step(self, step: StepConfig) -> ssl.SSLContext | bool:
        if not step.tls.verify:
            return False
        key = step.tls.ca_file
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
    steps = []
    for step in check.steps:
        headers = {name.lower(): (name, value) for name, value in check.headers.items()}
        headers.update(
            {name.lower(): (name, value) for name, value in step.request.headers.items()}
        )
        headers.setdefault("user-agent", ("User-Agent", Template(USER_AGENT)))
        steps.append(
            StepPlan(
                config=step,
                headers=tuple(headers.values()),
                judge=StepJudge(step.expect, step.extract, judging),
                ssl=tls.for_step(step),
            )
        )
    return CheckPlan(
        check=check,
        steps=tuple(steps),
        values={**variables, **secrets},
        redact=Redactor(secrets.values()),
    )


def compile_checks(
    config: Config, tls: TlsContexts | None = None, judging: JudgingPool | None = None
) -> dict[str, CheckPlan]:
    """Every check's plan. `judging` judges heavy responses off the loop (probe/judging.py);
    without it every response is judged on the loop, unbounded (tests, benchmarks)."""
    contexts = tls or TlsContexts()
    return {
        check.name: compile_check(
            check,
            variables=config.variables,
            secrets=config.secrets,
            tls=contexts,
            judging=judging,
        )
        for check in config.checks
    }
