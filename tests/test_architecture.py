"""The import rules of docs/architecture.md, held against the code."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from uptime_probe.config.steps import STEP_KINDS

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "uptime_probe"

# For each layer, what of ours it may import (prefixes of module names).
ALLOWED = {
    "config": ("uptime_probe.config",),
    "simulator": ("uptime_probe.simulator",),
}
# Third-party modules a layer must never import.
FORBIDDEN = {
    "probe": ("apscheduler", "prometheus_client", "aiosqlite", "sqlite3", "structlog"),
    "config": ("aiohttp", "apscheduler", "prometheus_client"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    return found


def _modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", ["config", "probe", "simulator"])
def test_a_layer_imports_only_what_is_below_it(layer: str) -> None:
    wrong = []
    for path in _modules(layer):
        for name in _imports(path):
            if not name.startswith("uptime_probe"):
                continue
            if layer == "probe":
                # The core may use config and itself, and the package's version, nothing else.
                ok = name.startswith(("uptime_probe.config", "uptime_probe.probe")) or name in (
                    "uptime_probe",
                    "uptime_probe.__version__",
                )
            else:
                ok = name.startswith(ALLOWED[layer])
            if not ok:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_forbidden_libraries(layer: str) -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in _modules(layer)
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN[layer]
    ]
    assert not wrong


@pytest.mark.parametrize("key", sorted(STEP_KINDS))
def test_every_registered_kind_has_an_attempt(key: str) -> None:
    import importlib
    import inspect

    model = STEP_KINDS[key]
    assert model.handler == key
    assert key in model.model_fields, "the handler key is the kind's own field"
    module = importlib.import_module(f"uptime_probe.probe.kinds.{model.runner}")
    assert inspect.iscoroutinefunction(module.KIND.attempt)
