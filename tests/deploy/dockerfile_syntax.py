"""Small Dockerfile and .dockerignore parsers for test_dockerfile.py and test_wheel.py.

It joins continuation lines, drops comments and parser directives, and splits each instruction
into its keyword, its `--flags` and its arguments (exec-form JSON arrays decoded). That is all
the checks need; hadolint does the real linting. A plain module with a name no other test
folder uses, because importing from conftest.py breaks as soon as two folders have one.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    flags: dict[str, str]  # --chown=root:root -> {"chown": "root:root"}
    raw: str  # the arguments after the flags, as written
    line: int  # where the instruction starts, 1-based

    @property
    def exec_form(self) -> list[str] | None:
        """The decoded JSON array of an exec-form instruction, else None."""
        text = self.raw.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None

    @property
    def words(self) -> list[str]:
        """Exec form decoded, or the shell form split like a shell would."""
        decoded = self.exec_form
        return decoded if decoded is not None else shlex.split(self.raw)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def resolve(self, text: str) -> str:
        """Substitute the ARGs declared before the first FROM (all FROM lines may use)."""
        return re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
            lambda match: self.global_args.get(match.group(1), match.group(0)),
            text,
        )


_FLAG = re.compile(r"--([a-z][a-z-]*)(?:=(\S*))?\s+")


def parse_dockerfile(text: str) -> Dockerfile:
    logical: list[tuple[int, str]] = []
    buffer: list[str] = []
    start = 0
    for number, text_line in enumerate(text.splitlines(), start=1):
        stripped = text_line.strip()
        if stripped.startswith("#"):
            # `# syntax=...` at the very top is a parser directive, any other `#` a comment;
            # both are dropped, also between continuation lines (as BuildKit does).
            continue
        if not stripped and not buffer:
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1])
            continue
        buffer.append(stripped)
        logical.append((start, " ".join(part for part in buffer if part)))
        buffer = []
    assert not buffer, "Dockerfile ends inside a continued line"

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, content in logical:
        keyword, _, rest = content.partition(" ")
        keyword = keyword.upper()
        flags: dict[str, str] = {}
        rest = rest.strip() + " "
        while match := _FLAG.match(rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end() :]
        instruction = Instruction(keyword, flags, rest.strip(), line)
        if keyword == "FROM":
            parts = instruction.raw.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"line {line}: only ARG may come before the first FROM"
            arg_name, _, default = instruction.raw.partition("=")
            global_args[arg_name] = default
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


# --- .dockerignore ---------------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a whole path."""
    out = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
            continue
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.index("]", index)
            body = pattern[index + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            index = end
        else:
            out.append(re.escape(char))
        index += 1
    return re.compile("".join(out) + r"\Z")


def dockerignore_excludes(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Docker's rule: the last pattern that matches the path, or one of its parent folders,
    decides; `!` patterns re-include."""
    parts = path.split("/")
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def load_dockerignore(repo_root: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for line in (repo_root / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules
