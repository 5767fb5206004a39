"""The `request` step: one HTTP request and its response."""

from __future__ import annotations

from typing import ClassVar

from uptime_probe.config.steps.parts import HttpStepBase, RequestSpec


class RequestStep(HttpStepBase):
    handler: ClassVar[str] = "request"
    runner: ClassVar[str] = "http"

    request: RequestSpec
