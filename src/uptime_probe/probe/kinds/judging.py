"""Judging what a step received, shared by every kind: assertions, then extraction.

An HTTP body, a WebSocket message, or the JSON document a kind makes of what it
received (a DNS answer, a certificate, the lines of a TCP exchange) is one
`ResponseView`; the step's compiled assertions run over it in order, then `extract`
reads it. The first failed critical assertion decides; warnings make it degraded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from uptime_probe.config.types import Query
from uptime_probe.probe.assertions import InvalidJson, ResponseView
from uptime_probe.probe.certificates import expiry_shortfall
from uptime_probe.probe.kinds.base import Attempt
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status
from uptime_probe.probe.plan import StepPlan


def judge_view(plan: StepPlan, view: ResponseView, passed: str) -> Attempt:
    """The step's assertions, then its extraction, over `view`; `passed` is the up message.

    The attempt carries the view's body (the failure sample) and its outcomes; the
    caller adds what only it knows (HTTP status, figures, timings).
    """
    outcomes: list[AssertionOutcome] = []

    def attempt(
        status: Status, reason: str | None, message: str, extracted: dict[str, str] | None = None
    ) -> Attempt:
        return Attempt(
            status,
            reason,
            message,
            body=view.body,
            body_bytes=len(view.body),
            assertions=tuple(outcomes),
            extracted=extracted or {},
        )

    try:
        for assertion in plan.assertions:
            outcomes.append(assertion(view))
        extracted = extract_values(plan.config.extract, view.json)
    except InvalidJson as exc:
        return attempt(Status.DOWN, FailureReason.INVALID_JSON, str(exc))
    failed = [o for o in outcomes if not o.passed]
    critical = next((o for o in failed if o.severity == "critical"), None)
    if critical is not None:
        return attempt(Status.DOWN, critical.reason, critical.message)
    if isinstance(extracted, str):
        return attempt(Status.DOWN, FailureReason.EXTRACTION_FAILED, extracted)
    if failed:
        return attempt(Status.DEGRADED, None, "; ".join(o.message for o in failed), extracted)
    return attempt(Status.UP, None, passed, extracted)


def extract_values(
    queries: Mapping[str, Query], document: Callable[[], Any]
) -> dict[str, str] | str:
    """Extracted values, or a message saying which one could not be found.

    `document` is called only when there is something to extract (parsing a body as
    JSON is the step's business only then); it raises InvalidJson when it is not JSON.
    """
    values: dict[str, str] = {}
    for name, query in queries.items():
        found = document()
        try:
            value = query.search(found)
        except Exception as exc:  # JMESPath raises several types for runtime type errors
            return f"extract {name}: query {query} failed ({str(exc)[:100]})"
        if value is None:
            return f"extract {name}: query {query} found nothing"
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def judge_certificate(attempt: Attempt, min_days: float | None) -> None:
    """`cert_min_days` on an attempt that otherwise passed: too few days left is
    `cert_expiring`. Judged last: a wrong answer is the more urgent news."""
    if min_days is None or attempt.status is Status.DOWN:
        return
    if attempt.tls_not_after is None:
        attempt.status, attempt.reason = Status.DOWN, FailureReason.ASSERTION_FAILED
        attempt.message = "no TLS certificate was presented, so cert_min_days cannot hold"
        return
    shortfall = expiry_shortfall(attempt.tls_not_after, min_days)
    if shortfall is not None:
        attempt.status, attempt.reason, attempt.message = (
            Status.DOWN,
            FailureReason.CERT_EXPIRING,
            shortfall,
        )
