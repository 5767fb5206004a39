"""A kind's own failure reasons exist, at 0, only on the checks that have such a step."""

from __future__ import annotations

from typing import Any

import pytest

from uptime_probe.metrics import CheckMetrics
from uptime_probe.probe.model import COMMON_REASONS

from .fixtures import Parsed, load

KIND_ONLY = {
    "dns_rcode", "dns_no_answer", "cert_expiring", "ws_closed", "no_message",
    "element_missing", "page_error",
}  # fmt: skip


@pytest.mark.parametrize(
    ("step", "own"),
    [
        ({"request": {"url": "https://chat.example/"}}, set()),
        (
            {"request": {"url": "https://chat.example/"}, "expect": {"cert_min_days": 14}},
            {"cert_expiring"},
        ),
        ({"dns": {"name": "chat.example"}}, {"dns_rcode", "dns_no_answer"}),
        ({"certificate": {"host": "chat.example"}}, {"cert_expiring"}),
        ({"websocket": {"url": "wss://chat.example/push"}}, {"ws_closed", "no_message"}),
        ({"tcp": {"host": "chat.example", "port": 25}}, set()),
        ({"browser": {"url": "https://chat.example/"}}, {"element_missing", "page_error"}),
    ],
)
def test_a_kinds_reasons_are_created_only_for_its_checks(
    step: dict[str, Any], own: set[str]
) -> None:
    config = load([{"name": "c", "steps": [{"name": "s", **step}]}])
    metrics = CheckMetrics("eu-west")
    metrics.sync_checks(config.checks)

    parsed = Parsed.of_text(metrics.render_text())
    reasons = {
        sample.labels["reason"] for sample in parsed.find("uptime_probe_check_failures_total")
    }
    assert reasons == set(COMMON_REASONS) | own
    assert not KIND_ONLY & set(COMMON_REASONS)
