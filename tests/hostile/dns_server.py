"""A real DNS server on 127.0.0.1, UDP and TCP on one port, whose reply a test picks per name.

``StaticResolver`` (dns.py) replaces the resolver inside the client; this one is what a
resolver talks to over the network, so the code under test (c-ares, a daemon subprocess)
runs exactly as in production, pointed at ``server.nameserver``::

    with LoopbackDns({
        "api.test": answer("127.0.0.1"),
        "never.test": NEVER,                          # reads the question, never answers
        "slow.test": answer("127.0.0.1", delay=1.5),  # answers after 1.5 s
        "gone.test": NXDOMAIN,
        "text.test": Reply(records={"TXT": ('"hello"',)}),
        "big.test": Reply(records={"A": ("127.0.0.1",)}, truncated=True),  # TC over UDP
    }) as server:
        server.nameserver        # "127.0.0.1:PORT", for `dns: {servers: [...]}` or aiodns
        server.queries           # every question asked so far, in order
        server.set("api.test", SERVFAIL)   # replies can change while it runs

A name not in the mapping gets ``default`` (NXDOMAIN unless given). Names match
case-insensitively, without the trailing dot. A question of a type the name has no
records of gets an empty NOERROR answer (NODATA), as a real zone gives an A-only name's
AAAA question. Packets are parsed and built by dnspython, so EDNS and IDs are right.

The server runs its own asyncio loop in a thread: it answers whatever the test's loop is
doing, whichever loop (uvloop or asyncio's) the code under test runs on, and a sync test
that starts a daemon subprocess can use it too. Delays are the behaviour asked for, not
synchronisation. Silent and slow replies end when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import cast

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

__all__ = [
    "NEVER",
    "NXDOMAIN",
    "SERVFAIL",
    "LoopbackDns",
    "Query",
    "Reply",
    "answer",
]

# The longest a slow reply may be asked to wait: a typo of ms for s must not hang a test.
MAX_DELAY_SECONDS = 60.0
START_TIMEOUT = 10.0
MAX_TCP_MESSAGE = 65535


@dataclass(frozen=True, slots=True)
class Reply:
    """What the server does with a question about one name.

    ``records`` maps a record type to rdata in zone-file text (``{"A": ("127.0.0.1",)}``,
    ``{"MX": ("10 mail.test.",)}``); ``rcode`` is a DNS rcode name; ``delay`` waits that
    many seconds first; ``silent`` reads the question and never answers; ``truncated``
    answers a UDP question with the TC flag and no records, so the client must ask again
    over TCP (which gets the records).
    """

    records: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    rcode: str = "NOERROR"
    delay: float = 0.0
    silent: bool = False
    ttl: int = 60
    truncated: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.delay <= MAX_DELAY_SECONDS:
            raise ValueError(f"delay {self.delay} outside 0..{MAX_DELAY_SECONDS} s")
        dns.rcode.from_text(self.rcode)  # a typo fails here, not as a confusing answer
        for rdtype in self.records:
            dns.rdatatype.from_text(rdtype)


def answer(*addresses: str, delay: float = 0.0, ttl: int = 60) -> Reply:
    """A and AAAA records for these addresses (each goes to its own family's type)."""
    records: dict[str, list[str]] = {}
    for address in addresses:
        rdtype = "AAAA" if ":" in address else "A"
        records.setdefault(rdtype, []).append(address)
    return Reply(
        records=MappingProxyType({k: tuple(v) for k, v in records.items()}), delay=delay, ttl=ttl
    )


NEVER = Reply(silent=True)
NXDOMAIN = Reply(rcode="NXDOMAIN")
SERVFAIL = Reply(rcode="SERVFAIL")


@dataclass(frozen=True, slots=True)
class Query:
    """One question received: the name as asked (without the trailing dot), its type
    (``"A"``, ``"AAAA"``...) and ``"udp"`` or ``"tcp"``."""

    name: str
    rdtype: str
    transport: str


class LoopbackDns:
    """The server; a context manager (see the module docstring)."""

    def __init__(
        self,
        replies: Mapping[str, Reply] | None = None,
        *,
        default: Reply = NXDOMAIN,
        port: int = 0,
    ) -> None:
        self._replies = {_normalise(name): reply for name, reply in (replies or {}).items()}
        self._default = default
        self._queries: list[Query] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._port = port  # 0: any free port (53 only in a network namespace of one's own)
        self.port = 0

    # --- what a test uses ---------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``, the form c-ares (and the daemon's ``dns.servers``) takes."""
        assert self.port, "start the server first"
        return f"127.0.0.1:{self.port}"

    @property
    def queries(self) -> list[Query]:
        with self._lock:
            return list(self._queries)

    def names_asked(self) -> set[str]:
        return {query.name.casefold() for query in self.queries}

    def set(self, name: str, reply: Reply) -> None:
        """Change the reply for `name` from now on (a dict store: safe across threads)."""
        self._replies[_normalise(name)] = reply

    # --- lifetime -----------------------------------------------------------------------

    def start(self) -> LoopbackDns:
        self._thread = threading.Thread(target=self._serve, name="loopback-dns", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError(f"DNS server not listening after {START_TIMEOUT}s")
        if self._failed is not None:
            raise RuntimeError("DNS server failed to start") from self._failed
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(START_TIMEOUT)
            assert not self._thread.is_alive(), "DNS server thread did not stop"

    def __enter__(self) -> LoopbackDns:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- the server's own thread --------------------------------------------------------

    def _serve(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._failed = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        pending: set[asyncio.Task[None]] = set()
        udp, tcp = await _bind_same_port(
            self._loop, lambda: _Udp(self, pending), self._tcp, self._port
        )
        self.port = udp.get_extra_info("sockname")[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            udp.close()
            tcp.close()
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            await tcp.wait_closed()

    def _reply_for(self, query: dns.message.Message, transport: str) -> Reply | None:
        if not query.question:
            return None
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        with self._lock:
            self._queries.append(Query(name, dns.rdatatype.to_text(question.rdtype), transport))
        return self._replies.get(_normalise(name), self._default)

    async def _answer(self, wire: bytes, transport: str) -> bytes | None:
        """The reply's wire bytes, after its delay; None for no reply at all."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # not DNS: a real server drops it too
        reply = self._reply_for(query, transport)
        if reply is None or reply.silent:
            return None
        if reply.delay:
            await asyncio.sleep(reply.delay)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.set_rcode(dns.rcode.from_text(reply.rcode))
        question = query.question[0]
        if reply.truncated and transport == "udp":
            response.flags |= dns.flags.TC
            truncated: bytes = response.to_wire()
            return truncated
        if reply.rcode == "NOERROR":
            for rdtype, rdatas in reply.records.items():
                if dns.rdatatype.from_text(rdtype) == question.rdtype and rdatas:
                    response.answer.append(
                        dns.rrset.from_text_list(
                            question.name, reply.ttl, dns.rdataclass.IN, rdtype, list(rdatas)
                        )
                    )
        max_size = 512 if transport == "udp" and query.edns < 0 else MAX_TCP_MESSAGE
        if transport == "udp" and query.edns >= 0:
            max_size = max(512, query.payload)
        wire: bytes = response.to_wire(max_size=max_size)
        return wire

    async def _tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # One connection may carry several length-prefixed questions (RFC 7766); a silent
        # reply just leaves its question unanswered, as a stuck server would.
        try:
            while True:
                head = await reader.readexactly(2)
                wire = await reader.readexactly(int.from_bytes(head, "big"))
                data = await self._answer(wire, "tcp")
                if data is not None:
                    writer.write(len(data).to_bytes(2, "big") + data)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: LoopbackDns, pending: set[asyncio.Task[None]]) -> None:
        self._server = server
        self._pending = pending
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        wire = await self._server._answer(data, "udp")
        if wire is not None and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(wire, addr)


async def _bind_same_port(
    loop: asyncio.AbstractEventLoop,
    udp_protocol: Callable[[], asyncio.DatagramProtocol],
    tcp_handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    wanted: int = 0,
) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
    """UDP on a free port (or `wanted`), then TCP on the same number; another free port if
    TCP's is taken."""
    for _ in range(1 if wanted else 20):
        udp, _protocol = await loop.create_datagram_endpoint(
            udp_protocol, local_addr=("127.0.0.1", wanted)
        )
        port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(tcp_handler, "127.0.0.1", port)
        except OSError:
            udp.close()
            continue
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on 127.0.0.1 (asked for {wanted or 'any'})")


def _normalise(name: str) -> str:
    return name.rstrip(".").casefold()
