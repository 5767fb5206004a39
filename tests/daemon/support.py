"""The real daemon in a subprocess: start it, read its JSON log lines, scrape it, signal it.

`DaemonProcess` runs `python -m uptime_probe.cli run --listen 127.0.0.1:0`, learns the
port from the `daemon_started` log line, and is always killed at teardown (the fixture in
conftest.py does it). Every wait is a bounded poll with a generous deadline: the machine
is shared, and a healthy run meets each condition in a fraction of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from prometheus_client.parser import text_string_to_metric_families

# Deadlines for "eventually" conditions; generous on purpose (see the module docstring).
START_DEADLINE = 30.0
DEADLINE = 20.0
POLL = 0.05

LogRecord = dict[str, Any]
SampleKey = tuple[str, tuple[tuple[str, str], ...]]


class Scrape:
    """One parsed /metrics answer: samples by name and labels, family types by name."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[SampleKey, float] = {}
        self.types: dict[str, str] = {}
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                assert key not in self.samples, f"duplicate sample {key} in /metrics"
                self.samples[key] = sample.value

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Samples named `name` whose labels include `labels`."""
        return [
            (dict(sample_labels), value)
            for (sample_name, sample_labels), value in self.samples.items()
            if sample_name == name and labels.items() <= dict(sample_labels).items()
        ]

    def value(self, name: str, **labels: str) -> float:
        """The one sample named `name` with these labels (a subset is enough); else fail."""
        found = self.find(name, **labels)
        assert len(found) == 1, f"expected one {name}{labels}, found {found}"
        return found[0][1]

    def get(self, name: str, default: float = 0.0, **labels: str) -> float:
        found = self.find(name, **labels)
        return found[0][1] if len(found) == 1 else default

    def checks(self) -> set[str]:
        """Every `check` label value present in any sample."""
        return {
            dict(labels)["check"] for (_name, labels), _v in self.samples.items()
            if "check" in dict(labels)
        }  # fmt: skip

    def quantile(self, histogram: str, q: float, **labels: str) -> float:
        """The upper bound of the bucket holding the q-quantile (as histogram_quantile's
        upper limit): the smallest `le` whose cumulative count reaches q of the total."""
        buckets = sorted(
            (float(bucket_labels["le"]), count)
            for bucket_labels, count in self.find(f"{histogram}_bucket", **labels)
        )
        total = buckets[-1][1]
        assert total > 0, f"{histogram} has no observations"
        return next(le for le, count in buckets if count >= q * total)


class DaemonProcess:
    """`uptime-probe run` as a child process; stderr JSON lines collected by a thread."""

    def __init__(
        self,
        config_path: Path,
        *,
        grace: float = 5.0,
        log_level: str = "info",
        extra_args: Sequence[str] = (),
    ) -> None:
        self.config_path = config_path
        self.args = [
            sys.executable, "-m", "uptime_probe.cli", "run",
            "-c", str(config_path),
            "--listen", "127.0.0.1:0",
            "--log-level", log_level,
            "--grace", str(grace),
            *extra_args,
        ]  # fmt: skip
        self.records: list[LogRecord] = []
        self.raw_lines: list[str] = []
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.url = ""
        # Set before start(): the daemon's own variables (UPTIME_PROBE_EVENT_LOOP, ...).
        self.env: dict[str, str] = {}

    # --- the process --------------------------------------------------------------------

    def start(self) -> None:
        env = {
            key: value for key, value in os.environ.items() if not key.startswith("UPTIME_PROBE_")
        }
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        self._process = subprocess.Popen(
            self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # JSON log lines and anything else, one stream
            text=True,
            env=env,
            # Its own folder: whatever the daemon writes relative to its working directory
            # (the store's default data/) lands beside the test's config, never in the repo.
            cwd=self.config_path.parent,
            start_new_session=True,  # a ^C at the terminal reaches pytest, not the daemon
        )
        self._reader = threading.Thread(target=self._read, name="daemon-log-reader", daemon=True)
        self._reader.start()

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None, "start() first"
        return self._process

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        for line in stream:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            with self._lock:
                self.raw_lines.append(line.rstrip("\n"))
                if isinstance(record, dict):
                    self.records.append(record)

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    async def wait_exit(self, timeout: float = DEADLINE) -> int:
        """The exit code, once the process has ended (fails after `timeout`)."""
        try:
            code = await asyncio.to_thread(self.process.wait, timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"daemon still running after {timeout}s\n{self.log_text()}"
            ) from None
        if self._reader is not None:
            await asyncio.to_thread(self._reader.join, 5.0)
        return code

    def kill(self) -> None:
        """Teardown: whatever state the test left it in, the process is gone after this."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait(timeout=10)
        if self._process.stdout is not None and self._reader is not None:
            self._reader.join(timeout=5)
            self._process.stdout.close()

    # --- logs ----------------------------------------------------------------------------

    def log_text(self) -> str:
        with self._lock:
            return "daemon output:\n" + "\n".join(self.raw_lines[-80:])

    def logs(self, event: str | None = None, *, after: int = 0, **fields: Any) -> list[LogRecord]:
        """Records of `event` (any, if None) with these fields, from index `after` on."""
        with self._lock:
            records = self.records[after:]
        return [
            r for r in records
            if (event is None or r.get("event") == event)
            and all(r.get(key) == value for key, value in fields.items())
        ]  # fmt: skip

    async def wait_for_log(
        self, event: str, *, timeout: float = DEADLINE, after: int = 0, **fields: Any
    ) -> LogRecord:
        """The first record of `event` with these fields, at or after index `after`."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                records = self.records[after:]
            for record in records:
                if record.get("event") == event and all(
                    record.get(key) == value for key, value in fields.items()
                ):
                    return record
            if self.process.poll() is not None and self._reader_done():
                raise AssertionError(
                    f"daemon exited ({self.process.returncode}) before logging {event} {fields}"
                    f"\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {event} {fields} logged within {timeout}s\n{self.log_text()}"
                )
            await asyncio.sleep(POLL)

    def _reader_done(self) -> bool:
        return self._reader is None or not self._reader.is_alive()

    @property
    def log_count(self) -> int:
        with self._lock:
            return len(self.records)

    # --- HTTP ----------------------------------------------------------------------------

    async def started(self, timeout: float = START_DEADLINE) -> str:
        """Wait for `daemon_started`; returns and keeps the base URL."""
        record = await self.wait_for_log("daemon_started", timeout=timeout)
        host, _, port = str(record["listen"]).rpartition(":")
        assert host == "127.0.0.1", record
        self.url = f"http://127.0.0.1:{int(port)}"
        return self.url

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, dict[str, str]]:
        assert self.url, "await started() first"
        timeout = aiohttp.ClientTimeout(total=DEADLINE)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.request(method, self.url + path, headers=headers) as response,
        ):
            return response.status, await response.text(), dict(response.headers)

    async def scrape(self) -> Scrape:
        status, text, headers = await self.request("GET", "/metrics")
        assert status == 200, (status, text)
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4"), headers
        return Scrape(text)

    async def wait_for_scrape(
        self, condition: Callable[[Scrape], bool], what: str, timeout: float = DEADLINE
    ) -> Scrape:
        """Scrape until `condition` holds; the scrape that satisfied it."""
        deadline = time.monotonic() + timeout
        while True:
            scrape = await self.scrape()
            if condition(scrape):
                return scrape
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}\n"
                    + "\n".join(line for line in scrape.text.splitlines() if "check=" in line)[
                        -4000:
                    ]
                )
            await asyncio.sleep(POLL)


# --- configs -------------------------------------------------------------------------------


def http_check(
    name: str,
    url: str,
    *,
    interval: str = "500ms",
    timeout: str = "400ms",
    step: str = "fetch",
    **step_fields: Any,
) -> dict[str, Any]:
    """One check of one GET step; `headers=`/`expect=`/... go to the step."""
    request: dict[str, Any] = {"url": url}
    if "headers" in step_fields:
        request["headers"] = step_fields.pop("headers")
    return {
        "name": name,
        "interval": interval,
        "timeout": timeout,
        "steps": [{"name": step, "request": request, **step_fields}],
    }


def history_check(base_url: str, name: str = "history", **fields: Any) -> dict[str, Any]:
    """The simulator's history list, down with `empty_history` when it comes back empty."""
    return http_check(
        name,
        f"{base_url}/backend-api/conversations",
        step="conversations",
        headers={"Authorization": "Bearer demo-token"},
        expect={"json": [{"query": "length(items)", "gt": 0, "reason": "empty_history"}]},
        **fields,
    )


def write_config(path: Path, checks: list[dict[str, Any]], **top: Any) -> None:
    """Write probes.yaml atomically, so the file watcher never reads half a file."""
    text = yaml.safe_dump({**top, "checks": checks}, sort_keys=False)
    write_text(path, text)


def write_text(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)
