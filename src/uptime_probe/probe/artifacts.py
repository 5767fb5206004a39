"""Files a run leaves for a person: a failed browser step's screenshot.

Written under one folder, `<root>/<check>/<UTC time>-<step>.<suffix>`, and only the
newest `keep` files of a check are kept, so a check failing every 30 s for a week does not
fill the disk. Names are check and step slugs and a timestamp: safe in a path and in a URL,
and in time order when sorted.

Built by the composition root (app.py: the data directory; oneshot.py: `--artifacts`)
and handed to runs as a resource (`run_check(..., resources={ARTIFACTS: store})`).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ARTIFACTS = "artifacts"  # its key among a run's resources
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")  # a check's or step's slug
_FILE = re.compile(r"^\d{8}T\d{6}\.\d{3}Z-[a-z][a-z0-9_]{0,62}(?:-\d+)?\.[a-z]{2,5}$")


class ArtifactStore:
    def __init__(self, root: Path, keep: int) -> None:
        self.root = root
        self.keep = keep
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

    def _prune(self, folder: Path) -> None:
        names = sorted(entry.name for entry in os.scandir(folder) if _FILE.match(entry.name))
        for old in names[: max(0, len(names) - self.keep)]:
            # Gone already: pruned meanwhile by a concurrent save.
            (folder / old).unlink(missing_ok=True)

    def path_of(self, relative: str) -> Path | None:
        """The file a relative artifact path names, or None when it is not one of ours
        (anything with `..`, a foreign name) or no longer exists."""
        check, sep, name = relative.partition("/")
        if not sep or not _NAME.match(check) or not _FILE.match(name):
            return None
        path = self.root / check / name
        return path if path.is_file() else None
