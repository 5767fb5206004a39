"""The Slack message: readable at a glance, every user-supplied string escaped."""

from __future__ import annotations

import json

import pytest

from uptime_probe.alerting import slack
from uptime_probe.alerting.notice import NoticeKind
from uptime_probe.config.model import SlackNotifier

from .factories import STATUS_PAGE, incident, notice

NOTIFIER = SlackNotifier(kind="slack", url="https://slack.test/services/T/B/X")
LINK = f"<{STATUS_PAGE}|Chat status>"


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        (
            NoticeKind.OPENED,
            ":red_circle: history_sidebar is DOWN — empty history (HTTP 200) at step"
            f" conversations, since 06:10 UTC. {LINK}",
        ),
        (
            NoticeKind.REMINDER,
            ":red_circle: history_sidebar is still DOWN after 1h 5m — empty history (HTTP 200)"
            f" at step conversations, since 06:10 UTC. {LINK}",
        ),
        (
            NoticeKind.RESOLVED,
            ":large_green_circle: history_sidebar recovered after 45m — it was down since"
            f" 06:10 UTC: empty history (HTTP 200) at step conversations. {LINK}",
        ),
    ],
)
def test_message_per_event(kind: NoticeKind, text: str) -> None:
    request = slack.build_request(NOTIFIER, notice(kind))
    assert (request.method, request.url) == ("POST", NOTIFIER.url)
    body = request.json()
    assert body["text"] == text
    headline, first_failure, context = body["blocks"]
    assert headline == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": text.removesuffix(f" {LINK}")},
    }
    assert first_failure["text"]["text"] == (
        "First failure:\n>conversations: length(items) = 0, expected &gt; 0"
    )
    assert context == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": f"{LINK} · location eu-west · failed runs: empty_history: 2",
            }
        ],
    }


def test_strings_from_the_target_cannot_forge_links_or_mentions() -> None:
    subject = incident(first_message="<!channel> <http://evil.test|click> & more\nline two")
    body = slack.build_request(NOTIFIER, notice(NoticeKind.OPENED, subject)).json()
    quoted = body["blocks"][1]["text"]["text"]
    assert quoted == (
        "First failure:\n>&lt;!channel&gt; &lt;http://evil.test|click&gt; &amp; more\n>line two"
    )
    assert "<!channel>" not in json.dumps(body)


def test_no_first_message_no_empty_block() -> None:
    body = slack.build_request(
        NOTIFIER, notice(NoticeKind.OPENED, incident(first_message=""))
    ).json()
    assert [block["type"] for block in body["blocks"]] == ["section", "context"]
