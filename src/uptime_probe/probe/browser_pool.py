"""One Chromium for the whole daemon, and the cap on browser runs at once.

Chromium is started on first use (a config without browser steps never starts it),
through Playwright's driver with Debian's `chromium` binary (`executable_path`: never
Playwright's own browser download), and started again when it died: a run that finds it
gone gets a new one. Every run gets its own browser context (probe/kinds/browser.py), so
runs share the process, never cookies, cache or storage.

Chromium keeps its own sandbox (its renderers, which run the probed pages' scripts, locked
in namespaces and seccomp) wherever the kernel lets it have one: Debian's Chromium builds
it from unprivileged user namespaces. Playwright turns it off unless asked, so it is asked
for. Where Chromium says it cannot have it (no user namespaces: Docker's default seccomp
profile, a chroot, a kernel that forbids them; or running as root, which Chromium refuses
to sandbox), Chromium runs without it and `on_launch` says so and why.

A page costs far more memory than an HTTP probe (docs/configuration.md, "What a browser
run costs"), so browser runs have their own cap, `browser.max_concurrent`: the composition
root holds a slot around each run of a check with a browser step (`slot_for`), before the
run and its deadline start, so a run queued behind others is late, never failed for the wait.

Not a module-level singleton: app.py and oneshot.py build one, hand it to runs as a
resource (`run_check(..., resources={BROWSER: pool})`), and close it when they stop.

Traces: a run may record a Playwright trace (`start_trace`), kept only when its step fails
(the kind copies it out, `trace_file`). Playwright's driver writes what a trace records to
a folder of the browser's and deletes none of it until Chromium exits: every run would
leave its files there (about 20 KiB, two files, for the example's page; more for a page
whose responses change) in /tmp, a tmpfs in the container, so memory. The pool gives the
driver a folder of its own and empties it as runs end: a run's own files once its context
is closed, the responses runs share (`resources/`) once no traced run is open.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Playwright

    from uptime_probe.probe.plan import CheckPlan

BROWSER = "browser"  # its key among a run's resources
LAUNCH_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0
# V8's heap limit per page, MiB: a page allocating without end crashes its own renderer
# (the step fails as page_error) long before it can take the machine's memory.
PAGE_HEAP_MIB = 512
# Chromium flags beyond Playwright's headless defaults (which already turn off background
# networking, component updates, first-run and sync).
CHROMIUM_ARGS = (
    f"--js-flags=--max-old-space-size={PAGE_HEAP_MIB}",
    # Containers give /dev/shm 64 MB: renderers would crash on a large page.
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--mute-audio",
)


# What Chromium says when it cannot build its sandbox (no usable namespace sandbox; running
# as root), and what Playwright puts in front of the launch's log when it sees either.
SANDBOX_REFUSALS = ("No usable sandbox", "crbug.com/638180", "Chromium sandboxing failed")
AS_ROOT = "running as root, which Chromium does not sandbox"


class BrowserUnavailable(Exception):
    """Chromium could not be started (not a property of any target)."""


# Told of each start of Chromium: whether it has its own sandbox, and if not, why not.
LaunchListener = Callable[[bool, str], None]


class BrowserPool:
    def __init__(
        self,
        executable: str | None,
        *,
        max_concurrent: int = 2,
        extra_args: Sequence[str] = (),
        on_launch: LaunchListener | None = None,
    ) -> None:
        self.executable = executable
        # Chromium flags beyond CHROMIUM_ARGS (tests map host names with
        # `--host-resolver-rules`, so a DNS failure needs no DNS server).
        self.extra_args = tuple(extra_args)
        self._max_concurrent = max_concurrent
        self._slots = asyncio.Semaphore(max_concurrent)
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._launching: asyncio.Task[Browser] | None = None
        self.launches = 0  # how many times Chromium was started
        # Whether the running Chromium has its own sandbox (None: not started yet), and why
        # not. A refusal is remembered: a restart does not ask again.
        self.sandboxed: bool | None = None
        self.unsandboxed_because = AS_ROOT if os.geteuid() == 0 else ""
        self._on_launch = on_launch
        self.running = 0  # browser runs holding a slot
        self.waiting = 0  # browser runs queued for one
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False
        # Playwright's folder for the traces runs record, and the trace of each open context.
        self._traces_dir: Path | None = None
        self._traced: dict[BrowserContext, str] = {}
        self._trace_names = itertools.count(1)
        self._trace_files = asyncio.Lock()
        # Its own thread for removing trace files, made on first use: probes never use the
        # event loop's default executor (docs/reliability.md).
        self._cleaner: ThreadPoolExecutor | None = None

    # -- the cap ---------------------------------------------------------------------

    def configure(self, *, executable: str | None, max_concurrent: int) -> None:
        """A reload's settings: the cap at once (runs holding the old one finish under
        it), the executable at the next start of Chromium."""
        self.executable = executable
        if max_concurrent != self._max_concurrent:
            self._slots = asyncio.Semaphore(max_concurrent)
            self._max_concurrent = max_concurrent

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        slots = self._slots
        self.waiting += 1
        try:
            await slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            slots.release()

    def slot_for(self, plan: CheckPlan) -> contextlib.AbstractAsyncContextManager[None]:
        """A slot for a run of `plan` when it has a browser step; nothing to wait for else."""
        if any(step.config.runner == BROWSER for step in plan.steps):
            return self.slot()
        return contextlib.nullcontext()

    # -- the process -----------------------------------------------------------------

    async def browser(self) -> Browser:
        """The running Chromium, started now if it is not (or died). BrowserUnavailable
        when it cannot be started."""
        if self._closed:
            raise BrowserUnavailable("the browser pool is closed")
        if self._browser is not None and self._browser.is_connected():
            return self._browser
        if self._launching is None or self._launching.done():
            # A task of its own: a run cancelled while Chromium starts (its deadline) does
            # not cancel the start, and the next run gets the browser it made.
            self._launching = asyncio.create_task(self._launch(), name="chromium-launch")
            # Its failure is raised to the runs awaiting it; retrieved here too, so a start
            # that failed with no run left waiting is not reported as never retrieved.
            self._launching.add_done_callback(_retrieve)
        return await asyncio.shield(self._launching)

    async def _launch(self) -> Browser:
        if self._browser is not None:  # dead: let Playwright forget it
            await self._close_browser()
        from playwright.async_api import Error as PlaywrightError  # only with browser steps

        for fresh_driver in (False, True):
            if fresh_driver or self._playwright is None:
                await self._stop_driver()
                self._playwright = await self._start_driver()
            if self._traces_dir is None:
                self._traces_dir = Path(tempfile.mkdtemp(prefix="uptime-probe-traces-"))
            try:
                browser = await self._launch_chromium(self._playwright)
            except PlaywrightError as exc:
                # The driver itself may be what died: once more with a new one.
                if fresh_driver:
                    raise BrowserUnavailable(_first_line(exc)) from None
                continue
            self._browser = browser
            self.launches += 1
            if self._on_launch is not None:
                self._on_launch(bool(self.sandboxed), self.unsandboxed_because)
            return browser
        raise AssertionError("unreachable")  # pragma: no cover

    async def _launch_chromium(self, playwright: Playwright) -> Browser:
        """Chromium with its own sandbox if it can have one, else without (module doc)."""
        from playwright.async_api import Error as PlaywrightError

        if not self.unsandboxed_because:
            try:
                browser = await self._launch_with(playwright, sandbox=True)
            except PlaywrightError as exc:
                marker = next((text for text in SANDBOX_REFUSALS if text in str(exc)), None)
                if marker is None:
                    raise
                self.unsandboxed_because = _sandbox_refusal(exc, marker)
            else:
                self.sandboxed = True
                return browser
        browser = await self._launch_with(playwright, sandbox=False)
        self.sandboxed = False
        return browser

    async def _launch_with(self, playwright: Playwright, *, sandbox: bool) -> Browser:
        return await playwright.chromium.launch(
            executable_path=self.executable,
            headless=True,
            chromium_sandbox=sandbox,
            args=[*CHROMIUM_ARGS, *self.extra_args],
            traces_dir=self._traces_dir,
            timeout=LAUNCH_TIMEOUT * 1000,
            handle_sigint=False,
            handle_sigterm=False,
            handle_sighup=False,
        )

    async def _start_driver(self) -> Playwright:
        from playwright.async_api import async_playwright

        try:
            return await async_playwright().start()
        except Exception as exc:  # the driver is a subprocess: anything can fail to start
            raise BrowserUnavailable(f"cannot start Playwright: {_first_line(exc)}") from None

    async def _close_browser(self) -> None:
        browser, self._browser = self._browser, None
        if browser is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT)

    async def _stop_driver(self) -> None:
        driver, self._playwright = self._playwright, None
        if driver is not None:
            with contextlib.suppress(Exception, TimeoutError):
                await asyncio.wait_for(driver.stop(), CLOSE_TIMEOUT)

    # -- traces ----------------------------------------------------------------------

    async def start_trace(self, context: BrowserContext) -> bool:
        """Record a trace of the run in `context` (DOM snapshots, network, Playwright's
        calls; no screencast). False when Playwright would not start one."""
        from playwright.async_api import Error as PlaywrightError

        name = f"run-{next(self._trace_names)}"
        async with self._trace_files:  # not while the shared responses are being removed
            self._traced[context] = name
        try:
            await context.tracing.start(name=name, screenshots=False, snapshots=True)
        except PlaywrightError:
            return False  # the run goes on without one; its files are still removed
        return True

    @property
    def traces_folder(self) -> Path | None:
        """The folder Playwright writes traces to, once Chromium was started."""
        return self._traces_dir

    def trace_file(self, context: BrowserContext) -> Path | None:
        """Where a traced context's trace may be written (`tracing.stop(path=...)`) to be
        copied from: removed with the context's other files once it is closed."""
        name = self._traced.get(context)
        if name is None or self._traces_dir is None:
            return None
        return self._traces_dir / f"{name}.zip"

    async def _forget_trace(self, context: BrowserContext) -> None:
        if context not in self._traced:
            return
        async with self._trace_files:
            name = self._traced.pop(context)
            shared = not self._traced  # no traced run open: none reads the shared responses
            if self._traces_dir is not None:
                with contextlib.suppress(OSError):
                    await self._clean(_remove_trace_files, self._traces_dir, name, shared)

    async def _clean(self, remove: Callable[..., None], *args: object) -> None:
        if self._cleaner is None:
            self._cleaner = ThreadPoolExecutor(1, thread_name_prefix="browser-traces")
        await asyncio.get_running_loop().run_in_executor(self._cleaner, remove, *args)

    # -- contexts --------------------------------------------------------------------

    def close_later(self, context: BrowserContext) -> None:
        """Close a run's browser context in a task of the pool's own.

        Not in the run: a cancelled run (its deadline, a stop) cannot be trusted to finish
        an await, and a context left open keeps its page running, a page spinning in a
        script loop with it. A context that does not close in CLOSE_TIMEOUT means Chromium
        is wedged: it is stopped, and the next run starts a new one.
        """
        task = asyncio.create_task(self._close_context(context), name="browser-context-close")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _close_context(self, context: BrowserContext) -> None:
        from playwright.async_api import Error as PlaywrightError

        try:
            if context in self._traced:
                # Stopped first: the driver would record the close itself, writing the
                # trace's file again after it is removed.
                with contextlib.suppress(PlaywrightError):
                    await asyncio.wait_for(context.tracing.stop(), CLOSE_TIMEOUT)
            await asyncio.wait_for(context.close(), CLOSE_TIMEOUT)
        except TimeoutError:
            if self._browser is not None and context.browser is self._browser:
                await self._close_browser()
        except PlaywrightError:
            pass  # its browser is gone already, and the context with it
        finally:
            await self._forget_trace(context)

    async def settled(self) -> None:
        """Wait until the contexts being closed are closed and their trace files gone."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def close(self) -> None:
        """Stop Chromium and Playwright's driver; the pool starts nothing after."""
        self._closed = True
        if self._launching is not None and not self._launching.done():
            self._launching.cancel()
            await asyncio.gather(self._launching, return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self._close_browser()
        await self._stop_driver()
        if self._traces_dir is not None:
            await self._clean(shutil.rmtree, self._traces_dir, True)  # ignore_errors
            self._traces_dir = None
        if self._cleaner is not None:
            self._cleaner.shutdown(wait=True)
            self._cleaner = None


def _remove_trace_files(folder: Path, name: str, shared: bool) -> None:
    """A closed context's trace files (`<name>.trace`, `<name>.network`, a copy of it made
    on stop, the zip written for a failure), and when `shared`, the responses every trace
    of the browser shares (by content hash, `resources/<sha1>`)."""
    for pattern in (f"{name}.*", f"{name}-*"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
    if shared:
        resources = folder / "resources"
        if resources.is_dir():
            for path in resources.iterdir():
                path.unlink(missing_ok=True)


def _retrieve(task: asyncio.Task[Browser]) -> None:
    if not task.cancelled():
        task.exception()


def _sandbox_refusal(exc: BaseException, marker: str) -> str:
    """Chromium's own words on its sandbox, from the launch's log: the line that has
    `marker`, its first sentence, without the log prefix ("[pid=1][err] [1:1:...:FATAL:
    zygote_host_impl_linux.cc:127] No usable sandbox! If you are running on ...")."""
    for line in str(exc).splitlines():
        if "[err]" in line and marker in line:
            said = line.rsplit("] ", 1)[-1]
            return re.split(r"(?<=[.!]) ", said, maxsplit=1)[0][:300]
    return marker


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
