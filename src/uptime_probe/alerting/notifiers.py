"""The notifier kinds by name: one request builder each, behind one signature.

    build_request(notifier_config, notice) -> HttpRequest

Adding a kind is a module with a `build_request`, a config model in `config/model.py`,
and a case here; `assert_never` makes mypy point at this function when one is missing.
`apprise` is the one kind that is not one HTTP request (apprise_notifier.py).
"""

from __future__ import annotations

from typing import assert_never

from uptime_probe.alerting import alertmanager, slack, webhook
from uptime_probe.alerting.notice import HttpRequest, Notice
from uptime_probe.config.model import (
    AlertmanagerNotifier,
    AppriseNotifier,
    SlackNotifier,
    WebhookNotifier,
)

HttpNotifier = WebhookNotifier | SlackNotifier | AlertmanagerNotifier
# `apprise` sends through Apprise's own clients, not one HTTP request: the dispatcher hands
# it to apprise_notifier.deliver instead of build_request.
AnyNotifier = HttpNotifier | AppriseNotifier


def build_request(notifier: HttpNotifier, notice: Notice) -> HttpRequest:
    if isinstance(notifier, WebhookNotifier):
        return webhook.build_request(notifier, notice)
    if isinstance(notifier, SlackNotifier):
        return slack.build_request(notifier, notice)
    if isinstance(notifier, AlertmanagerNotifier):
        return alertmanager.build_request(notifier, notice)
    assert_never(notifier)


def reminder_interval(notifier: AnyNotifier) -> float | None:
    """Seconds between reminders while an incident stays open; None for no reminders.

    Alertmanager always re-posts (its alerts expire otherwise), at its own default when
    the config leaves the interval null.
    """
    if isinstance(notifier, AlertmanagerNotifier):
        return alertmanager.repost_interval(notifier)
    return notifier.reminder_interval
