"""The `dns` step: one query of one record type, judged on its rcode and answers.

The config model names record types and rcodes as text and checks names by the
rules of RFC 1035 (labels of 1..63 octets, 253 in all); the probe side turns them
into dnspython's values.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.steps.parts import JsonExpect, StepBase
from uptime_probe.config.template import Template
from uptime_probe.config.types import Regex, TemplateString

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA"]
# RFC 1035 and RFC 2136 (dnspython's names for them).
Rcode = Literal[
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
]
DNS_PORT = 53
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+))(?::(?P<port>\d+))?$")


def dns_name_problem(name: str) -> str | None:
    """Why `name` cannot be asked about (RFC 1035 lengths), or None when it can."""
    bare = name[:-1] if name.endswith(".") else name
    if not bare:
        return "the name is empty"
    if len(bare) > 253:
        return f"the name is {len(bare)} characters long, above 253"
    for label in bare.split("."):
        if not label:
            return f"the name {name!r} has an empty label"
        if len(label.encode("utf-8", errors="replace")) > 63:
            return f"the label {label[:20]!r}... is longer than 63 octets"
    return None


def parse_server(value: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address -> (host, port)."""
    try:
        return str(ipaddress.ip_address(value)), DNS_PORT
    except ValueError:
        pass
    match = _HOST_PORT.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"server must be HOST or HOST:PORT ([IPv6]:PORT), got {value!r}")
    host = match.group("v6") or match.group("host")
    port = int(match.group("port") or DNS_PORT)
    if not 1 <= port <= 65535:
        raise ValueError(f"server port {port} is not 1..65535")
    problem = dns_name_problem(host) if match.group("v6") is None else None
    if problem is not None:
        raise ValueError(f"server {value!r}: {problem}")
    return host, port


class DnsSpec(Model):
    name: TemplateString
    record_type: RecordType = Field(default="A", alias="type")
    # HOST[:PORT] of the server to ask; None: the system's resolvers (/etc/resolv.conf).
    server: str | None = None
    transport: Literal["udp", "tcp"] = "udp"

    @field_validator("record_type", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("transport", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_server(value)
        return value

    @field_validator("name", mode="after")
    @classmethod
    def _literal_name(cls, value: Template) -> Template:
        # A name with placeholders is checked when it is rendered, at run time.
        problem = None if value.names else dns_name_problem(value.source)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def server_address(self) -> tuple[str, int] | None:
        return None if self.server is None else parse_server(self.server)


class DnsAnswers(Model):
    # None: 1 when the expected rcode is NOERROR, else 0.
    min_count: int | None = Field(default=None, ge=0)
    # A regex at least one answer must match.
    matches: Regex | None = None


class DnsExpect(JsonExpect):
    """`json` judges the document `{"name", "type", "rcode", "answers", "ttl"}` that
    `extract` reads too."""

    rcode: Rcode = "NOERROR"
    answers: DnsAnswers = DnsAnswers()

    @field_validator("rcode", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _answers_need_noerror(self) -> DnsExpect:
        wants = (self.answers.min_count or 0) > 0 or self.answers.matches is not None
        if wants and self.rcode != "NOERROR":
            raise ValueError(
                f"answers need rcode NOERROR: a reply with rcode {self.rcode} carries no answers"
            )
        return self

    @property
    def min_answers(self) -> int:
        if self.answers.min_count is not None:
            return self.answers.min_count
        return 1 if self.rcode == "NOERROR" else 0


class DnsStep(StepBase):
    handler: ClassVar[str] = "dns"
    runner: ClassVar[str] = "dns"

    dns: DnsSpec
    expect: DnsExpect = DnsExpect()

    def templates(self) -> Iterator[tuple[Path, Any]]:
        yield ("dns", "name"), self.dns.name
