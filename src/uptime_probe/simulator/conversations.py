"""The history list: a fixed, seeded set of conversations, the same on every run."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

CONVERSATION_COUNT = 57
_SEED = 20251203
_NEWEST = datetime(2025, 12, 3, 6, 0, tzinfo=UTC)

_VERBS = (
    "Debug", "Explain", "Refactor", "Summarise", "Draft", "Plan", "Review", "Translate",
    "Compare", "Outline",
)  # fmt: skip
_TOPICS = (
    "the retry loop in the billing worker",
    "a Kubernetes rollout that hangs",
    "the Q3 budget email",
    "flaky integration tests",
    "a SQL query that scans the whole table",
    "the onboarding checklist",
    "TLS certificate renewal",
    "a Python asyncio deadlock",
    "the incident postmortem",
    "a birthday speech for Sam",
    "rate limits on the public API",
    "a Terraform module for DNS",
)


@dataclass(frozen=True, slots=True)
class Conversation:
    id: str
    title: str
    update_time: str  # ISO 8601, UTC

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "title": self.title, "update_time": self.update_time}


def seeded_conversations(
    count: int = CONVERSATION_COUNT, seed: int = _SEED
) -> tuple[Conversation, ...]:
    """`count` conversations, newest first, identical for the same `count` and `seed`."""
    rng = random.Random(seed)
    items = []
    when = _NEWEST
    for _ in range(count):
        when -= timedelta(minutes=rng.randint(7, 900))
        items.append(
            Conversation(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                title=f"{rng.choice(_VERBS)} {rng.choice(_TOPICS)}",
                update_time=when.isoformat().replace("+00:00", "Z"),
            )
        )
    return tuple(items)
