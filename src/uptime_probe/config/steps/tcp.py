"""The `tcp` step: connect (optionally TLS), send, and read until a line matches.

Like blackbox_exporter's `query_response`: each exchange optionally sends text and
optionally waits for a line of the answer to match a regex. One exchange is written
`send:` + `expect.receive`; a conversation (an SMTP or IMAP banner, then a command
and its reply) is a list of `exchanges`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.steps.parts import DEFAULT_MAX_BODY, JsonExpect, StepBase, TlsConfig
from uptime_probe.config.types import Regex, Size, TemplateString

MAX_EXCHANGES = 50


class TcpExchange(Model):
    """Send this (a template), then read until a line matches `receive`."""

    send: TemplateString | None = None
    receive: Regex | None = None

    @model_validator(mode="after")
    def _does_something(self) -> TcpExchange:
        if self.send is None and self.receive is None:
            raise ValueError("an exchange needs send, receive or both")
        return self


class TcpSpec(Model):
    host: TemplateString
    port: int = Field(ge=1, le=65535)
    # TLS after connecting; the step's `tls:` says how to verify, and its `server_name`
    # the name sent in SNI and verified (default: the host).
    tls: bool = False
    send: TemplateString | None = None
    exchanges: list[TcpExchange] = Field(default=[], max_length=MAX_EXCHANGES)

    @model_validator(mode="after")
    def _literal_host(self) -> TcpSpec:
        if not self.host.source.strip():
            raise ValueError("host is empty")
        return self


class TcpExpect(JsonExpect):
    """`receive`: a regex a line of the answer must match. `json` judges the document
    `{"lines": [...], "groups": {...}}` that `extract` reads too."""

    receive: Regex | None = None


class TcpStep(StepBase):
    handler: ClassVar[str] = "tcp"
    runner: ClassVar[str] = "tcp"

    tcp: TcpSpec
    expect: TcpExpect = TcpExpect()
    tls: TlsConfig = TlsConfig()
    # Every byte the step reads, all exchanges together.
    max_body: Size = DEFAULT_MAX_BODY

    @model_validator(mode="after")
    def _one_way_to_converse(self) -> TcpStep:
        if self.tcp.exchanges and (self.tcp.send is not None or self.expect.receive is not None):
            raise ValueError(
                "set either tcp.exchanges or tcp.send / expect.receive, not both: "
                "put the first send and receive in the list"
            )
        if "tls" in self.model_fields_set and not self.tcp.tls:
            raise ValueError("tls settings need tcp.tls: true (the connection is plain TCP)")
        return self

    @property
    def conversation(self) -> tuple[TcpExchange, ...]:
        """The exchanges in order, the `send` / `expect.receive` shorthand as one of them."""
        if self.tcp.exchanges:
            return tuple(self.tcp.exchanges)
        if self.tcp.send is None and self.expect.receive is None:
            return ()
        return (TcpExchange(send=self.tcp.send, receive=self.expect.receive),)

    def templates(self) -> Iterator[tuple[Path, Any]]:
        yield ("tcp", "host"), self.tcp.host
        if self.tcp.send is not None:
            yield ("tcp", "send"), self.tcp.send
        for index, exchange in enumerate(self.tcp.exchanges):
            if exchange.send is not None:
                yield ("tcp", "exchanges", index, "send"), exchange.send
