"""Whatever the YAML, load_config loads it or raises ConfigError with every issue located.

Never another exception: a config a user got wrong must never crash the daemon or
come out as a traceback.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from uptime_probe.config import ConfigError, ConfigIssue, parse_config
from uptime_probe.config.errors import format_path

PROBES_YAML = Path(__file__).resolve().parents[2] / "probes.yaml"
REAL = yaml.safe_load(PROBES_YAML.read_text())

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)

# Keys the model knows, so generated documents reach past the first "unknown key".
KNOWN_KEYS = sorted(
    {
        "location", "max_concurrency", "defaults", "variables", "secrets", "checks", "server",
        "notifiers", "store", "status_page", "name", "steps", "request", "expect", "extract",
        "poll", "tls", "max_body", "follow_redirects", "interval", "timeout", "headers", "url",
        "method", "body", "json", "status", "max_latency", "query", "equals", "gt", "exists",
        "matches", "contains", "empty", "reason", "severity", "every", "within", "kind",
        "verify", "ca_file", "json_schema", "body_contains", "body_matches", "listen", "auth",
        "slo", "failure_threshold",
    }
)  # fmt: skip

SAMPLES = [
    "10s", "250ms", "0s", "2xx", "700", "http://127.0.0.1:1/", "{{ base_url }}/x", "{{ nope }}",
    "${HOME}", "${UNSET_VAR}", "$$", "length(items)", "items[?", "([", "GET", "webhook", "a", "",
    "critical", "1MiB",
]  # fmt: skip
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(SAMPLES)
    | st.text(max_size=12)
)
keys = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=25,
)


def _resolves(document: Any, path: tuple[Any, ...]) -> bool:
    current = document
    for part in path:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, dict) and str(part) in {str(key) for key in current}:
            current = next(v for k, v in current.items() if str(k) == str(part))
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            current = current[part]
        else:
            return False
    return True


def _printable(text: str) -> str:
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def issues_of(text: str) -> tuple[ConfigIssue, ...] | None:
    """None when the text loads, else the issues of the ConfigError (any other error fails)."""
    try:
        parse_config(text, env={})
    except ConfigError as exc:
        return exc.issues
    return None


def assert_loads_or_located(text: str, *, check_paths: bool = False) -> None:
    issues = issues_of(text)
    if issues is None:
        return
    # What the loader saw (a dump and a load do not always round-trip odd characters).
    document = yaml.safe_load(text) if check_paths else None
    assert issues
    for issue in issues:
        line = str(issue)
        assert issue.message
        assert "\n" not in line, line
        assert issue.source == "probes.yaml"
        assert line.startswith(f"probes.yaml:{issue.line} " if issue.line else "probes.yaml ")
        assert f" {_printable(format_path(issue.path))}: " in line
        if isinstance(document, dict) and issue.path:
            # The path names a real place: the value itself or the mapping it is missing from.
            assert _resolves(document, issue.path[:-1]), line


@FUZZ
@given(st.dictionaries(keys, values, max_size=6))
def test_arbitrary_documents_load_or_raise_located_config_errors(document: dict[str, Any]) -> None:
    assert_loads_or_located(yaml.safe_dump(document, allow_unicode=True), check_paths=True)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`,?\n\t $.\\0")), max_size=60))
def test_arbitrary_text_loads_or_raises_config_error(text: str) -> None:
    assert_loads_or_located(text)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


REAL_PATHS = _paths(REAL)


def _retype(value: Any) -> Any:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, str):
        return len(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    return {}


@st.composite
def mutated_probes_yaml(draw: st.DrawFn) -> dict[str, Any]:
    document = copy.deepcopy(REAL)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(document)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        kind = draw(st.sampled_from(["drop", "replace", "retype", "swap"]))
        if kind == "drop":
            del parent[last]
        elif kind == "replace":
            parent[last] = draw(values)
        elif kind == "retype":
            parent[last] = _retype(parent[last])
        else:
            other = draw(st.sampled_from(REAL_PATHS))
            source: Any = REAL
            for part in other:
                source = source[part]
            parent[last] = copy.deepcopy(source)
    return document


@FUZZ
@given(mutated_probes_yaml())
def test_mutations_of_probes_yaml_load_or_raise_located_config_errors(
    document: dict[str, Any],
) -> None:
    assert_loads_or_located(yaml.safe_dump(document, allow_unicode=True), check_paths=True)


def test_the_unmutated_document_loads() -> None:
    parse_config(yaml.safe_dump(REAL), env={})


# YAML tags of every kind (issue 13, item 9): the core schema's, the ones PyYAML's safe
# constructor refuses (Python objects, unknown local and global tags, an undeclared
# handle), and values each of them cannot read, inserted into probes.yaml at random nodes.
TAGS = [
    "!!bool", "!!int", "!!float", "!!timestamp", "!!binary", "!!null", "!!str", "!!seq",
    "!!map", "!!set", "!!omap", "!!pairs", "!!merge", "!!value", "!!yaml",
    "!!python/object/apply:os.system", "!!python/name:os.system", "!!python/tuple",
    "!!python/bytes", "!custom", "!", "!<tag:yaml.org,2002:bool>", "!<tag:example.com,2026:x>",
    "!e!undeclared",
]  # fmt: skip
ODD_VALUES = [
    "maybe", "x", "abc", "z", "'###'", "''", "2025-02-30", "2025-01-01", "2025-01-01 25:00:00",
    "2025-01-01 12:00:00 +99:00", "0x", "0b2", "0o9", "1:99", "1e999", ".nan", "-.inf", "~",
    "aGVsbG8", "é", "9" * 5000, "[a, b]", "{a: b}", "{? [a]: b}", "<<", "=", "*undefined",
]  # fmt: skip
TAG_SEED = 20260913
TAG_CASES = 2000


def _one_check_sources() -> list[str]:
    """probes.yaml once per check, with that check alone under `checks:`.

    Comment lines dropped, and one check at a time: the same keys and values in a third
    of the text, so thousands of cases parse in seconds (PyYAML's scanner is the cost).
    """
    lines = [
        line
        for line in PROBES_YAML.read_text().splitlines(keepends=True)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    head_end = lines.index("checks:\n") + 1
    starts = [i for i in range(head_end, len(lines)) if lines[i].startswith("  - name:")]
    ends = [*starts[1:], len(lines)]
    head = "".join(lines[:head_end])
    return [head + "".join(lines[start:end]) for start, end in zip(starts, ends, strict=True)]


def _node_spans(text: str) -> list[tuple[int, int, bool]]:
    """(start, end, is_scalar) of every node, keys included, by character index."""
    spans: list[tuple[int, int, bool]] = []
    stack = [yaml.compose(text, Loader=yaml.SafeLoader)]
    while stack:
        node = stack.pop()
        spans.append(
            (node.start_mark.index, node.end_mark.index, isinstance(node, yaml.ScalarNode))
        )
        if isinstance(node, yaml.MappingNode):
            stack.extend(part for pair in node.value for part in pair)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
    return spans


TAGGED_SOURCES = [(text, _node_spans(text)) for text in _one_check_sources()]


def tagged_mutation(rng: random.Random) -> str:
    """probes.yaml with one to three nodes tagged, or replaced by a (tagged) odd value."""
    text, spans = rng.choice(TAGGED_SOURCES)
    chosen = rng.sample(spans, rng.randint(1, 3))
    # From the end backwards, so an edit never moves the spans still to apply.
    for start, end, is_scalar in sorted(chosen, reverse=True):
        tag = rng.choice(TAGS)
        if is_scalar and rng.random() < 0.6:
            value = rng.choice(ODD_VALUES)
            replacement = f"{tag} {value}" if rng.random() < 0.7 else value
            text = text[:start] + replacement + text[end:]
        else:
            text = f"{text[:start]}{tag} {text[start:]}"
    return text


def test_every_check_of_probes_yaml_loads_alone() -> None:
    assert len(TAGGED_SOURCES) == len(REAL["checks"])
    for text, _spans in TAGGED_SOURCES:
        assert issues_of(text) is None


def test_tags_of_every_kind_in_probes_yaml_load_or_raise_located_config_errors() -> None:
    rng = random.Random(TAG_SEED)
    loaded = refused = 0
    for case in range(TAG_CASES):
        text = tagged_mutation(rng)
        try:
            issues = issues_of(text)
        except Exception as exc:
            raise AssertionError(f"case {case}: {type(exc).__name__}: {exc}\n{text}") from exc
        if issues is None:
            loaded += 1
            continue
        refused += 1
        line_count = text.count("\n") + 1
        for issue in issues:
            shown = str(issue)
            assert issue.message, (case, shown)
            assert "\n" not in shown, (case, shown)
            # Located: every issue names the line a user must edit.
            assert issue.line is not None, (case, shown)
            assert 1 <= issue.line <= line_count, (case, shown)
            assert shown.startswith(f"probes.yaml:{issue.line} "), (case, shown)
    # The mutations reach both outcomes: neither all refused nor all ignored.
    assert loaded > TAG_CASES // 50, (loaded, refused)
    assert refused > TAG_CASES // 2, (loaded, refused)
