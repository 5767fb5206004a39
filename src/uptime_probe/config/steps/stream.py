"""The `stream` step: one HTTP request answered with server-sent events.

It sends what a `request` step sends, then reads `text/event-stream` events as they
arrive: time to the first event and to the first token of the answer, the gaps between
events, the answer `collect` gathers, and the end of the stream (`done` / `done_event`).
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from uptime_probe.config.steps.parts import Expect, HttpStepBase, RequestSpec
from uptime_probe.config.types import Duration, JmesPath
from uptime_probe.config.units import format_duration


def _one_line(value: str, key: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{key} is one line of the stream: it cannot hold a line break")
    return value


class StreamSpec(RequestSpec):
    """What to send (every key of `request`), and how to read the events that come back."""

    # JMESPath on each event's JSON data; the strings it finds, in order, are the answer.
    collect: JmesPath | None = None
    # The data of the event that ends the stream ("[DONE]"), or the type of that event.
    done: str | None = Field(default=None, min_length=1)
    done_event: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_end(self) -> StreamSpec:
        if self.done is not None and self.done_event is not None:
            raise ValueError("set either done or done_event, not both")
        if self.done_event is not None:
            _one_line(self.done_event, "done_event")
        return self


class StreamExpect(Expect):
    """`expect` of a stream step: the response head as for `request`, then the events."""

    first_event_within: Duration | None = None
    max_first_event: Duration | None = None
    max_gap: Duration | None = None
    # None: 1 when the step collects an answer (StreamStep.min_answer_chars).
    answer_min_chars: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _stream_rules(self) -> StreamExpect:
        if self.json_assertions or self.json_schema is not None:
            raise ValueError(
                "json and json_schema judge one JSON body; a stream step's body is events: "
                "gather the answer with stream.collect and use body_contains or body_matches"
            )
        within, late = self.first_event_within, self.max_first_event
        if within is not None and late is not None and late >= within:
            # The step is down at first_event_within, so it could never be merely degraded.
            raise ValueError(
                f"max_first_event {format_duration(late)} is not shorter than "
                f"first_event_within {format_duration(within)}: it could never apply"
            )
        return self


class StreamStep(HttpStepBase):
    handler: ClassVar[str] = "stream"
    runner: ClassVar[str] = "stream"
    default_headers: ClassVar[tuple[tuple[str, str], ...]] = (
        # What a browser's EventSource sends: some services pick the format from it.
        ("Accept", "text/event-stream"),
        ("Cache-Control", "no-cache"),
    )
    extract_from_body: ClassVar[bool] = False

    stream: StreamSpec
    expect: StreamExpect = StreamExpect()

    @model_validator(mode="after")
    def _answer_needs_collect(self) -> StreamStep:
        if self.expect.answer_min_chars is not None and self.stream.collect is None:
            raise ValueError(
                "expect.answer_min_chars needs stream.collect: the answer is what collect gathers"
            )
        return self

    @property
    def min_answer_chars(self) -> int:
        """The shortest answer that passes: `answer_min_chars`, else 1 when collecting."""
        if self.expect.answer_min_chars is not None:
            return self.expect.answer_min_chars
        return 1 if self.stream.collect is not None else 0
