"""The one error type config loading raises, carrying every problem found with its place."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Path = tuple[str | int, ...]


def format_path(path: Path) -> str:
    """`("checks", 1, "steps", 0)` -> `checks[1].steps[0]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    path: Path
    message: str
    source: str = "probes.yaml"
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        line = f"{where} {format_path(self.path)}: {self.message}"
        # Keys and values come from the file: a newline or a terminal escape in one must
        # not break the one-line-per-issue shape or reach the terminal raw.
        return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in line)


class ConfigError(Exception):
    """A configuration could not be loaded; `issues` says every place that is wrong."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[tuple[ConfigIssue, ...]]]:
        # Pickled from the child that parses a large config (config/isolated.py): rebuilt
        # from its issues, not from the joined message Exception would pass back.
        return (ConfigError, (self.issues,))
