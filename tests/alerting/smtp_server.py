"""A real SMTP server on 127.0.0.1 (aiosmtpd, in the test's event loop) that records the
mail it is given and accepts one login, over plain SMTP (AUTH without TLS, on loopback)."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class MailServer:
    user: str
    password: str
    port: int = 0
    mail: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, accepted)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mail.append(parsed)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"

    def authenticate(
        self, _server: SMTP, _session: Session, _envelope: Envelope, _mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = data.login.decode(), data.password.decode()
        accepted = (user, password) == (self.user, self.password)
        self.logins.append((user, accepted))
        return AuthResult(success=accepted)

    def url(self, *, to: str = "oncall@example.com") -> str:
        """The Apprise URL that mails through this server, logged in."""
        return (
            f"mailto://{self.user}:{self.password}@127.0.0.1:{self.port}"
            f"?from=uptime-probe@example.com&to={to}"
        )


@asynccontextmanager
async def mail_server(user: str, password: str) -> AsyncIterator[MailServer]:
    server = MailServer(user, password)
    listening = await asyncio.get_running_loop().create_server(
        lambda: SMTP(
            server,
            hostname="mail.test",
            authenticator=server.authenticate,
            # AUTH offered over plain SMTP: loopback only, nothing leaves the machine.
            auth_require_tls=False,
        ),
        "127.0.0.1",
        0,
    )
    server.port = listening.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listening.close()
        await listening.wait_closed()
