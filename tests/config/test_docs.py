"""docs/configuration.md stays true: every YAML example loads, every key is documented."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from uptime_probe.config import parse_config
from uptime_probe.config.model import Config
from uptime_probe.config.steps import JSON_OPERATORS
from uptime_probe.probe.model import BUILTIN_REASONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
TEXT = DOC.read_text()
BLOCKS = re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)
ENV = {
    "CHAT_API_TOKEN": "t",
    "HOOK_SECRET": "hook-secret-0123456789",
    "SLACK_WEBHOOK_URL": "https://hooks.example.com/slack",
    "DISCORD_URL": "discord://123456789012/webhook-token-0123456789",
    "TEAMS_URL": "json://teams.example.com/relay",
    "STATUS_PASSWORD": "correct-horse-battery-staple",
}
STEP = {"name": "s", "request": {"url": "http://127.0.0.1:1/"}}
# Names the fragments use, as a full file would define them.
NAMES = {"base_url": "http://127.0.0.1:1", "location_tag": "eu"}
SECRETS = {"token": "t", "password": "p"}


def as_document(fragment: Any) -> dict[str, Any]:
    """Place a fragment where it belongs in a minimal config."""

    def with_step(step: dict[str, Any]) -> dict[str, Any]:
        return {"variables": NAMES, "secrets": SECRETS, "checks": [{"name": "c", "steps": [step]}]}

    if isinstance(fragment, list):  # steps, maybe using a value an earlier step extracts
        uses = "{{ task_id }}" in str(fragment) and "extract" not in str(fragment)
        create = {**STEP, "name": "create", "extract": {"task_id": "id"}}
        steps = [create, *fragment] if uses else fragment
        check = {"name": "c", "interval": "1m", "timeout": "1m", "steps": steps}
        return {"variables": NAMES, "secrets": SECRETS, "checks": [check]}
    keys = set(fragment)
    if "checks" in keys:  # a whole file
        return {**fragment, "variables": {**NAMES, **fragment.get("variables", {})}}
    if keys == {"request"}:
        return with_step({"name": "s", **fragment})
    if keys == {"expect"}:
        return with_step({**STEP, **fragment})
    if keys == {"json"}:
        return with_step({**STEP, "expect": fragment})
    # Top-level sections (variables, secrets, defaults, server, notifiers, ...).
    variables = {**NAMES, **fragment.get("variables", {})}
    secrets = {**SECRETS, **fragment.get("secrets", {})}
    return {
        **fragment,
        "variables": {k: v for k, v in variables.items() if k not in secrets},
        "secrets": secrets,
        "checks": [{"name": "c", "steps": [STEP]}],
    }


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_yaml_example_loads(block: str, tmp_path: Path) -> None:
    for name in ("schemas/conversations.json", "certs/internal-ca.pem"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / "schemas/conversations.json").write_text('{"type": "object"}')
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "certs/internal-ca.pem"))
    document = as_document(yaml.safe_load(block))
    with_notifiers = {"oncall": {"kind": "webhook", "url": "https://hooks.example.com/"}}
    if any(check.get("notifiers") for check in document["checks"]) or "defaults" in document:
        document.setdefault("notifiers", with_notifiers)
    parse_config(yaml.safe_dump(document), env=ENV, base_dir=tmp_path)


def _keys(model: Any, seen: set[str]) -> set[str]:
    found: set[str] = set()
    for name, field in model.model_fields.items():
        found.add(field.alias or name)
        for kind in (*getattr(field.annotation, "__args__", ()), field.annotation):
            if hasattr(kind, "model_fields") and kind.__name__ not in seen:
                seen.add(kind.__name__)
                found |= _keys(kind, seen)
    return found


def test_every_key_of_the_model_is_documented() -> None:
    from uptime_probe.config import model, steps

    keys = _keys(Config, set())
    for cls in (*steps.STEP_KINDS.values(), steps.RequestSpec, steps.Expect, steps.PollConfig,
                steps.TlsConfig, model.AuthConfig, model.BasicAuth, model.WebhookNotifier,
                model.SlackNotifier, model.AlertmanagerNotifier, model.AppriseNotifier):  # fmt: skip
        keys |= _keys(cls, set())
    keys -= {"operator", "expected"}  # internal split of a JSON assertion
    undocumented = sorted(key for key in keys if f"`{key}`" not in TEXT)
    assert not undocumented


def test_every_operator_and_reason_is_documented() -> None:
    assert all(f"| `{op}` |" in TEXT for op in JSON_OPERATORS)
    assert all(f"| `{reason}` |" in TEXT for reason in BUILTIN_REASONS)
