"""Rules that span fields (names, references, timing), checked after the schema holds.

A schema library checks one value at a time; these rules relate values across the
document, so they are written out here, each with the path of the value at fault.
"""

from __future__ import annotations

from collections.abc import Iterator

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


def _check_issues(
    config: Config, check: CheckConfig, path: Path, global_names: frozenset[str]
) -> Iterator[ConfigIssue]:
    if check.timeout_seconds > check.interval_seconds:
        yield ConfigIssue(
            (*path, "timeout"),
            f"timeout {format_duration(check.timeout_seconds)} is longer than "
            f"interval {format_duration(check.interval_seconds)}: runs would overlap",
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
