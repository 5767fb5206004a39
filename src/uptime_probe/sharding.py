"""Which checks this process runs: rendezvous hashing across shards, and `locations:`.

Rendezvous (highest-random-weight) hashing gives every check exactly one owner among
COUNT shards, and going from N to N+1 shards moves only the checks the new shard
wins: about 1/(N+1) of them. No coordinator: every replica computes the same answer.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from uptime_probe.config.model import CheckConfig

_SHARD = re.compile(r"^\s*(auto|\d+)\s*/\s*(\d+)\s*$")
_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, check: str) -> bool:
        return self.count == 1 or owner(check, self.count) == self.index


SINGLE = Shard(0, 1)


def parse_shard(text: str, hostname: str | None = None) -> Shard:
    """`2/5`, or `auto/5` with INDEX from a StatefulSet pod name's ordinal (`probe-2`)."""
    match = _SHARD.match(text)
    if match is None:
        raise ValueError(f"invalid shard {text!r}: use INDEX/COUNT (like 0/3) or auto/COUNT")
    count = int(match.group(2))
    if count < 1:
        raise ValueError(f"invalid shard {text!r}: COUNT must be at least 1")
    if match.group(1) == "auto":
        host = hostname if hostname is not None else socket.gethostname()
        ordinal = _ORDINAL.search(host)
        if ordinal is None:
            raise ValueError(
                f"shard auto/{count}: hostname {host!r} has no trailing ordinal like 'name-2'"
            )
        index = int(ordinal.group(1))
    else:
        index = int(match.group(1))
    if index >= count:
        raise ValueError(f"invalid shard {text!r}: INDEX must be below COUNT")
    return Shard(index, count)


def owner(check: str, count: int) -> int:
    """The shard that runs `check`: the one with the highest hash of (shard, check)."""
    return max(
        range(count),
        key=lambda index: hashlib.blake2b(f"{index}\0{check}".encode(), digest_size=8).digest(),
    )


def runs_here(check: CheckConfig, shard: Shard, location: str) -> bool:
    if check.locations is not None and location not in check.locations:
        return False
    return shard.owns(check.name)


def select(checks: Sequence[CheckConfig], shard: Shard, location: str) -> list[CheckConfig]:
    return [check for check in checks if runs_here(check, shard, location)]
