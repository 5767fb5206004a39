"""A secret goes only to the origin its step's URL names, or to one its `send_secrets_to` lists.

A header, body or URL "carries a secret" when its template names a `secrets:` entry
(the step's own headers or the check's and defaults' merged into them). Such a request
can reach another origin two ways, and both are checked per request (docs/reliability.md):

- a redirect. aiohttp follows redirects itself and, on a cross-origin hop, drops only
  `Authorization`, `Cookie` and `Proxy-Authorization`; an `X-Api-Key: {{ token }}` went
  along. `OriginGuard` is a client middleware, which aiohttp calls for every hop, so it
  sees each request just before it is sent: elsewhere, it removes every guarded header
  (and notes which); back at an allowed origin, it puts back what aiohttp dropped on the
  way. A body is never sent without its headers' consent: a 307 or 308 (which replay the
  body) to another origin is not followed when the body carries a secret.
- an extracted value standing where the origin is written (`{{ base_url }}{{ next }}`
  with `next` = `@other.example/stolen`): checked before sending, the same way; a
  body or URL carrying a secret cannot be stripped, so that request is not sent.

The credential headers aiohttp drops on a cross-origin redirect are guarded the same
way even when written without a secret, so a target-supplied origin gets them no more
than a redirect would.

The same rule on the kinds beyond plain HTTP:

- a `websocket` upgrade is an HTTP GET that aiohttp sends and redirects the same way
  (`ws_connect` calls `session.request`), so `OriginGuard` is applied to it as well; its
  frames are what a body is to a request, except that they go wherever the socket ends
  up: a redirect of the upgrade to another origin is not followed when they carry a
  secret, and an extracted origin change is not sent.
- a `tcp` step's send carrying a secret goes only to the host (and port) the config
  writes: when an extracted value sets the host, it is not sent (`check_connection`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import ClientRequest, ClientResponse
from aiohttp.client_middlewares import ClientHandlerType
from yarl import URL

from uptime_probe.config.origin import Origin, origin_of
from uptime_probe.config.steps import HttpStepBase, TcpStep, WebsocketStep
from uptime_probe.config.template import Template, template_names_in
from uptime_probe.probe.model import FailureReason
from uptime_probe.probe.request_url import RequestUrl

CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_MAX_NOTE = 300

# What a step sends besides its headers that can carry a secret, which cannot be left out
# of what it is sent with: named so in messages.
BODY = "request body"  # with the request; a 301/302/303 after a POST drops it
FRAMES = "frames"  # on the socket an upgrade opens, wherever the redirects end
SEND = "send"  # a tcp step's, on the connection to its host
# The pseudo-scheme of a tcp step's origin: its host and port.
_TCP = "tcp"


def _carry(payload: str) -> str:
    """`carries a secret`, or `carry a secret` for the frames."""
    return "carry a secret" if payload == FRAMES else "carries a secret"


class SecretWithheld(Exception):
    """A request that would carry a secret to another origin, not sent."""

    def __init__(self, reason: FailureReason, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class SecretPolicy:
    """What of a step's request is guarded, and where it may go."""

    configured: Origin | None
    allowed: frozenset[Origin]
    headers: frozenset[str]  # lower-case names of the guarded headers
    payload: str  # what else carries a secret: BODY, FRAMES, SEND, or "" (nothing)
    url: bool  # the URL carries a secret

    @classmethod
    def compile(
        cls,
        config: HttpStepBase | WebsocketStep,
        headers: tuple[tuple[str, Template], ...],
        url: RequestUrl,
        secrets: frozenset[str],
    ) -> SecretPolicy | None:
        """An HTTP-based or websocket step's; None when its request carries nothing to guard."""
        guarded = frozenset(
            name.lower()
            for name, template in headers
            if template.names & secrets or name.lower() in CREDENTIAL_HEADERS
        )
        if isinstance(config, WebsocketStep):
            url_template = config.websocket.url
            frames = any(frame.names & secrets for frame in config.websocket.send)
            payload = FRAMES if frames else ""
        else:
            request = config.http_request
            url_template = request.url
            body = bool(
                (request.body is not None and request.body.names & secrets)
                or template_names_in(request.json_body) & secrets
            )
            payload = BODY if body else ""
        in_url = bool(url_template.names & secrets)
        if not guarded and not payload and not in_url:
            return None
        configured = url.configured_origin
        allowed = frozenset(config.send_secrets_to) | ({configured} if configured else set())
        return cls(configured, allowed, guarded, payload, in_url)

    @classmethod
    def for_connection(
        cls, config: TcpStep, configured: Mapping[str, str], secrets: frozenset[str]
    ) -> SecretPolicy | None:
        """A tcp step's; None when none of its sends carries a secret.

        `configured`: the config's variables and secrets; a host template naming anything
        else takes its host from a target, and has no configured origin.
        """
        sends = (exchange.send for exchange in config.conversation)
        if not any(send is not None and send.names & secrets for send in sends):
            return None
        host = config.tcp.host
        origin = None
        if host.names <= configured.keys():
            origin = Origin(_TCP, host.render(configured).lower(), config.tcp.port)
        return cls(origin, frozenset({origin} if origin else ()), frozenset(), SEND, False)

    def elsewhere(self, origin: Origin | None) -> str:
        """Why `origin` gets no secret, and what allows it, for a step's message."""
        where = str(origin) if origin is not None else "a URL with no HTTP origin"
        if self.configured is None:
            why = "the step's URL takes its origin from the target"
        else:
            why = f"not the step's origin {self.configured}"
        return f"{where[:100]} ({why}; list it in send_secrets_to to allow it)"

    def check_connection(self, host: str, port: int) -> None:
        """A tcp step's: raises SecretWithheld unless `host` and `port` are the config's."""
        if Origin(_TCP, host.lower(), port) in self.allowed:
            return
        raise SecretWithheld(
            FailureReason.EXTRACTION_FAILED,
            f"not sent: the host built from extracted values is {host[:100]}:{port} (a "
            f"tcp step sends a secret only to the host its config writes), and its "
            f"{self.payload} {_carry(self.payload)}",
        )


class OriginGuard:
    """One attempt's guard: a client middleware applying its step's SecretPolicy to every hop.

    Also checks the first request's URL before it is handed to aiohttp (`check_first`).
    """

    __slots__ = ("_guarded", "_names", "_policy", "_status", "_withheld")

    @classmethod
    def for_request(
        cls, policy: SecretPolicy | None, url: URL, headers: dict[str, str], origin_varies: bool
    ) -> tuple[OriginGuard | None, URL, dict[str, str]]:
        """The attempt's guard (None: nothing to guard), and its first request's URL and
        headers, with nothing guarded left in when an extracted value set another origin.

        Raises SecretWithheld when that request's payload or URL carries a secret there.
        """
        if policy is None:
            return None, url, headers
        guard = cls(policy, headers)
        if origin_varies:
            url, headers = guard.check_first(url, headers)
        return guard, url, headers

    def __init__(self, policy: SecretPolicy, headers: Mapping[str, str]) -> None:
        self._policy = policy
        # The guarded headers as rendered for this attempt, in the config's spelling.
        self._guarded = {
            name: value for name, value in headers.items() if name.lower() in policy.headers
        }
        self._names = ", ".join(self._guarded)
        self._withheld: list[str] = []
        self._status: int | None = None

    def check_first(self, url: URL, headers: dict[str, str]) -> tuple[URL, dict[str, str]]:
        """The first request's URL and headers, with nothing guarded for another origin.

        Raises SecretWithheld when its body or URL carries a secret there.
        """
        origin = origin_of(url)
        if origin in self._policy.allowed:
            return url, headers
        policy = self._policy
        if policy.payload or policy.url:
            carried = policy.payload or "URL"
            raise SecretWithheld(
                FailureReason.EXTRACTION_FAILED,
                f"not sent: the URL built from extracted values goes to "
                f"{policy.elsewhere(origin)}, and its {carried} {_carry(carried)}",
            )
        self._note(origin)
        kept = {name: value for name, value in headers.items() if name not in self._guarded}
        # Credentials in the URL belong to the origin they were written for.
        return (url.with_user(None) if url.raw_user or url.raw_password else url), kept

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        origin = origin_of(request.url)
        if origin in self._policy.allowed:
            for name, value in self._guarded.items():
                if name not in request.headers:  # dropped by aiohttp on an earlier hop
                    request.headers[name] = value
        else:
            payload = self._policy.payload
            # A body goes on only with a request that still has it; frames go wherever
            # the socket opens.
            if payload and (payload != BODY or request.body):
                raise SecretWithheld(
                    FailureReason.UNEXPECTED_STATUS,
                    f"HTTP {self._status} redirect not followed: it would send the "
                    f"{payload}, which {_carry(payload)}, to {self._policy.elsewhere(origin)}",
                    self._status,
                )
            for name in self._guarded:
                request.headers.popall(name, None)
            self._note(origin)
        response = await handler(request)
        self._status = response.status
        return response

    def _note(self, origin: Origin | None) -> None:
        if self._names:
            self._withheld.append(self._policy.elsewhere(origin))

    @property
    def note(self) -> str:
        """`withheld X-Api-Key from ...`: header names only, never values; "" when nothing was."""
        if not self._withheld:
            return ""
        places = "; ".join(dict.fromkeys(self._withheld))
        return f"withheld {self._names} from {places}"[:_MAX_NOTE]

    def noted(self, message: str) -> str:
        """A step's message, followed by what was withheld, if anything was."""
        note = self.note
        if not note:
            return message
        return f"{message}; {note}" if message else note
