"""YAML -> Config, with every error naming the file, the line and the path."""

from __future__ import annotations

import json
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path as FilePath
from typing import Any

import yaml
from pydantic import ValidationError

from uptime_probe.config.chromium import INSTALL_HINT, what_is_missing
from uptime_probe.config.errors import ConfigError, ConfigIssue, Path
from uptime_probe.config.model import Config
from uptime_probe.config.redaction import Redactor
from uptime_probe.config.steps import BrowserStep, ContentExpect, TlsConfig
from uptime_probe.config.validate import semantic_issues

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_CONFIG_NODES = 500_000


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, expand, validate and resolve a probes.yaml; raise ConfigError on any problem."""
    file = FilePath(path)
    source = file.name
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue((), f"cannot read config: {exc.strerror}", source)]
        ) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([ConfigIssue((), "config file is larger than 4 MiB", source)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue((), f"config is not UTF-8: {exc.reason}", source)]) from None
    return parse_config(text, source=source, base_dir=file.parent, env=env)


def parse_config(
    text: str,
    *,
    source: str = "probes.yaml",
    base_dir: FilePath | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    environment = os.environ if env is None else env
    document, lines = _parse_yaml(text, source)
    if document is None:
        raise ConfigError([ConfigIssue((), "config is empty", source)])
    if not isinstance(document, dict):
        raise ConfigError(
            [ConfigIssue((), f"config must be a mapping, got {type(document).__name__}", source, 1)]
        )
    issues: list[ConfigIssue] = []
    expanded = _expand_env(document, (), environment, issues)
    try:
        if issues:
            raise ConfigError([_locate(issue, lines, source) for issue in issues])
        try:
            config = Config.model_validate(expanded)
        except ValidationError as exc:
            raise ConfigError(_pydantic_issues(exc, expanded, lines, source)) from None
        issues = semantic_issues(config)
        issues.extend(_load_schemas(config, base_dir or FilePath.cwd()))
        issues.extend(_resolve_data_dir(config, base_dir or FilePath.cwd()))
        if issues:
            raise ConfigError([_locate(issue, lines, source) for issue in issues])
        config, issues = _with_browser(config)
        if issues:
            raise ConfigError([_locate(issue, lines, source) for issue in issues])
    except ConfigError as exc:
        raise _without_secrets(exc, expanded) from None
    return config


def secret_values(document: Any) -> list[str]:
    """Every value of a config document that is a secret: those under `secrets:`, and each
    notifier's Apprise `urls` (they carry tokens and passwords)."""
    if not isinstance(document, dict):
        return []
    found: list[Any] = []
    secrets = document.get("secrets")
    if isinstance(secrets, dict):
        found += secrets.values()
    notifiers = document.get("notifiers")
    for notifier in notifiers.values() if isinstance(notifiers, dict) else ():
        urls = notifier.get("urls") if isinstance(notifier, dict) else None
        found += urls if isinstance(urls, list) else [urls]
    return [value for value in found if isinstance(value, str) and value]


def _without_secrets(error: ConfigError, document: Any) -> ConfigError:
    """The error with every secret value (`secret_values`) removed from its messages.

    Messages quote the values they reject (`invalid duration '...'`); a secret pasted
    into the wrong field, or expanded from the environment into one, must not reach a
    terminal or a CI log through them (nor the daemon's log, whose redactor only knows
    the secrets of the config it runs, not those of the file it just rejected).
    """
    redact = Redactor(secret_values(document))
    if not redact.active:
        return error
    return ConfigError([replace(issue, message=redact(issue.message)) for issue in error.issues])


def _parse_yaml(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, source)]) from None
    except RecursionError:
        # PyYAML composes recursively: a hostile document nests deeper than the stack.
        raise ConfigError([ConfigIssue((), "invalid YAML: nested too deeply", source)]) from None
    lines: dict[Path, int] = {}
    issues: list[ConfigIssue] = []
    if node is None:
        return None, lines
    _index_lines(node, (), lines, issues, source)
    if issues:
        raise ConfigError(issues)
    try:
        # The nodes already composed, built by the safe constructor: no Python object
        # tags, ever, and the text is parsed once.
        document = _LocatingConstructor().construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_issue(exc, source)]) from None
    except RecursionError:
        raise ConfigError([ConfigIssue((), "invalid YAML: nested too deeply", source)]) from None
    return document, lines


class _LocatingConstructor(yaml.constructor.SafeConstructor):
    """PyYAML's safe constructor, whose every failure is a ConstructorError with a line.

    Its scalar constructors let Python's own exceptions out on a value their tag cannot
    read: KeyError for `!!bool maybe`, AttributeError for `!!timestamp x`, IndexError for
    `!!int ''`, ValueError for `2025-02-30` (a date by YAML's rules). Whatever a
    constructor raises is a property of the document, never a bug to crash on.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (yaml.YAMLError, RecursionError):
            raise
        except Exception as exc:  # see the class docstring
            raise yaml.constructor.ConstructorError(
                None, None, _unreadable(node, exc), node.start_mark
            ) from None


_SHORT_TAG = "tag:yaml.org,2002:"


def _unreadable(node: yaml.Node, exc: Exception) -> str:
    tag = node.tag.replace(_SHORT_TAG, "!!", 1) if node.tag.startswith(_SHORT_TAG) else node.tag
    value = node.value if isinstance(node, yaml.ScalarNode) else ""
    shown = repr(value if len(value) <= 40 else value[:40] + "...")
    # Some ValueErrors say why (day out of range, too many digits); the rest only repeat
    # the value (`invalid literal for int()`), and the other types say nothing useful.
    why = str(exc).splitlines()[0] if isinstance(exc, ValueError) and str(exc) else ""
    detail = (
        "" if not why or why.startswith(("invalid literal", "could not convert")) else f": {why}"
    )
    return (
        f"cannot read {shown} as {tag}{detail} (quote a value, without a tag, to keep it as text)"
    )


def _yaml_issue(exc: yaml.YAMLError, source: str) -> ConfigIssue:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = mark.line + 1 if mark is not None else None
    return ConfigIssue((), f"invalid YAML: {problem}", source, line)


def _index_lines(
    node: yaml.Node, path: Path, lines: dict[Path, int], issues: list[ConfigIssue], source: str
) -> None:
    # Iterative, so a hostile 100,000-deep document cannot exhaust the stack.
    stack: list[tuple[yaml.Node, Path]] = [(node, path)]
    visited = 0
    while stack:
        current, where = stack.pop()
        visited += 1
        if visited > MAX_CONFIG_NODES:
            # Aliases share nodes, so a small file can stand for billions of values
            # ("billion laughs"); every later stage walks the expanded tree.
            issues.append(
                ConfigIssue((), f"config expands to more than {MAX_CONFIG_NODES} values", source)
            )
            return
        lines.setdefault(where, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in current.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                if key in seen:
                    issues.append(
                        ConfigIssue(
                            where, f"duplicate key '{key}'", source, key_node.start_mark.line + 1
                        )
                    )
                seen.add(key)
                lines[(*where, key)] = key_node.start_mark.line + 1
                stack.append((value_node, (*where, key)))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                stack.append((item, (*where, index)))


def _expand_env(value: Any, path: Path, env: Mapping[str, str], issues: list[ConfigIssue]) -> Any:
    """`${NAME}` and `${NAME:-default}` in every string; `$$` is a literal `$`."""
    if isinstance(value, str):
        if "$" not in value:
            return value

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            found = env.get(name)
            if found is not None and (found != "" or default is None):
                return found
            if default is not None:
                return default
            issues.append(ConfigIssue(path, f"environment variable {name} is not set"))
            return ""

        return _ENV.sub(replace, value)
    if isinstance(value, dict):
        return {
            key: _expand_env(item, (*path, str(key)), env, issues) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(item, (*path, index), env, issues) for index, item in enumerate(value)]
    return value


def _pydantic_issues(
    exc: ValidationError, document: Any, lines: Mapping[Path, int], source: str
) -> list[ConfigIssue]:
    issues = []
    for error in exc.errors(include_url=False):
        path = _clean_loc(tuple(error["loc"]), document)
        line = _locate(ConfigIssue(path, ""), lines, source).line
        kind = error["type"]
        if kind == "extra_forbidden":
            message = f"unknown key '{path[-1]}'"
            path = path[:-1]
        elif kind == "missing":
            message = f"missing required key '{path[-1]}'"
            path = path[:-1]
        else:
            message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        issues.append(ConfigIssue(path, message, source, line))
    # In the document's order, whatever order the model declares its fields in.
    return sorted(issues, key=lambda issue: issue.line or 0)


def _clean_loc(loc: tuple[Any, ...], document: Any) -> Path:
    """Drop the segments pydantic adds for union members and tags: keep only real keys."""
    path: list[str | int] = []
    current = document
    for position, part in enumerate(loc):
        last = position == len(loc) - 1
        if (isinstance(current, dict) and part in current) or (
            isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]
        elif part == "[key]":
            continue  # pydantic's mark for "the key itself", already in the path
        elif (
            last
            and isinstance(part, str)
            and not part.startswith(("function-", "tagged-union"))
            # A step kind's tag (config/steps: "stream step"), where its own rule failed.
            and not part.endswith(" step")
        ):
            path.append(part)
    return tuple(path)


def _locate(issue: ConfigIssue, lines: Mapping[Path, int], source: str) -> ConfigIssue:
    path = issue.path
    for cut in range(len(path), -1, -1):
        line = lines.get(path[:cut])
        if line is not None:
            return ConfigIssue(path, issue.message, source, line)
    return ConfigIssue(path, issue.message, source, None)


def resolve_config_path(base_dir: FilePath, name: str) -> FilePath:
    """A file the config names, relative to the config's folder, never escaping it by `..`."""
    candidate = FilePath(name)
    if candidate.is_absolute():
        return candidate
    resolved = (base_dir / candidate).resolve()
    if not resolved.is_relative_to(base_dir.resolve()):
        raise ValueError(f"path {name!r} leaves the config's folder; use an absolute path")
    return resolved


def _resolve_data_dir(config: Config, base_dir: FilePath) -> list[ConfigIssue]:
    """`store.data_dir` made absolute, so every command finds the same history from any
    working folder."""
    store = config.store
    if store.data_dir is None:
        return []
    try:
        resolved = resolve_config_path(base_dir, store.data_dir)
    except ValueError as exc:
        return [ConfigIssue(("store", "data_dir"), str(exc))]
    if resolved.exists() and not resolved.is_dir():
        return [ConfigIssue(("store", "data_dir"), f"{str(resolved)!r} is not a folder")]
    object.__setattr__(store, "data_dir", str(resolved))
    return []


def _load_schemas(config: Config, base_dir: FilePath) -> list[ConfigIssue]:
    issues = []
    for c_index, check in enumerate(config.checks):
        for s_index, step in enumerate(check.steps):
            path: Path = ("checks", c_index, "steps", s_index)
            tls = getattr(step, "tls", None)
            if isinstance(tls, TlsConfig) and tls.ca_file is not None:
                try:
                    ca = resolve_config_path(base_dir, tls.ca_file)
                except ValueError as exc:
                    issues.append(ConfigIssue((*path, "tls", "ca_file"), str(exc)))
                else:
                    if not ca.is_file():
                        issues.append(
                            ConfigIssue((*path, "tls", "ca_file"), f"no file {str(ca)!r}")
                        )
                    else:
                        try:
                            ssl.create_default_context(cafile=str(ca))
                        except ssl.SSLError as exc:
                            issues.append(
                                ConfigIssue(
                                    (*path, "tls", "ca_file"),
                                    f"cannot load CA file {str(ca)!r}: {exc.reason or exc}",
                                )
                            )
                        # Resolved once here, so the engine never depends on the working folder.
                        object.__setattr__(tls, "ca_file", str(ca))
            expect = getattr(step, "expect", None)
            name = expect.json_schema if isinstance(expect, ContentExpect) else None
            if expect is None or name is None:
                continue
            where = (*path, "expect", "json_schema")
            import jsonschema  # only for configs with a schema (probe/assertions.py, _schema)

            try:
                file = resolve_config_path(base_dir, name)
                document = json.loads(file.read_text(encoding="utf-8"))
                # validator_for only takes a mapping; the latest draft judges anything else.
                validator = (
                    jsonschema.validators.validator_for(document)
                    if isinstance(document, dict)
                    else jsonschema.validators.Draft202012Validator
                )
                validator.check_schema(document)
            except ValueError as exc:
                issues.append(ConfigIssue(where, f"cannot use schema {name!r}: {exc}"))
            except OSError as exc:
                issues.append(ConfigIssue(where, f"cannot read schema {name!r}: {exc.strerror}"))
            except jsonschema.SchemaError as exc:
                issues.append(ConfigIssue(where, f"invalid JSON Schema {name!r}: {exc.message}"))
            else:
                expect._schema_document = document
    return issues


def _with_browser(config: Config) -> tuple[Config, list[ConfigIssue]]:
    """The config as it can run here: its browser steps need Playwright and Chromium.

    Found, the Chromium binary is resolved once (the engine never searches PATH).
    Missing, the first browser step is the error, saying what is missing and how to install
    it; or, with `browser.when_missing: skip`, the checks that have browser steps are
    dropped and the config says which and why (`skipped_checks`, `skipped_because`).
    """
    browser_checks = [
        (c_index, s_index)
        for c_index, check in enumerate(config.checks)
        for s_index, step in enumerate(check.steps)
        if isinstance(step, BrowserStep)
    ]
    if not browser_checks:
        return config, []
    executable, missing = what_is_missing(config.browser.executable)
    if not missing:
        # A copy: an unset `browser:` is the model's one shared default instance, and
        # setting the path on it would hand it to every config read after this one.
        found = config.browser.model_copy(update={"executable": executable})
        object.__setattr__(config, "browser", found)
        return config, []
    why = "; ".join(missing)
    first = browser_checks[0]
    where: Path = ("checks", first[0], "steps", first[1], "browser")
    skipped = {config.checks[c_index].name for c_index, _ in browser_checks}
    kept = [check for check in config.checks if check.name not in skipped]
    if config.browser.when_missing == "fail" or not kept:
        skipping = config.browser.when_missing == "skip"
        also = " (every check has one: skipping them would leave none)" if skipping else ""
        return config, [
            ConfigIssue(where, f"browser steps cannot run here: {why}; {INSTALL_HINT}{also}")
        ]
    trimmed = config.model_copy(update={"checks": kept})
    trimmed._skipped_checks = tuple(check.name for check in config.checks if check.name in skipped)
    trimmed._skipped_because = f"{why}; {INSTALL_HINT}"
    return trimmed, []
