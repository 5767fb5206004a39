"""Real filesystems for the data-directory tests: a small tmpfs, full or read-only.

Mounting needs root (or CAP_SYS_ADMIN) and util-linux's mount/umount. A test that needs
them fails, never skips, when they are missing: a skipped test would read as a pass.
Every mount is undone when its context ends, lazily if a process still holds a file on it.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is needed (Debian package `mount`; scripts/test.sh installs it)"
    return found


def _run(*args: str) -> None:
    result = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, (
        f"{' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}; "
        "these tests mount a tmpfs and need root or CAP_SYS_ADMIN"
    )


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (created), unmounted at the end."""
    mount, umount = _tool("mount"), _tool("umount")
    path.mkdir(parents=True, exist_ok=True)
    _run(mount, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield path
    finally:
        result = subprocess.run([umount, str(path)], capture_output=True, timeout=30, check=False)
        if result.returncode != 0:  # still busy: detach now, freed when the last file closes
            _run(umount, "-l", str(path))


def remount(path: Path, mode: str) -> None:
    """`ro` or `rw`: the mounted filesystem changes under whoever has it open."""
    _run(_tool("mount"), "-o", f"remount,{mode}", str(path))


def fill(path: Path, chunk: int = 1 << 20, most: int = 1024) -> Path:
    """Write a file in `path` until the filesystem is full; the file (delete it to free)."""
    filler = path / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to flush
        for _ in range(most):  # bounded: a tmpfs far larger than expected fails below
            try:
                out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
    raise AssertionError(f"{path} took {most} x {chunk} bytes without filling up")
