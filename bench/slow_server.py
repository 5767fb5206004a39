"""A `/slow` target: every request answered after a fixed delay, then the connection closed.

nginx has no delay of its own, so this is a raw asyncio protocol on uvloop: it reads up
to the end of the request head, answers after `--delay` seconds with a small JSON body
and closes. No HTTP framework sits in the path, so its CPU per request stays tiny (the
harness measures it). The delay is never short: uvloop's timers round to whole
milliseconds from a clock read once per iteration and can fire up to 1.5 ms early, so an
early timer is re-armed for what is left. Whatever the loop adds late is in the floor a
plain client measures.

    python -m bench.slow_server --port 8081 --delay 0.05
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from typing import Any

BODY = b'{"status":"ok","slow":true}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
MAX_HEAD = 16 * 1024


class SlowProtocol(asyncio.Protocol):
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.buffer = b""
        self.transport: Any = None
        self.answered = False
        self.due = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        if self.answered:
            return
        self.buffer += data
        if b"\r\n\r\n" in self.buffer or len(self.buffer) > MAX_HEAD:
            self.answered = True
            self.due = time.perf_counter() + self.delay
            asyncio.get_running_loop().call_later(self.delay, self.respond)

    def respond(self) -> None:
        early = self.due - time.perf_counter()
        if early > 0:
            asyncio.get_running_loop().call_later(early, self.respond)
            return
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(RESPONSE)
            self.transport.close()


async def serve(port: int, delay: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SlowProtocol(delay), "127.0.0.1", port, backlog=4096, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"slow_server_started port={port} delay={delay}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.05)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port, args.delay))
    except ImportError:
        asyncio.run(serve(args.port, args.delay))


if __name__ == "__main__":
    main()
