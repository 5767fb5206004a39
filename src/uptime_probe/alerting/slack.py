"""`slack`: an incoming-webhook message, `text` (the notification preview) plus `blocks`.

Every string that came from a check or a response is escaped for Slack's mrkdwn (`&`,
`<`, `>`), so a message can never forge a link or a mention.
"""

from __future__ import annotations

from typing import Any

from uptime_probe.alerting.notice import (
    USER_AGENT,
    HttpRequest,
    Notice,
    NoticeKind,
    encode_json,
    headline,
    reason_counts,
)
from uptime_probe.config.model import SlackNotifier

EMOJI = {
    NoticeKind.OPENED: ":red_circle:",
    NoticeKind.REMINDER: ":red_circle:",
    NoticeKind.RESOLVED: ":large_green_circle:",
}


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(notice: Notice) -> str:
    return f"<{escape(notice.status_page)}|{escape(notice.status_page_title)}>"


def payload(notice: Notice) -> dict[str, Any]:
    incident = notice.incident
    emoji = EMOJI[notice.kind]
    line = escape(headline(notice))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} {line}"}},
    ]
    if incident.first_message:
        quoted = escape(incident.first_message).replace("\n", "\n>")
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": f"First failure:\n>{quoted}"}}
        )
    context = [_link(notice), f"location {escape(incident.location)}"]
    if incident.reasons:
        context.append(f"failed runs: {escape(reason_counts(incident))}")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    return {"text": f"{emoji} {line} {_link(notice)}", "blocks": blocks}


def build_request(notifier: SlackNotifier, notice: Notice) -> HttpRequest:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    return HttpRequest("POST", notifier.url, headers, encode_json(payload(notice)))
