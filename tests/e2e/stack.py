"""Real programs for the end-to-end tests: start them on loopback, wait for them, stop them.

Nothing here knows about uptime-probe's metrics or alerts; the tests say what to assert. The
rules every helper follows:

- each program writes stdout and stderr to one log file under the test's ``tmp_path`` (a file,
  never a pipe, so a chatty program can never block on a full pipe), and every failure message
  quotes the tail of the relevant logs;
- every wait is a bounded poll (``wait_for``) that fails at once, with the log tail, if a
  program it depends on has exited;
- every process started is stopped at teardown by its own ``Popen`` handle: SIGTERM, a bounded
  wait, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

LOOPBACK = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.25
HTTP_TIMEOUT_SECONDS = 5.0


def require_binary(*names: str, package: str) -> str:
    """The path of the first of ``names`` on PATH; FAIL (never skip) when none is installed.

    An end-to-end test that silently skips is a test that never runs in CI.
    """
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    pytest.fail(
        f"none of {', '.join(names)} is on PATH: install the Debian package {package!r} "
        "(scripts/test.sh does it in CI)",
        pytrace=False,
    )


def free_port() -> int:
    """A port that was free a moment ago (bind port 0, read it, close).

    Another process may take it before ours binds it; ``ProcessStack.start_listening`` retries
    with a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@dataclass
class ManagedProcess:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 30) -> str:
        text = self.log().splitlines()[-lines:]
        status = "running" if not self.exited() else f"exited with {self.popen.returncode}"
        body = "\n".join(f"    {line}" for line in text) or "    (no output)"
        return f"--- {self.name} ({status}), last {len(text)} lines of {self.log_path}:\n{body}"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=STOP_GRACE_SECONDS)


class ProgramExited(AssertionError):
    pass


@dataclass
class ProcessStack:
    """The programs of one test, stopped in reverse order of start at teardown."""

    directory: Path
    processes: list[ManagedProcess] = field(default_factory=list)

    def start(self, name: str, args: Sequence[str], *, cwd: Path | None = None) -> ManagedProcess:
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.directory,
            )
        process = ManagedProcess(name, list(args), log_path, popen)
        self.processes.append(process)
        return process

    def start_listening(
        self,
        name: str,
        build_args: Callable[[int], Sequence[str]],
        ready_url: Callable[[int], str],
        *,
        timeout: float,
        attempts: int = 3,
    ) -> tuple[ManagedProcess, int]:
        """Start a program on a free port and wait until ``ready_url`` answers 200.

        A port taken between ``free_port`` and the program's bind makes the program exit with
        "address already in use": that attempt is dropped and another port tried.
        """
        for attempt in range(1, attempts + 1):
            port = free_port()
            process = self.start(name if attempt == 1 else f"{name}.{attempt}", build_args(port))

            def ready(process: ManagedProcess = process, port: int = port) -> str | None:
                if process.exited():
                    return "exited"
                return "ready" if http_status(ready_url(port)) == 200 else None

            # Not stack=self: `ready` watches this program's exit itself, which here is an
            # outcome to act on rather than a failure.
            outcome = wait_for(
                ready,
                timeout=timeout,
                what=f"{name} to answer {ready_url(port)}",
                state=process.tail,
            )
            if outcome == "ready":
                return process, port
            clash = "address already in use" in process.log().lower()
            if not clash or attempt == attempts:
                raise ProgramExited(f"{name} exited while starting\n{process.tail()}")
            self.processes.remove(process)  # exited; its log stays in the directory
        raise AssertionError("unreachable")

    def check_alive(self) -> None:
        for process in self.processes:
            if process.exited():
                raise ProgramExited(f"{process.name} exited unexpectedly\n{process.tail()}")

    def tails(self, lines: int = 30) -> str:
        return "\n".join(process.tail(lines) for process in self.processes)

    def stop_all(self) -> list[str]:
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as exc:  # collect, so every other process is still stopped
                errors.append(f"{process.name}: {exc!r}")
        return errors


@contextlib.contextmanager
def process_stack(directory: Path) -> Iterator[ProcessStack]:
    stack = ProcessStack(directory)
    try:
        yield stack
    finally:
        errors = stack.stop_all()
        assert not errors, f"could not stop: {errors}"


def wait_for(
    condition: Callable[[], T | None],
    *,
    timeout: float,
    what: str,
    stack: ProcessStack | None = None,
    state: Callable[[], str] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; return that.

    None, False and empty containers (an empty query result) all mean "not yet".

    Exceptions from ``condition`` (a connection refused while a program starts) count as "not
    yet". On the deadline, or as soon as a program of ``stack`` has exited, fail with ``what``,
    the last exception, ``state()`` (what the test was looking at) and the programs' log tails.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = condition()
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            result, last_error = None, exc
        if result:
            return result
        dead = None
        if stack is not None:
            try:
                stack.check_alive()
            except ProgramExited as exc:
                dead = exc
        if dead is not None or time.monotonic() >= deadline:
            parts = [
                f"waited {timeout:.0f}s for {what}"
                if dead is None
                else f"while waiting for {what}: {dead.args[0]}"
            ]
            if last_error is not None:
                parts.append(f"last error: {last_error!r}")
            if state is not None:
                try:
                    parts.append(f"state:\n{state()}")
                except Exception as exc:
                    parts.append(f"state unavailable: {exc!r}")
            if stack is not None and dead is None:
                parts.append(stack.tails())
            raise AssertionError("\n".join(parts))
        time.sleep(POLL_SECONDS)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def http_json(
    method: str,
    url: str,
    *,
    body: Any = None,
    form: Mapping[str, str] | None = None,
) -> Any:
    """Send a request and decode the JSON answer, whatever the status (APIs explain errors)."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return json.loads(payload)
        except ValueError:
            raise AssertionError(f"{method} {url}: HTTP {exc.code}: {payload[:500]!r}") from exc


@dataclass(frozen=True)
class PrometheusAPI:
    """The few calls of Prometheus's HTTP API the tests use."""

    url: str

    def query(self, expr: str) -> dict[str, Any]:
        """The whole answer of an instant query: ``status``, ``data`` or ``error``."""
        answer: dict[str, Any] = http_json("POST", f"{self.url}/api/v1/query", form={"query": expr})
        return answer

    def vector(self, expr: str) -> list[dict[str, Any]]:
        """An instant query that must succeed; its result as a list of samples."""
        answer = self.query(expr)
        assert answer.get("status") == "success", f"query {expr!r} failed: {answer}"
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def metric_names(self) -> set[str]:
        answer = http_json("GET", f"{self.url}/api/v1/label/__name__/values")
        assert answer.get("status") == "success", answer
        return set(answer["data"])

    def series(self, selector: str) -> list[dict[str, str]]:
        query = urllib.parse.urlencode({"match[]": selector})
        answer = http_json("GET", f"{self.url}/api/v1/series?{query}")
        assert answer.get("status") == "success", answer
        result: list[dict[str, str]] = answer["data"]
        return result

    def alerts(self) -> list[dict[str, Any]]:
        """Active alerts (pending and firing) as the rule manager holds them."""
        answer = http_json("GET", f"{self.url}/api/v1/alerts")
        assert answer.get("status") == "success", answer
        alerts: list[dict[str, Any]] = answer["data"]["alerts"]
        return alerts


def format_alerts(alerts: Sequence[Mapping[str, Any]]) -> str:
    """One line per alert: name, identity labels, state; for failure messages."""
    if not alerts:
        return "    (no alerts)"
    lines = []
    for alert in alerts:
        labels = dict(alert.get("labels", {}))
        name = labels.pop("alertname", "?")
        state = alert.get("state") or alert.get("status", {})
        lines.append(f"    {name} {labels} state={state}")
    return "\n".join(sorted(lines))
