"""The probe engine: run a check's steps and return plain result objects."""

from uptime_probe.probe.engine import run_check
from uptime_probe.probe.model import (
    BUILTIN_REASONS,
    CheckResult,
    FailureReason,
    PhaseTimings,
    Status,
    StepResult,
)
from uptime_probe.probe.plan import (
    CheckPlan,
    TlsContexts,
    compile_check,
    compile_checks,
    compile_each,
)

__all__ = [
    "BUILTIN_REASONS",
    "CheckPlan",
    "CheckResult",
    "FailureReason",
    "PhaseTimings",
    "Status",
    "StepResult",
    "TlsContexts",
    "compile_check",
    "compile_checks",
    "compile_each",
    "run_check",
]
