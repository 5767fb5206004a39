"""The `websocket` step: open a WebSocket, send text frames, judge the message that comes.

It shares the run's HTTP session (cookies from a login step carry into the upgrade
request) and the check's headers. Headers and frames carrying a secret go only to the
URL's origin and those `send_secrets_to` lists, as a request's do. The message judged
is the first to arrive, or with `wait_for_match`, the first that passes every critical
expectation.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, WithJsonSchema

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.steps.parts import (
    DEFAULT_MAX_BODY,
    ContentExpect,
    SecretOriginsAllowed,
    StepBase,
    TlsConfig,
)
from uptime_probe.config.template import Template
from uptime_probe.config.types import (
    Duration,
    HeaderName,
    HeaderTemplate,
    Size,
    TemplateString,
    as_list,
)

MAX_FRAMES = 100


class WebsocketSpec(Model):
    url: TemplateString
    headers: dict[HeaderName, HeaderTemplate] = {}
    # Text frames sent in order once the socket is open; one string stands for a list of one.
    send: Annotated[
        list[TemplateString],
        BeforeValidator(as_list),
        WithJsonSchema(
            {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        ),
    ] = Field(default=[], max_length=MAX_FRAMES)


class WebsocketExpect(ContentExpect):
    """The body and JSON assertions of `request`, on the text (or bytes) of a message."""

    # Nothing (or nothing that matches) by then: `no_message`. None: the check's deadline.
    message_within: Duration | None = None
    # Judge each message until one passes, rather than only the first.
    wait_for_match: bool = False


class WebsocketStep(StepBase, SecretOriginsAllowed):
    handler: ClassVar[str] = "websocket"
    runner: ClassVar[str] = "websocket"
    exchanges_http: ClassVar[bool] = True  # the upgrade

    websocket: WebsocketSpec
    expect: WebsocketExpect = WebsocketExpect()
    # The largest message read (aiohttp's max_msg_size): a longer frame is body_too_large.
    max_body: Size = DEFAULT_MAX_BODY
    tls: TlsConfig = TlsConfig()

    def http_headers(self) -> Mapping[str, Template] | None:
        return self.websocket.headers

    def templates(self) -> Iterator[tuple[Path, Any]]:
        yield ("websocket", "url"), self.websocket.url
        for header, value in self.websocket.headers.items():
            yield ("websocket", "headers", header), value
        for index, frame in enumerate(self.websocket.send):
            yield ("websocket", "send", index), frame

    def urls(self) -> Iterator[tuple[Path, Template, tuple[str, ...]]]:
        yield ("websocket", "url"), self.websocket.url, ("ws", "wss")
