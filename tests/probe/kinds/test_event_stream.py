"""The event-stream parser against the WHATWG HTML spec's own examples, split at every byte.

https://html.spec.whatwg.org/multipage/server-sent-events.html: the examples of
"Parsing an event stream" and "Interpreting an event stream", each with the three line
endings the spec allows and fed in every way the network could split it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from uptime_probe.probe.kinds.event_stream import EventStreamParser, ServerSentEvent

Expected = list[tuple[str, str, str]]  # (type, data, last event id) per dispatched event


def message(data: str, last_id: str = "") -> tuple[str, str, str]:
    return ("message", data, last_id)


SPEC_EXAMPLES: dict[str, tuple[str, Expected]] = {
    # "The following event stream ... would cause an event message with the interface
    # MessageEvent to be dispatched on the EventSource object. The event's data attribute
    # would contain the string 'YHOO\n+2\n10'."
    "stock": ("data: YHOO\ndata: +2\ndata: 10\n\n", [message("YHOO\n+2\n10")]),
    # Four blocks: a comment fires nothing; "first event" sets the id to 1; an `id` with
    # no value resets it; " third event" keeps its second leading space.
    "first-second-third": (
        ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        "data:  third event\n\n",
        [message("first event", "1"), message("second event"), message(" third event")],
    ),
    # "The first block fires events with the data set to the empty string ... The middle
    # block fires an event with the data set to a single newline character. The last
    # block is discarded because it is not followed by a blank line."
    "empty-data": ("data\n\ndata\ndata\n\ndata:", [message(""), message("\n")]),
    # "The following stream fires two identical events": one leading space is removed.
    "space": ("data:test\n\ndata: test\n\n", [message("test"), message("test")]),
    # "the end of the stream is not enough to trigger the dispatch of the last event"
    "no-final-blank-line": ("data: first\n\ndata: second\n", [message("first")]),
}

MORE_CASES: dict[str, tuple[str, Expected]] = {
    "event-type": (
        'event: content_block_delta\ndata: {"delta": {"text": "Hi"}}\n\n'
        "event: message_stop\ndata: {}\n\n",
        [
            ("content_block_delta", '{"delta": {"text": "Hi"}}', ""),
            ("message_stop", "{}", ""),
        ],
    ),
    # An event type without data dispatches nothing, and is forgotten at the blank line.
    "type-without-data": ("event: ping\n\ndata: x\n\n", [message("x")]),
    "comments-only": (": keep-alive\n: keep-alive\n\n:\n\n", []),
    "unknown-field-and-no-colon": ("foo: bar\nbaz\ndata: kept\n\n", [message("kept")]),
    "id-with-nul-is-ignored": (
        "id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n",
        [message("a", "7"), message("b", "7")],
    ),
    "colon-in-value": ("data: a: b\n\n", [message("a: b")]),
    "only-one-space-removed": ("data:   x\n\n", [message("  x")]),
    "tab-is-not-a-space": ("data:\tx\n\n", [message("\tx")]),
    "field-name-is-case-sensitive": ("Data: no\ndata: yes\n\n", [message("yes")]),
    "utf8": (
        "data: h\u00e9llo \u4e16\u754c \U0001f600\n\n",
        [message("h\u00e9llo \u4e16\u754c \U0001f600")],
    ),
    "done-marker": ('data: {"a": 1}\n\ndata: [DONE]\n\n', [message('{"a": 1}'), message("[DONE]")]),
}

ALL_CASES = {**SPEC_EXAMPLES, **MORE_CASES}
LINE_ENDINGS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def with_line_ending(text: str, ending: str) -> bytes:
    return text.replace("\n", ending).encode()


def events_of(chunks: Iterator[bytes] | list[bytes]) -> list[ServerSentEvent]:
    parser = EventStreamParser()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def as_tuples(events: list[ServerSentEvent]) -> Expected:
    return [(event.type, event.data, event.id) for event in events]


def splits_in_two(data: bytes) -> Iterator[list[bytes]]:
    for cut in range(len(data) + 1):
        yield [data[:cut], data[cut:]]


def splits_in_three(data: bytes) -> Iterator[list[bytes]]:
    for first in range(len(data) + 1):
        for second in range(first, len(data) + 1):
            yield [data[:first], data[first:second], data[second:]]


@pytest.mark.parametrize("ending", sorted(LINE_ENDINGS))
@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_every_split_gives_the_same_events(case: str, ending: str) -> None:
    text, expected = ALL_CASES[case]
    data = with_line_ending(text, LINE_ENDINGS[ending])

    assert as_tuples(events_of([data])) == expected
    assert as_tuples(events_of([bytes((b,)) for b in data])) == expected, "byte by byte"
    for chunks in splits_in_two(data):
        assert as_tuples(events_of(chunks)) == expected, chunks
    if len(data) <= 80:
        for chunks in splits_in_three(data):
            assert as_tuples(events_of(chunks)) == expected, chunks


def test_mixed_line_endings_in_one_stream() -> None:
    data = b"data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r"
    expected = [message("a\nb\nc"), message("d")]
    for chunks in splits_in_three(data):
        assert as_tuples(events_of(chunks)) == expected, chunks


def test_cr_at_the_end_of_a_chunk_then_lf_is_one_line_ending() -> None:
    """Not two: an LF opening the next chunk belongs to the CR that closed the last one,
    so no blank line (and no early dispatch) comes of it."""
    parser = EventStreamParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []  # still one event being built
    assert as_tuples(parser.feed(b"\n\r\n")) == [message("a\nb")]


def test_an_event_is_dispatched_as_soon_as_its_blank_line_arrives() -> None:
    """A CR-terminated blank line ends the event at once, before the next chunk says
    whether an LF follows: a stream's timing must not wait on the next byte."""
    parser = EventStreamParser()
    assert as_tuples(parser.feed(b"data: a\r\r")) == [message("a")]
    assert parser.feed(b"\n") == []  # the LF of that CR LF: not another blank line


@pytest.mark.parametrize("cut", [0, 1, 2, 3, 4])
def test_one_leading_bom_is_ignored_however_it_is_split(cut: int) -> None:
    data = b"\xef\xbb\xbfdata: x\n\n"
    assert as_tuples(events_of([data[:cut], data[cut:]])) == [message("x")]
    assert as_tuples(events_of([bytes((b,)) for b in data])) == [message("x")]


def test_only_one_bom_is_ignored() -> None:
    """A second BOM is part of the first field's name, which is then no known field (the
    web-platform test format-bom-2)."""
    data = b"\xef\xbb\xbf\xef\xbb\xbfdata: 1\n\ndata: 2\n\n"
    assert as_tuples(events_of([data])) == [message("2")]


def test_a_bom_later_in_the_stream_is_data() -> None:
    assert as_tuples(events_of([b"data: a\n\n\xef\xbb\xbfdata: b\n\ndata: \xef\xbb\xbfc\n\n"])) == [
        message("a"),
        message("\ufeffc"),
    ]


def test_invalid_utf8_is_replaced_and_a_split_character_is_whole() -> None:
    snowman = "\u2603".encode()
    data = b"data: " + snowman + b" \xff\n\n"
    for chunks in splits_in_two(data):
        assert as_tuples(events_of(chunks)) == [message("\u2603 \ufffd")], chunks


def test_comments_are_counted_and_never_events() -> None:
    parser = EventStreamParser()
    assert parser.feed(b": one\n:two\r\n: three\r\n\r\n") == []
    assert parser.comments == 3


@pytest.mark.parametrize(
    ("line", "retry"),
    [
        (b"retry: 3000", 3000),
        (b"retry: 30x", None),
        (b"retry:", None),
        (b"retry: -1", None),
        (b"retry: +5", None),
        (b"retry:  5", None),
        (b"retry: \xd9\xa3", None),
    ],
)
def test_retry_takes_ascii_digits_only(line: bytes, retry: int | None) -> None:
    parser = EventStreamParser()
    parser.feed(line + b"\ndata: x\n\n")
    assert parser.retry == retry


def test_the_last_event_id_persists_across_events() -> None:
    events = events_of([b"id: 42\ndata: a\n\ndata: b\n\nid\ndata: c\n\n"])
    assert [event.id for event in events] == ["42", "42", ""]


def test_pending_bytes_count_an_unfinished_event() -> None:
    parser = EventStreamParser()
    parser.feed(b"data: abc\ndata: de")
    assert parser.pending_bytes == len(b"abc") + len(b"data: de")
    parser.feed(b"\n\n")
    assert parser.pending_bytes == 0


def test_a_long_line_in_many_chunks_is_whole() -> None:
    """An unfinished line's pieces are kept as a list and joined once at its end: a line
    that comes a byte at a time costs linear time, not quadratic."""
    parser = EventStreamParser()
    assert parser.feed(b"data: ") == []
    for _ in range(100_000):
        assert parser.feed(b"y") == []
    (event,) = parser.feed(b"\n\n")
    assert event.data == "y" * 100_000
