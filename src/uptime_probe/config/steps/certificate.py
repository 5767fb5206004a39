"""The `certificate` step: a TLS handshake only, to read and judge the served certificate.

It never speaks HTTP, so it checks any TLS port (an SMTPS relay, a database's TLS
port) and runs without touching the application. The key is `certificate`, not
`tls`: a step's `tls:` already holds how to verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from pydantic import Field, model_validator

from uptime_probe.config.base import Model
from uptime_probe.config.errors import Path
from uptime_probe.config.steps.parts import JsonExpect, StepBase, TlsConfig
from uptime_probe.config.types import TemplateString


class CertificateSpec(Model):
    host: TemplateString
    port: int = Field(default=443, ge=1, le=65535)

    @model_validator(mode="after")
    def _literal_host(self) -> CertificateSpec:
        if not self.host.source.strip():
            raise ValueError("host is empty")
        return self


class CertificateExpect(JsonExpect):
    """`cert_min_days`: fewer days left fails as `cert_expiring`. `json` judges the
    document (subject, issuer, names, not_after, days_left, protocol, cipher) that
    `extract` reads too."""

    cert_min_days: float | None = Field(default=None, gt=0)


class CertificateStep(StepBase):
    handler: ClassVar[str] = "certificate"
    runner: ClassVar[str] = "certificate"

    certificate: CertificateSpec
    expect: CertificateExpect = CertificateExpect()
    # How to verify, and `server_name`: the name sent in SNI and verified (default: the host).
    tls: TlsConfig = TlsConfig()

    def templates(self) -> Iterator[tuple[Path, Any]]:
        yield ("certificate", "host"), self.certificate.host
