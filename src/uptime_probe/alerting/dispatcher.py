r"""Incident events in, notifications out: routing, a bounded queue per notifier, reminders.

    IncidentTracker --notify(event)--> route by check --> lane "oncall_slack"  --> worker --> POST
                      (sync, never blocks)            \-> lane "pager_am"      --> worker --> POST
                                                       (bounded FIFO each)
    reminder task: every open incident, every `reminder_interval` --> the same lanes

One lane per notifier rather than one shared queue and a pool: the lane's single worker
keeps that notifier's messages in order (an incident's resolve never overtakes its open),
and a receiver that hangs holds only its own lane, never another notifier's delivery.
Notifiers are few (a handful per deployment), so one task each costs nothing.

Results, a closed set (the `result` label of `uptime_probe_notifications_total`)::

    sent      delivered: the receiver answered 2xx
    failed    given up: every attempt failed, a non-retryable answer, or cut off at close
    dropped   never attempted: the notifier's queue was full, or the dispatcher was closing
    retried   one more attempt after a failed one (counts attempts, not notifications)

Each notification ends as exactly one of sent, failed or dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

import aiohttp
import structlog

from uptime_probe.alerting import apprise_notifier
from uptime_probe.alerting.delivery import AttemptOutcome, RetryPolicy, deliver
from uptime_probe.alerting.notice import Notice, NoticeKind, check_link, status_page_base
from uptime_probe.alerting.notifiers import AnyNotifier, build_request, reminder_interval
from uptime_probe.config.model import AlertmanagerNotifier, AppriseNotifier, Config
from uptime_probe.slices import Steps, run_all
from uptime_probe.state.incidents import Incident, IncidentEvent, IncidentEventKind

log = structlog.get_logger("uptime_probe.alerting")

DEFAULT_QUEUE_SIZE = 100  # per notifier
APPRISE_THREADS = 4  # at least; more when the config has more Apprise targets


class DeliveryResult(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"
    RETRIED = "retried"


RESULTS: tuple[str, ...] = tuple(result.value for result in DeliveryResult)


@dataclass(frozen=True, slots=True)
class _Job:
    notifier: AnyNotifier  # the config as it was when queued; a reload does not rewrite it
    notice: Notice


@dataclass(eq=False, slots=True)
class _Lane:
    """One notifier's FIFO and its worker; `None` in the queue tells the worker to stop."""

    name: str
    queue: asyncio.Queue[_Job | None]
    worker: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Open:
    """An open incident the dispatcher reminds about."""

    incident: Incident
    notifiers: tuple[str, ...]
    due: dict[str, float] = field(default_factory=dict)  # notifier -> monotonic time


class NotificationDispatcher:
    """Turns incident events into notifications without ever blocking the caller.

    `notify` is an `IncidentTracker` listener: synchronous, it only routes and enqueues.
    Everything a message says comes from the incident in the event (its latest failing
    run's HTTP status included), so it reads nothing else and no sink's order matters.
    """

    def __init__(
        self,
        config: Config,
        *,
        on_result: Callable[[str, str], None],
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
        retry: RetryPolicy | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        hostname: str | None = None,
        clock: Callable[[], float] = time.time,
        in_maintenance: Callable[[str], bool] = lambda _check: False,
    ) -> None:
        self._on_result = on_result
        # Reminders pause while a window covers the incident's check (docs/configuration.md,
        # maintenance); Alertmanager re-posts do not, they keep its alert's state true.
        self._in_maintenance = in_maintenance
        self._session_factory = session_factory
        self._retry = retry or RetryPolicy()
        self._queue_size = queue_size
        self._hostname = hostname or socket.gethostname()
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._retired: list[_Lane] = []  # removed by a reload, still delivering what they hold
        self._open: dict[str, _Open] = {}  # by check: the tracker keeps one open per check
        self._reminding: set[tuple[str, str]] = set()  # (notifier, check) reminders queued
        self._wake = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._reminder: asyncio.Task[None] | None = None
        self._apprise_threads: ThreadPoolExecutor | None = None
        self._started = False
        self._closed = False
        self._set_config(config)

    # --- configuration ---------------------------------------------------------------------

    def _set_config(self, config: Config, routes: dict[str, tuple[str, ...]] | None = None) -> None:
        self._config = config
        self._base_url = status_page_base(config.server, self._hostname)
        self._routes = routes if routes is not None else run_all(_route_steps(config))
        for name in config.notifiers:
            if name not in self._lanes:
                lane = _Lane(name, asyncio.Queue(maxsize=self._queue_size + 1))
                self._lanes[name] = lane
                if self._started and not self._closed:
                    self._start_worker(lane)

    def update_config(self, config: Config) -> None:
        """A reload: new routes, notifiers and intervals from now on; queued work is kept.

        A removed notifier's lane delivers what it already holds, then stops. Reminders stop
        for incidents of removed checks (the tracker forgets them too).
        """
        run_all(self.update_steps(config))

    def update_steps(self, config: Config) -> Steps[None]:
        """`update_config`, its routes gathered a check at a time (slices.py) and the
        whole config swapped in at once."""
        routes = yield from _route_steps(config)
        self._set_config(config, routes)
        for name in [n for n in self._lanes if n not in config.notifiers]:
            lane = self._lanes.pop(name)
            lane.queue.put_nowait(None)  # room is kept for it: see queue_size + 1
            self._retired.append(lane)
        self._retired = [
            lane for lane in self._retired if lane.worker is None or not lane.worker.done()
        ]
        now = time.monotonic()
        for check in list(self._open):
            tracked = self._open[check]
            if check not in self._routes:
                del self._open[check]
                continue
            tracked.notifiers = self._routes[check]
            tracked.due = {n: due for n, due in tracked.due.items() if n in tracked.notifiers}
            self._schedule(tracked, now)
        self._wake.set()

    # --- incident events -------------------------------------------------------------------

    def restore(self, incidents: Iterable[Incident]) -> None:
        """Incidents open before a restart: no message now, reminders from here on.

        Alertmanager hears about them at once: its alert may be about to expire.
        """
        for incident in incidents:
            if incident.open:
                self._track(incident, repost_now=True)

    def notify(self, event: IncidentEvent) -> None:
        """Queue the notifications an incident event calls for; returns at once."""
        try:
            self._notify(event)
        except Exception:
            log.exception(
                "notification_dispatch_failed",
                check=event.incident.check,
                notice=event.kind.value,
            )

    def _notify(self, event: IncidentEvent) -> None:
        incident = event.incident
        check = incident.check
        if event.kind is IncidentEventKind.OPENED:
            tracked = self._track(incident, repost_now=False)
            self._enqueue_all(tracked.notifiers, NoticeKind.OPENED, incident)
        elif event.kind is IncidentEventKind.RESOLVED:
            tracked_or_none = self._open.pop(check, None)
            if tracked_or_none is not None and tracked_or_none.incident.id == incident.id:
                routes = tracked_or_none.notifiers
            else:
                routes = self._routes.get(check, ())
            self._enqueue_all(routes, NoticeKind.RESOLVED, incident)
        elif incident.open:
            # UPDATED and COUNTED are never sent; they keep reminders current.
            tracked_or_none = self._open.get(check)
            if tracked_or_none is None or tracked_or_none.incident.id != incident.id:
                self._track(incident, repost_now=True)  # opened before we were built
            else:
                tracked_or_none.incident = incident

    def _track(self, incident: Incident, *, repost_now: bool) -> _Open:
        tracked = _Open(incident, self._routes.get(incident.check, ()))
        self._open[incident.check] = tracked
        self._schedule(tracked, time.monotonic(), repost_now=repost_now)
        self._wake.set()
        return tracked

    def _schedule(self, tracked: _Open, now: float, *, repost_now: bool = False) -> None:
        for name in tracked.notifiers:
            notifier = self._config.notifiers.get(name)
            interval = reminder_interval(notifier) if notifier is not None else None
            if interval is None:
                tracked.due.pop(name, None)
            elif name not in tracked.due:
                now_too = repost_now and isinstance(notifier, AlertmanagerNotifier)
                tracked.due[name] = now if now_too else now + interval

    # --- queueing --------------------------------------------------------------------------

    def _enqueue_all(self, names: Iterable[str], kind: NoticeKind, incident: Incident) -> None:
        for name in names:
            self._enqueue(name, kind, incident)

    def _enqueue(self, name: str, kind: NoticeKind, incident: Incident) -> bool:
        lane = self._lanes.get(name)
        notifier = self._config.notifiers.get(name)
        if lane is None or notifier is None:
            return False
        if self._closed or lane.queue.qsize() >= self._queue_size:
            why = "closed" if self._closed else "queue_full"
            self._count(name, DeliveryResult.DROPPED)
            log.warning(
                "notification_dropped",
                notifier=name,
                check=incident.check,
                incident=incident.id,
                notice=kind.value,
                why=why,
            )
            return False
        notice = Notice(
            kind=kind,
            incident=incident,
            sent_at=self._clock(),
            status_page=check_link(self._base_url, incident.check),
            delivery_id=uuid.uuid4().hex,
            status_page_title=self._config.status_page.title,
        )
        lane.queue.put_nowait(_Job(notifier, notice))
        return True

    def _count(self, name: str, result: DeliveryResult) -> None:
        try:
            self._on_result(name, result.value)
        except Exception:
            log.exception("notification_count_failed", notifier=name, result=result.value)

    # --- reminders -------------------------------------------------------------------------

    def _due_reminders(self, now: float) -> float | None:
        """Queue the reminders due by `now`; return when the next one is due."""
        earliest: float | None = None
        for tracked in list(self._open.values()):
            check = tracked.incident.check
            for name, due in list(tracked.due.items()):
                if due <= now:
                    notifier = self._config.notifiers.get(name)
                    interval = reminder_interval(notifier) if notifier is not None else None
                    key = (name, check)
                    paused = not isinstance(notifier, AlertmanagerNotifier) and (
                        self._in_maintenance(check)
                    )
                    # One reminder per notifier and incident in a queue at a time: a slow
                    # receiver must not fill its lane with reminders and lose the resolve.
                    if (
                        not paused
                        and key not in self._reminding
                        and self._enqueue(name, NoticeKind.REMINDER, tracked.incident)
                    ):
                        self._reminding.add(key)
                    if interval is None:
                        del tracked.due[name]
                        continue
                    due = tracked.due[name] = now + interval
                earliest = due if earliest is None else min(earliest, due)
        return earliest

    async def _remind(self) -> None:
        while True:
            self._wake.clear()
            now = time.monotonic()
            earliest = self._due_reminders(now)
            timeout = None if earliest is None else max(0.0, earliest - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    # --- delivery --------------------------------------------------------------------------

    def _start_worker(self, lane: _Lane) -> None:
        lane.worker = asyncio.create_task(self._work(lane), name=f"notifier-{lane.name}")

    async def _work(self, lane: _Lane) -> None:
        while True:
            job = await lane.queue.get()
            if job is None:
                return
            try:
                await self._deliver(lane.name, job)
            except Exception:  # a bug here must not silence the notifier for good
                log.exception("notification_worker_failed", notifier=lane.name)
            finally:
                if job.notice.kind is NoticeKind.REMINDER:
                    self._reminding.discard((lane.name, job.notice.incident.check))

    async def _deliver(self, name: str, job: _Job) -> None:
        notice = replace(job.notice, sent_at=self._clock())
        session = self._session
        assert session is not None, "workers run between start() and close()"
        fields = {
            "notifier": name,
            "kind": job.notifier.kind,
            "check": notice.incident.check,
            "incident": notice.incident.id,
            "notice": notice.kind.value,
        }
        tries = 1

        def on_retry(number: int, outcome: AttemptOutcome, delay: float) -> None:
            nonlocal tries
            tries = number + 1
            self._count(name, DeliveryResult.RETRIED)
            log.info(
                "notification_retried",
                **fields,
                attempt=number,
                error=outcome.error,
                retry_in=round(delay, 3),
            )

        try:
            if isinstance(job.notifier, AppriseNotifier):
                outcome, tries = await apprise_notifier.deliver(
                    job.notifier,
                    notice,
                    executor=self._apprise_pool(),
                    policy=self._retry,
                    on_retry=on_retry,
                )
            else:
                request = build_request(job.notifier, notice)
                outcome, tries = await deliver(
                    session,
                    request,
                    timeout=job.notifier.timeout,
                    policy=self._retry,
                    on_retry=on_retry,
                )
        except asyncio.CancelledError:
            self._count(name, DeliveryResult.FAILED)
            log.warning("notification_failed", **fields, attempt=tries, error="cancelled")
            raise
        except Exception as exc:
            self._count(name, DeliveryResult.FAILED)
            log.exception(
                "notification_failed", **fields, attempt=tries, error=f"internal: {exc!r}"
            )
            return
        if outcome.ok:
            self._count(name, DeliveryResult.SENT)
            log.info("notification_sent", **fields, attempt=tries, http_status=outcome.http_status)
        else:
            self._count(name, DeliveryResult.FAILED)
            log.warning(
                "notification_failed",
                **fields,
                attempt=tries,
                error=outcome.error,
                http_status=outcome.http_status,
            )

    def _apprise_pool(self) -> ThreadPoolExecutor:
        """Threads for Apprise's synchronous sends, made on first use: one per Apprise
        target at most, so a stuck send never waits behind another, and never in the event
        loop's default executor, which the rest of the daemon shares."""
        if self._apprise_threads is None:
            targets = sum(
                len(n.urls)
                for n in self._config.notifiers.values()
                if isinstance(n, AppriseNotifier)
            )
            self._apprise_threads = ThreadPoolExecutor(
                max_workers=max(APPRISE_THREADS, targets), thread_name_prefix="apprise"
            )
        return self._apprise_threads

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP session, start one worker per notifier and the reminder task."""
        if self._started:
            return
        self._started = True
        self._session = self._session_factory()
        for lane in (*self._lanes.values(), *self._retired):
            self._start_worker(lane)
        self._reminder = asyncio.create_task(self._remind(), name="notification-reminders")

    async def close(self, timeout: float) -> None:
        """Deliver what is queued for up to `timeout` seconds, then give up and count.

        A delivery cut off mid-way counts `failed`; a notification never attempted counts
        `dropped`. `notify` after close drops (and counts) too.
        """
        if self._closed:
            return
        self._closed = True
        if self._reminder is not None:
            self._reminder.cancel()
            await asyncio.gather(self._reminder, return_exceptions=True)
        lanes = [*self._lanes.values(), *self._retired]
        for lane in self._lanes.values():
            lane.queue.put_nowait(None)
        workers = [lane.worker for lane in lanes if lane.worker is not None]
        pending: set[asyncio.Task[None]] = set()
        if workers:
            _done, pending = await asyncio.wait(workers, timeout=max(0.0, timeout))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        dropped = 0
        for lane in lanes:
            while not lane.queue.empty():
                job = lane.queue.get_nowait()
                if job is not None:
                    dropped += 1
                    self._count(lane.name, DeliveryResult.DROPPED)
                    log.warning(
                        "notification_dropped",
                        notifier=lane.name,
                        check=job.notice.incident.check,
                        incident=job.notice.incident.id,
                        notice=job.notice.kind.value,
                        why="closed",
                    )
        if self._session is not None:
            await self._session.close()
        if self._apprise_threads is not None:
            # A send stuck in a plugin cannot be stopped; its socket timeouts end it.
            self._apprise_threads.shutdown(wait=False, cancel_futures=True)
        log.info("notifications_closed", cut_off=len(pending), dropped=dropped)


def _route_steps(config: Config) -> Steps[dict[str, tuple[str, ...]]]:
    """Each check's notifiers that exist, in order, once each: a check at a time."""
    routes: dict[str, tuple[str, ...]] = {}
    for check in config.checks:
        routes[check.name] = tuple(
            dict.fromkeys(n for n in check.notifiers or () if n in config.notifiers)
        )
        yield
    return routes
