"""Rules that span fields (names, references, timing), checked after the schema holds.

A schema library checks one value at a time; these rules relate values across the
document, so they are written out here, each with the path of the value at fault.
"""

from __future__ import annotations

import datetime
import ipaddress
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from graphlib import CycleError, TopologicalSorter
from typing import Any

from yarl import URL

from uptime_probe.config.errors import ConfigIssue, Path
from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.config.steps import BrowserStep, HttpStepBase, JsonExpect, StepBase
from uptime_probe.config.template import Template, TemplateError, template_names_in
from uptime_probe.config.types import HEADER_VALUE_CONTROL, has_header_control
from uptime_probe.config.units import format_duration


def semantic_issues(config: Config) -> list[ConfigIssue]:
    return list(_issues(config))


def _issues(config: Config) -> Iterator[ConfigIssue]:
    for name in sorted(set(config.variables) & set(config.secrets)):
        yield ConfigIssue(("secrets", name), f"'{name}' is defined both as a variable and a secret")
    global_names = frozenset(config.variables) | frozenset(config.secrets)
    known = {**config.variables, **config.secrets}
    for name, value in config.defaults.headers.items():
        yield from _undefined(("defaults", "headers", name), value, global_names)
        yield from _header_from_values(("defaults", "headers", name), value, known)
    seen_checks: dict[str, int] = {}
    for index, check in enumerate(config.checks):
        path: Path = ("checks", index)
        if check.name in seen_checks:
            yield ConfigIssue(
                (*path, "name"),
                f"duplicate check name '{check.name}' (also checks[{seen_checks[check.name]}])",
            )
        seen_checks.setdefault(check.name, index)
        yield from _check_issues(config, check, path, global_names)
    yield from _dependency_issues(config.checks, seen_checks)
    yield from _maintenance_issues(config, seen_checks)


def _check_issues(
    config: Config, check: CheckConfig, path: Path, global_names: frozenset[str]
) -> Iterator[ConfigIssue]:
    if check.timeout_seconds > check.interval_seconds:
        yield ConfigIssue(
            (*path, "timeout"),
            f"timeout {format_duration(check.timeout_seconds)} is longer than "
            f"interval {format_duration(check.interval_seconds)}: runs would overlap",
        )
    retries = check.retry_policy
    if retries.count:
        slot = (retries.count + 1) * check.timeout_seconds + retries.count * retries.delay
        if slot > check.interval_seconds:
            yield ConfigIssue(
                (*path, "retries"),
                f"{retries.count} retries of a {format_duration(check.timeout_seconds)} timeout "
                f"{format_duration(retries.delay)} apart take up to {format_duration(slot)}, "
                f"longer than interval {format_duration(check.interval_seconds)}: "
                "runs would overlap",
            )
    for position, notifier in enumerate(check.notifiers or ()):
        if notifier not in config.notifiers:
            yield ConfigIssue((*path, "notifiers", position), f"unknown notifier '{notifier}'")
    values = {**config.variables, **config.secrets}
    for name, value in check.headers.items():
        yield from _undefined((*path, "headers", name), value, global_names)
        if value is not config.defaults.headers.get(name):  # those are reported once, above
            yield from _header_from_values((*path, "headers", name), value, values)
    known = set(global_names)
    seen_steps: set[str] = set()
    for index, step in enumerate(check.steps):
        step_path: Path = (*path, "steps", index)
        if step.name in seen_steps:
            yield ConfigIssue((*step_path, "name"), f"duplicate step name '{step.name}'")
        seen_steps.add(step.name)
        names = frozenset(known)
        for where, value in step.templates():
            if isinstance(value, Template):
                yield from _undefined((*step_path, *where), value, names)
                continue
            try:
                missing = template_names_in(value) - names
            except TemplateError as exc:
                # Strings inside `json:` are templates too, checked here rather than per field.
                yield ConfigIssue((*step_path, *where), str(exc))
                missing = frozenset()
            for name in sorted(missing):
                yield ConfigIssue((*step_path, *where), _undefined_message(name))
        for where, url, schemes in step.urls():
            yield from _url_issues((*step_path, *where), url, schemes, values)
        yield from _step_value_issues(step, step_path, values)
        if isinstance(step, BrowserStep):
            yield from _browser_step_issues(step, step_path, check.timeout_seconds)
        if step.poll is not None and step.poll.within > check.timeout_seconds:
            yield ConfigIssue(
                (*step_path, "poll", "within"),
                f"poll.within {format_duration(step.poll.within)} is longer than the check's "
                f"timeout {format_duration(check.timeout_seconds)}",
            )
        for variable in step.extract:
            if variable in global_names:
                yield ConfigIssue(
                    (*step_path, "extract", variable),
                    f"'{variable}' is already a variable or secret; extract into another name",
                )
            known.add(variable)


def _dependency_issues(
    checks: Sequence[CheckConfig], index_of: dict[str, int]
) -> Iterator[ConfigIssue]:
    """Unknown dependencies, a check depending on itself, and cycles, each reported once."""
    graph: dict[str, set[str]] = {}
    for index, check in enumerate(checks):
        for position, name in enumerate(check.depends_on):
            where: Path = ("checks", index, "depends_on", position)
            if name == check.name:
                yield ConfigIssue(where, f"check '{name}' cannot depend on itself")
            elif name not in index_of:
                yield ConfigIssue(where, f"unknown check '{name}'")
            else:
                graph.setdefault(check.name, set()).add(name)
    # Each cycle found is reported, then one of its edges set aside to look for the next:
    # at most one round per edge.
    for _ in range(sum(len(needs) for needs in graph.values()) + 1):
        try:
            tuple(TopologicalSorter(graph).static_order())
            return
        except CycleError as exc:
            # Each node of the cycle is a predecessor of the next: reversed, each depends
            # on the next. Start it at the check written first.
            cycle = list(reversed(exc.args[1]))[:-1]
            first = min(range(len(cycle)), key=lambda i: index_of[cycle[i]])
            cycle = cycle[first:] + cycle[:first]
            head, needs = cycle[0], cycle[1 % len(cycle)]
            check = checks[index_of[head]]
            yield ConfigIssue(
                ("checks", index_of[head], "depends_on", check.depends_on.index(needs)),
                f"dependency cycle: {' -> '.join([*cycle, head])}",
            )
            graph[head].discard(needs)


def _maintenance_issues(config: Config, index_of: dict[str, int]) -> Iterator[ConfigIssue]:
    tags = {tag for check in config.checks for tag in check.tags}
    seen: dict[str, int] = {}
    for index, window in enumerate(config.maintenance):
        path: Path = ("maintenance", index)
        if window.name in seen:
            yield ConfigIssue(
                (*path, "name"),
                f"duplicate window name '{window.name}' (also maintenance[{seen[window.name]}])",
            )
        seen.setdefault(window.name, index)
        for position, name in enumerate(window.checks):
            if name not in index_of:
                yield ConfigIssue((*path, "checks", position), f"unknown check '{name}'")
        for position, tag in enumerate(window.tags):
            if tag not in tags:
                yield ConfigIssue((*path, "tags", position), f"no check has the tag '{tag}'")
        if window.start is not None and window.end is not None and window.end <= window.start:
            yield ConfigIssue(
                (*path, "end"),
                f"end {window.end.isoformat()} is not after start {window.start.isoformat()}",
            )


def _undefined(path: Path, template: Template, names: frozenset[str]) -> Iterator[ConfigIssue]:
    for name in sorted(template.names - names):
        yield ConfigIssue(path, _undefined_message(name))


def _undefined_message(name: str) -> str:
    return (
        f"undefined variable '{{{{ {name} }}}}': define it under variables or secrets, "
        "or extract it in an earlier step"
    )


def _step_value_issues(
    step: StepBase, step_path: Path, values: Mapping[str, str]
) -> Iterator[ConfigIssue]:
    """Header values from variables (any kind that sends HTTP headers), and values in a
    `json:` body or JSON assertion (any kind that has them) that JSON cannot hold."""
    key = step.handler
    for header, value in (step.http_headers() or {}).items():
        yield from _header_from_values((*step_path, key, "headers", header), value, values)
    if isinstance(step, HttpStepBase):
        yield from _not_json((*step_path, key, "json"), step.http_request.json_body)
    expect = getattr(step, "expect", None)
    if not isinstance(expect, JsonExpect):
        return
    for position, assertion in enumerate(expect.json_assertions):
        if assertion.operator in ("equals", "not_equals", "contains"):
            where = (*step_path, "expect", "json", position, assertion.operator)
            yield from _not_json(where, assertion.expected)


def _browser_step_issues(
    step: BrowserStep, step_path: Path, timeout: float
) -> Iterator[ConfigIssue]:
    """A `wait_for` that could never run out on its own: the deadline would cut it first."""
    for index, action in enumerate(step.browser.actions):
        within = action.wait_for.within if action.wait_for is not None else None
        if within is not None and within > timeout:
            yield ConfigIssue(
                (*step_path, "browser", "actions", index, "wait_for", "within"),
                f"within {format_duration(within)} is longer than the check's timeout "
                f"{format_duration(timeout)}",
            )


# What a DNS name's labels hold once IDNA-encoded (letters, digits, hyphen), plus the
# underscore that service names (`_dmarc`, Docker's) use and resolvers accept.
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")


def _url_issues(
    path: Path, url: Template, schemes: tuple[str, ...], values: Mapping[str, str]
) -> Iterator[ConfigIssue]:
    """Scheme, host and port of a URL, as far as they are known before any run.

    Fully checked when every placeholder is a variable or a secret; when one is
    extracted at run time, only the literal scheme and a literal authority. Schemes are
    case-insensitive (RFC 3986 §3.1): `HTTP://` is `http://`.
    """
    source = url.source
    wanted = " or ".join(f"{scheme}://" for scheme in schemes)
    if url.names <= set(values):
        rendered = url.render(values)
        if not _has_scheme(rendered, schemes):
            if rendered == source:
                message = f"url must start with {wanted}, got {source!r}"
            else:
                message = f"url renders to {rendered!r}: it must start with {wanted}"
            yield ConfigIssue(path, message)
            return
        problem = _url_problem(rendered)
        if problem is not None:
            shown = repr(source) if rendered == source else f"{source!r} (renders to {rendered!r})"
            yield ConfigIssue(path, f"url {shown} {problem}")
        return
    if source.startswith("{{"):
        return  # scheme and host come from a value extracted at run time
    if not _has_scheme(source, schemes):
        yield ConfigIssue(path, f"url must start with {wanted}, got {source!r}")
        return
    scheme, _, rest = source.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "{{" not in authority:
        problem = _url_problem(f"{scheme}://{authority}/")
        if problem is not None:
            yield ConfigIssue(path, f"url {source!r} {problem}")


def _has_scheme(url: str, schemes: tuple[str, ...]) -> bool:
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in schemes


def _url_problem(url: str) -> str | None:
    """Why a URL with an http(s) scheme cannot be requested, or None."""
    try:
        parsed = URL(url)
    except UnicodeError as exc:  # yarl's IDNA encoding of a non-ASCII host
        return f"has a host that is not a valid DNS name ({_idna_reason(exc)})"
    except ValueError as exc:
        return f"is not a valid URL: {str(exc).splitlines()[0]}"
    host = parsed.raw_host  # as resolved and sent: IDNA-encoded, lower case
    if not host:
        return "has no host"
    return _host_problem(host)


def _idna_reason(exc: UnicodeError) -> str:
    text = str(exc)
    inner = text[text.rfind("(") + 1 : text.rfind(")")] if "(" in text else text
    return inner.removeprefix("UnicodeError: ")


def _host_problem(host: str) -> str | None:
    """Why a host can never be resolved (RFC 1035 §2.3.4 lengths), or None."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    name = host.removesuffix(".")  # a fully qualified name may end with the root's dot
    if len(name) > 253:
        return "has a host name longer than 253 characters"
    for label in name.split("."):
        if not label:
            return f"has a host {host!r} with an empty label (two dots in a row?)"
        if len(label) > 63:
            return f"has a host {host!r} with a label longer than 63 characters"
        if not _LABEL.fullmatch(label):
            return f"has a host {host!r} with a character no host name has"
    return None


def _header_from_values(
    path: Path, template: Template, values: Mapping[str, str]
) -> Iterator[ConfigIssue]:
    """A variable or secret that would put a line break into a header, on every run."""
    for name in sorted(template.names & set(values)):
        if has_header_control(values[name]):
            # Never the value: it may be a secret (a token read with its trailing newline).
            yield ConfigIssue(path, f"'{{{{ {name} }}}}' {HEADER_VALUE_CONTROL}")


def _not_json(path: Path, value: Any) -> Iterator[ConfigIssue]:
    """Values YAML builds that JSON has no form for, each at its own path.

    Refused, not converted: an unquoted `2025-01-01` is a date to YAML, and sending it
    as the ISO text would work for a date but rewrite a timestamp (`2025-01-01 10:00`
    becomes `2025-01-01T10:00:00`, a zone becomes UTC): quoting says what is sent.
    """
    stack: list[tuple[Path, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    yield ConfigIssue(where, _not_a_string_key(key))
                stack.append(((*where, str(key)), child))
        elif isinstance(item, list):
            stack.extend(((*where, index), child) for index, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            yield ConfigIssue(where, f"{item} is not a JSON number; quote it to send text")
        elif not isinstance(item, str | int | float | bool) and item is not None:
            yield ConfigIssue(where, _no_json_form(item))


def _not_a_string_key(key: Any) -> str:
    shown = "null" if key is None else str(key).lower() if isinstance(key, bool) else repr(key)
    return (
        f"key {shown} is not a string to YAML (unquoted yes/no/on/off, null and numbers are "
        "not): quote it to send a JSON object key"
    )


def _no_json_form(item: Any) -> str:
    if isinstance(item, datetime.date):  # datetime is a date too
        kind = "a timestamp" if isinstance(item, datetime.datetime) else "a date"
        return f"YAML reads {item} as {kind}, which JSON has no type for: quote it to send text"
    if isinstance(item, bytes):
        return "binary data (!!binary) has no JSON form: send it as a base64 string"
    if isinstance(item, set | frozenset):
        return "a set (!!set) has no JSON form: use a list"
    return f"{type(item).__name__} has no JSON form"


def maintenance_warnings(config: Config, now: float) -> list[ConfigIssue]:
    """One-off windows already over: inert, so not an error.

    A config must not turn invalid with the passing of time alone: a window left in the
    file after its maintenance would otherwise stop the next restart or reload.
    `uptime-probe validate` prints these; the daemon logs them at each load.
    """
    return [
        ConfigIssue(
            ("maintenance", index, "end"),
            f"window '{window.name}' ended {window.end.isoformat()}: it mutes nothing any "
            "more and can be removed",
        )
        for index, window in enumerate(config.maintenance)
        if window.end is not None and window.end.timestamp() <= now
    ]
