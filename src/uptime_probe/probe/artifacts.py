"""Files a run leaves for a person: a failed browser step's screenshot, and its trace.

Written under one folder, `<root>/<check>/<UTC time>-<step>.<suffix>`, and only the
newest `keep` of a check are kept (a screenshot and the trace beside it, `beside`, count
as one), so a check failing every 30 s for a week does not fill the disk. Names are check
and step slugs and a timestamp: safe in a path and in a URL, and in time order when sorted.

Built by the composition root (app.py: the data directory; oneshot.py: `--artifacts`)
and handed to runs as a resource (`run_check(..., resources={ARTIFACTS: store})`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from uptime_probe.config.redaction import Redactor

ARTIFACTS = "artifacts"  # its key among a run's resources
# A trace larger than this, unzipped, is not kept: its page's responses are in it, and a
# page can send a lot; the screenshot still is.
MAX_TRACE_BYTES = 64 * 1024 * 1024
TRACE_SUFFIX = "zip"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # a check's or step's slug
_FILE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[a-z][a-z0-9_]{0,62}(?:-\d+)?\.[a-z]{2,5}$")


class ArtifactStore:
    def __init__(self, root: Path, keep: int, *, traces: bool = True) -> None:
        self.root = root
        self.keep = keep
        # Whether a failed browser step also leaves its Playwright trace beside its
        # screenshot (`save_trace`): `browser.keep_traces`.
        self.traces = traces
        # Its own thread, made on the first save: probes never use the event loop's default
        # executor (docs/reliability.md), and a slow or full disk must not hold the loop.
        self._writer: ThreadPoolExecutor | None = None

    async def save(self, check: str, step: str, data: bytes, suffix: str = "png") -> str:
        """Write `data`, prune the check's oldest files, and return the new file's path
        relative to `root` (`sidebar_renders/20251203T101502.123Z-page.png`).

        OSError when it cannot be written; ValueError for a name that is not a slug.
        """
        if not (_NAME.match(check) and _NAME.match(step) and suffix.isalnum()):
            raise ValueError(f"not an artifact name: {check!r}, {step!r}, {suffix!r}")
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="artifacts")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._write, check, step, data, suffix)

    async def save_trace(self, screenshot: str, source: Path, redact: Redactor) -> str:
        """Copy the Playwright trace `source` (a zip) beside `screenshot`, every entry that
        is text redacted: a trace holds what the page sent and received (an Authorization
        header, a typed password), where secrets must not reach a file. Returns its path
        relative to `root`. OSError when it cannot be written; ValueError for a name that
        is not ours, or a trace that is not a zip or is larger than MAX_TRACE_BYTES."""
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="artifacts")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._writer, self._copy_trace, screenshot, source, redact
        )

    def close(self) -> None:
        """Let the writer's thread go once a write in progress is done."""
        if self._writer is not None:
            self._writer.shutdown(wait=False)
            self._writer = None

    def _write(self, check: str, step: str, data: bytes, suffix: str) -> str:
        folder = self.root / check
        folder.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        for attempt in range(100):
            name = f"{stamp}-{step}{'' if attempt == 0 else f'-{attempt}'}.{suffix}"
            try:
                with (folder / name).open("xb") as handle:
                    handle.write(data)
                break
            except FileExistsError:
                continue
        else:
            raise OSError(f"no free name for an artifact of {check}/{step} at {stamp}")
        self._prune(folder)
        return f"{check}/{name}"

    def _copy_trace(self, screenshot: str, source: Path, redact: Redactor) -> str:
        relative, target = self.beside(screenshot, TRACE_SUFFIX)
        try:
            with zipfile.ZipFile(source) as trace:
                entries = trace.infolist()
                size = sum(entry.file_size for entry in entries)
                if size > MAX_TRACE_BYTES:
                    raise ValueError(f"the trace holds {size // 1024 // 1024} MiB, above 64")
                with target.open("xb") as handle:
                    try:
                        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as copy:
                            for entry in entries:
                                data = _redacted(trace.read(entry), redact)
                                copy.writestr(entry.filename, data)
                    except BaseException:
                        target.unlink(missing_ok=True)  # no half a trace
                        raise
        except zipfile.BadZipFile as exc:
            raise ValueError(f"the trace is not a zip: {exc}") from None
        return relative

    def _prune(self, folder: Path) -> None:
        # Counted by stem: a screenshot and the trace beside it are one failure's files.
        names = [entry.name for entry in os.scandir(folder) if _FILE.match(entry.name)]
        stems = sorted({name.rpartition(".")[0] for name in names})
        kept = set(stems[max(0, len(stems) - self.keep) :])
        for old in names:
            if old.rpartition(".")[0] not in kept:
                # Gone already: pruned meanwhile by a concurrent save.
                (folder / old).unlink(missing_ok=True)

    def beside(self, relative: str, suffix: str) -> tuple[str, Path]:
        """The name (`beside`) and path of a file beside the artifact `relative`."""
        name = beside(relative, suffix)
        return name, self.root / name

    def path_of(self, relative: str) -> Path | None:
        """The file a relative artifact path names, or None when it is not one of ours
        (anything with `..`, a foreign name) or no longer exists."""
        check, sep, name = relative.partition("/")
        if not sep or not _NAME.match(check) or not _FILE.match(name):
            return None
        path = self.root / check / name
        return path if path.is_file() else None


def beside(relative: str, suffix: str) -> str:
    """The name of a file beside the artifact `relative`: its stem, another suffix (a
    screenshot's trace: `check/<time>-step.png` -> `check/<time>-step.zip`), kept and
    pruned with it. ValueError for a name that is not one of ours."""
    check, sep, name = relative.partition("/")
    stem, dot, _ = name.rpartition(".")
    sibling = f"{stem}.{suffix}"
    if not (sep and dot and _NAME.match(check) and _FILE.match(sibling)):
        raise ValueError(f"not an artifact name: {relative!r}, {suffix!r}")
    return f"{check}/{sibling}"


def trace_beside(screenshot: str | None) -> str | None:
    """Where the trace of the run that left `screenshot` is (`save_trace`), if it left one
    (a run whose trace could not be saved, or with `browser.keep_traces: false`, has none
    there: `kept_trace` says whether it is)."""
    if not screenshot:
        return None
    try:
        return beside(screenshot, TRACE_SUFFIX)
    except ValueError:
        return None


def kept_trace(screenshot: str | None, files: ArtifactStore | None) -> str | None:
    """The trace beside `screenshot` if `files` holds it: what the views link. Linked by
    name alone, a daemon with `keep_traces: false` showed a trace link on every failed
    browser run, and each one answered 404."""
    name = trace_beside(screenshot)
    if name is None or files is None or files.path_of(name) is None:
        return None
    return name


def _redacted(data: bytes, redact: Redactor) -> bytes:
    """A trace entry with the secrets of its text removed; binary entries (images, fonts)
    as they are."""
    if not redact.active:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return redact(text).encode("utf-8")
