"""`apprise`: every service Apprise supports (PagerDuty, Opsgenie, Teams, Discord,
Telegram, email, ntfy, Matrix...), one URL per target.

    title   "history_sidebar is DOWN" / "... is still DOWN" / "... recovered"
    body    notice.description: the headline, the first failure, reasons, the link
    type    failure (opened, reminder), success (resolved)

Each URL is its own target with its own attempts (`delivery.deliver_with`): a target that
fails is retried without sending the others again. The notification is sent when every
target took it.

Apprise sends synchronously (its plugins use `requests` and `smtplib`), so an attempt runs
on a thread of the dispatcher's own pool, never the event loop's default executor. The
attempt ends at the notifier's `timeout` (`asyncio.timeout` around the wait: a `timeout`
outcome, as for the HTTP notifiers); the thread ends at most `THREAD_GRACE` later, by the
plugin's socket timeouts and Apprise's own service deadline, set that much longer so they
never end the attempt first (Apprise reports a read timeout as a connection error).

Every Apprise URL is a secret (config/apprise_url.py): an outcome names its target as
`urls[0] (Discord)`, and carries a category and at most an HTTP status, never Apprise's
own words, which can hold a host that is a token (`tgram://<bot token>/...`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from uptime_probe.alerting.delivery import AttemptOutcome, OnRetry, RetryPolicy, deliver_with
from uptime_probe.alerting.notice import Notice, NoticeKind, description
from uptime_probe.config.apprise_url import apprise_asset, quiet_apprise
from uptime_probe.config.model import AppriseNotifier

THREAD_GRACE = 1.0  # seconds a send's thread may outlive its attempt
# An HTTP status in Apprise's failure records: "... notification: Bad Gateway, error=502."
_HTTP_ERROR = re.compile(r"\berror=(\d{3})\b")


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    failure: bool  # Apprise's notify type: failure, else success


def message(notice: Notice) -> Message:
    check = notice.incident.check
    if notice.kind is NoticeKind.RESOLVED:
        return Message(f"{check} recovered", description(notice), failure=False)
    still = " still" if notice.kind is NoticeKind.REMINDER else ""
    return Message(f"{check} is{still} DOWN", description(notice), failure=True)


def _outcome(result: Any, timeout: float) -> AttemptOutcome:
    """Apprise's result for one target as an attempt outcome, by category only."""
    apprise = quiet_apprise()
    status = result.status
    if status == apprise.AppriseResultStatus.SUCCESS:
        return AttemptOutcome(True, False)
    if status == apprise.AppriseResultStatus.TIMEOUT:
        return AttemptOutcome(False, True, f"timeout: no answer within {timeout:g}s")
    words = " ".join(str(entry.message) for entry in result.logs())
    found = _HTTP_ERROR.search(words)
    if found is not None:
        code = int(found.group(1))
        return AttemptOutcome(
            False, code == 429 or code >= 500, f"http_status: {code}", http_status=code
        )
    if "connection" in words.lower():
        return AttemptOutcome(False, True, "connect_failed: the service could not be reached")
    return AttemptOutcome(False, True, "not_sent: the service did not take it")


def send_once(url: str, note: Message, timeout: float) -> tuple[str, AttemptOutcome]:
    """One attempt to one target, on a worker thread: (service name, outcome). It returns
    within `timeout + THREAD_GRACE`, whatever the service does."""
    apprise = quiet_apprise()
    bound = timeout + THREAD_GRACE
    sender = apprise.Apprise(asset=apprise_asset(bound))
    if not sender.add(url):  # checked at load; a plugin gone since is an error, not a retry
        return "unknown", AttemptOutcome(False, False, "invalid_url: Apprise cannot use it")
    service = "unknown"
    for plugin in sender:
        service = str(plugin.service_name)
        plugin.socket_connect_timeout = min(plugin.socket_connect_timeout, bound)
        plugin.socket_read_timeout = min(plugin.socket_read_timeout, bound)
    kind = apprise.NotifyType.FAILURE if note.failure else apprise.NotifyType.SUCCESS
    try:
        result = sender.notify(
            body=note.body,
            title=note.title,
            notify_type=kind,
            body_format=apprise.NotifyFormat.TEXT,
            timeout=bound,
        )
    except Exception as exc:  # a plugin's bug; its text may hold the URL: the type only
        return service, AttemptOutcome(False, False, f"internal: {type(exc).__name__}")
    return service, _outcome(result, bound)


async def _attempt(
    executor: Executor, index: int, url: str, note: Message, timeout: float
) -> AttemptOutcome:
    target = f"urls[{index}]"
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            service, outcome = await loop.run_in_executor(executor, send_once, url, note, timeout)
    except TimeoutError:
        return AttemptOutcome(False, True, f"{target}: timeout: no answer within {timeout:g}s")
    error = f"{target} ({service}): {outcome.error}" if outcome.error else ""
    return AttemptOutcome(
        outcome.ok, outcome.retryable, error, outcome.http_status, outcome.retry_after
    )


async def deliver(
    notifier: AppriseNotifier,
    notice: Notice,
    *,
    executor: Executor,
    policy: RetryPolicy,
    on_retry: OnRetry | None = None,
) -> tuple[AttemptOutcome, int]:
    """Every target at once, each with its own attempts; sent when all took it.

    Returns the combined outcome (the failed targets' errors, joined) and the most attempts
    any target needed.
    """
    note = message(notice)

    def one(index: int, url: str) -> Callable[[], Any]:
        return lambda: _attempt(executor, index, url, note, notifier.timeout)

    results = await asyncio.gather(
        *(
            deliver_with(one(index, url), policy=policy, on_retry=on_retry)
            for index, url in enumerate(notifier.urls)
        )
    )
    tries = max(number for _outcome, number in results)
    failed = [outcome for outcome, _number in results if not outcome.ok]
    if not failed:
        return AttemptOutcome(True, False), tries
    statuses = {outcome.http_status for outcome in failed} - {None}
    return (
        AttemptOutcome(
            False,
            False,
            "; ".join(outcome.error for outcome in failed),
            statuses.pop() if len(statuses) == 1 else None,
        ),
        tries,
    )
