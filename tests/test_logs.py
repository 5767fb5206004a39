"""logs.py: lines written by a thread of their own; a full queue drops and counts."""

from __future__ import annotations

import fcntl
import io
import json
import os
import threading

import structlog

from uptime_probe.logs import LogWriter, configure_logging


def test_lines_are_written_in_order_and_close_flushes_them() -> None:
    out = io.StringIO()
    writer = LogWriter(out, max_lines=1000)
    for i in range(300):
        writer.write(f"line {i}")
    assert writer.close(timeout=10)
    assert out.getvalue().splitlines() == [f"line {i}" for i in range(300)]
    assert writer.dropped == 0


def test_a_stalled_reader_costs_lines_not_time() -> None:
    """A pipe nobody reads: writing returns at once, lines past the queue are dropped
    and counted, closing gives up within its bound; when the reader is back, what was
    queued is written after a line saying how many were lost."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    filled = _fill(write_end)  # what a reader that stopped reading leaves behind
    stream = os.fdopen(write_end, "w")
    try:
        writer = LogWriter(stream, max_lines=10, gap_line=lambda n: f"gap {n}")
        for i in range(1000):
            writer.write(f"{i:04d}" + "x" * 96)
        dropped = writer.dropped
        # Only what the writer took before it stuck (a line, then at most a queue's worth)
        # and a queue's worth got in.
        assert dropped >= 1000 - (1 + 10 + 10)
        assert not writer.close(timeout=0.2)  # stuck in write(): it does not wait for it

        received = bytearray()
        reader = threading.Thread(target=_read_until_eof, args=(read_end, received))
        reader.start()
        assert writer.close(timeout=10)  # read again: everything queued is written
        stream.close()
        reader.join(10)
        lines = received[filled:].decode().splitlines()
        assert f"gap {dropped}" in lines
        written = [line for line in lines if not line.startswith("gap ")]
        assert len(written) == 1000 - dropped
        assert written == sorted(written)  # in order, whatever was lost between
    finally:
        if not stream.closed:
            stream.close()
        os.close(read_end)


PIPE_BYTES = 4096


def _fill(fd: int) -> int:
    """Write to a pipe until it is full; how many bytes."""
    os.set_blocking(fd, False)
    written = 0
    try:
        while True:
            written += os.write(fd, b"f" * 512)
    except BlockingIOError:
        pass
    os.set_blocking(fd, True)
    return written


def _read_until_eof(fd: int, into: bytearray) -> None:
    while chunk := os.read(fd, 65536):
        into.extend(chunk)


def test_configure_logging_renders_json_lines_and_the_gap_line() -> None:
    out = io.StringIO()
    logs = configure_logging("info", out, force_json=True, max_queued_lines=1000)
    structlog.get_logger("test").info("check_failed", check="a")
    structlog.get_logger("test").debug("check_passed", check="a")  # below the level
    assert logs.writer.close(timeout=10)
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (record["event"], record["check"], record["level"]) == ("check_failed", "a", "info")
