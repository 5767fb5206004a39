"""deploy/compose/compose.yaml and its Prometheus config, checked without a Docker engine.

There is no engine (and no compose plugin) here, so this reads the YAML and checks what
`docker compose up` would trip over: a bind-mount source missing from the repo, a port open to
the network, a depends_on on a service with no healthcheck, an unpinned image, the daemon
pointed somewhere other than the simulator, a rule file Prometheus would not find.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "deploy" / "compose"
REPO_ROOT = COMPOSE_DIR.parents[1]
SERVICES = {"simulator", "uptime-probe", "prometheus", "alertmanager", "grafana"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def load_compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
    return document


def load_compose_prometheus() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    return document


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) for each entry of `volumes`, short or long syntax."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mode = "ro" if entry.get("read_only") else "rw"
            found.append((str(entry["source"]), str(entry["target"]), mode))
        else:
            source, target, *rest = str(entry).split(":")
            found.append((source, target, rest[0] if rest else "rw"))
    return found


def is_bind(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def bind_mounts() -> list[tuple[str, str, str, str]]:
    return [
        (name, source, target, mode)
        for name, service in load_compose()["services"].items()
        for source, target, mode in mounts(service)
        if is_bind(source)
    ]


def host_path_for(service: dict[str, Any], container_path: str) -> Path | None:
    """Where on the host a file the container reads comes from, through its bind mounts."""
    wanted = PurePosixPath(container_path)
    for source, target, _ in mounts(service):
        if is_bind(source) and wanted.is_relative_to(target):
            return (COMPOSE_DIR / source / wanted.relative_to(target)).resolve()
    return None


def flag_value(command: list[str], flag: str) -> str | None:
    for index, word in enumerate(command):
        if word == flag and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def test_the_stack_is_complete(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= SERVICES, f"missing: {sorted(SERVICES - set(services))}"


@pytest.mark.parametrize(
    ("service", "source", "target", "mode"),
    bind_mounts(),
    ids=[f"{name}:{source}" for name, source, *_ in bind_mounts()],
)
def test_bind_mount_sources_exist_in_the_repo(
    service: str, source: str, target: str, mode: str
) -> None:
    resolved = (COMPOSE_DIR / source).resolve()
    assert resolved.is_relative_to(REPO_ROOT), f"{source} leaves the repository"
    assert resolved.exists(), f"{service} mounts {source} -> {target}, missing: {resolved}"
    assert mode == "ro", f"{service}: config mounts should be read-only: {source}"


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    used = {
        source
        for service in services.values()
        for source, _, _ in mounts(service)
        if not is_bind(source)
    }
    assert used <= set(compose.get("volumes") or {}), used


def test_ports_are_published_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is open to the LAN"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]], name: str) -> None:
    healthcheck = services[name].get("healthcheck") or {}
    assert not healthcheck.get("disable"), name
    test = healthcheck.get("test")
    assert test, f"{name} has no healthcheck"
    assert test[0] in {"CMD", "CMD-SHELL"}, test
    for field in ("interval", "timeout", "retries"):
        assert field in healthcheck, f"{name}: healthcheck.{field} should be explicit"


def test_our_image_is_checked_without_curl_or_wget(services: dict[str, dict[str, Any]]) -> None:
    # python:3.11-slim has neither; the third-party images (busybox, alpine) have wget.
    for name, service in services.items():
        if "build" not in service:
            continue
        words = set(re.findall(r"[a-z]+", " ".join(service["healthcheck"]["test"])))
        assert not {"curl", "wget"} & words, f"{name}: {service['healthcheck']['test']}"


def test_images_are_pinned_by_tag(services: dict[str, dict[str, Any]]) -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image"
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" in service:
            assert image == f"uptime-probe:{version}", f"{name}: tag our image with the version"
            context = (COMPOSE_DIR / service["build"]["context"]).resolve()
            assert context == REPO_ROOT, context
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file()


def test_depends_on_waits_for_real_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: use the long form with a condition"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert spec.get("condition") in CONDITIONS, f"{name} -> {target}: {spec}"
            if spec["condition"] == "service_healthy":
                assert services[target].get("healthcheck"), f"{target} has no healthcheck"


def test_depends_on_has_no_cycle(services: dict[str, dict[str, Any]]) -> None:
    edges = {name: set(service.get("depends_on", {})) for name, service in services.items()}
    started: set[str] = set()
    while edges:
        ready = {name for name, needs in edges.items() if needs <= started}
        assert ready, f"depends_on cycle among {sorted(edges)}"
        started |= ready
        edges = {name: needs for name, needs in edges.items() if name not in ready}


def test_daemon_probes_the_simulator(services: dict[str, dict[str, Any]]) -> None:
    simulator, daemon = services["simulator"], services["uptime-probe"]
    listen = flag_value(simulator["command"], "--listen")
    assert listen is not None
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0", "inside its container the simulator must listen on all interfaces"
    assert daemon["environment"]["CHAT_BASE_URL"] == f"http://simulator:{port}"
    assert daemon["depends_on"]["simulator"]["condition"] == "service_healthy"
    # The simulator's documented demo token; a real one would come from the environment.
    assert daemon["environment"]["CHAT_API_TOKEN"] == "demo-token"


def test_daemon_runs_like_in_production(services: dict[str, dict[str, Any]]) -> None:
    daemon = services["uptime-probe"]
    assert daemon["command"][:3] == ["run", "-c", "/etc/uptime-probe/probes.yaml"]
    config = host_path_for(daemon, "/etc/uptime-probe/probes.yaml")
    # probes.yaml is a link to the file the package carries; a bind mount follows it.
    assert config == (REPO_ROOT / "probes.yaml").resolve()
    assert daemon.get("read_only") is True
    data_dir = flag_value(daemon["command"], "--data-dir") or "/var/lib/uptime-probe"
    assert data_dir in {target for _, target, _ in mounts(daemon)}, "data dir is not a volume"
    # The daemon drains for up to 10 s after SIGTERM; Docker's default kill is at 10 s.
    assert seconds(daemon["stop_grace_period"]) > 10


def test_prometheus_scrapes_the_daemon_and_alerts_alertmanager(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    config_file = flag_value(prometheus["command"], "--config.file")
    assert config_file is not None
    assert host_path_for(prometheus, config_file) == COMPOSE_DIR / "prometheus.yml"

    config = load_compose_prometheus()
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # Same job name as the Kubernetes ServiceMonitor (the Service is named uptime-probe).
    targets = [t for sc in jobs["uptime-probe"]["static_configs"] for t in sc["targets"]]
    assert targets == ["uptime-probe:9713"]
    assert "127.0.0.1:9713:9713" in services["uptime-probe"]["ports"]
    alertmanagers = [
        target
        for manager in config["alerting"]["alertmanagers"]
        for static in manager["static_configs"]
        for target in static["targets"]
    ]
    assert alertmanagers == ["alertmanager:9093"]


def test_compose_prometheus_keeps_the_repository_globals() -> None:
    repository = yaml.safe_load((REPO_ROOT / "prometheus" / "prometheus.yml").read_text())
    assert load_compose_prometheus()["global"] == repository["global"]


def test_prometheus_finds_our_rules(services: dict[str, dict[str, Any]]) -> None:
    rule_files = load_compose_prometheus()["rule_files"]
    assert "/etc/prometheus/rules/uptime-probe.rules.yml" in rule_files
    for rule_file in rule_files:
        host = host_path_for(services["prometheus"], rule_file)
        assert host == REPO_ROOT / "prometheus" / "rules" / PurePosixPath(rule_file).name
        assert host.is_file(), f"Prometheus would load {rule_file} from {host}: missing"


def test_compose_prometheus_config_passes_promtool(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: scripts/test.sh installs Debian's prometheus")
    config = load_compose_prometheus()
    # Point rule_files at the host files the container would see through its mounts.
    config["rule_files"] = [
        str(host_path_for(services["prometheus"], path)) for path in config["rule_files"]
    ]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"


def test_alertmanager_uses_our_config(services: dict[str, dict[str, Any]]) -> None:
    alertmanager = services["alertmanager"]
    config_file = flag_value(alertmanager["command"], "--config.file")
    assert config_file is not None
    assert host_path_for(alertmanager, config_file) == REPO_ROOT / "prometheus" / "alertmanager.yml"


def test_grafana_is_provisioned_for_anonymous_viewers(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    targets = {target: source for source, target, _ in mounts(grafana)}
    assert (
        targets["/etc/grafana/provisioning/datasources"] == "../../grafana/provisioning/datasources"
    )
    assert (
        targets["/etc/grafana/provisioning/dashboards"] == "../../grafana/provisioning/dashboards"
    )
    assert targets["/var/lib/grafana/dashboards/uptime-probe"] == "../../grafana/dashboards"
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_grafana_provisioning_matches_the_mounts() -> None:
    """The colleagues' provisioning files use the paths and the variable this stack provides."""
    datasources = REPO_ROOT / "grafana" / "provisioning" / "datasources"
    providers = REPO_ROOT / "grafana" / "provisioning" / "dashboards"
    datasource_text = "".join(p.read_text() for p in sorted(datasources.glob("*.y*ml")))
    assert "PROMETHEUS_URL" in datasource_text, "datasource URL should come from $PROMETHEUS_URL"
    paths = {
        str(provider.get("options", {}).get("path"))
        for file in sorted(providers.glob("*.y*ml"))
        for provider in (yaml.safe_load(file.read_text()) or {}).get("providers", [])
    }
    assert "/var/lib/grafana/dashboards/uptime-probe" in paths, paths
    assert list((REPO_ROOT / "grafana" / "dashboards").glob("*.json")), "no dashboards to show"
