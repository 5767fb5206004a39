"""structlog, configured once: JSON lines off a terminal, colour on one, secrets removed,
written by a thread of their own so that a stalled reader never stalls the daemon."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from uptime_probe.config.redaction import Redactor

EventDict = MutableMapping[str, Any]

DEFAULT_QUEUE_LINES = 10_000  # about 2 MB of JSON lines
WRITE_BATCH_LINES = 1000
GATHER_SECONDS = 0.02
CLOSE_SECONDS = 2.0


class RedactSecrets:
    """Runs before the renderer, so no secret reaches a log line whatever field carries it."""

    def __init__(self) -> None:
        self.redactor = Redactor(())

    def __call__(self, _logger: Any, _name: str, event: EventDict) -> EventDict:
        if not self.redactor.active:
            return event
        return {key: self._clean(value) for key, value in event.items()}

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redactor(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(v) for v in value]
        return value


class LogWriter:
    """Writes log lines from a thread of its own, taking them from a bounded queue.

    Logging used to write on the calling thread, the event loop's: when whatever reads
    the daemon's stderr stopped reading (a stuck log shipper, a paused terminal, a full
    pipe), the daemon stopped in write(), probes, /metrics and /healthz with it. Now only
    this thread waits. A line that finds the queue full is dropped and counted (`dropped`,
    exported as uptime_probe_log_records_dropped_total): losing log lines while nobody
    reads them beats stopping the monitoring. When writing resumes, a
    `log_records_dropped` line says how many were lost since the last one written.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        max_lines: int = DEFAULT_QUEUE_LINES,
        gap_line: Callable[[int], str] = lambda n: f"log_records_dropped dropped={n}",
    ) -> None:
        self._stream = stream
        # Written with os.write on the descriptor, not through the stream's buffer: a
        # thread stuck in a buffered write holds the buffer's lock, and the interpreter,
        # flushing stderr at exit, would wait for it for ever (or abort).
        try:
            self._fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # io.StringIO and the like
            self._fd = None
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max(1, max_lines))
        self._gap_line = gap_line
        self._lock = threading.Lock()
        self.dropped = 0
        self._unreported = 0  # dropped since the last line written
        # A daemon thread: a write stuck for good must not keep the process from exiting.
        self._thread = threading.Thread(target=self._run, name="uptime-probe-log", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        """Queue one rendered line (without its newline); never blocks."""
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                self._unreported += 1

    def _run(self) -> None:
        while True:
            lines = [self._queue.get()]
            # Let a batch gather: woken for every line, this thread took the interpreter
            # lock from the event loop hundreds of times a second in a burst (500 runs
            # ending at once), and the loop fell behind.
            time.sleep(GATHER_SECONDS)
            while len(lines) < WRITE_BATCH_LINES:
                try:
                    lines.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            closing = None in lines
            text = [line for line in lines if line is not None]
            with self._lock:
                gap, self._unreported = self._unreported, 0
            if gap:
                text.insert(0, self._gap_line(gap))
            try:
                if text:
                    self._write("\n".join(text) + "\n")
            except (OSError, ValueError):  # the reader went away, or the stream was closed
                with self._lock:
                    self.dropped += len(text) - (1 if gap else 0)
            if closing:
                return

    def _write(self, text: str) -> None:
        if self._fd is None:
            self._stream.write(text)
            self._stream.flush()
            return
        data = memoryview(text.encode("utf-8", "backslashreplace"))
        while data:
            data = data[os.write(self._fd, data) :]

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Write what is queued, waiting at most `timeout` (a reader that stopped reading
        must not hold the daemon's exit); True if everything was written."""
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return False
        self._thread.join(max(0.0, deadline - time.monotonic()))
        return not self._thread.is_alive()


class QueuedLogger:
    """What structlog writes to: every level's line goes to the LogWriter."""

    def __init__(self, writer: LogWriter) -> None:
        self._writer = writer

    def msg(self, message: str) -> None:
        self._writer.write(message)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


@dataclass(frozen=True, slots=True)
class LogOutput:
    """What `configure_logging` set up: the redactor to load secrets into, and the writer."""

    redact: RedactSecrets
    writer: LogWriter


def configure_logging(
    level: str = "info",
    stream: TextIO | None = None,
    *,
    force_json: bool | None = None,
    max_queued_lines: int = DEFAULT_QUEUE_LINES,
) -> LogOutput:
    """Set up structlog for the process: lines rendered by the caller, written by a
    LogWriter thread (at most `max_queued_lines` waiting)."""
    out = stream or sys.stderr
    as_json = force_json if force_json is not None else not out.isatty()
    redact = RedactSecrets()
    renderer: Callable[..., Any] = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=True)
    )
    stamp = structlog.processors.TimeStamper(fmt="iso", utc=True)

    def gap_line(dropped: int) -> str:
        event = {"dropped": dropped, "event": "log_records_dropped", "level": "warning"}
        return str(renderer(None, "warning", stamp(None, "warning", event)))

    writer = LogWriter(out, max_lines=max_queued_lines, gap_line=gap_line)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            stamp,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=lambda *_args: QueuedLogger(writer),
        cache_logger_on_first_use=False,
    )
    return LogOutput(redact, writer)
