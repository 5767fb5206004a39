"""`kind: apprise` through real Apprise to real receivers on 127.0.0.1: its JSON and form
webhooks (json://, form://) on an aiohttp server, and email (mailto://) to an SMTP server
that wants a login. Same delivery rules as the other notifiers; every URL a secret."""

from __future__ import annotations

import asyncio
import itertools
import time
import urllib.parse
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import RefusingExecutor, ServeApp
from uptime_probe.config.apprise_url import apprise_url_secrets
from uptime_probe.config.model import Config
from uptime_probe.state.incidents import IncidentEvent, IncidentEventKind

from .conftest import FAST_RETRY, MakeDispatcher
from .factories import config, incident, resolved
from .receiver import Receiver, refused_url, wait_until
from .smtp_server import mail_server

MAIL_PASSWORD = "mail-pw-0123456789abcdef"  # the test SMTP server's login
TOKEN = "hook-token-9f8e7d6c5b4a"  # a secret path segment, as services use
NOTIFY_BUDGET = 0.1  # seconds: notify() only enqueues


def apprise(*urls: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "apprise", "urls": list(urls), **extra}


def opened(check: str = "history_sidebar") -> IncidentEvent:
    return IncidentEvent(IncidentEventKind.OPENED, incident(check=check, id=f"{check}-1"))


def closed(check: str = "history_sidebar") -> IncidentEvent:
    return IncidentEvent(
        IncidentEventKind.RESOLVED, resolved(incident(check=check, id=f"{check}-1"))
    )


def hook_url(scheme: str, base: str, path: str = f"/{TOKEN}") -> str:
    """`json://127.0.0.1:PORT/<token>` for a receiver at `http://127.0.0.1:PORT`."""
    return f"{scheme}://{base.removeprefix('http://')}{path}"


def everything_logged(logs: list[dict[str, Any]]) -> str:
    return "\n".join(repr(entry) for entry in logs)


def assert_no_secret(text: str, *urls: str) -> None:
    for url in urls:
        assert url not in text
    assert TOKEN not in text
    assert MAIL_PASSWORD not in text
    assert urllib.parse.quote(MAIL_PASSWORD) not in text


async def test_json_form_and_email_each_get_the_incident_once(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver = Receiver()
    base = await serve_app(receiver.app())
    async with mail_server("uptime", MAIL_PASSWORD) as mail:
        urls = [hook_url("json", base), hook_url("form", base, f"/form/{TOKEN}"), mail.url()]
        dispatcher, results = make_dispatcher(
            config({"everywhere": apprise(*urls)}, {"history_sidebar": ["everywhere"]})
        )
        await dispatcher.start()
        with capture_logs() as logs:
            dispatcher.notify(opened())
            await wait_until(lambda: results.of("everywhere") == {"sent": 1}, what="opened")
            dispatcher.notify(closed())
            await wait_until(lambda: results.of("everywhere") == {"sent": 2}, what="resolved")

        assert mail.logins == [("uptime", True)] * 2  # logged in for each message
        assert mail.recipients == [["oncall@example.com"], ["oncall@example.com"]]
        subjects = [message["Subject"] for message in mail.mail]
        assert subjects == ["history_sidebar is DOWN", "history_sidebar recovered"]
        text = mail.mail[0].get_body(("plain",))
        assert text is not None
        body = text.get_content()
        assert "history_sidebar is DOWN — empty history (HTTP 200) at step conversations" in body
        assert "Status page: http://status.test/#check-history_sidebar" in body

    by_path: dict[str, list[Any]] = {}
    for request in receiver.requests:
        by_path.setdefault(request.path, []).append(request)
    assert sorted(by_path) == [f"/form/{TOKEN}", f"/{TOKEN}"]
    as_json = [request.json() for request in by_path[f"/{TOKEN}"]]
    assert [(m["title"], m["type"]) for m in as_json] == [
        ("history_sidebar is DOWN", "failure"),
        ("history_sidebar recovered", "success"),
    ]
    assert as_json[0]["message"].startswith("history_sidebar is DOWN — empty history (HTTP 200)")
    as_form = [
        urllib.parse.parse_qs(request.body.decode()) for request in by_path[f"/form/{TOKEN}"]
    ]
    assert [(f["title"], f["type"]) for f in as_form] == [
        (["history_sidebar is DOWN"], ["failure"]),
        (["history_sidebar recovered"], ["success"]),
    ]
    sent = [entry for entry in logs if entry["event"] == "notification_sent"]
    assert [(e["notifier"], e["kind"], e["notice"]) for e in sent] == [
        ("everywhere", "apprise", "opened"),
        ("everywhere", "apprise", "resolved"),
    ]
    assert_no_secret(everything_logged(logs), *urls)


@pytest.mark.parametrize(
    ("status", "attempts", "retried"),
    [(503, 3, True), (429, 3, True), (404, 1, False)],
)
async def test_a_failing_target_is_retried_as_http_notifiers_are_and_alone(
    serve_app: ServeApp,
    make_dispatcher: MakeDispatcher,
    status: int,
    attempts: int,
    retried: bool,
) -> None:
    """5xx and 429 are tried again, other 4xx are not; the target that took it is not sent
    it again. The error names the target by position and says the status, nothing else."""
    good, bad = Receiver(), Receiver(status=status)
    urls = [
        hook_url("json", await serve_app(good.app())),
        hook_url("json", await serve_app(bad.app())),
    ]
    dispatcher, results = make_dispatcher(
        config({"everywhere": apprise(*urls)}, {"history_sidebar": ["everywhere"]})
    )
    await dispatcher.start()
    with capture_logs() as logs:
        dispatcher.notify(opened())
        await wait_until(lambda: results.of("everywhere").get("failed") == 1, what="failed")

    assert len(good.requests) == 1
    assert len(bad.requests) == attempts
    assert results.of("everywhere") == {"failed": 1, **({"retried": 2} if retried else {})}
    (failed,) = [entry for entry in logs if entry["event"] == "notification_failed"]
    assert failed["error"] == f"urls[1] (JSON): http_status: {status}"
    assert failed["http_status"] == status
    assert failed["attempt"] == attempts
    assert_no_secret(everything_logged(logs), *urls)


async def test_refused_and_unreachable_targets(make_dispatcher: MakeDispatcher) -> None:
    url = hook_url("json", refused_url().removesuffix("/hook"))
    dispatcher, results = make_dispatcher(
        config({"everywhere": apprise(url)}, {"history_sidebar": ["everywhere"]})
    )
    await dispatcher.start()
    with capture_logs() as logs:
        dispatcher.notify(opened())
        await wait_until(lambda: results.of("everywhere").get("failed") == 1, what="failed")
    assert results.of("everywhere") == {"failed": 1, "retried": 2}
    (failed,) = [entry for entry in logs if entry["event"] == "notification_failed"]
    assert failed["error"] == "urls[0] (JSON): connect_failed: the service could not be reached"
    assert_no_secret(everything_logged(logs), url)


async def test_a_target_that_never_answers_costs_its_timeout_and_never_the_loop(
    serve_app: ServeApp,
    make_dispatcher: MakeDispatcher,
    default_executor: RefusingExecutor,
) -> None:
    """A receiver that accepts and never answers: each attempt ends at `timeout`, the
    notification fails after its attempts, and meanwhile the event loop keeps its pace and
    the loop's default executor is never used (Apprise sends on the dispatcher's threads)."""
    hanging, fine = Receiver(hang=True), Receiver()
    hanging_url = hook_url("json", await serve_app(hanging.app()))
    fine_url = hook_url("json", await serve_app(fine.app()))
    dispatcher, results = make_dispatcher(
        config(
            {
                "stuck": apprise(hanging_url, timeout="300ms"),
                "other": apprise(fine_url, timeout="300ms"),
            },
            {"history_sidebar": ["stuck", "other"]},
        )
    )
    await dispatcher.start()
    default_executor.refuse()
    started = time.monotonic()
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        with capture_logs() as logs:
            took = time.perf_counter()
            dispatcher.notify(opened())
            assert time.perf_counter() - took < NOTIFY_BUDGET
            # The other notifier's lane is not held by the stuck one.
            await wait_until(lambda: results.of("other") == {"sent": 1}, what="other sent")
            assert time.monotonic() - started < 1.0
            await wait_until(
                lambda: results.of("stuck").get("failed") == 1, timeout=10, what="stuck failed"
            )
        elapsed = time.monotonic() - started
    finally:
        ticker.cancel()
        hanging._released.set()
    # 3 attempts of 0.3 s and FAST_RETRY's waits; well under what a hang would take.
    bound = FAST_RETRY.attempts * 0.3 + 2 * FAST_RETRY.max_delay
    assert 3 * 0.3 <= elapsed < bound + 1.0
    assert len(hanging.requests) == 3
    (failed,) = [entry for entry in logs if entry["event"] == "notification_failed"]
    assert failed["error"] == "urls[0]: timeout: no answer within 0.3s"
    gaps = [later - earlier for earlier, later in itertools.pairwise(ticks)]
    assert max(gaps) < 0.2, f"the event loop stalled {max(gaps):.3f}s"
    assert default_executor.refused == []


async def test_close_stops_the_apprise_threads(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver = Receiver()
    url = hook_url("json", await serve_app(receiver.app()))
    dispatcher, results = make_dispatcher(
        config({"everywhere": apprise(url)}, {"history_sidebar": ["everywhere"]})
    )
    await dispatcher.start()
    dispatcher.notify(opened())
    await wait_until(lambda: results.of("everywhere") == {"sent": 1}, what="sent")
    pool = dispatcher._apprise_threads
    assert pool is not None
    await dispatcher.close(1.0)
    with pytest.raises(RuntimeError, match="shutdown"):
        pool.submit(print)


@pytest.mark.parametrize(
    ("url", "secret_parts"),
    [
        ("discord://123456789012/webhook-token-0123456789", ["webhook-token-0123456789"]),
        (
            "tgram://123456789:ABCdefGHIjklMNOpqrSTUvwxYZ/12345",
            ["123456789:ABCdefGHIjklMNOpqrSTUvwxYZ"],
        ),
        (f"mailto://uptime:{MAIL_PASSWORD}@127.0.0.1:2525?from=a@b.co&to=c@d.co", [MAIL_PASSWORD]),
        ("json://127.0.0.1:8080/relay", []),
    ],
)
def test_an_apprise_url_and_its_private_parts_are_secrets(
    url: str, secret_parts: list[str]
) -> None:
    """What the daemon's log redactor and config errors remove: the URL, and every part
    Apprise itself masks (tokens, passwords, keys)."""
    secrets = apprise_url_secrets(url)
    assert secrets[0] == url
    assert set(secret_parts) <= set(secrets[1:])
    built = Config.model_validate(
        {
            "secrets": {"token": "probe-token-0123"},
            "notifiers": {"everywhere": {"kind": "apprise", "urls": [url]}},
            "checks": [
                {"name": "c", "steps": [{"name": "s", "request": {"url": "http://127.0.0.1:9/"}}]}
            ],
        }
    )
    assert built.secret_values() == ["probe-token-0123", *secrets]
    assert url not in repr(built)
