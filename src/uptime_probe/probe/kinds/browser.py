"""The `browser` kind: a page loaded in real Chromium, a few actions, the rendered page judged.

One try of a step: a fresh browser context (a new user: no cookies, no cache) in the
daemon's one Chromium (probe/browser_pool.py), the document loaded, its status judged at
once, then its `load` event and 500 ms without a request in flight (Playwright's
`networkidle`), the actions in order, and the page as rendered: console errors, then the
`elements` items. A failed step leaves a screenshot and, unless `browser.keep_traces` is
off, the Playwright trace of the run beside it (probe/artifacts.py): every run records
one (about 10% more CPU, no wall time to speak of: docs/configuration.md, "What a browser
run costs"), and a passing run's is dropped when its context closes (probe/browser_pool.py).

Time: the kind keeps a reserve before the journey's deadline (`_reserve`) and gives
every Playwright call only the time left before it, so a page that never loads fails as
`timeout` saying what it was waiting for, and the reserve is left for the screenshot and
the page's text. The engine's own deadline stays the hard bound (`deadline_note`).

Errors: Chromium's `net::ERR_*` codes map onto our reasons by `NET_ERROR_RULES`, most
specific first (tests/probe/kinds/test_browser_errors.py holds every code Chromium
defines to a rule); a crashed page is `page_error`; Chromium dying is `local_resources`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import TimeoutError as PlaywrightTimeout

from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import BrowserStep, ElementAssertion
from uptime_probe.config.types import HEADER_VALUE_CONTROL, has_header_control
from uptime_probe.probe.artifacts import ARTIFACTS, ArtifactStore
from uptime_probe.probe.browser_pool import BROWSER, BrowserPool, BrowserUnavailable
from uptime_probe.probe.classify import classify_status
from uptime_probe.probe.kinds.base import Attempt, RunContext, cut_with
from uptime_probe.probe.model import AssertionOutcome, FailureReason, Status
from uptime_probe.probe.plan import StepPlan
from uptime_probe.probe.request_url import origin_of_text

if TYPE_CHECKING:
    from playwright.async_api import (
        Browser,
        BrowserContext,
        CDPSession,
        ConsoleMessage,
        Page,
        Request,
        Response,
        Route,
    )

VIEWPORT = {"width": 1280, "height": 720}
# Seconds kept before the journey's deadline for what follows a failure: the screenshot,
# the page's text and figures. At most this, and at most a fifth of the time left.
MAX_RESERVE = 2.0
# How long after the soft deadline the backstop cuts a call that ignores its own timeout.
BACKSTOP_AFTER = 0.25
# Errors a page reports that are kept for the message (the first decides it).
MAX_PAGE_ERRORS = 20
# Rendered text read per `elements` item and for the failure sample.
MAX_TEXT_CHARS = 64 * 1024
SAMPLE_CHARS = 4096
_MESSAGE_TEXT = 200

# Registered in every frame before the page's own scripts: Largest Contentful Paint is
# only reported to an observer (not in performance.getEntriesByType).
_LCP_SCRIPT = """(() => { try {
  new PerformanceObserver((list) => {
    const entries = list.getEntries();
    if (entries.length) window.__uptimeProbeLcp = entries[entries.length - 1].startTime;
  }).observe({type: "largest-contentful-paint", buffered: true});
} catch (e) {} })();"""
# The main document's timing, milliseconds from the start of the navigation.
_NAVIGATION_SCRIPT = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  if (!n) return null;
  return {ttfb: n.responseStart, dcl: n.domContentLoadedEventStart,
          load: n.loadEventStart, lcp: window.__uptimeProbeLcp ?? null};
}"""
# Count, joined text and visibility of the elements a selector matches, in one call.
_ELEMENTS_SCRIPT = """(elements, limit) => ({
  count: elements.length,
  text: elements.map((e) => e.innerText ?? e.textContent ?? "").join("\\n").slice(0, limit),
  visible: elements.some((e) => {
    const box = e.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && getComputedStyle(e).visibility !== "hidden";
  }),
})"""
_BODY_TEXT_SCRIPT = """(limit) => document.body ? document.body.innerText.slice(0, limit) : \"\""""


@dataclass(frozen=True, slots=True)
class BrowserFigures:
    """What a browser step measured. Seconds from the start of the main navigation."""

    key: ClassVar[str] = "browser"
    histograms: ClassVar[tuple[str, ...]] = (
        "ttfb_seconds",
        "dom_content_loaded_seconds",
        "load_seconds",
        "lcp_seconds",
    )
    gauges: ClassVar[tuple[str, ...]] = ("requests", "failed_requests", "transferred_bytes")
    descriptions: ClassVar[Mapping[str, str]] = {
        "ttfb_seconds": "Time from the start of the navigation to the document's first byte.",
        "dom_content_loaded_seconds": "Time from the start of the navigation to DOMContentLoaded.",
        "load_seconds": "Time from the start of the navigation to the load event.",
        "lcp_seconds": "Time from the start of the navigation to the Largest Contentful Paint.",
        "requests": "Requests the page made in the step's last run.",
        "failed_requests": "Requests of the page that failed (no response) in the last run.",
        "transferred_bytes": "Bytes the page transferred (headers and bodies) in the last run.",
    }

    ttfb_seconds: float | None = None
    dom_content_loaded_seconds: float | None = None
    load_seconds: float | None = None
    lcp_seconds: float | None = None
    requests: int = 0
    failed_requests: int = 0
    transferred_bytes: int = 0

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "ttfb_seconds": _rounded(self.ttfb_seconds),
            "dom_content_loaded_seconds": _rounded(self.dom_content_loaded_seconds),
            "load_seconds": _rounded(self.load_seconds),
            "lcp_seconds": _rounded(self.lcp_seconds),
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "transferred_bytes": self.transferred_bytes,
        }


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 6)


# --- Chromium's network errors -----------------------------------------------------------

# net::ERR_<CODE> -> reason, first match wins: most specific first. Every code of
# Chromium's net/base/net_error_list.h has a rule (tests/probe/kinds/test_browser_errors.py);
# a code Chromium adds later falls to connection_reset, as an unknown aiohttp error does.
NET_ERROR_RULES: tuple[tuple[re.Pattern[str], FailureReason], ...] = tuple(
    (re.compile(rf"^(?:{pattern})$"), reason)
    for pattern, reason in (
        # The probe's own browser and machine, never the target.
        (
            "IO_PENDING|FAILED|INVALID_ARGUMENT|INVALID_HANDLE|FILE_.*|UNEXPECTED|ACCESS_DENIED"
            "|NOT_IMPLEMENTED|INSUFFICIENT_RESOURCES|OUT_OF_MEMORY|UPLOAD_.*|SOCKET_IS_CONNECTED"
            "|CONTEXT_SHUT_DOWN|CLEARTEXT_NOT_PERMITTED|BLOCKED_BY_CLIENT|BLOCKED_BY_ADMINISTRATOR"
            "|BLOCKED_ENROLLMENT_CHECK_PENDING|TEMPORARILY_THROTTLED|PRECONNECT_MAX_SOCKET_LIMIT"
            "|MSG_TOO_BIG|ADDRESS_IN_USE|SOCKET_.*_BUFFER_SIZE_.*|NO_BUFFER_SPACE"
            "|READ_IF_READY_NOT_IMPLEMENTED|WINSOCK_UNEXPECTED_WRITTEN_BYTES|CACHE_.*"
            "|TRUST_TOKEN_.*|FTP_.*|UNRECOGNIZED_FTP_DIRECTORY_LISTING_FORMAT|PKCS12_.*"
            "|IMPORT_.*|KEY_GENERATION_FAILED|PRIVATE_KEY_EXPORT_FAILED"
            "|SELF_SIGNED_CERT_GENERATION_FAILED|CERT_DATABASE_CHANGED|CERT_VERIFIER_CHANGED"
            "|ADD_USER_CERT_FAILED|NO_PRIVATE_KEY_FOR_CERT",
            FailureReason.INTERNAL,
        ),
        (
            "NAME_NOT_RESOLVED|NAME_RESOLUTION_FAILED|HOST_RESOLVER_QUEUE_TOO_LARGE"
            "|ICANN_NAME_COLLISION|DNS_.*",
            FailureReason.DNS,
        ),
        ("CONNECTION_TIMED_OUT", FailureReason.CONNECT_TIMEOUT),
        (
            "SSL_.*|CERT_.*|CERTIFICATE_.*|CT_.*|ECH_.*|INVALID_ECH_CONFIG_LIST"
            "|TLS13_DOWNGRADE_DETECTED|BAD_SSL_CLIENT_AUTH_CERT|CLIENT_AUTH_CERT_TYPE_UNSUPPORTED"
            "|NO_SSL_VERSIONS_ENABLED|INSECURE_RESPONSE|PROXY_CERTIFICATE_INVALID"
            "|QUIC_CERT_ROOT_NOT_KNOWN|QUIC_HANDSHAKE_FAILED|EARLY_DATA_REJECTED"
            "|WRONG_VERSION_ON_EARLY_DATA|ALPN_NEGOTIATION_FAILED",
            FailureReason.TLS,
        ),
        (
            "CONNECTION_REFUSED|ADDRESS_UNREACHABLE|ADDRESS_INVALID|CONNECTION_FAILED"
            "|INTERNET_DISCONNECTED|NETWORK_ACCESS_DENIED|NETWORK_CHANGED|NETWORK_IO_SUSPENDED"
            "|UNSAFE_PORT|PROXY_CONNECTION_FAILED|TUNNEL_CONNECTION_FAILED|SOCKS_.*"
            "|MANDATORY_PROXY_CONFIGURATION_FAILED|NO_SUPPORTED_PROXIES|PAC_.*"
            "|HTTPS_PROXY_TUNNEL_RESPONSE_REDIRECT|UNABLE_TO_REUSE_CONNECTION_FOR_PROXY_AUTH"
            "|PROXY_AUTH_UNSUPPORTED|PROXY_HTTP_1_1_REQUIRED|PROXY_AUTH_REQUESTED_WITH_NO_CONNECTION"
            "|INCONSISTENT_IP_ADDRESS_SPACE"
            "|CACHED_IP_ADDRESS_SPACE_BLOCKED_BY_LOCAL_NETWORK_ACCESS_POLICY",
            FailureReason.CONNECT_REFUSED,
        ),
        ("TIMED_OUT|HTTP2_PING_FAILED", FailureReason.TIMEOUT),
        ("TOO_MANY_REDIRECTS", FailureReason.TOO_MANY_REDIRECTS),
        (
            "INVALID_AUTH_CREDENTIALS|UNSUPPORTED_AUTH_SCHEME|MISSING_AUTH_CREDENTIALS"
            "|MALFORMED_IDENTITY|UNEXPECTED_SECURITY_LIBRARY_STATUS"
            "|UNDOCUMENTED_SECURITY_LIBRARY_STATUS|MISCONFIGURED_AUTH_ENVIRONMENT"
            "|PROXY_AUTH_REQUESTED|UNEXPECTED_PROXY_AUTH|REQUEST_RANGE_NOT_SATISFIABLE"
            "|TOO_MANY_RETRIES",
            FailureReason.HTTP_4XX,
        ),
        (
            "CONTENT_DECODING_FAILED|CONTENT_DECODING_INIT_FAILED|ENCODING_CONVERSION_FAILED"
            "|ENCODING_DETECTION_FAILED",
            FailureReason.INVALID_ENCODING,
        ),
        ("RESPONSE_BODY_TOO_BIG_TO_DRAIN", FailureReason.BODY_TOO_LARGE),
        # A URL Chromium cannot load: configured ones are checked at load, so it was built
        # from an extracted value (as for a request).
        ("INVALID_URL|DISALLOWED_URL_SCHEME|UNKNOWN_URL_SCHEME", FailureReason.EXTRACTION_FAILED),
        (
            "INVALID_RESPONSE|INVALID_HTTP_RESPONSE|INVALID_CHUNKED_ENCODING"
            "|RESPONSE_HEADERS_TOO_BIG|RESPONSE_HEADERS_MULTIPLE_.*|METHOD_NOT_SUPPORTED"
            "|INVALID_REDIRECT|UNSAFE_REDIRECT|HTTP_RESPONSE_CODE_FAILURE"
            "|TOO_MANY_ACCEPT_CH_RESTARTS|INVALID_SIGNED_EXCHANGE|INVALID_WEB_BUNDLE"
            # A document Chromium does not render: 204/205, a download, a blocked frame.
            "|ABORTED|BLOCKED_BY_RESPONSE|BLOCKED_BY_CSP|BLOCKED_BY_ORB",
            FailureReason.UNEXPECTED_STATUS,
        ),
        (
            "CONNECTION_RESET|CONNECTION_CLOSED|CONNECTION_ABORTED|SOCKET_NOT_CONNECTED"
            "|EMPTY_RESPONSE|CONTENT_LENGTH_MISMATCH|INCOMPLETE_CHUNKED_ENCODING"
            "|RESPONSE_HEADERS_TRUNCATED|SYN_REPLY_NOT_RECEIVED|INCOMPLETE_HTTP2_HEADERS|HTTP2_.*"
            "|QUIC_.*|WS_.*"
            "|HTTP_1_1_REQUIRED|H2_OR_QUIC_REQUIRED",
            FailureReason.CONNECTION_RESET,
        ),
    )
)
_NET_ERROR = re.compile(r"net::ERR_([A-Z0-9_]+)")


def classify_net_error(code: str) -> FailureReason | None:
    """The reason for Chromium's `net::ERR_<code>`, or None when no rule names it."""
    for pattern, reason in NET_ERROR_RULES:
        if pattern.match(code):
            return reason
    return None


class _Failed(Exception):
    """A decided failure, raised out of the page's steps to the attempt."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _net_failure(phase: str, text: str) -> _Failed | None:
    """A `net::ERR_*` in Chromium's words as our reason (an unknown code: connection_reset,
    as an unknown aiohttp error is), or None when the text names none."""
    found = _NET_ERROR.search(text)
    if found is None:
        return None
    code = found.group(1)
    reason = classify_net_error(code) or FailureReason.CONNECTION_RESET
    return _Failed(reason, f"{phase}: net::ERR_{code}")


# --- one try of a step -------------------------------------------------------------------


@dataclass  # no slots: Playwright keeps its wrapper of a handler on the handler's object
class _PageRun:
    """One try's page and what it has seen: requests, errors, the phase it is in."""

    config: BrowserStep
    run: RunContext
    soft_deadline: float  # perf_counter(): the time left after it is the reserve
    redact: Redactor  # the check's: the page's text is redacted before it is cut
    phase: str = "starting Chromium"
    browser: Browser | None = None
    page: Page | None = None
    cdp: CDPSession | None = None  # Chromium's own protocol: transferred bytes, stopLoading
    main_response: Response | None = None
    requests: int = 0
    failed_requests: int = 0
    transferred_bytes: int = 0
    in_flight: dict[Request, float] = field(default_factory=dict)
    page_errors: list[str] = field(default_factory=list)
    crashed: bool = False
    started: float = 0.0  # perf_counter() at the navigation's start
    document_failure: str | None = None
    document_failed: asyncio.Event = field(default_factory=asyncio.Event)
    counted: tuple[int, int, int] | None = None  # (requests, failed, bytes) when judged
    trace_file: Path | None = None  # where the trace being recorded may be written

    # -- time --------------------------------------------------------------------------

    def seconds_left(self) -> float:
        return self.soft_deadline - time.perf_counter()

    def ms_left(self) -> float:
        left = self.seconds_left()
        if left <= 0:
            raise _Failed(FailureReason.TIMEOUT, f"{self.phase}: {self.cut_detail()}")
        return left * 1000

    # -- what the page does ------------------------------------------------------------

    def watch(self, page: Page) -> None:
        page.on("request", self._on_request)
        page.on("requestfinished", self._on_request_done)
        page.on("requestfailed", self._on_request_failed)
        page.on("response", self._on_response)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        page.on("crash", self._on_crash)

    def _on_request(self, request: Request) -> None:
        self.requests += 1
        self.in_flight[request] = time.perf_counter()

    def _on_request_done(self, request: Request) -> None:
        self.in_flight.pop(request, None)

    def _on_request_failed(self, request: Request) -> None:
        self.in_flight.pop(request, None)
        self.failed_requests += 1
        page = self.page
        if (
            page is not None
            and request.is_navigation_request()
            and request.frame == page.main_frame
        ):
            # After its head, the document's body can still fail (it does not decode, the
            # connection breaks): then no load event ever comes.
            self.document_failure = request.failure or "the document's request failed"
            self.document_failed.set()

    def _on_response(self, response: Response) -> None:
        request = response.request
        page = self.page
        if (
            page is not None
            and request.is_navigation_request()
            and request.frame == page.main_frame
        ):
            self.main_response = response

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type != "error" or len(self.page_errors) >= MAX_PAGE_ERRORS:
            return
        where = message.location.get("url", "") if message.location else ""
        # Chromium asks for /favicon.ico itself, and logs its 404 as the page's error.
        if where.endswith("/favicon.ico") and message.text.startswith("Failed to load resource"):
            return
        self.page_errors.append(f"console error: {_one_line(message.text, self.redact)}")

    def _on_page_error(self, error: PlaywrightError) -> None:
        if len(self.page_errors) < MAX_PAGE_ERRORS:
            name = error.name or "Error"
            self.page_errors.append(f"uncaught {name}: {_one_line(error.message, self.redact)}")

    def _on_crash(self, _page: Page) -> None:
        self.crashed = True

    def _on_cdp_loading_finished(self, event: dict[str, Any]) -> None:
        length = event.get("encodedDataLength")
        if isinstance(length, int | float) and length > 0:
            self.transferred_bytes += int(length)

    # -- words ---------------------------------------------------------------------------

    def cut_detail(self) -> str:
        """What was still going on when the time ran out: the requests in flight."""
        if not self.in_flight:
            return "cut by the journey deadline"
        oldest = min(self.in_flight, key=self.in_flight.__getitem__)
        count = len(self.in_flight)
        return (
            f"cut by the journey deadline with {count} request{'s' if count != 1 else ''} "
            f"in flight, the oldest {_short_url(oldest.url, self.redact)}"
        )

    def deadline_note(self) -> tuple[str, str]:
        """What the engine reports when its own (hard) deadline cuts the try."""
        if self.phase == "starting Chromium":
            return (
                FailureReason.LOCAL_RESOURCES,
                "Chromium did not start before the journey deadline",
            )
        return FailureReason.TIMEOUT, f"{self.phase}: {self.cut_detail()}"

    def failure_of(self, exc: PlaywrightError) -> _Failed:
        """A Playwright error, in our words: the page crashed, Chromium died, the network."""
        text = _one_line(exc.message, self.redact)
        if self.crashed:
            return _Failed(
                FailureReason.PAGE_ERROR,
                f"the page crashed while {self.phase} (its renderer died: out of memory, or "
                "killed)",
            )
        # Killed, Chromium can fail a page's call as closed before Playwright has seen the
        # browser disconnect; nothing else closes it under a run (a crash is above; our
        # own close comes after the run). TargetClosedError is not exported by Playwright.
        gone = type(exc).__name__ == "TargetClosedError"
        if gone or (self.browser is not None and not self.browser.is_connected()):
            return _Failed(
                FailureReason.LOCAL_RESOURCES,
                f"Chromium exited while {self.phase}; it is started again for the next run",
            )
        net = _net_failure(self.phase, text)
        if net is not None:
            return net
        if isinstance(exc, PlaywrightTimeout):
            return _Failed(FailureReason.TIMEOUT, f"{self.phase}: {self.cut_detail()}")
        return _Failed(FailureReason.INTERNAL, f"{self.phase}: {text}")

    def freeze(self) -> None:
        """The counts as they were when the page was judged: requests the kind itself cuts
        after (stopping a hung page for its screenshot) are not the page's failures."""
        self.counted = (self.requests, self.failed_requests, self.transferred_bytes)

    def figures(self, timing: Mapping[str, Any] | None) -> BrowserFigures:
        def seconds(name: str) -> float | None:
            value = timing.get(name) if timing else None
            return value / 1000 if isinstance(value, int | float) and value > 0 else None

        requests, failed, transferred = self.counted or (
            self.requests,
            self.failed_requests,
            self.transferred_bytes,
        )
        return BrowserFigures(
            ttfb_seconds=seconds("ttfb"),
            dom_content_loaded_seconds=seconds("dcl"),
            load_seconds=seconds("load"),
            lcp_seconds=seconds("lcp"),
            requests=requests,
            failed_requests=failed,
            transferred_bytes=transferred,
        )


class BrowserKind:
    figures = BrowserFigures

    async def attempt(self, plan: StepPlan, values: Mapping[str, str], run: RunContext) -> Attempt:
        config = plan.config
        assert isinstance(config, BrowserStep)
        pool = run.resources.get(BROWSER)
        if not isinstance(pool, BrowserPool):
            return Attempt(
                Status.DOWN,
                FailureReason.INTERNAL,
                "no browser pool was handed to this run (run_check's resources)",
            )
        store = run.resources.get(ARTIFACTS)
        artifacts = store if isinstance(store, ArtifactStore) and store.keep > 0 else None
        try:
            url = config.browser.url.render(values)
            headers = {name: _header_value(name, t.render(values)) for name, t in plan.headers}
            texts = [
                action.fill.text.render(values) if action.fill is not None else ""
                for action in config.browser.actions
            ]
        except (ValueError, UnicodeError) as exc:
            return Attempt(
                Status.DOWN,
                FailureReason.EXTRACTION_FAILED,
                f"cannot build the page's request: {plan.redact.cut(str(exc), _MESSAGE_TEXT)}",
            )
        now = time.perf_counter()
        left = (run.deadline - now) if run.deadline is not None else 60.0
        page_run = _PageRun(config, run, now + left - _reserve(left), plan.redact)
        run.deadline_note = cut_with(page_run.deadline_note)
        try:
            page_run.browser = await pool.browser()
        except BrowserUnavailable as exc:
            return Attempt(
                Status.DOWN, FailureReason.LOCAL_RESOURCES, f"cannot start Chromium: {exc}"
            )
        page_run.phase = "opening a browser context"
        everywhere, own = _split_headers(plan, headers)
        withheld = _withheld(plan, url) if own else None
        if withheld is not None:
            own = {}
        try:
            context = await page_run.browser.new_context(**_context_options(everywhere))
        except PlaywrightError as exc:
            failed = page_run.failure_of(exc)
            return Attempt(Status.DOWN, failed.reason, failed.message)
        try:
            if own:
                await _send_to_origin(context, url, _without_user_agent({**everywhere, **own}))
            if artifacts is not None and artifacts.traces:
                page_run.trace_file = (
                    pool.trace_file(context) if await pool.start_trace(context) else None
                )
            outcome = await _try_page(page_run, context, url, texts, artifacts)
            if withheld is not None and outcome.status is not Status.UP:
                outcome.message += f" (credentials and secrets withheld: {withheld})"
            return outcome
        except PlaywrightError as exc:
            failed = page_run.failure_of(exc)
            return Attempt(Status.DOWN, failed.reason, failed.message)
        finally:
            pool.close_later(context)


KIND = BrowserKind()


def _reserve(left: float) -> float:
    # The backstop fires within the reserve: still before the journey's deadline.
    return min(MAX_RESERVE, max(BACKSTOP_AFTER * 2, max(0.0, left) / 5))


# Headers that authorize, whatever their value: like any header carrying a secret, kept to
# the page's own origin, so a third-party script or CDN the page loads never receives them.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _split_headers(
    plan: StepPlan, headers: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(for every request of the page, for its own origin only)."""
    everywhere: dict[str, str] = {}
    own: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        bound = key in _CREDENTIAL_HEADERS or key in plan.secret_headers
        (own if bound else everywhere)[name] = value
    return everywhere, own


def _withheld(plan: StepPlan, url: str) -> str | None:
    """Why the page's origin gets no credential or secret, or None when it may.

    The HTTP kinds' rule (probe/secret_origins.py): they go only to the origin the
    config wrote; an origin an extracted value set, or changed, gets none. A browser step
    has no `send_secrets_to`: its own-origin headers go to that one origin or nowhere."""
    configured = plan.url.configured_origin if plan.url is not None else None
    origin = origin_of_text(url)
    if configured is not None and origin == configured:
        return None
    where = str(origin) if origin is not None else "a URL with no HTTP origin"
    if configured is None:
        return f"{where[:100]} (the step's URL takes its origin from the target)"
    return f"{where[:100]} (not the step's origin {configured})"


def _without_user_agent(headers: Mapping[str, str]) -> dict[str, str]:
    # The context's own option sets it, for every request.
    return {name: value for name, value in headers.items() if name.lower() != "user-agent"}


def _context_options(headers: Mapping[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"viewport": VIEWPORT, "accept_downloads": False}
    extra = {}
    for name, value in headers.items():
        if name.lower() == "user-agent":
            options["user_agent"] = value
        else:
            extra[name] = value
    if extra:
        options["extra_http_headers"] = extra
    return options


async def _send_to_origin(context: BrowserContext, url: str, headers: Mapping[str, str]) -> None:
    """Add `headers` to the requests of the page that go to `url`'s origin, and no others.

    A route whose pattern is a regular expression is matched by Playwright's driver, so
    the page's other requests are not held up by a round trip to us. Headers given to a
    routed request replace the context's extra headers: `headers` holds those too.
    """
    parsed = urlsplit(url)
    origin = f"{parsed.scheme}://{parsed.netloc}".lower()
    pattern = re.compile(rf"^{re.escape(origin)}(?:[/?#]|$)", re.IGNORECASE)

    async def add(route: Route) -> None:
        await route.continue_(headers={**route.request.headers, **headers})

    await context.route(pattern, add)


async def _try_page(
    page_run: _PageRun,
    context: BrowserContext,
    url: str,
    texts: list[str],
    artifacts: ArtifactStore | None,
) -> Attempt:
    """Load, act, judge; then the figures and, for a failure, the screenshot and text."""
    page_run.phase = "opening a page"
    outcome: Attempt
    try:
        await context.add_init_script(_LCP_SCRIPT)
        page = await context.new_page()
        page_run.page = page
        page_run.watch(page)
        try:
            cdp = await context.new_cdp_session(page)
            cdp.on("Network.loadingFinished", page_run._on_cdp_loading_finished)
            await cdp.send("Network.enable")
            page_run.cdp = cdp
        except PlaywrightError:
            pass  # only the byte count and stopping a hung navigation are lost
        page_run.started = time.perf_counter()
        # The backstop under the per-call bounds, a little after them so their own timeout
        # says what ran out: evaluate() has none, and a page stuck in a script loop never
        # answers one.
        async with asyncio.timeout(max(0.0, page_run.seconds_left()) + BACKSTOP_AFTER):
            outcome = await _load_act_judge(page_run, page, url, texts)
    except _Failed as failed:
        outcome = _failure(page_run, failed)
    except TimeoutError:
        outcome = _failure(
            page_run, _Failed(FailureReason.TIMEOUT, f"{page_run.phase}: {page_run.cut_detail()}")
        )
    except PlaywrightError as exc:
        outcome = _failure(page_run, page_run.failure_of(exc))
    outcome.ended = time.perf_counter()
    outcome.duration = outcome.ended - (page_run.started or outcome.ended)
    page_run.freeze()
    await _finish(page_run, context, outcome, artifacts)
    return outcome


def _failure(page_run: _PageRun, failed: _Failed) -> Attempt:
    response = page_run.main_response
    return Attempt(
        Status.DOWN,
        failed.reason,
        failed.message,
        http_status=response.status if response is not None else None,
    )


async def _load_act_judge(page_run: _PageRun, page: Page, url: str, texts: list[str]) -> Attempt:
    config = page_run.config
    expect = config.expect
    page_run.phase = "loading the document"
    try:
        response = await page.goto(url, wait_until="commit", timeout=page_run.ms_left())
    except PlaywrightError as exc:
        failed = page_run.failure_of(exc)
        seen = page_run.main_response
        aborted = "net::ERR_ABORTED" in exc.message
        if aborted and seen is not None and seen.status not in expect.status:
            # A status Chromium will not render (204, a download) comes as ERR_ABORTED.
            raise _status_failure(seen.status, expect.status) from None
        raise failed from None
    if response is None:  # same-document navigation: cannot happen from about:blank
        raise _Failed(FailureReason.INTERNAL, "the navigation returned no document")
    page_run.main_response = response
    if response.status not in expect.status:
        # The error page as the user sees it, for the screenshot: a short wait, no more.
        with contextlib.suppress(PlaywrightError):
            await page.wait_for_load_state("load", timeout=min(page_run.ms_left(), 2000))
        raise _status_failure(response.status, expect.status)
    page_run.phase = "waiting for the load event"
    await _unless_the_document_fails(
        page_run, page.wait_for_load_state("load", timeout=page_run.ms_left())
    )
    page_run.phase = "waiting for the network to go idle"
    await _unless_the_document_fails(
        page_run, page.wait_for_load_state("networkidle", timeout=page_run.ms_left())
    )
    for action, text in zip(config.browser.actions, texts, strict=True):
        selector = action.selector
        if action.fill is not None:
            page_run.phase = f"fill {selector!r}"
            await page.fill(selector, text, timeout=page_run.ms_left())
        elif action.click is not None:
            page_run.phase = f"click {selector!r}"
            await page.click(selector, timeout=page_run.ms_left())
        else:
            await _wait_for(
                page_run, page, action.selector, action.wait_for.within if action.wait_for else None
            )
    page_run.phase = "judging the page"
    return await _judge(page_run, page)


async def _unless_the_document_fails(page_run: _PageRun, waiting: Awaitable[None]) -> None:
    """Await `waiting`, unless the main document's request fails first: then say why."""
    wait = asyncio.ensure_future(waiting)
    failed = asyncio.ensure_future(page_run.document_failed.wait())
    try:
        await asyncio.wait((wait, failed), return_when=asyncio.FIRST_COMPLETED)
    finally:
        failed.cancel()
        if not wait.done():
            wait.cancel()
        await asyncio.gather(wait, failed, return_exceptions=True)
    failure = page_run.document_failure
    if failure is None:
        wait.result()  # done, or its own error (a timeout, a crash)
        return
    raise _net_failure(page_run.phase, failure) or _Failed(
        FailureReason.CONNECTION_RESET, f"{page_run.phase}: {_one_line(failure, page_run.redact)}"
    )


async def _wait_for(page_run: _PageRun, page: Page, selector: str, within: float | None) -> None:
    page_run.phase = f"wait_for {selector!r}"
    left = page_run.seconds_left()
    # Its own bound, unless the deadline comes first: then the deadline cut it.
    own = within is None or within <= left
    bound = left if within is None else min(within, left)
    try:
        await page.wait_for_selector(selector, state="visible", timeout=max(1.0, bound * 1000))
    except PlaywrightTimeout:
        if not own:
            raise _Failed(
                FailureReason.TIMEOUT, f"wait_for {selector!r}: {page_run.cut_detail()}"
            ) from None
        shown = f"within {within:g}s" if within is not None else "before the journey deadline"
        raise _Failed(
            FailureReason.ELEMENT_MISSING, f"wait_for {selector!r}: not visible {shown}"
        ) from None


async def _judge(page_run: _PageRun, page: Page) -> Attempt:
    expect = page_run.config.expect
    status = page_run.main_response.status if page_run.main_response is not None else None
    if expect.no_console_errors and page_run.page_errors:
        errors = page_run.page_errors
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return Attempt(Status.DOWN, FailureReason.PAGE_ERROR, errors[0] + more, http_status=status)
    outcomes = [await _element(page, item, page_run.redact) for item in expect.elements]
    failed = [o for o in outcomes if not o.passed]
    critical = next((o for o in failed if o.severity == "critical"), None)
    if critical is not None:
        return Attempt(
            Status.DOWN,
            critical.reason,
            critical.message,
            http_status=status,
            assertions=tuple(outcomes),
        )
    if failed:
        message = "; ".join(o.message for o in failed)
        return Attempt(
            Status.DEGRADED, None, message, http_status=status, assertions=tuple(outcomes)
        )
    return Attempt(
        Status.UP, None, f"HTTP {status}", http_status=status, assertions=tuple(outcomes)
    )


async def _element(page: Page, item: ElementAssertion, redact: Redactor) -> AssertionOutcome:
    found = await page.locator(item.selector).evaluate_all(_ELEMENTS_SCRIPT, MAX_TEXT_CHARS)
    count, text, visible = int(found["count"]), str(found["text"]), bool(found["visible"])
    op, expected = item.operator, item.expected
    if op in ("min_count", "max_count"):
        passed = count >= expected if op == "min_count" else count <= expected
        subject, actual = f"count({item.selector!r})", str(count)
    elif op == "visible":
        passed, subject, actual = (
            visible is expected,
            f"visible({item.selector!r})",
            str(visible).lower(),
        )
    else:
        passed = expected.found_in(text) if op == "text_matches" else expected in text
        subject = f"text({item.selector!r})"
        actual = repr(_one_line(text, redact)) if count else "no element"
    return AssertionOutcome(
        subject=subject,
        expectation=item.expectation(),
        passed=passed,
        actual=actual,
        reason=item.reason or FailureReason.ASSERTION_FAILED,
        severity=item.severity,
    )


async def _finish(
    page_run: _PageRun,
    context: BrowserContext,
    outcome: Attempt,
    artifacts: ArtifactStore | None,
) -> None:
    """The figures, and for a failure the page's text and screenshot, in the time left
    before the journey's deadline (the reserve). A page stuck in a script loop gives none
    of them; a document that never came is stopped first, so the blank page still shows."""
    page = page_run.page
    browser = page_run.browser
    alive = page is not None and not page_run.crashed and browser is not None
    alive = alive and browser is not None and browser.is_connected()
    deadline = page_run.run.deadline
    failed = outcome.status is Status.DOWN

    def share(part: float) -> float:
        left = (deadline - time.perf_counter() - 0.2) if deadline is not None else MAX_RESERVE
        return max(0.0, left * part)

    timing: Mapping[str, Any] | None = None
    if alive and outcome.reason == FailureReason.TIMEOUT and page_run.cdp is not None:
        # Evaluating and screenshots wait while a navigation is pending.
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(min(0.3, share(0.2))):
                await page_run.cdp.send("Page.stopLoading")
    if alive and page is not None and page_run.main_response is not None:
        with contextlib.suppress(PlaywrightError, TimeoutError):
            async with asyncio.timeout(share(0.25 if failed else 1.0)):
                found = await page.evaluate(_NAVIGATION_SCRIPT)
                timing = found if isinstance(found, dict) else None
    outcome.figures = page_run.figures(timing)
    if not failed or not alive or page is None:
        return
    with contextlib.suppress(PlaywrightError, TimeoutError):
        async with asyncio.timeout(share(0.3)):
            text = await page.evaluate(_BODY_TEXT_SCRIPT, SAMPLE_CHARS)
            if isinstance(text, str) and text:
                outcome.body = text.encode("utf-8", "replace")
                outcome.body_bytes = len(outcome.body)
    if artifacts is None:
        return
    try:
        async with asyncio.timeout(share(1.0)):
            png = await page.screenshot(type="png", timeout=max(1.0, share(1.0) * 1000))
    except (PlaywrightError, TimeoutError):
        outcome.message += " (no screenshot: the page rendered none in time)"
        return
    try:
        outcome.artifact = await artifacts.save(page_run.run.check, page_run.config.name, png)
    except (OSError, ValueError) as exc:
        outcome.message += f" (screenshot not saved: {_one_line(str(exc), page_run.redact)})"
        return
    if page_run.trace_file is not None:
        await _save_trace(page_run, context, outcome, artifacts, share(1.0))


async def _save_trace(
    page_run: _PageRun,
    context: BrowserContext,
    outcome: Attempt,
    artifacts: ArtifactStore,
    seconds: float,
) -> None:
    """Keep the run's trace beside its screenshot, in the time left: Playwright zips it
    into the pool's folder, the store copies it out with the check's secrets redacted."""
    assert outcome.artifact is not None
    assert page_run.trace_file is not None
    try:
        async with asyncio.timeout(seconds):
            await context.tracing.stop(path=page_run.trace_file)
            outcome.trace = await artifacts.save_trace(
                outcome.artifact, page_run.trace_file, page_run.redact
            )
    except TimeoutError:
        outcome.message += " (no trace: no time left to save it)"
    except PlaywrightError as exc:
        outcome.message += f" (no trace: {_one_line(exc.message, page_run.redact)})"
    except (OSError, ValueError) as exc:
        outcome.message += f" (trace not saved: {_one_line(str(exc), page_run.redact)})"


def _status_failure(status: int, expected: object) -> _Failed:
    return _Failed(classify_status(status), f"HTTP {status}, expected {expected}")


def _header_value(name: str, value: str) -> str:
    """A header value from extracted values: one a browser can send, or ValueError."""
    if has_header_control(value):
        raise ValueError(f"request header {name} {HEADER_VALUE_CONTROL}")
    return value


def _one_line(text: str, redact: Redactor) -> str:
    """A page's text for a message: on one line, redacted, then cut."""
    return redact.cut(" ".join(text.split()), _MESSAGE_TEXT)


def _short_url(url: str, redact: Redactor) -> str:
    return redact.cut(url, 120)
