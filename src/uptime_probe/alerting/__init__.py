"""Notifications: one module per notifier kind, a dispatcher with a queue, timeout and retry.

    notice.py        what every notifier says: the incident, the plain words, the link
    webhook.py       JSON POST, optional HMAC-SHA256 signature
    slack.py         incoming-webhook message
    alertmanager.py  POST /api/v2/alerts, re-posted while firing
    notifiers.py     kind -> request builder
    delivery.py      one notification: attempts, timeout, backoff, what is retried
    dispatcher.py    routing, per-notifier queues, reminders, results

Request builders are pure (config + notice -> method, URL, headers, body bytes); only the
dispatcher does I/O. docs/notifications.md is the user's guide.
"""

from uptime_probe.alerting.delivery import RetryPolicy
from uptime_probe.alerting.dispatcher import RESULTS, DeliveryResult, NotificationDispatcher
from uptime_probe.alerting.notice import HttpRequest, Notice, NoticeKind

__all__ = [
    "RESULTS",
    "DeliveryResult",
    "HttpRequest",
    "Notice",
    "NoticeKind",
    "NotificationDispatcher",
    "RetryPolicy",
]
