"""The dispatcher against real receivers on 127.0.0.1: routing, order, retries, limits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.conftest import ServeApp
from uptime_probe.alerting import RESULTS
from uptime_probe.probe.model import Status
from uptime_probe.state.incidents import IncidentEvent, IncidentEventKind, IncidentTracker

from .conftest import MakeDispatcher
from .factories import config, incident, outcome, resolved
from .receiver import Receiver, refused_url, wait_until

NOTIFY_BUDGET = 0.1  # seconds: notify() only enqueues (microseconds); slack for a busy CI


async def serve(serve_app: ServeApp, receiver: Receiver) -> str:
    return f"{await serve_app(receiver.app())}/hook"


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "webhook", "url": url, **extra}


def opened(check: str = "history_sidebar", **changes: Any) -> IncidentEvent:
    return IncidentEvent(
        IncidentEventKind.OPENED, incident(check=check, id=f"{check}-1", **changes)
    )


def closed(check: str = "history_sidebar") -> IncidentEvent:
    return IncidentEvent(
        IncidentEventKind.RESOLVED, resolved(incident(check=check, id=f"{check}-1"))
    )


def timed_notify(dispatcher: Any, event: IncidentEvent) -> float:
    started = time.perf_counter()
    dispatcher.notify(event)
    return time.perf_counter() - started


async def test_an_incident_sends_exactly_one_open_then_one_resolve(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver = Receiver()
    url = await serve(serve_app, receiver)
    dispatcher, results = make_dispatcher(
        config({"hook": hook(url)}, {"history_sidebar": ["hook"]})
    )
    emitted: list[IncidentEventKind] = []
    tracker = IncidentTracker([dispatcher.notify, lambda e: emitted.append(e.kind)])
    await dispatcher.start()

    now = time.time()
    # The HTTP status of each run reaches the notices through the incident alone.
    for at, ok, state, reason, http_status in [
        (now - 60, False, Status.UP, "empty_history", 200),  # below the failure threshold
        (now - 50, False, Status.DOWN, "empty_history", 200),  # opened
        (now - 40, False, Status.DOWN, "empty_history", 200),  # counted
        (now - 30, False, Status.DOWN, "http_5xx", 503),  # updated: a new reason
        (now - 20, True, Status.DOWN, "", 200),  # updated: monitoring
        (now - 10, False, Status.DOWN, "http_5xx", 503),  # updated: investigating again
        (now, True, Status.UP, "", 200),  # resolved
    ]:
        tracker.accept(
            outcome("history_sidebar", ok, at, state=state, reason=reason, http_status=http_status)
        )
    assert emitted == [
        IncidentEventKind.OPENED,
        IncidentEventKind.COUNTED,
        IncidentEventKind.UPDATED,
        IncidentEventKind.UPDATED,
        IncidentEventKind.UPDATED,
        IncidentEventKind.RESOLVED,
    ]

    await wait_until(lambda: len(receiver.requests) >= 2, what="open and resolve")
    await dispatcher.close(5)
    assert receiver.events() == ["opened", "resolved"]
    first, last = (r.json()["incident"] for r in receiver.requests)
    assert first["id"] == last["id"]
    assert first["reason_text"] == "empty history (HTTP 200)"
    assert last["reason_text"] == "a server error status (HTTP 503) (first: empty history)"
    assert last["reasons"] == {"empty_history": 3, "http_5xx": 2}
    assert results.of("hook") == {"sent": 2}


async def test_routes_each_check_to_the_notifiers_it_names(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    team_a, team_b = Receiver(), Receiver()
    url_a, url_b = await serve(serve_app, team_a), await serve(serve_app, team_b)
    dispatcher, results = make_dispatcher(
        config(
            {"a": hook(url_a), "b": hook(url_b)},
            {"chat_load": ["a"], "history_sidebar": ["a", "b"], "quiet": []},
        )
    )
    await dispatcher.start()
    for check in ("chat_load", "history_sidebar", "quiet"):
        dispatcher.notify(opened(check))
    await dispatcher.close(5)
    assert sorted(r.json()["incident"]["check"] for r in team_a.requests) == [
        "chat_load",
        "history_sidebar",
    ]
    assert [r.json()["incident"]["check"] for r in team_b.requests] == ["history_sidebar"]
    assert (results.of("a"), results.of("b")) == ({"sent": 2}, {"sent": 1})


@pytest.mark.parametrize("kind", [IncidentEventKind.UPDATED, IncidentEventKind.COUNTED])
async def test_updates_and_counts_are_never_sent(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher, kind: IncidentEventKind
) -> None:
    receiver = Receiver()
    url = await serve(serve_app, receiver)
    dispatcher, results = make_dispatcher(
        config({"hook": hook(url)}, {"history_sidebar": ["hook"]})
    )
    await dispatcher.start()
    dispatcher.notify(opened())
    dispatcher.notify(IncidentEvent(kind, incident(id="history_sidebar-1")))
    await dispatcher.close(5)
    assert receiver.events() == ["opened"]
    assert results.of("hook") == {"sent": 1}


async def test_a_failing_receiver_is_retried_then_counted_and_blocks_nothing(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    broken, healthy = Receiver(status=500), Receiver()
    url_broken, url_healthy = await serve(serve_app, broken), await serve(serve_app, healthy)
    dispatcher, results = make_dispatcher(
        config(
            {"broken": hook(url_broken), "healthy": hook(url_healthy)},
            {"history_sidebar": ["broken", "healthy"]},
        )
    )
    await dispatcher.start()
    with capture_logs() as logs:
        assert timed_notify(dispatcher, opened()) < NOTIFY_BUDGET
        await wait_until(lambda: results.of("broken").get("failed") == 1, what="give up")
    assert len(broken.requests) == 3
    assert healthy.events() == ["opened"]
    assert results.of("broken") == {"retried": 2, "failed": 1}
    assert results.of("healthy") == {"sent": 1}
    [failed] = [e for e in logs if e["event"] == "notification_failed"]
    assert (
        failed
        | {
            "notifier": "broken",
            "check": "history_sidebar",
            "attempt": 3,
            "error": "http_status: 500",
            "http_status": 500,
        }
        == failed
    )
    assert [e["attempt"] for e in logs if e["event"] == "notification_retried"] == [1, 2]


async def test_a_hanging_receiver_is_bounded_by_its_timeout(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    hanging, healthy = Receiver(hang=True), Receiver()
    url_hanging, url_healthy = await serve(serve_app, hanging), await serve(serve_app, healthy)
    dispatcher, results = make_dispatcher(
        config(
            {"hanging": hook(url_hanging, timeout=0.2), "healthy": hook(url_healthy)},
            {"history_sidebar": ["hanging", "healthy"], "chat_load": ["hanging", "healthy"]},
        )
    )
    await dispatcher.start()
    started = time.monotonic()
    assert timed_notify(dispatcher, opened()) < NOTIFY_BUDGET
    assert timed_notify(dispatcher, opened("chat_load")) < NOTIFY_BUDGET
    # The other notifier is not held up: behind the hanging one it would wait 2 x 0.6 s.
    await wait_until(lambda: len(healthy.requests) == 2, timeout=1, what="healthy receiver")
    assert time.monotonic() - started < 1.0
    await wait_until(lambda: results.of("hanging").get("failed") == 2, what="two timeouts")
    elapsed = time.monotonic() - started
    # 2 notifications x 3 attempts x 0.2 s, plus short backoffs: bounded, not hanging.
    assert 1.2 <= elapsed < 3.0, elapsed
    assert len(hanging.requests) == 6
    assert results.of("hanging") == {"retried": 4, "failed": 2}


async def test_a_refused_port_is_retried_and_counted(make_dispatcher: MakeDispatcher) -> None:
    dispatcher, results = make_dispatcher(
        config({"down": hook(refused_url())}, {"history_sidebar": ["down"]})
    )
    await dispatcher.start()
    with capture_logs() as logs:
        dispatcher.notify(opened())
        await wait_until(lambda: results.of("down").get("failed") == 1, what="give up")
    assert results.of("down") == {"retried": 2, "failed": 1}
    [failed] = [e for e in logs if e["event"] == "notification_failed"]
    assert failed["error"] == "connect_failed: Connection refused"


async def test_queue_overflow_drops_and_counts(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver = Receiver()
    url = await serve(serve_app, receiver)
    checks = [f"check_{n}" for n in range(5)]
    dispatcher, results = make_dispatcher(
        config({"hook": hook(url)}, {check: ["hook"] for check in checks}), queue_size=2
    )
    # Not started: nothing leaves the queue, so the third notification finds it full.
    with capture_logs() as logs:
        for check in checks:
            assert timed_notify(dispatcher, opened(check)) < NOTIFY_BUDGET
    assert results.of("hook") == {"dropped": 3}
    assert [e["why"] for e in logs if e["event"] == "notification_dropped"] == ["queue_full"] * 3
    await dispatcher.start()
    await dispatcher.close(5)
    assert [r.json()["incident"]["check"] for r in receiver.requests] == checks[:2]
    assert results.of("hook") == {"dropped": 3, "sent": 2}


async def test_close_delivers_what_is_queued(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver = Receiver()
    url = await serve(serve_app, receiver)
    checks = [f"check_{n}" for n in range(10)]
    dispatcher, results = make_dispatcher(
        config({"hook": hook(url)}, {c: ["hook"] for c in checks})
    )
    await dispatcher.start()
    for check in checks:
        dispatcher.notify(opened(check))
        dispatcher.notify(closed(check))
    await dispatcher.close(5)
    assert [(r.json()["incident"]["check"], r.event) for r in receiver.requests] == [
        (check, event) for check in checks for event in ("opened", "resolved")
    ], "per-notifier order is kept: every resolve after its open"
    assert results.of("hook") == {"sent": 20}
    dispatcher.notify(opened("check_0"))
    assert results.of("hook") == {"sent": 20, "dropped": 1}, "notify after close drops"


async def test_close_gives_up_at_its_timeout_and_counts(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    hanging = Receiver(hang=True)
    url = await serve(serve_app, hanging)
    checks = [f"check_{n}" for n in range(3)]
    dispatcher, results = make_dispatcher(
        config({"hanging": hook(url, timeout=30)}, {c: ["hanging"] for c in checks})
    )
    await dispatcher.start()
    for check in checks:
        dispatcher.notify(opened(check))
    await wait_until(lambda: len(hanging.requests) == 1, what="first attempt in flight")
    started = time.monotonic()
    await dispatcher.close(0.2)
    assert time.monotonic() - started < 1.0
    # The one in flight is cut off (failed); the two never attempted are dropped.
    assert results.of("hanging") == {"failed": 1, "dropped": 2}


async def test_reminders_at_the_interval_while_open_and_none_after_resolve(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    receiver, silent = Receiver(), Receiver()
    url, url_silent = await serve(serve_app, receiver), await serve(serve_app, silent)
    interval = 0.2
    dispatcher, results = make_dispatcher(
        config(
            {"hook": hook(url, reminder_interval=interval), "silent": hook(url_silent)},
            {"history_sidebar": ["hook", "silent"]},
        )
    )
    await dispatcher.start()
    notified = time.monotonic()
    dispatcher.notify(opened())
    await wait_until(lambda: receiver.events().count("reminder") >= 2, what="two reminders")
    dispatcher.notify(closed())
    await wait_until(lambda: "resolved" in receiver.events(), what="resolve")
    events = receiver.events()
    assert events[0] == "opened"
    assert events[-1] == "resolved"
    assert set(events[1:-1]) == {"reminder"}
    # Reminder k is queued no earlier than k intervals after the open (received later still).
    times = [r.at for r in receiver.requests]
    for k, at in enumerate(times[1:-1], start=1):
        assert at - notified >= k * interval, (k, at - notified)
    reminder = receiver.requests[1].json()
    assert reminder["summary"].startswith("history_sidebar is still DOWN after")
    # Not synchronisation: seeing that nothing more comes takes time, three intervals' worth.
    sent = len(receiver.requests)
    await asyncio.sleep(3 * interval)
    assert len(receiver.requests) == sent, "no reminder after the resolve"
    assert silent.events() == ["opened", "resolved"], "no interval, no reminders"
    assert set(results.of("hook")) == {"sent"}


async def test_restored_incidents_repost_to_alertmanager_at_once(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    am, other = Receiver(), Receiver()
    am_url, other_url = await serve_app(am.app()), await serve(serve_app, other)
    dispatcher, _results = make_dispatcher(
        config(
            {
                "am": {"kind": "alertmanager", "url": am_url, "reminder_interval": 60},
                "hook": hook(other_url, reminder_interval=60),
            },
            {"history_sidebar": ["am", "hook"]},
        )
    )
    dispatcher.restore(
        [incident(id="history_sidebar-1", last_reason="http_5xx", last_http_status=503)]
    )
    await dispatcher.start()
    await wait_until(lambda: len(am.requests) == 1, what="alertmanager re-post")
    assert am.requests[0].path == "/api/v2/alerts"
    # The HTTP status comes back with the stored incident: a restart does not lose it.
    (alert,) = am.requests[0].json()
    assert "a server error status (HTTP 503)" in alert["annotations"]["summary"]
    dispatcher.notify(closed())
    await dispatcher.close(5)
    assert len(am.requests) == 2
    assert other.events() == ["resolved"], "restored: no second 'opened', reminders not yet due"


async def test_reload_reroutes_and_a_removed_notifier_still_delivers_its_queue(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    old, new = Receiver(), Receiver()
    url_old, url_new = await serve(serve_app, old), await serve(serve_app, new)
    first = config({"old": hook(url_old)}, {"history_sidebar": ["old"], "chat_load": ["old"]})
    dispatcher, results = make_dispatcher(first)
    dispatcher.notify(opened())  # queued before start, for a notifier the reload removes
    dispatcher.update_config(
        config({"new": hook(url_new)}, {"history_sidebar": ["new"], "chat_load": ["new"]})
    )
    await dispatcher.start()
    dispatcher.notify(opened("chat_load"))
    dispatcher.notify(closed())
    await dispatcher.close(5)
    assert [(r.json()["incident"]["check"], r.event) for r in old.requests] == [
        ("history_sidebar", "opened")
    ]
    assert [(r.json()["incident"]["check"], r.event) for r in new.requests] == [
        ("chat_load", "opened"),
        ("history_sidebar", "resolved"),
    ]
    assert (results.of("old"), results.of("new")) == ({"sent": 1}, {"sent": 2})


async def test_the_hmac_secret_appears_in_no_body_and_no_log(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    secret = "hmac-key-never-shown"
    good, bad = Receiver(), Receiver(status=500)
    url_good, url_bad = await serve(serve_app, good), await serve(serve_app, bad)
    dispatcher, _results = make_dispatcher(
        config(
            {"good": hook(url_good, hmac_secret=secret), "bad": hook(url_bad, hmac_secret=secret)},
            {"history_sidebar": ["good", "bad"]},
        )
    )
    await dispatcher.start()
    with capture_logs() as logs:
        dispatcher.notify(opened())
        dispatcher.notify(closed())
        await dispatcher.close(5)
    assert len(good.requests) == 2
    assert len(bad.requests) == 6
    assert {e["event"] for e in logs} >= {"notification_sent", "notification_failed"}
    for request in good.requests + bad.requests:
        assert secret.encode() not in request.body
        assert request.headers["X-Uptime-Probe-Signature"].startswith("sha256=")
        assert all(secret not in value for value in request.headers.values())
    assert secret not in repr(logs)


def test_results_are_a_closed_set() -> None:
    assert RESULTS == ("sent", "failed", "dropped", "retried")


async def test_reminders_pause_while_the_check_is_in_maintenance_but_alertmanager_reposts(
    serve_app: ServeApp, make_dispatcher: MakeDispatcher
) -> None:
    am, hook_receiver = Receiver(), Receiver()
    am_url, hook_url = await serve_app(am.app()), await serve(serve_app, hook_receiver)
    in_maintenance = {"history_sidebar"}
    interval = 0.1
    dispatcher, _results = make_dispatcher(
        config(
            {
                "am": {"kind": "alertmanager", "url": am_url, "reminder_interval": interval},
                "hook": hook(hook_url, reminder_interval=interval),
            },
            {"history_sidebar": ["am", "hook"]},
        ),
        in_maintenance=in_maintenance.__contains__,
    )
    await dispatcher.start()
    dispatcher.notify(opened())  # opened before the window: sent
    await wait_until(lambda: len(am.requests) >= 4, what="alertmanager re-posts")
    assert hook_receiver.events() == ["opened"], "reminders pause in maintenance"
    in_maintenance.clear()  # the window ends
    await wait_until(lambda: "reminder" in hook_receiver.events(), what="a reminder after it")
    dispatcher.notify(closed())
    await wait_until(lambda: "resolved" in hook_receiver.events(), what="the resolve")
