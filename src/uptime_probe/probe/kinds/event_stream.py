"""The WHATWG HTML "event stream interpretation", fed bytes as the network splits them.

https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

Why our own parser: none of the maintained Python SSE clients parses the spec exactly on
an aiohttp response. aiohttp-sse-client(2) reads lines with aiohttp's `readline`, which
splits on `\\n` only (a `\\r`-terminated stream is one endless line), strips every leading
space of a value (the spec removes one) and reconnects on its own; sseclient-py is
synchronous, strips all leading whitespace and takes a `\\r\\n` split across two chunks
for a blank line, dispatching an event early; httpx-sse is the closest, but it is built
on httpx (a second HTTP client), dispatches events whose data buffer is empty (the spec
drops them) and leaves a leading byte order mark in the first field name. A monitor
must also count the bytes it reads and time each event as it completes, which a parser
we feed ourselves makes plain. tests/probe/kinds/test_event_stream.py holds the spec's
own examples, split at every byte.

Decoding: the stream is UTF-8 with invalid bytes replaced. Lines are split on the bytes
CR and LF before decoding, which gives the same text as decoding the whole stream first,
since neither byte can occur inside a UTF-8 sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: its type (`message` when the stream names none) and data."""

    type: str
    data: str
    id: str  # the stream's last event ID when the event was dispatched


class EventStreamParser:
    """Feed it bytes in any split; it returns the events each feed completes, in order.

    Memory is what the caller feeds it: at most one unfinished line and one event's data.
    """

    __slots__ = (
        "_data",
        "_event_type",
        "_line",
        "_line_size",
        "_skip_lf",
        "_start",
        "comments",
        "last_event_id",
        "retry",
    )

    def __init__(self) -> None:
        self._line: list[bytes] = []  # the pieces of the line not ended yet
        self._line_size = 0
        self._data: list[bytes] = []  # the data buffer, one entry per `data` line
        self._event_type = b""
        self._skip_lf = False  # the last byte fed was CR: an LF next belongs to it
        # The stream's first bytes until it is known whether a BOM leads, then None.
        self._start: bytes | None = b""
        self.last_event_id = ""
        self.retry: int | None = None  # the reconnection time the stream asked for, in ms
        self.comments = 0  # comment lines (keep-alives) seen: never events

    @property
    def pending_bytes(self) -> int:
        """Bytes held for an unfinished line or event (what a stalled event has sent so far)."""
        return self._line_size + sum(map(len, self._data))

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if not chunk:
            return []
        if self._start is not None:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if not chunk:
            return []
        # bytes.splitlines splits on exactly LF, CR LF and CR (str's would split on more),
        # in C; a CR LF inside one chunk stays one line ending.
        pieces = chunk.splitlines(keepends=True)
        unfinished = b""
        if pieces[-1][-1:] not in (b"\n", b"\r"):
            unfinished = pieces.pop()
        elif pieces[-1][-1:] == b"\r":
            # A CR at the very end: its LF, if any, is the first byte of the next chunk.
            self._skip_lf = True
        events: list[ServerSentEvent] = []
        for piece in pieces:
            line = piece.rstrip(b"\r\n")  # only its line ending: a line holds no CR or LF
            if self._line:
                self._line.append(line)
                line = b"".join(self._line)
                self._line.clear()
                self._line_size = 0
            event = self._process(line)
            if event is not None:
                events.append(event)
        if unfinished:
            self._line.append(unfinished)
            self._line_size += len(unfinished)
        return events

    def _strip_bom(self, chunk: bytes) -> bytes:
        """Drop one leading byte order mark, however the first three bytes are split."""
        assert self._start is not None
        start = self._start + chunk
        if len(start) < len(_BOM) and _BOM.startswith(start):
            self._start = start
            return b""
        self._start = None
        return start[len(_BOM) :] if start.startswith(_BOM) else start

    def _process(self, line: bytes) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line[0] == 0x3A:  # ":" a comment
            self.comments += 1
            return None
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event_type = value
        elif name == b"id" and b"\0" not in value:
            self.last_event_id = value.decode("utf-8", errors="replace")
        elif name == b"retry" and value.isdigit():  # bytes.isdigit: ASCII digits, not empty
            self.retry = int(value)
        # Any other field name (or an id with NUL, a retry not all digits) is ignored.
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event_type = self._data, self._event_type
        self._data, self._event_type = [], b""
        if not data:  # an empty data buffer dispatches nothing
            return None
        return ServerSentEvent(
            type=event_type.decode("utf-8", errors="replace") or "message",
            data=b"\n".join(data).decode("utf-8", errors="replace"),
            id=self.last_event_id,
        )
