"""Step kinds, one module each, found through the step's config (`runner`).

The registry is `uptime_probe.config.steps.STEP_KINDS`: a config model names the module
here that runs it, which is imported on first use, so the dependencies of a kind a
config does not use (Playwright, dnspython) are never imported.
"""

from __future__ import annotations

import functools
import importlib

from uptime_probe.config.steps import StepBase
from uptime_probe.probe.kinds.base import Attempt, RunContext, StepKind

__all__ = ["Attempt", "RunContext", "StepKind", "kind_of"]


@functools.cache
def _kind(runner: str) -> StepKind:
    module = importlib.import_module(f"{__name__}.{runner}")
    kind: StepKind = module.KIND
    return kind


def kind_of(step: StepBase) -> StepKind:
    return _kind(step.runner)
