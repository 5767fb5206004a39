"""Read the PromQL out of the Grafana dashboards, and fill in Grafana's template variables.

Importable without pytest, so the end-to-end test (which evaluates every expression against a
real Prometheus) and the unit tests share one definition of "every query of every dashboard"::

    for uid, title, expr in iter_dashboard_queries(path):
        query = fill_template(expr, {"location": ".*", "check": "chat", ...})

Grafana variable syntaxes handled by ``fill_template`` (see Grafana's "Variable syntax" docs):
``$var``, ``${var}``, ``${var:format}`` and the deprecated ``[[var]]`` / ``[[var:format]]``,
plus the built-in ``$__rate_interval``, ``$__interval``, ``$__range`` (and their ``_ms`` / ``_s``
variants) which default to concrete durations from ``BUILTIN_DEFAULTS``. The value is substituted
as given, whatever the ``:format``: pass the string Grafana would produce (for a multi-value
variable in a regex matcher that is ``.*`` for "All", or ``a|b``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
DASHBOARD_DIR: Final = REPO_ROOT / "grafana" / "dashboards"

BUILTIN_DEFAULTS: Final[Mapping[str, str]] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

# ${name} / ${name:format} / [[name]] / [[name:format]] / $name, in that order of precedence.
VARIABLE_PATTERN: Final = re.compile(
    r"\$\{(?P<braced>\w+)(?::(?P<braced_fmt>[^}]*))?\}"
    r"|\[\[(?P<bracketed>\w+)(?::(?P<bracketed_fmt>[^\]]*))?\]\]"
    r"|\$(?P<plain>\w+)"
)


def dashboard_paths(directory: Path = DASHBOARD_DIR) -> list[Path]:
    """The committed dashboard JSON files, sorted."""
    return sorted(directory.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = json.load(handle)
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in (collapsed) rows, depth first."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def iter_dashboard_queries(
    path: Path | str, *, include_annotations: bool = True
) -> Iterator[tuple[str, str, str]]:
    """Yield (dashboard uid, panel title, expr) for every PromQL target of every panel.

    Annotation queries are PromQL too and run against the same data source, so they are
    yielded as well, with the title ``annotation: <name>``; pass ``include_annotations=False``
    to leave them out. Targets without an ``expr`` (none today) are skipped.
    """
    dashboard = load_dashboard(Path(path))
    uid = str(dashboard["uid"])
    for panel in iter_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr:
                yield uid, str(panel.get("title", "")), str(expr)
    if include_annotations:
        for annotation in dashboard.get("annotations", {}).get("list", []):
            expr = annotation.get("expr")
            if expr:
                yield uid, f"annotation: {annotation.get('name', '')}", str(expr)


def template_variables(path: Path | str) -> dict[str, dict[str, Any]]:
    """The dashboard's template variables by name."""
    dashboard = load_dashboard(Path(path))
    return {var["name"]: var for var in dashboard.get("templating", {}).get("list", [])}


def referenced_variables(expr: str) -> set[str]:
    """Names of every variable ``expr`` refers to, built-ins included."""
    return {
        match.group("braced") or match.group("bracketed") or match.group("plain")
        for match in VARIABLE_PATTERN.finditer(expr)
    }


def fill_template(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables in ``expr`` with concrete values.

    ``values`` maps variable names (without ``$``) to the text to substitute; it may also
    override the built-ins (``{"__range": "30m"}``). A variable with no value raises
    ``KeyError`` naming it, so an undefined variable never reaches Prometheus as ``$x``.
    """
    merged = {**BUILTIN_DEFAULTS, **values}

    def substitute(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("bracketed") or match.group("plain")
        if name not in merged:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return merged[name]

    return VARIABLE_PATTERN.sub(substitute, expr)
