"""Generate the uptime-probe Grafana dashboards.

The committed JSON under ``grafana/dashboards/`` is the output of this script; a test fails when
the two drift apart. Edit this file, then run::

    python grafana/generate.py            # rewrite the JSON files
    python grafana/generate.py --check    # exit 1 if the committed JSON is stale

Standard library only, so it runs anywhere Python does. Why generate rather than hand-edit JSON:
every panel needs the same data source reference, unit, description and layout rules, and a
hand-edited 2,000-line JSON file drifts. Here each rule lives once (``DATASOURCE``, ``_panel``,
``_layout``) and the queries read as PromQL, not as escaped strings.

Conventions every dashboard follows (the tests in ``tests/grafana`` enforce them):

* a ``datasource`` variable of type ``datasource``; every panel, target and annotation points at
  ``${datasource}``, never at a fixed data source uid;
* stable dashboard uids (``uptime-probe-overview``, ``-check``, ``-self``) so links survive
  re-imports; ``tags: ["uptime-probe"]``;
* every panel has a description written for someone who has never seen the product, and a unit;
* state is encoded as one number per check and location: 0 up, 1 degraded, 2 down
  (see ``state_code``), so colours and tables are consistent everywhere;
* per-check series are aggregated ``by (check, location)`` (max, or min where the worst value is
  the low one), never summed: an HA pair of daemons exports the same check and location twice,
  with different ``instance`` labels, and must show as one (as in the alerting rules).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

JSON = dict[str, Any]

GRAFANA_DIR: Final = Path(__file__).resolve().parent
DASHBOARD_DIR: Final = GRAFANA_DIR / "dashboards"

SCHEMA_VERSION: Final = 39
TAGS: Final = ["uptime-probe"]
DATASOURCE: Final[JSON] = {"type": "prometheus", "uid": "${datasource}"}
GRID_WIDTH: Final = 24

OVERVIEW_UID: Final = "uptime-probe-overview"
CHECK_UID: Final = "uptime-probe-check"
SELF_UID: Final = "uptime-probe-self"

# Recording rules written in prometheus/rules/uptime-probe.rules.yml: failed runs / runs.
ERROR_RATIO: Final = "check:uptime_probe_check_errors:ratio_rate{window}"
# Multiwindow burn-rate thresholds from the SRE workbook: 14.4x burns 2% of a 30-day budget in
# an hour (page), 6x burns 5% in six hours (page), 1x spends exactly the budget over 30 days.
FAST_BURN: Final = 14.4
SLOW_BURN: Final = 6.0
# Histogram quantiles over sparse synthetic runs (one every 30-60 s) need several observations
# per window, so latency panels never draw with a step shorter than this.
LATENCY_MIN_INTERVAL: Final = "5m"

FIRING_ALERTS: Final = 'ALERTS{alertname=~"UptimeProbe.*", alertstate="firing"}'

# ---------------------------------------------------------------------------------------------
# Colours and value mappings shared by every dashboard.

GREEN: Final = "green"
ORANGE: Final = "orange"
RED: Final = "red"
BLUE: Final = "blue"
GREY: Final = "text"

STATE_MAPPINGS: Final[list[JSON]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "UP", "color": GREEN, "index": 0},
            "1": {"text": "DEGRADED", "color": ORANGE, "index": 1},
            "2": {"text": "DOWN", "color": RED, "index": 2},
        },
    }
]
OK_FAILED_MAPPINGS: Final[list[JSON]] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "FAILED", "color": RED, "index": 0},
            "1": {"text": "OK", "color": GREEN, "index": 1},
        },
    }
]
HTTP_STATUS_MAPPINGS: Final[list[JSON]] = [
    {"type": "value", "options": {"0": {"text": "no response", "color": GREY, "index": 0}}},
    {"type": "range", "options": {"from": 100, "to": 199, "result": {"color": BLUE, "index": 1}}},
    {"type": "range", "options": {"from": 200, "to": 299, "result": {"color": GREEN, "index": 2}}},
    {"type": "range", "options": {"from": 300, "to": 399, "result": {"color": BLUE, "index": 3}}},
    {"type": "range", "options": {"from": 400, "to": 499, "result": {"color": ORANGE, "index": 4}}},
    {"type": "range", "options": {"from": 500, "to": 599, "result": {"color": RED, "index": 5}}},
]


def thresholds(base: str, *steps: tuple[float, str]) -> JSON:
    """Absolute thresholds: ``base`` below the first step, then each (value, colour)."""
    return {
        "mode": "absolute",
        "steps": [{"color": base, "value": None}]
        + [{"color": colour, "value": value} for value, colour in steps],
    }


STATE_THRESHOLDS: Final = thresholds(GREEN, (1, ORANGE), (2, RED))
BUDGET_THRESHOLDS: Final = thresholds(RED, (0, ORANGE), (0.25, GREEN))
BURN_THRESHOLDS: Final = thresholds(GREEN, (1, ORANGE), (SLOW_BURN, RED))
CERT_DAYS_THRESHOLDS: Final = thresholds(RED, (7, ORANGE), (21, GREEN))
NEUTRAL_THRESHOLDS: Final = thresholds(GREEN)


# ---------------------------------------------------------------------------------------------
# PromQL builders. ``flt`` is the label-matcher list of the dashboard (without braces).


def state_code(flt: str, by: str) -> str:
    """One number per group from the ``state`` stateset: 0 up, 1 degraded, 2 down.

    The stateset exports one series per state with value 1 for the active one; weighting them
    0/1/2 and taking the max gives a single value that value mappings can colour.
    """
    return (
        f"max by ({by}) (\n"
        f'  0 * uptime_probe_check_state{{{flt}, state="up"}}\n'
        f'  or uptime_probe_check_state{{{flt}, state="degraded"}}\n'
        f'  or 2 * uptime_probe_check_state{{{flt}, state="down"}}\n'
        f")"
    )


def error_ratio(window: str, flt: str, by: str) -> str:
    """Failed runs / runs over ``window`` from the recording rule, one series per ``by`` group.

    The rule divides two sums of rates, so a check with no ``failures_total`` series (one that
    never failed, if the daemon creates the counter with its first reason) has no ratio at all.
    Such a check is shown with a ratio of 0 rather than left off: the fallback is 0 for every
    check that declares an objective.
    """
    rule = ERROR_RATIO.format(window=window)
    return f"(max by ({by}) ({rule}{{{flt}}}) or 0 * {objective(flt, by)})"


def availability_30d(flt: str, by: str) -> str:
    """Passed runs / runs over 30 days. Rate extrapolation can push the recorded error ratio a
    hair above 1 during a total outage; availability is clamped at 0 (the budget is not)."""
    return f"clamp_min(1 - {error_ratio('30d', flt, by)}, 0)"


def objective(flt: str, by: str) -> str:
    return f"max by ({by}) (uptime_probe_check_slo_objective{{{flt}}})"


def burn_rate(window: str, flt: str, by: str) -> str:
    """Error ratio as a multiple of the allowed error ratio (1 - objective)."""
    return f"{error_ratio(window, flt, by)}\n/ on ({by}) (1 - {objective(flt, by)})"


def budget_left(flt: str, by: str) -> str:
    """Share of the 30-day error budget still unspent: 1 - burn rate over 30 days."""
    return f"1 - (\n  {error_ratio('30d', flt, by)}\n  / on ({by}) (1 - {objective(flt, by)})\n)"


def quantile(q: float, metric: str, flt: str, by: str, window: str = "$__rate_interval") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{flt}}}[{window}])))"


def increase(metric: str, flt: str, by: str, window: str = "$__rate_interval") -> str:
    return f"sum by ({by}) (increase({metric}{{{flt}}}[{window}]))"


def availability(flt: str, by: str, window: str) -> str:
    """Passed runs / runs over ``window``, computed from the raw counters.

    A check that never failed has no ``failures_total`` series yet (the counter is created with
    its first ``reason``), so missing failures count as 0 rather than hiding the check. The two
    counters are extrapolated separately, so the ratio is clamped at 0.
    """
    runs = increase("uptime_probe_check_runs_total", flt, by, window)
    failures = increase("uptime_probe_check_failures_total", flt, by, window)
    return f"clamp_min(\n  1 - ({failures} or 0 * {runs})\n  / on ({by}) {runs},\n  0\n)"


def failed_runs(flt: str, by: str) -> str:
    """Failed runs over the whole dashboard range, only the groups that failed at least once."""
    return f"round({increase('uptime_probe_check_failures_total', flt, by, '$__range')}) > 0"


# ---------------------------------------------------------------------------------------------
# Panels. Builders return plain dicts; ``_layout`` assigns ids and grid positions.


@dataclass(frozen=True)
class Target:
    expr: str
    legend: str = "__auto"
    instant: bool = False
    table: bool = False


def _targets(targets: Sequence[Target]) -> list[JSON]:
    out: list[JSON] = []
    for index, target in enumerate(targets):
        out.append(
            {
                "datasource": DATASOURCE,
                "editorMode": "code",
                "expr": target.expr,
                "format": "table" if target.table else "time_series",
                "instant": target.instant,
                "legendFormat": target.legend,
                "range": not target.instant,
                "refId": chr(ord("A") + index),
            }
        )
    return out


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    w: int,
    h: int,
    unit: str,
    options: JSON,
    custom: JSON | None = None,
    defaults: JSON | None = None,
    overrides: Sequence[JSON] = (),
    transformations: Sequence[JSON] = (),
    extra: JSON | None = None,
) -> JSON:
    field_defaults: JSON = {
        "color": {"mode": "thresholds"},
        "mappings": [],
        "thresholds": NEUTRAL_THRESHOLDS,
        "unit": unit,
    }
    if custom is not None:
        field_defaults["custom"] = custom
    field_defaults.update(defaults or {})
    panel: JSON = {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": field_defaults, "overrides": list(overrides)},
        "gridPos": {"h": h, "w": w, "x": 0, "y": 0},
        "id": 0,
        "options": options,
        "targets": _targets(targets),
        "title": title,
        "type": kind,
    }
    if transformations:
        panel["transformations"] = list(transformations)
    panel.update(extra or {})
    return panel


LEGEND_TABLE: Final[JSON] = {
    "calcs": ["mean", "max", "lastNotNull"],
    "displayMode": "table",
    "placement": "bottom",
    "showLegend": True,
}
LEGEND_LIST: Final[JSON] = {
    "calcs": [],
    "displayMode": "list",
    "placement": "bottom",
    "showLegend": True,
}


def timeseries(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    w: int = 12,
    h: int = 8,
    stacked: bool = False,
    bars: bool = False,
    min_interval: str | None = None,
    legend: JSON = LEGEND_TABLE,
    threshold_lines: JSON | None = None,
    defaults: JSON | None = None,
    overrides: Sequence[JSON] = (),
    extra: JSON | None = None,
) -> JSON:
    custom: JSON = {
        "axisPlacement": "auto",
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else (40 if stacked else 10),
        "lineInterpolation": "linear",
        "lineWidth": 1,
        "pointSize": 4,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"group": "A", "mode": "normal" if stacked else "none"},
        "thresholdsStyle": {"mode": "dashed" if threshold_lines else "off"},
    }
    field_defaults: JSON = {"color": {"mode": "palette-classic"}, "min": 0}
    if threshold_lines is not None:
        field_defaults["thresholds"] = threshold_lines
    field_defaults.update(defaults or {})
    field_defaults = {key: value for key, value in field_defaults.items() if value is not None}
    panel_extra: JSON = dict(extra or {})
    if min_interval is not None:
        panel_extra["interval"] = min_interval
    return _panel(
        "timeseries",
        title,
        description,
        targets,
        w=w,
        h=h,
        unit=unit,
        custom=custom,
        defaults=field_defaults,
        options={"legend": legend, "tooltip": {"mode": "multi", "sort": "desc"}},
        overrides=overrides,
        extra=panel_extra,
    )


def stat(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    w: int = 4,
    h: int = 4,
    mappings: Sequence[JSON] = (),
    steps: JSON = NEUTRAL_THRESHOLDS,
    decimals: int | None = None,
    color_mode: str = "background",
    overrides: Sequence[JSON] = (),
    links: Sequence[JSON] = (),
) -> JSON:
    defaults: JSON = {"mappings": list(mappings), "thresholds": steps}
    if decimals is not None:
        defaults["decimals"] = decimals
    if links:
        defaults["links"] = list(links)
    return _panel(
        "stat",
        title,
        description,
        targets,
        w=w,
        h=h,
        unit=unit,
        defaults=defaults,
        options={
            "colorMode": color_mode,
            "graphMode": "none",
            "justifyMode": "auto",
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "value_and_name",
            "wideLayout": True,
        },
        overrides=overrides,
    )


def table(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    w: int = 12,
    h: int = 8,
    mappings: Sequence[JSON] = (),
    steps: JSON = NEUTRAL_THRESHOLDS,
    cell: str = "auto",
    overrides: Sequence[JSON] = (),
    transformations: Sequence[JSON] = (),
    sort_by: str | None = None,
    descending: bool = True,
    links: Sequence[JSON] = (),
) -> JSON:
    defaults: JSON = {"mappings": list(mappings), "thresholds": steps}
    if links:
        defaults["links"] = list(links)
    options: JSON = {
        "cellHeight": "sm",
        "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
        "showHeader": True,
    }
    if sort_by is not None:
        options["sortBy"] = [{"desc": descending, "displayName": sort_by}]
    return _panel(
        "table",
        title,
        description,
        targets,
        w=w,
        h=h,
        unit=unit,
        custom={"align": "auto", "cellOptions": {"type": cell}, "filterable": True},
        defaults=defaults,
        options=options,
        overrides=overrides,
        transformations=transformations,
    )


def state_timeline(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str = "none",
    w: int = 24,
    h: int = 8,
    mappings: Sequence[JSON] = STATE_MAPPINGS,
    steps: JSON = STATE_THRESHOLDS,
    links: Sequence[JSON] = (),
) -> JSON:
    defaults: JSON = {"mappings": list(mappings), "thresholds": steps}
    if links:
        defaults["links"] = list(links)
    return _panel(
        "state-timeline",
        title,
        description,
        targets,
        w=w,
        h=h,
        unit=unit,
        custom={
            "fillOpacity": 80,
            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
            "lineWidth": 0,
        },
        defaults=defaults,
        options={
            "alignValue": "center",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
            "mergeValues": True,
            "rowHeight": 0.85,
            "showValue": "auto",
            "tooltip": {"mode": "single", "sort": "none"},
        },
    )


def bargauge(
    title: str,
    description: str,
    targets: Sequence[Target],
    *,
    unit: str,
    w: int = 12,
    h: int = 8,
    steps: JSON = NEUTRAL_THRESHOLDS,
    minimum: float = 0,
    maximum: float = 1,
    decimals: int | None = None,
) -> JSON:
    defaults: JSON = {"thresholds": steps, "min": minimum, "max": maximum}
    if decimals is not None:
        defaults["decimals"] = decimals
    return _panel(
        "bargauge",
        title,
        description,
        targets,
        w=w,
        h=h,
        unit=unit,
        defaults=defaults,
        options={
            "displayMode": "gradient",
            "maxVizHeight": 300,
            "minVizHeight": 16,
            "minVizWidth": 8,
            "namePlacement": "left",
            "orientation": "horizontal",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showUnfilled": True,
            "sizing": "auto",
            "valueMode": "color",
        },
    )


def by_name(name: str, **properties: Any) -> JSON:
    """Field override matched by display name; ``display_name`` renames the column."""
    props = []
    for key, value in properties.items():
        prop_id = {
            "display_name": "displayName",
            "cell": "custom.cellOptions",
            "width": "custom.width",
            "line_style": "custom.lineStyle",
        }.get(key, key)
        if key == "cell":
            value = {"type": value}
        props.append({"id": prop_id, "value": value})
    return {"matcher": {"id": "byName", "options": name}, "properties": props}


def by_regexp(pattern: str, **properties: Any) -> JSON:
    override = by_name(pattern, **properties)
    override["matcher"] = {"id": "byRegexp", "options": pattern}
    return override


MERGE: Final[JSON] = {"id": "merge", "options": {}}


def organize(*, hide: Iterable[str] = (), order: Sequence[str] = ()) -> JSON:
    return {
        "id": "organize",
        "options": {
            "excludeByName": {name: True for name in hide},
            "indexByName": {name: index for index, name in enumerate(order)},
            "renameByName": {},
        },
    }


def matrix(row_field: str, column_field: str) -> JSON:
    """Turn an instant table (one row per series) into a grid ``row_field`` x ``column_field``."""
    return {
        "id": "groupingToMatrix",
        "options": {"columnField": column_field, "rowField": row_field, "valueField": "Value"},
    }


def check_link(title: str, check: str, location: str) -> JSON:
    """Data link to the check dashboard, carrying data source, time range and labels."""
    return {
        "title": title,
        "url": (
            f"/d/{CHECK_UID}/uptime-probe-check?var-check={check}&var-location={location}"
            "&${datasource:queryparam}&${__url_time_range}"
        ),
    }


LINK_FROM_FIELDS: Final = check_link(
    "Open check ${__data.fields.check}", "${__data.fields.check}", "${__data.fields.location}"
)
LINK_FROM_SERIES: Final = check_link(
    "Open check ${__field.labels.check}", "${__field.labels.check}", "${__field.labels.location}"
)


# ---------------------------------------------------------------------------------------------
# Dashboards: rows of panels, laid out left to right and wrapped at the grid width.


@dataclass
class Row:
    title: str
    panels: list[JSON] = field(default_factory=list)
    collapsed: bool = False


def _layout(rows: Sequence[Row]) -> list[JSON]:
    """Assign unique ids and grid positions. Panels of a collapsed row nest inside it."""
    out: list[JSON] = []
    next_id = 1
    y = 0
    for row in rows:
        row_panel: JSON = {
            "collapsed": row.collapsed,
            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
            "id": next_id,
            "panels": [],
            "title": row.title,
            "type": "row",
        }
        next_id += 1
        y += 1
        out.append(row_panel)
        x = 0
        line_height = 0
        first_y = y
        placed: list[JSON] = []
        for panel in row.panels:
            w, h = panel["gridPos"]["w"], panel["gridPos"]["h"]
            if x + w > GRID_WIDTH:
                y += line_height
                x, line_height = 0, 0
            panel["gridPos"] = {"h": h, "w": w, "x": x, "y": y}
            panel["id"] = next_id
            next_id += 1
            x += w
            line_height = max(line_height, h)
            placed.append(panel)
        y += line_height
        if row.collapsed:
            # Nested panels keep the positions they take when the row is expanded; the rows
            # below start right under the folded row.
            row_panel["panels"] = placed
            y = first_y
        else:
            out.extend(placed)
    return out


def datasource_variable() -> JSON:
    return {
        "current": {},
        "hide": 0,
        "includeAll": False,
        "label": "Data source",
        "multi": False,
        "name": "datasource",
        "options": [],
        "query": "prometheus",
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
        "type": "datasource",
    }


def query_variable(
    name: str,
    label: str,
    query: str,
    *,
    multi: bool,
    description: str,
    hide: int = 0,
) -> JSON:
    variable: JSON = {
        "current": {},
        "datasource": DATASOURCE,
        "definition": query,
        "description": description,
        "hide": hide,
        "includeAll": multi,
        "label": label,
        "multi": multi,
        "name": name,
        "options": [],
        "query": query,
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
        "type": "query",
    }
    if multi:
        # Selecting "All" sends the regex .* instead of a long alternation of every value.
        variable["allValue"] = ".*"
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    return variable


def alert_annotation(name: str, expr: str) -> JSON:
    return {
        "datasource": DATASOURCE,
        "enable": True,
        "expr": expr,
        "hide": False,
        "iconColor": RED,
        "name": name,
        "step": "1m",
        "tagKeys": "alertname,severity",
        "textFormat": "{{check}} {{location}}",
        "titleFormat": "{{alertname}}",
        "useValueForTime": False,
    }


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    variables: Sequence[JSON],
    rows: Sequence[Row],
    annotations: Sequence[JSON] = (),
    time_from: str = "now-6h",
) -> JSON:
    return {
        "annotations": {"list": list(annotations)},
        "description": description,
        "editable": True,
        "fiscalYearStartMonth": 0,
        "graphTooltip": 1,
        "id": None,
        "links": [
            {
                "asDropdown": True,
                "icon": "external link",
                "includeVars": False,
                "keepTime": True,
                "tags": TAGS,
                "targetBlank": False,
                "title": "uptime-probe dashboards",
                "type": "dashboards",
            }
        ],
        "panels": _layout(rows),
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": TAGS,
        "templating": {"list": [datasource_variable(), *variables]},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "browser",
        "title": title,
        "uid": uid,
        "version": 1,
        "weekStart": "",
    }


# ---------------------------------------------------------------------------------------------
# Overview: every check at a glance.

STATE_HELP: Final = (
    "UP: the last runs passed. DEGRADED: the journey worked but was slow or partly failing. "
    "DOWN: the journey failed (an error, a timeout, or a response that looked fine but had the "
    "wrong content, such as an empty history list)."
)
REASON_HELP: Final = (
    "Each failed run has one reason. Transport reasons (timeout, connect_refused, http_5xx, "
    "...) mean the service could not be reached or answered with an error. Content reasons "
    "(empty_history, task_stuck, ...) mean the service answered 'successfully' but the answer "
    "was wrong, which a plain status-code check would call healthy."
)


def overview() -> JSON:
    loc = 'location=~"$location"'
    by = "check, location"
    location_variable = query_variable(
        "location",
        "Location",
        "label_values(uptime_probe_check_success, location)",
        multi=True,
        description="Where the probes run from. Filters every panel.",
    )
    now = Row(
        "Now",
        [
            stat(
                "Checks by state",
                "How many check x location pairs are up, degraded or down right now. " + STATE_HELP,
                [
                    # Counted from the state code, not summed: an HA pair of daemons exports
                    # the same check and location twice (different instance).
                    Target(f"count({state_code(loc, by)} == {code}) or vector(0)", name)
                    for code, name in ((0, "Up"), (1, "Degraded"), (2, "Down"))
                ],
                unit="none",
                w=8,
                h=5,
                decimals=0,
                color_mode="value",
                overrides=[
                    by_name("Up", color={"mode": "fixed", "fixedColor": GREEN}),
                    by_name("Degraded", color={"mode": "fixed", "fixedColor": ORANGE}),
                    by_name("Down", color={"mode": "fixed", "fixedColor": RED}),
                ],
            ),
            stat(
                "Failing on the last run",
                "Check x location pairs whose most recent run failed. It reacts faster than the "
                "state, which waits for several failures in a row before saying DOWN.",
                [
                    Target(
                        f"count(min by ({by}) (uptime_probe_check_success{{{loc}}}) == 0)"
                        " or vector(0)",
                        "Failing",
                    )
                ],
                unit="none",
                w=4,
                h=5,
                decimals=0,
                steps=thresholds(GREEN, (1, RED)),
            ),
            stat(
                "Firing alerts",
                "uptime-probe alerts firing now in Prometheus (all locations). The table on "
                "the right lists them.",
                [Target(f"count({FIRING_ALERTS}) or vector(0)", "Firing")],
                unit="none",
                w=4,
                h=5,
                decimals=0,
                steps=thresholds(GREEN, (1, RED)),
            ),
            table(
                "Firing alerts",
                "Every uptime-probe alert firing now, with its labels. Alerts about the daemon "
                "itself (not running, config reload failed, schedule lag) have no check.",
                [Target(FIRING_ALERTS, instant=True, table=True)],
                unit="none",
                w=8,
                h=5,
                transformations=[
                    organize(
                        hide=["Time", "Value", "__name__", "alertstate", "job", "instance"],
                        order=["alertname", "severity", "check", "location"],
                    )
                ],
            ),
            table(
                "State by check and location",
                "One row per check, one column per location, coloured by the current state. "
                + STATE_HELP
                + " Click a cell to open the check.",
                [Target(state_code(loc, by), instant=True, table=True)],
                unit="none",
                w=12,
                h=9,
                mappings=STATE_MAPPINGS,
                steps=STATE_THRESHOLDS,
                cell="color-background",
                transformations=[matrix("check", "location")],
                overrides=[by_name("check\\location", display_name="check", cell="auto")],
            ),
            table(
                "Last failure per check",
                "The reason and step of the most recent failed run of each check, even if it "
                "has recovered since. " + REASON_HELP,
                [
                    Target(
                        f"max by (check, location, reason, step) "
                        f"(uptime_probe_check_last_failure_info{{{loc}}})",
                        instant=True,
                        table=True,
                    )
                ],
                unit="none",
                w=12,
                h=9,
                transformations=[
                    organize(hide=["Time", "Value"], order=["check", "location", "step", "reason"])
                ],
                links=[LINK_FROM_FIELDS],
            ),
            state_timeline(
                "State over time",
                "The state of every check at each location over the selected time range. "
                + STATE_HELP,
                [Target(state_code(loc, by), "{{check}} @ {{location}}")],
                h=9,
                links=[LINK_FROM_SERIES],
            ),
        ],
    )
    slo = Row(
        "Service level (30-day window)",
        [
            table(
                "Availability and error budget (30 days)",
                "For each check: its objective (share of runs that must pass), the share that "
                "passed over the last 30 days, and how much of the allowed failures (the error "
                "budget) is left. Below 0% the objective is missed. Computed from the "
                "recording rule check:uptime_probe_check_errors:ratio_rate30d.",
                [
                    Target(objective(loc, by), instant=True, table=True),
                    Target(availability_30d(loc, by), instant=True, table=True),
                    Target(budget_left(loc, by), instant=True, table=True),
                ],
                unit="percentunit",
                w=12,
                h=9,
                transformations=[MERGE, organize(hide=["Time"])],
                overrides=[
                    by_name("Value #A", display_name="objective", decimals=2),
                    by_name("Value #B", display_name="availability (30d)", decimals=3),
                    by_name(
                        "Value #C",
                        display_name="budget left",
                        decimals=1,
                        thresholds=BUDGET_THRESHOLDS,
                        cell="color-background",
                    ),
                ],
                sort_by="budget left",
                descending=False,
                links=[LINK_FROM_FIELDS],
            ),
            bargauge(
                "Error budget left (30 days)",
                "How much of each check's 30-day error budget is unspent. 100%: no failures. "
                "0%: exactly as many failures as the objective allows. Negative: objective "
                "missed.",
                [Target(budget_left(loc, by), "{{check}} @ {{location}}")],
                unit="percentunit",
                w=12,
                h=9,
                steps=BUDGET_THRESHOLDS,
                decimals=1,
            ),
            table(
                "Burn rate now (1h and 6h)",
                "How fast each check spends its error budget, as a multiple of the sustainable "
                f"rate: 1x spends the whole budget in exactly 30 days. Above {FAST_BURN}x over "
                f"1h or {SLOW_BURN}x over 6h pages someone (UptimeProbeErrorBudgetBurn).",
                [
                    Target(burn_rate("1h", loc, by), instant=True, table=True),
                    Target(burn_rate("6h", loc, by), instant=True, table=True),
                ],
                unit="suffix:x",
                w=12,
                h=8,
                transformations=[MERGE, organize(hide=["Time"])],
                overrides=[
                    by_name(
                        "Value #A",
                        display_name="burn rate 1h",
                        decimals=1,
                        thresholds=thresholds(GREEN, (1, ORANGE), (FAST_BURN, RED)),
                        cell="color-text",
                    ),
                    by_name(
                        "Value #B",
                        display_name="burn rate 6h",
                        decimals=1,
                        thresholds=BURN_THRESHOLDS,
                        cell="color-text",
                    ),
                ],
                sort_by="burn rate 1h",
                links=[LINK_FROM_FIELDS],
            ),
            timeseries(
                "Burn rate over time (1h window)",
                "Budget burn rate of each check over the previous hour, as a multiple of the "
                f"sustainable rate. Dashed lines: 1x (sustainable) and {SLOW_BURN}x; the page "
                f"threshold for the 1h window is {FAST_BURN}x.",
                [Target(burn_rate("1h", loc, by), "{{check}} @ {{location}}")],
                unit="suffix:x",
                w=12,
                h=8,
                threshold_lines=BURN_THRESHOLDS,
                defaults={"decimals": 1},
            ),
        ],
    )
    failures = Row(
        "Failures",
        [
            timeseries(
                "Failures by reason",
                "Failed runs per interval, stacked by reason, across the selected locations. "
                + REASON_HELP,
                [
                    Target(
                        increase("uptime_probe_check_failures_total", loc, "reason"), "{{reason}}"
                    )
                ],
                unit="short",
                w=12,
                h=9,
                stacked=True,
                bars=True,
                defaults={"decimals": 0},
            ),
            table(
                "Failures by check and reason (selected range)",
                "How many runs of each check failed, and why, over the whole selected time "
                "range. " + REASON_HELP,
                [Target(failed_runs(loc, "check, location, reason"), instant=True, table=True)],
                unit="short",
                w=12,
                h=9,
                transformations=[organize(hide=["Time"])],
                overrides=[by_name("Value", display_name="failed runs")],
                sort_by="failed runs",
                links=[LINK_FROM_FIELDS],
            ),
            timeseries(
                "Degraded runs by check",
                "Runs that passed but were slow or partly failing (DEGRADED), per interval.",
                [
                    Target(
                        increase("uptime_probe_check_degraded_total", loc, by),
                        "{{check}} @ {{location}}",
                    )
                ],
                unit="short",
                w=24,
                h=7,
                stacked=True,
                bars=True,
                defaults={"decimals": 0},
            ),
        ],
    )
    latency = Row(
        "Journey latency",
        [
            timeseries(
                "Journey latency by check (p50, p95, p99)",
                "How long a whole journey (all its steps) took. p50: half of the runs were "
                "faster; p95 and p99: the slow tail (dashed). Computed from the duration "
                f"histogram over windows of at least {LATENCY_MIN_INTERVAL}, because checks run "
                "only every few tens of seconds.",
                [
                    Target(
                        quantile(q, "uptime_probe_check_duration_seconds", loc, "check"),
                        f"{{{{check}}}} p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
                w=14,
                h=9,
                min_interval=LATENCY_MIN_INTERVAL,
                overrides=[by_regexp(".* p9[59]$", line_style={"fill": "dash", "dash": [10, 10]})],
            ),
            table(
                "Journey latency by check (selected range)",
                "p50, p95 and p99 of the journey duration of each check over the whole "
                "selected range.",
                [
                    Target(
                        quantile(
                            q, "uptime_probe_check_duration_seconds", loc, "check", "$__range"
                        ),
                        instant=True,
                        table=True,
                    )
                    for q in (0.5, 0.95, 0.99)
                ],
                unit="s",
                w=10,
                h=9,
                transformations=[MERGE, organize(hide=["Time"])],
                overrides=[
                    by_name("Value #A", display_name="p50"),
                    by_name("Value #B", display_name="p95"),
                    by_name("Value #C", display_name="p99"),
                ],
                sort_by="p95",
            ),
        ],
    )
    per_location = Row(
        "Per location",
        [
            table(
                "Availability by check and location (selected range)",
                "Share of runs that passed over the selected time range, one row per check and "
                "one column per location. A problem in one column only points at that location "
                "(its network, its DNS) rather than at the service.",
                [Target(availability(loc, by, "$__range"), instant=True, table=True)],
                unit="percentunit",
                w=12,
                h=9,
                steps=thresholds(RED, (0.95, ORANGE), (0.99, GREEN)),
                cell="color-text",
                transformations=[matrix("check", "location")],
                overrides=[by_name("check\\location", display_name="check", cell="auto")],
            ),
            timeseries(
                "Success ratio by location",
                "Share of runs that passed at each location, all selected checks together.",
                [Target(availability(loc, "location", "$__rate_interval"), "{{location}}")],
                unit="percentunit",
                w=12,
                h=9,
                defaults={"max": 1},
                min_interval="1m",
            ),
            timeseries(
                "Journey latency p95 by location",
                "p95 of the journey duration at each location, all selected checks together.",
                [
                    Target(
                        quantile(0.95, "uptime_probe_check_duration_seconds", loc, "location"),
                        "{{location}}",
                    )
                ],
                unit="s",
                w=24,
                h=8,
                min_interval=LATENCY_MIN_INTERVAL,
            ),
        ],
        collapsed=True,
    )
    return dashboard(
        uid=OVERVIEW_UID,
        title="uptime-probe / Overview",
        description="Every scripted journey at a glance: state, service level, failures by "
        "reason, latency.",
        variables=[location_variable],
        rows=[now, slo, failures, latency, per_location],
        annotations=[alert_annotation("Firing uptime-probe alerts", FIRING_ALERTS)],
    )


# ---------------------------------------------------------------------------------------------
# Check: one journey in depth.


def check_dashboard() -> JSON:
    flt = 'check="$check", location=~"$location"'
    steps_flt = f'{flt}, step=~"$step"'
    variables = [
        query_variable(
            "location",
            "Location",
            "label_values(uptime_probe_check_success, location)",
            multi=True,
            description="Where the probes run from.",
        ),
        query_variable(
            "check",
            "Check",
            'label_values(uptime_probe_check_success{location=~"$location"}, check)',
            multi=False,
            description="The journey to show.",
        ),
        query_variable(
            "step",
            "Step",
            'label_values(uptime_probe_step_duration_seconds_count{check="$check", '
            'location=~"$location"}, step)',
            multi=True,
            description="Steps of the journey; the phase panels repeat once per step.",
        ),
    ]
    status = Row(
        "Status",
        [
            stat(
                "State",
                "Current state at each location. " + STATE_HELP,
                [Target(state_code(flt, "location"), "{{location}}")],
                unit="none",
                mappings=STATE_MAPPINGS,
                steps=STATE_THRESHOLDS,
            ),
            stat(
                "Last run",
                "Did the most recent run pass, at each location? With two daemons per location "
                "(HA) it shows FAILED if either one failed.",
                [
                    Target(
                        f"min by (location) (uptime_probe_check_success{{{flt}}})", "{{location}}"
                    )
                ],
                unit="none",
                mappings=OK_FAILED_MAPPINGS,
                steps=thresholds(RED, (1, GREEN)),
            ),
            stat(
                "Last success",
                "When a run last passed. Long ago while the check is DOWN "
                "shows how long the outage has lasted.",
                [
                    Target(
                        f"max by (location) "
                        f"(uptime_probe_check_last_success_timestamp_seconds{{{flt}}}) * 1000",
                        "{{location}}",
                    )
                ],
                unit="dateTimeFromNow",
                color_mode="none",
            ),
            stat(
                "Last run time",
                "When the check last ran. Older than a few intervals means "
                "the daemon is not running it (see the Daemon health dashboard).",
                [
                    Target(
                        f"max by (location) "
                        f"(uptime_probe_check_last_run_timestamp_seconds{{{flt}}}) * 1000",
                        "{{location}}",
                    )
                ],
                unit="dateTimeFromNow",
                color_mode="none",
            ),
            stat(
                "Interval",
                "How often the check runs: the time between two runs at one location.",
                [Target(f"max(uptime_probe_check_interval_seconds{{{flt}}})", "interval")],
                unit="s",
                color_mode="none",
            ),
            stat(
                "Objective",
                "Share of runs that must pass over 30 days (the SLO).",
                [Target(f"max(uptime_probe_check_slo_objective{{{flt}}})", "objective")],
                unit="percentunit",
                decimals=2,
                color_mode="none",
            ),
            state_timeline(
                "State over time",
                "The state at each location over the selected range. " + STATE_HELP,
                [Target(state_code(flt, "location"), "{{location}}")],
                h=6,
            ),
        ],
    )
    slo = Row(
        "Service level and error budget",
        [
            stat(
                "Availability (30 days)",
                "Share of runs that passed over the last 30 days.",
                [Target(availability_30d(flt, "location"), "{{location}}")],
                unit="percentunit",
                decimals=3,
                w=6,
                h=5,
                color_mode="none",
            ),
            stat(
                "Error budget left (30 days)",
                "Share of the allowed failures still unspent. Negative: the objective is missed.",
                [Target(budget_left(flt, "location"), "{{location}}")],
                unit="percentunit",
                decimals=1,
                w=6,
                h=5,
                steps=BUDGET_THRESHOLDS,
            ),
            stat(
                "Burn rate (1h)",
                "Budget spending speed over the last hour; 1x spends the "
                f"budget in exactly 30 days. {FAST_BURN}x or more pages.",
                [Target(burn_rate("1h", flt, "location"), "{{location}}")],
                unit="suffix:x",
                decimals=1,
                w=6,
                h=5,
                steps=thresholds(GREEN, (1, ORANGE), (FAST_BURN, RED)),
            ),
            stat(
                "Burn rate (6h)",
                f"Budget spending speed over the last six hours; {SLOW_BURN}x or more pages.",
                [Target(burn_rate("6h", flt, "location"), "{{location}}")],
                unit="suffix:x",
                decimals=1,
                w=6,
                h=5,
                steps=BURN_THRESHOLDS,
            ),
            timeseries(
                "Burn rate by window",
                "Error budget burn rate over several look-back windows. Short windows react "
                "fast, long ones show whether the problem lasts. Dashed lines: 1x and "
                f"{SLOW_BURN}x.",
                [
                    Target(burn_rate(window, flt, "location"), f"{window} @ {{{{location}}}}")
                    for window in ("5m", "1h", "6h", "1d", "3d")
                ],
                unit="suffix:x",
                threshold_lines=BURN_THRESHOLDS,
                defaults={"decimals": 1},
            ),
            timeseries(
                "Error budget left over time",
                "The 30-day error budget left at each moment. A steep drop is an incident; a "
                "slow slope is a background failure rate.",
                [Target(budget_left(flt, "location"), "{{location}}")],
                unit="percentunit",
                threshold_lines=BUDGET_THRESHOLDS,
                defaults={"min": None, "max": 1},
            ),
        ],
    )
    failures = Row(
        "Failures",
        [
            timeseries(
                "Failures by reason",
                "Failed runs per interval, stacked by reason. " + REASON_HELP,
                [
                    Target(
                        increase("uptime_probe_check_failures_total", flt, "reason"), "{{reason}}"
                    )
                ],
                unit="short",
                stacked=True,
                bars=True,
                defaults={"decimals": 0},
            ),
            table(
                "Last failure (reason and step)",
                "The most recent failed run at each location: why it failed and in which step. "
                "It stays after recovery, so compare with 'Last success'. " + REASON_HELP,
                [
                    Target(
                        f"max by (location, reason, step) "
                        f"(uptime_probe_check_last_failure_info{{{flt}}})",
                        instant=True,
                        table=True,
                    )
                ],
                unit="none",
                transformations=[
                    organize(hide=["Time", "Value"], order=["location", "step", "reason"])
                ],
            ),
            timeseries(
                "Runs, failures and degraded runs",
                "Per interval: how many runs happened, how many failed and how many were "
                "degraded. No runs at all means the check is not being scheduled.",
                [
                    Target(
                        f"sum(increase(uptime_probe_check_runs_total{{{flt}}}[$__rate_interval]))",
                        "runs",
                    ),
                    Target(
                        f"sum(increase(uptime_probe_check_failures_total{{{flt}}}"
                        f"[$__rate_interval]))",
                        "failed",
                    ),
                    Target(
                        f"sum(increase(uptime_probe_check_degraded_total{{{flt}}}"
                        f"[$__rate_interval]))",
                        "degraded",
                    ),
                ],
                unit="short",
                overrides=[
                    by_name("runs", color={"mode": "fixed", "fixedColor": BLUE}),
                    by_name("failed", color={"mode": "fixed", "fixedColor": RED}),
                    by_name("degraded", color={"mode": "fixed", "fixedColor": ORANGE}),
                ],
            ),
            table(
                "Failures by reason (selected range)",
                "How many runs failed for each reason over the whole selected range.",
                [Target(failed_runs(flt, "location, reason"), instant=True, table=True)],
                unit="short",
                transformations=[organize(hide=["Time"])],
                overrides=[by_name("Value", display_name="failed runs")],
                sort_by="failed runs",
            ),
        ],
    )
    steps = Row(
        "Steps",
        [
            timeseries(
                "Step latency p95",
                "How long each step of the journey took (p95). A slow journey is usually one "
                f"slow step. Windows of at least {LATENCY_MIN_INTERVAL}.",
                [
                    Target(
                        quantile(0.95, "uptime_probe_step_duration_seconds", steps_flt, "step"),
                        "{{step}}",
                    )
                ],
                unit="s",
                min_interval=LATENCY_MIN_INTERVAL,
            ),
            table(
                "Phase timings of the last run",
                "Where each step spent its time on its last run: DNS resolve, TCP connect, TLS "
                "handshake, server processing (time to first byte) and transfer of the body. "
                "Slowest location shown when several are selected.",
                [
                    Target(
                        f"max by (step, phase) (uptime_probe_step_phase_seconds{{{steps_flt}}})",
                        instant=True,
                        table=True,
                    )
                ],
                unit="s",
                cell="color-text",
                steps=thresholds(GREEN, (1, ORANGE), (5, RED)),
                transformations=[
                    matrix("step", "phase"),
                    organize(
                        order=["step\\phase", "resolve", "connect", "tls", "processing", "transfer"]
                    ),
                ],
                overrides=[by_name("step\\phase", display_name="step", cell="auto", unit="none")],
            ),
            timeseries(
                "Phases of step $step",
                "Time spent in each phase of this step on each run, stacked: the top of the "
                "stack is the step's duration. Resolve: DNS; connect: TCP; tls: handshake; "
                "processing: waiting for the first byte; transfer: reading the body.",
                [
                    Target(
                        f"max by (phase) (uptime_probe_step_phase_seconds{{{steps_flt}}})",
                        "{{phase}}",
                    )
                ],
                unit="s",
                w=8,
                stacked=True,
                legend=LEGEND_LIST,
                extra={"maxPerRow": 3, "repeat": "step", "repeatDirection": "h"},
            ),
            state_timeline(
                "HTTP status code by step",
                "Status code of each step's last response. Green 2xx, blue 1xx/3xx, orange "
                "4xx, red 5xx, grey: no response (timeout or connection error). A green step "
                "can still fail on content (see Failures).",
                [
                    Target(
                        f"max by (step, location) "
                        f"(uptime_probe_step_http_status_code{{{steps_flt}}})",
                        "{{step}} @ {{location}}",
                    )
                ],
                mappings=HTTP_STATUS_MAPPINGS,
                steps=NEUTRAL_THRESHOLDS,
                h=7,
            ),
        ],
    )
    tls = Row(
        "TLS certificates",
        [
            stat(
                "Certificate expires in",
                "Days until the TLS certificate served to each step expires (steps that "
                "used TLS: HTTPS, wss, tcp with TLS, and certificate steps). Red below 7 "
                "days, orange below 21.",
                [
                    Target(
                        f"min by (step) ((uptime_probe_step_tls_cert_expiry_timestamp_seconds"
                        f"{{{steps_flt}}} - time()) / 86400)",
                        "{{step}}",
                    )
                ],
                unit="suffix:days",
                decimals=1,
                w=12,
                h=6,
                steps=CERT_DAYS_THRESHOLDS,
            ),
            table(
                "Certificates",
                "Expiry of the certificate each TLS step saw, at each location.",
                [
                    Target(
                        f"min by (step, location) ((uptime_probe_step_tls_cert_expiry_"
                        f"timestamp_seconds{{{steps_flt}}} - time()) / 86400)",
                        instant=True,
                        table=True,
                    ),
                    Target(
                        f"min by (step, location) (uptime_probe_step_tls_cert_expiry_"
                        f"timestamp_seconds{{{steps_flt}}}) * 1000",
                        instant=True,
                        table=True,
                    ),
                ],
                unit="none",
                w=12,
                h=6,
                transformations=[MERGE, organize(hide=["Time"])],
                overrides=[
                    by_name(
                        "Value #A",
                        display_name="days left",
                        decimals=1,
                        thresholds=CERT_DAYS_THRESHOLDS,
                        cell="color-text",
                    ),
                    by_name("Value #B", display_name="expires at", unit="dateTimeAsIso"),
                ],
                sort_by="days left",
                descending=False,
            ),
        ],
    )
    return dashboard(
        uid=CHECK_UID,
        title="uptime-probe / Check",
        description="One journey in depth: state, service level, failures by reason and step, "
        "step latency and phases, status codes, certificates.",
        variables=variables,
        rows=[status, slo, failures, steps, tls],
        annotations=[
            alert_annotation(
                "Firing alerts for this check",
                'ALERTS{alertname=~"UptimeProbe.*", alertstate="firing", check="$check"}',
            )
        ],
    )


# ---------------------------------------------------------------------------------------------
# Self: the daemon's own health.


def self_dashboard() -> JSON:
    flt = 'job=~"$job", instance=~"$instance"'
    variables = [
        query_variable(
            "job",
            "Job",
            "label_values(uptime_probe_build_info, job)",
            multi=False,
            description="Prometheus job that scrapes the daemon (default uptime-probe).",
        ),
        query_variable(
            "instance",
            "Instance",
            'label_values(uptime_probe_build_info{job=~"$job"}, instance)',
            multi=True,
            description="Daemon instances (one per shard).",
        ),
    ]
    overview_row = Row(
        "Overview",
        [
            stat(
                "Scraped",
                "Can Prometheus reach the daemon's /metrics endpoint?",
                [Target(f"up{{{flt}}}", "{{instance}}")],
                unit="none",
                mappings=OK_FAILED_MAPPINGS,
                steps=thresholds(RED, (1, GREEN)),
            ),
            stat(
                "Config reload",
                "Did the last configuration reload succeed? On failure the "
                "daemon keeps running the previous configuration.",
                [Target(f"uptime_probe_config_last_reload_successful{{{flt}}}", "{{instance}}")],
                unit="none",
                mappings=OK_FAILED_MAPPINGS,
                steps=thresholds(RED, (1, GREEN)),
            ),
            stat(
                "Last good config reload",
                "When a configuration was last loaded successfully (at start or on reload).",
                [
                    Target(
                        f"uptime_probe_config_last_reload_success_timestamp_seconds{{{flt}}}"
                        " * 1000",
                        "{{instance}}",
                    )
                ],
                unit="dateTimeFromNow",
                color_mode="none",
            ),
            stat(
                "Runs in flight",
                "Check runs executing right now.",
                [Target(f"sum(uptime_probe_runs_in_flight{{{flt}}})", "in flight")],
                unit="none",
                color_mode="none",
            ),
            table(
                "Build",
                "Version and shard of each daemon instance.",
                [Target(f"uptime_probe_build_info{{{flt}}}", instant=True, table=True)],
                unit="none",
                w=8,
                h=4,
                transformations=[
                    organize(
                        hide=["Time", "Value", "__name__", "job"],
                        order=["instance", "version", "shard"],
                    )
                ],
            ),
            table(
                "Firing daemon alerts",
                "Alerts about the daemon itself: not running, "
                "configuration reload failed, schedule lag too high.",
                [
                    Target(
                        'ALERTS{alertname=~"UptimeProbe(NotRunning|ConfigReloadFailed|'
                        'ScheduleLagHigh)", alertstate="firing"}',
                        instant=True,
                        table=True,
                    )
                ],
                unit="none",
                w=24,
                h=5,
                transformations=[
                    organize(
                        hide=["Time", "Value", "__name__", "alertstate"],
                        order=["alertname", "severity", "instance"],
                    )
                ],
            ),
        ],
    )
    scheduler = Row(
        "Scheduler",
        [
            timeseries(
                "Schedule lag (p50, p99)",
                "Delay between when a run was due and when it started. Growing lag means the "
                "daemon has more checks than its concurrency allows or its event loop is busy.",
                [
                    Target(
                        quantile(q, "uptime_probe_schedule_lag_seconds", flt, "instance"),
                        f"p{int(q * 100)} {{{{instance}}}}",
                    )
                    for q in (0.5, 0.99)
                ],
                unit="s",
                min_interval="1m",
            ),
            timeseries(
                "Runs in flight and waiting",
                "Check runs probing at scrape time (never above max_concurrency) and runs due "
                "but waiting for a slot. Waiting runs for long mean the daemon is overloaded: "
                "checks start late and get skipped.",
                [
                    Target(
                        f"sum by (instance) (uptime_probe_runs_in_flight{{{flt}}})",
                        "{{instance}} in flight",
                    ),
                    Target(
                        f"sum by (instance) (uptime_probe_runs_waiting{{{flt}}})",
                        "{{instance}} waiting",
                    ),
                ],
                unit="none",
            ),
            timeseries(
                "Skipped runs",
                "Runs not started because the previous run of the same check was still going "
                "or the concurrency cap was reached. Any skip is a gap in monitoring.",
                [
                    Target(
                        increase("uptime_probe_runs_skipped_total", flt, "check, location"),
                        "{{check}} @ {{location}}",
                    )
                ],
                unit="short",
                stacked=True,
                bars=True,
            ),
            timeseries(
                "Check runs per minute",
                "How many check runs the daemon completes per minute.",
                [
                    Target(
                        f"sum by (instance) (rate(uptime_probe_check_runs_total{{{flt}}}"
                        f"[$__rate_interval])) * 60",
                        "{{instance}}",
                    )
                ],
                unit="opm",
            ),
            table(
                "Time since last run, in intervals",
                "For each check, the time since its last run divided by its interval. About 1 "
                "is normal; above 2 (orange) the check is overdue, above 5 (red) it has "
                "stopped running.",
                [
                    Target(
                        f"(time() - max by (check, location) "
                        f"(uptime_probe_check_last_run_timestamp_seconds{{{flt}}}))\n"
                        f"/ on (check, location) max by (check, location) "
                        f"(uptime_probe_check_interval_seconds{{{flt}}})",
                        instant=True,
                        table=True,
                    )
                ],
                unit="none",
                w=24,
                h=7,
                cell="color-text",
                steps=thresholds(GREEN, (2, ORANGE), (5, RED)),
                transformations=[organize(hide=["Time"])],
                overrides=[by_name("Value", display_name="intervals since last run", decimals=1)],
                sort_by="intervals since last run",
                links=[LINK_FROM_FIELDS],
            ),
        ],
    )
    process = Row(
        "Process, storage and notifications",
        [
            timeseries(
                "Resident memory",
                "Memory the daemon process holds (RSS).",
                [Target(f"process_resident_memory_bytes{{{flt}}}", "{{instance}}")],
                unit="bytes",
                w=8,
            ),
            timeseries(
                "CPU",
                "CPU time the daemon uses; 100% is one full core.",
                [
                    Target(
                        f"rate(process_cpu_seconds_total{{{flt}}}[$__rate_interval])",
                        "{{instance}}",
                    )
                ],
                unit="percentunit",
                w=8,
            ),
            timeseries(
                "Open file descriptors",
                "Sockets and files the daemon holds open. A steady climb is a connection leak.",
                [Target(f"process_open_fds{{{flt}}}", "{{instance}}")],
                unit="none",
                w=8,
            ),
            timeseries(
                "Store errors",
                "Failed writes or reads of the local result store "
                "(SQLite). Results still reach Prometheus, but history and incidents "
                "may have gaps.",
                [
                    Target(
                        increase("uptime_probe_store_errors_total", flt, "instance"), "{{instance}}"
                    )
                ],
                unit="short",
                bars=True,
            ),
            timeseries(
                "Notifications by result",
                "Notifications sent to each notifier, "
                "stacked by result. Failures mean people may not have been told.",
                [
                    Target(
                        increase("uptime_probe_notifications_total", flt, "notifier, result"),
                        "{{notifier}} {{result}}",
                    )
                ],
                unit="short",
                stacked=True,
                bars=True,
            ),
        ],
    )
    return dashboard(
        uid=SELF_UID,
        title="uptime-probe / Daemon health",
        description="The probing daemon itself: scheduling, configuration, process resources, "
        "storage and notifications.",
        variables=variables,
        rows=[overview_row, scheduler, process],
        annotations=[
            {
                **alert_annotation(
                    "Config reloads",
                    "changes(uptime_probe_config_last_reload_success_timestamp_seconds"
                    f"{{{flt}}}[2m]) > 0",
                ),
                "iconColor": BLUE,
                "tagKeys": "instance",
                "textFormat": "configuration reloaded on {{instance}}",
                "titleFormat": "config reload",
            }
        ],
    )


# ---------------------------------------------------------------------------------------------


def build_dashboards() -> dict[str, JSON]:
    """File name -> dashboard, in a stable order."""
    return {
        "uptime-probe-overview.json": overview(),
        "uptime-probe-check.json": check_dashboard(),
        "uptime-probe-self.json": self_dashboard(),
    }


def render(dashboard_json: JSON) -> str:
    return json.dumps(dashboard_json, indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 if the committed JSON differs from the generated JSON",
    )
    parser.add_argument("--out", type=Path, default=DASHBOARD_DIR, help="output directory")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, dashboard_json in build_dashboards().items():
        path = args.out / name
        text = render(dashboard_json)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if stale:
        print("stale, run python grafana/generate.py:", *stale, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
