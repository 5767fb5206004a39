"""Real pages on 127.0.0.1 for a real Chromium: one route per way a page can go right or wrong.

`BrowserTarget` records what the browser sent (headers and cookies per path, requests in
flight at once), so tests can assert what a user's browser really did, not what we meant
it to do.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

SIDEBAR = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chat</title><link rel="icon" href="data:,"></head>
<body>
<nav id="sidebar"><h2>Conversations</h2><ul id="history"></ul></nav>
<main><p id="answer"></p><input id="prompt"><button id="send">Send</button></main>
<script>
fetch("/api/conversations" + location.search)
  .then((r) => r.json())
  .then((body) => {
    const list = document.getElementById("history");
    for (const item of body.items) {
      const li = document.createElement("li");
      li.textContent = item.title;
      list.appendChild(li);
    }
  });
document.getElementById("send").addEventListener("click", () => {
  const text = document.getElementById("prompt").value;
  setTimeout(() => {
    const answer = document.getElementById("answer");
    answer.textContent = "you said " + text;
    answer.className = "done";
  }, 100);
});
</script>
</body></html>
"""

PAGES = {
    "/plain": "<!doctype html><title>Plain</title><link rel='icon' href='data:,'>"
    "<h1 id='title'>Hello</h1><p id='hidden' style='display:none'>secret</p>"
    "<ul id='items'><li>one</li><li>two</li><li>three</li></ul>",
    "/throws": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<script>null.history.length</script>",
    "/console-error": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<script>console.error('cannot load history: token tok-SECRET-123 rejected')</script>",
    # The secret straddles where a message cuts the page's text (200 characters).
    "/console-error-long": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<script>console.error('x'.repeat(186) + ' token tok-SECRET-123 rejected')</script>",
    "/hang-subresource": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<img src='/hang'>",
    "/poll-forever": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<script>setInterval(() => fetch('/tiny'), 100)</script>",
    "/memory": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1><script>"
    "const kept = []; setInterval(() => { for (let i = 0; i < 50; i++) "
    "kept.push(new Array(100000).fill(Math.random())) }, 1)</script>",
    "/script-loop": "<!doctype html><link rel='icon' href='data:,'><h1 id='t'>x</h1>"
    "<script>setTimeout(() => { while (true) {} }, 50)</script>",
    "/cookie": "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
    "<script>document.cookie = 'seen=1; max-age=3600'; fetch('/tiny')</script>",
    "/with-assets": "<!doctype html><link rel='icon' href='data:,'>"
    "<script src='/asset.js'></script><img src='/missing.png'><h1>x</h1>",
}


@dataclass
class BrowserTarget:
    url: str = ""
    headers: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    cookies: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    conversations: list[str] = field(default_factory=lambda: ["First chat", "Second chat"])
    in_flight: int = 0
    most_in_flight: int = 0
    meeting: asyncio.Condition = field(default_factory=asyncio.Condition)
    hanging: int = 0

    def reset(self) -> None:
        self.headers.clear()
        self.cookies.clear()
        self.most_in_flight = 0


def build_app(target: BrowserTarget) -> web.Application:
    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        target.headers[request.path].append(dict(request.headers))
        target.cookies[request.path].append(request.headers.get("Cookie", ""))
        return await handler(request)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGES[request.path], content_type="text/html")

    async def sidebar(request: web.Request) -> web.Response:
        delay = float(request.query.get("delay", "0"))
        if delay:
            await asyncio.sleep(delay)  # the behaviour under test: a slow page
        return web.Response(text=SIDEBAR, content_type="text/html")

    async def conversations(request: web.Request) -> web.Response:
        items = [] if request.query.get("empty") else target.conversations
        return web.json_response({"items": [{"title": title} for title in items]})

    async def where(request: web.Request) -> web.Response:
        # The page to open, named by the target: its origin is the target's choice.
        return web.json_response({"page": f"http://{request.host}/cross-origin"})

    async def hostile_values(_request: web.Request) -> web.Response:
        # A value a later step would send on: a line break would inject a header.
        return web.json_response({"token": "abc\r\nX-Injected: 1"})

    async def status(request: web.Request) -> web.Response:
        code = int(request.match_info["code"])
        if code in (204, 304):
            return web.Response(status=code)
        text = f"<!doctype html><title>{code}</title><h1>Error {code}</h1>"
        return web.Response(status=code, text=text, content_type="text/html")

    async def loop(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def broken_gzip(_request: web.Request) -> web.Response:
        body = b"this was never gzip " * 20
        return web.Response(
            body=body, headers={"Content-Encoding": "gzip", "Content-Type": "text/html"}
        )

    async def hang(_request: web.Request) -> web.Response:
        target.hanging += 1
        try:
            await asyncio.Event().wait()  # never answers: the behaviour under test
        finally:
            target.hanging -= 1
        raise AssertionError("unreachable")

    async def tiny(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def asset(_request: web.Request) -> web.Response:
        return web.Response(
            text="window.assetLoaded = true;" + " " * 10_000, content_type="application/javascript"
        )

    async def many(request: web.Request) -> web.Response:
        count = int(request.query.get("n", "1000"))
        where = request.query.get("to", "/tiny")
        script = f"for (let i = 0; i < {count}; i++) fetch('{where}?i=' + i).catch(() => {{}});"
        text = (
            f"<!doctype html><link rel='icon' href='data:,'><h1>many</h1><script>{script}</script>"
        )
        return web.Response(text=text, content_type="text/html")

    async def cross_origin(request: web.Request) -> web.Response:
        """A page that loads a script from another origin (the same server by the name
        `localhost`: a different origin from 127.0.0.1) and fetches from its own."""
        port = request.url.port
        text = (
            "<!doctype html><link rel='icon' href='data:,'><h1>x</h1>"
            f"<script src='http://localhost:{port}/asset.js'></script>"
            "<script>fetch('/tiny')</script>"
        )
        return web.Response(text=text, content_type="text/html")

    async def held(_request: web.Request) -> web.Response:
        """Counts how many browser runs are on the page at once: each waits (up to 2 s) for
        a second to arrive, so two runs allowed at once always meet here."""
        target.in_flight += 1
        target.most_in_flight = max(target.most_in_flight, target.in_flight)
        async with target.meeting:
            target.meeting.notify_all()
            try:
                async with asyncio.timeout(2):
                    await target.meeting.wait_for(lambda: target.in_flight >= 2)
            except TimeoutError:
                pass  # alone (the last of an odd number): answer anyway
        target.in_flight -= 1
        return web.Response(text="<!doctype html><h1>held</h1>", content_type="text/html")

    app = web.Application(middlewares=[record])
    for path in PAGES:
        app.router.add_get(path, page)
    app.router.add_get("/sidebar", sidebar)
    app.router.add_get("/api/conversations", conversations)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/api/hostile", hostile_values)
    app.router.add_get("/api/where", where)
    app.router.add_get("/loop", loop)
    app.router.add_get("/broken-gzip", broken_gzip)
    app.router.add_get("/hang", hang)
    app.router.add_get("/tiny", tiny)
    app.router.add_get("/asset.js", asset)
    app.router.add_get("/many", many)
    app.router.add_get("/held", held)
    app.router.add_get("/cross-origin", cross_origin)
    return app


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def start_resetting_server() -> tuple[asyncio.Server, int]:
    """Accepts, then closes at once: the browser gets no answer (ERR_EMPTY_RESPONSE)."""

    async def drop(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(drop, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def chromium_processes(root: int | None = None) -> dict[int, tuple[int, str]]:
    """Chromium's processes started under `root` (default: this test process): pid ->
    (parent, command line).

    Chromium rewrites its helpers' command lines into one string, so they are joined here;
    a page's renderer has `--type=renderer` in it."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # exited meanwhile
        parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
        commands[int(entry)] = command.replace(b"\0", b" ").decode(errors="replace").strip()
    mine = os.getpid() if root is None else root

    def descends(pid: int) -> bool:
        for _ in range(10):  # driver -> chromium -> zygote -> renderer at most
            pid = parents.get(pid, 0)
            if pid == mine:
                return True
            if pid <= 1:
                return False
        return False

    return {
        pid: (parents[pid], command)
        for pid, command in commands.items()
        if "chrom" in os.path.basename(command.split(" ", 1)[0]) and descends(pid)
    }


def browser_process(root: int | None = None) -> int:
    """Chromium's own process (the one Playwright's driver started), the only one."""
    processes = chromium_processes(root)
    found = [pid for pid, (parent, _) in processes.items() if parent not in processes]
    assert len(found) == 1, processes
    return found[0]


def renderer_processes(root: int | None = None) -> list[int]:
    return [
        pid
        for pid, (_, command) in chromium_processes(root).items()
        if "--type=renderer" in command
    ]


def resident_bytes(pids: list[int]) -> int:
    """The processes' resident memory (VmRSS), summed; 0 for one that exited meanwhile."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.MULTILINE)
        total += int(found.group(1)) * 1024 if found else 0
    return total
