"""Load a large config in a child process, so that parsing it never holds the daemon.

Parsing and validating 10,000 checks takes 8 s of CPU. Done in a thread of the daemon,
it still held the event loop up to 0.5 s at a time: PyYAML checks the whole text in one
call, pydantic validates the whole model in one, both holding the interpreter lock, and
the garbage collector, run by the parse's own allocations, walked its millions of objects.
A child process (`python -m uptime_probe.config.isolated PATH [LOCATION]`) parses,
validates and pickles, its checks in chunks; the daemon unpickles a chunk at a time on its
event loop (`config_steps`). The unpickled config is also compact: its objects are
allocated together, not among the parse's garbage (see `app.load_deployment_config`).

A child costs 0.3-1 s of imports: a file under ISOLATE_FROM_BYTES (a few hundred checks)
is parsed in a thread instead, where it takes less than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

from uptime_probe.config.compact import share_equal_values
from uptime_probe.config.errors import ConfigError
from uptime_probe.config.loader import load_config
from uptime_probe.config.model import CheckConfig, Config

ISOLATE_FROM_BYTES = 64 * 1024
CHUNK_CHECKS = 50
CHILD_NICENESS = 10  # the daemon's loop comes first when CPUs are short
# The package's parent folder: the child imports this very copy, installed or not.
_PACKAGE_PARENT = str(Path(__file__).resolve().parents[2])


class ChildFailed(Exception):
    """The child ended without a config or a config error (killed, out of memory)."""


def load_with_location(path: Path, location: str | None) -> Config:
    """The file as a deployment sees it: `location` (from `--location`) overrides its own."""
    config = load_config(path)
    if location is not None and location != config.location:
        config = config.model_copy(update={"location": location})
    return config


def should_isolate(path: Path) -> bool:
    try:
        return path.stat().st_size >= ISOLATE_FROM_BYTES
    except OSError:
        return False  # the loader says why it cannot read it


async def parse_in_child(path: Path, location: str | None) -> bytes:
    """The child's answer for `path`, pickled: the config in parts, or a ConfigError
    (`config_steps` makes it a config or raises it); ChildFailed if there was none."""
    # Started from a thread, not the loop: uvloop forks, and forking a daemon of 10,000
    # checks copies its page tables (tens of milliseconds); subprocess uses vfork.
    process = await asyncio.to_thread(_start_child, path, location)
    try:
        out, err = await asyncio.to_thread(process.communicate)
    except BaseException:  # cancelled (the daemon stops): the parse is no one's any more
        process.kill()  # the thread in communicate() reaps it
        raise
    if process.returncode != 0 or not out:
        detail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ChildFailed(f"exit {process.returncode}: {detail[0][:300]}")
    return out


def config_steps(answer: bytes) -> Generator[None, None, Config]:
    """The child's answer made a config, CHUNK_CHECKS checks at a time: each chunk takes
    about a millisecond to unpickle, so the daemon does it on its event loop in slices
    (slices.py). Unpickled whole in a thread, 10,000 checks took the interpreter lock from
    the loop for up to 20 ms at once. Raises the child's ConfigError."""
    result: _Parts | ConfigError = pickle.loads(answer)  # noqa: S301 - our own child's bytes
    if isinstance(result, ConfigError):
        raise result
    config: Config = pickle.loads(result.config)  # noqa: S301 - idem
    checks: list[CheckConfig] = []
    for chunk in result.checks:
        checks.extend(pickle.loads(chunk))  # noqa: S301 - idem
        yield
    return config.model_copy(update={"checks": checks})


@dataclass(frozen=True, slots=True)
class _Parts:
    """A config as the child sends it: without its checks, then its checks in chunks
    (pickled together, checks share their field names' strings: one pickle per check
    took twice the memory)."""

    config: bytes
    checks: list[bytes]

    @classmethod
    def of(cls, config: Config) -> _Parts:
        checks = config.checks
        return cls(
            pickle.dumps(config.model_copy(update={"checks": []}), pickle.HIGHEST_PROTOCOL),
            [
                pickle.dumps(tuple(checks[i : i + CHUNK_CHECKS]), pickle.HIGHEST_PROTOCOL)
                for i in range(0, len(checks), CHUNK_CHECKS)
            ],
        )


def _start_child(path: Path, location: str | None) -> subprocess.Popen[bytes]:
    python_path = os.pathsep.join(filter(None, [_PACKAGE_PARENT, os.environ.get("PYTHONPATH")]))
    return subprocess.Popen(  # noqa: S603 - this interpreter, this module, our own arguments
        [
            sys.executable,
            "-P",  # the working directory is not on the import path
            "-m",
            "uptime_probe.config.isolated",
            str(path),
            *([location] if location is not None else []),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": python_path},
    )


def _child(argv: list[str]) -> int:
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    path, location = Path(argv[0]), (argv[1] if len(argv) > 1 else None)
    try:
        config = load_with_location(path, location)
        share_equal_values(config)  # 10,000 checks repeat the same strings and field sets
        result: _Parts | ConfigError = _Parts.of(config)
    except ConfigError as exc:
        result = exc
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    # Run as the module it is, not as __main__: what it pickles must be found by that name.
    from uptime_probe.config.isolated import _child as child

    sys.exit(child(sys.argv[1:]))
