"""Step kinds: each step carries exactly one handler key naming its kind.

Like Kubernetes probes (`httpGet`, `tcpSocket`, `grpc`, `exec`): the key says what the
step does; everything around it (name, extraction, polling, the journey's deadline) is
shared. `STEP_KINDS` is the registry: a new kind is its config model in this package,
its attempt in `uptime_probe.probe.kinds`, and one entry here (docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Discriminator, Tag

from uptime_probe.config.steps.browser import BrowserExpect, BrowserStep, ElementAssertion
from uptime_probe.config.steps.certificate import CertificateStep
from uptime_probe.config.steps.dns import DnsStep
from uptime_probe.config.steps.parts import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER_SIZE,
    JSON_OPERATORS,
    MAX_REDIRECTS,
    MAX_RESPONSE_HEADERS,
    ContentExpect,
    Expect,
    ExpectBase,
    HttpStepBase,
    JsonAssertion,
    JsonExpect,
    PollConfig,
    RequestSpec,
    StepBase,
    TlsConfig,
)
from uptime_probe.config.steps.request import RequestStep
from uptime_probe.config.steps.stream import StreamExpect, StreamSpec, StreamStep
from uptime_probe.config.steps.tcp import TcpStep
from uptime_probe.config.steps.websocket import WebsocketStep

STEP_KINDS: dict[str, type[StepBase]] = {
    kind.handler: kind
    for kind in (
        RequestStep,
        StreamStep,
        DnsStep,
        TcpStep,
        CertificateStep,
        WebsocketStep,
        BrowserStep,
    )
}


def handler_key(data: Any) -> str | None:
    """The kind a raw step names: its one handler key, or None when it has none or several."""
    if isinstance(data, StepBase):
        return data.handler
    if not isinstance(data, dict):
        return None
    present = [key for key in STEP_KINDS if key in data]
    return present[0] if len(present) == 1 else None


def _tag(data: Any) -> str | None:
    # Tags differ from the keys themselves: pydantic puts the tag in an error's location,
    # and the loader keeps only the location's parts that are keys of the document.
    key = handler_key(data)
    return None if key is None else f"{key} step"


if TYPE_CHECKING:
    StepConfig = StepBase
else:
    StepConfig = Annotated[
        Union[tuple(Annotated[kind, Tag(f"{key} step")] for key, kind in STEP_KINDS.items())],  # noqa: UP007
        Discriminator(
            _tag,
            custom_error_type="step_kind",
            custom_error_message=(
                "a step needs exactly one of " + ", ".join(STEP_KINDS) + " (its kind)"
            ),
        ),
    ]

__all__ = [
    "DEFAULT_MAX_BODY",
    "DEFAULT_MAX_HEADER_SIZE",
    "JSON_OPERATORS",
    "MAX_REDIRECTS",
    "MAX_RESPONSE_HEADERS",
    "STEP_KINDS",
    "BrowserExpect",
    "BrowserStep",
    "CertificateStep",
    "ContentExpect",
    "DnsStep",
    "ElementAssertion",
    "Expect",
    "ExpectBase",
    "HttpStepBase",
    "JsonAssertion",
    "JsonExpect",
    "PollConfig",
    "RequestSpec",
    "RequestStep",
    "StepBase",
    "StepConfig",
    "StreamExpect",
    "StreamSpec",
    "StreamStep",
    "TcpStep",
    "TlsConfig",
    "WebsocketStep",
    "handler_key",
]
