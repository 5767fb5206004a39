"""Rules that span fields (names, references, timing), checked after the schema holds.

A schema library checks one value at a time; these rules relate values across the
document, so they are written out here, each with the path of the value at fault.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from graphlib import CycleError, TopologicalSorter

from uptime_probe.config.errors import ConfigIssue, Path
from uptime_probe.config.model import CheckConfig, Config
from uptime_probe.config.template import Template, TemplateError, template_names_in
from uptime_probe.config.units import format_duration


def semantic_issues(config: Config) -> list[ConfigIssue]:
    return list(_issues(config))


def _issues(config: Config) -> Iterator[ConfigIssue]:
    for name in sorted(set(config.variables) & set(config.secrets)):
        yield ConfigIssue(("secrets", name), f"'{name}' is defined both as a variable and a secret")
    global_names = frozenset(config.variables) | frozenset(config.secrets)
    for name, value in config.defaults.headers.items():
        yield from _undefined(("defaults", "headers", name), value, global_names)
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
    for name, value in check.headers.items():
        yield from _undefined((*path, "headers", name), value, global_names)
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
            yield from _url_scheme((*step_path, *where), url, schemes, config)
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


def _url_scheme(
    path: Path, url: Template, schemes: tuple[str, ...], config: Config
) -> Iterator[ConfigIssue]:
    """Checkable only when the scheme does not come from an extracted value."""
    prefixes = tuple(f"{scheme}://" for scheme in schemes)
    wanted = " or ".join(prefixes)
    if url.source.startswith(prefixes):
        return
    if not url.source.startswith("{{"):
        yield ConfigIssue(path, f"url must start with {wanted}, got {url.source!r}")
        return
    known = {**config.variables, **config.secrets}
    if not url.names <= set(known):
        return
    rendered = url.render(known)
    if not rendered.startswith(prefixes):
        yield ConfigIssue(path, f"url renders to {rendered!r}: it must start with {wanted}")


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
