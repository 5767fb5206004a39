"""deploy/kubernetes/base: rendered, schema-validated, and held to the settings we rely on.

Why a renderer in this file: no kustomize binary is available offline on the machines that run
these tests (kubectl's built-in kustomize is on some of them, and where it is, the last test
compares its output with ours). The renderer implements only what the base uses, `resources`
(plain files) and `configMapGenerator` (files, literals) with kustomize's name hash and name
references, and refuses any other key, so a feature added to the base cannot be silently
ignored here.

Built-in kinds are validated with kubernetes_validate (strict: unknown fields fail) against
the Kubernetes version pinned below, from the schemas the package ships. ServiceMonitor and
PrometheusRule are CRDs that it has no schemas for: their structure is checked by hand for the
fields that matter (selectors, ports, paths, rule shape).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from dockerfile_syntax import Dockerfile

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_DIR = REPO_ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES_DIR / "base"
# Oldest minor we support; kubernetes_validate ships schemas for 1.25 to 1.37.
KUBERNETES_VERSION = "1.33.0"
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
NAME = "uptime-probe"
CONFIG_PATH = "/etc/uptime-probe/probes.yaml"
DATA_DIR = "/var/lib/uptime-probe"


# --- the renderer --------------------------------------------------------------------------

KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "configMapGenerator"}
GENERATOR_KEYS = {"name", "files", "literals"}


def kustomize_hash(data: dict[str, str]) -> str:
    """kustomize's ConfigMap name suffix (api/hasher): sha256 of Go's json.Marshal of
    {data, kind, name=""} (sorted keys, HTML characters escaped), first 10 hex digits with
    0, 1, 3, a, e swapped for letters so the suffix never looks like a number or a word."""
    encoded = json.dumps(
        {"data": data, "kind": "ConfigMap", "name": ""},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        encoded = encoded.replace(char, escape)
    encoded = encoded.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    digest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()[:10]
    return digest.translate(str.maketrans("013ae", "ghkmt"))


def _pod_spec_configmap_refs(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every mapping in a pod spec whose `name` names a ConfigMap (what kustomize rewrites)."""
    for volume in pod_spec.get("volumes", []):
        if "configMap" in volume:
            yield volume["configMap"]
        for source in volume.get("projected", {}).get("sources", []):
            if "configMap" in source:
                yield source["configMap"]
    for container in pod_spec.get("containers", []) + pod_spec.get("initContainers", []):
        for env_from in container.get("envFrom", []):
            if "configMapRef" in env_from:
                yield env_from["configMapRef"]
        for env in container.get("env", []):
            if "configMapKeyRef" in env.get("valueFrom", {}):
                yield env["valueFrom"]["configMapKeyRef"]


def render_base(base: Path = BASE) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, f"kustomization.yaml uses {unknown}: teach render_base first"
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = base / resource
        assert path.is_file(), f"resource {resource} is not a file in the base"
        objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc)

    renamed: dict[str, str] = {}
    for generator in kustomization.get("configMapGenerator", []):
        unknown = set(generator) - GENERATOR_KEYS
        assert not unknown, f"configMapGenerator uses {unknown}: teach render_base first"
        data: dict[str, str] = {}
        for entry in generator.get("files", []):
            key, _, file = entry.rpartition("=")
            source = (base / file).resolve()
            assert source.is_relative_to(base), f"{file}: kustomize refuses files outside the base"
            data[key or source.name] = source.read_text(encoding="utf-8")
        for literal in generator.get("literals", []):
            key, _, value = literal.partition("=")
            data[key] = value
        name = f"{generator['name']}-{kustomize_hash(data)}"
        renamed[generator["name"]] = name
        objects.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        )

    for obj in objects:
        template = obj.get("spec", {}).get("template", {}).get("spec")
        if obj["kind"] in {"StatefulSet", "Deployment", "DaemonSet", "Job"} and template:
            for reference in _pod_spec_configmap_refs(template):
                reference["name"] = renamed.get(reference["name"], reference["name"])
    return objects


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_base()


def one(objects: list[dict[str, Any]], kind: str, prefix: str = NAME) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, f"expected one {kind} {prefix}*, got {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def statefulset(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    return one(rendered, "StatefulSet")


@pytest.fixture(scope="module")
def pod(statefulset: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = statefulset["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.fixture(scope="module")
def service(rendered: list[dict[str, Any]]) -> dict[str, Any]:
    return one(rendered, "Service")


def configmap_by_reference(rendered: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [o for o in rendered if o["kind"] == "ConfigMap" and o["metadata"]["name"] == name]
    assert len(found) == 1, f"no ConfigMap named {name} in the rendered base"
    return found[0]


def config_mount(container: dict[str, Any], pod: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The mount path and volume that provide probes.yaml."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    for mount in container["volumeMounts"]:
        if PurePosixPath(CONFIG_PATH).parent == PurePosixPath(mount["mountPath"]):
            return mount["mountPath"], volumes[mount["name"]]
    raise AssertionError(f"nothing is mounted at {PurePosixPath(CONFIG_PATH).parent}")


# --- schema validation ---------------------------------------------------------------------


def _object_ids() -> list[str]:
    """kind/name of what the base renders, read without rendering, so that a broken base
    fails these tests one by one instead of breaking collection of the whole module."""
    try:
        kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
        ids = [
            f"{doc['kind']}/{doc['metadata']['name']}"
            for resource in kustomization.get("resources", [])
            for doc in yaml.safe_load_all((BASE / resource).read_text())
            if doc
        ]
        ids += [
            f"ConfigMap/{generator['name']}"
            for generator in kustomization.get("configMapGenerator", [])
        ]
        # The CRDs have no schema in kubernetes_validate: the tests further down check them.
        return [i for i in ids if i.partition("/")[0] not in CRD_KINDS]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as error:
        return [f"unreadable-base-{type(error).__name__}"]


@pytest.mark.parametrize("object_id", _object_ids())
def test_object_matches_the_kubernetes_schema(
    rendered: list[dict[str, Any]], object_id: str
) -> None:
    kind, _, name = object_id.partition("/")
    obj = one(rendered, kind, name)
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        path = ".".join(str(part) for part in error.path)
        pytest.fail(f"{object_id}: {path}: {error.message}")


def test_example_secret_matches_the_schema_and_the_reference(container: dict[str, Any]) -> None:
    secret = yaml.safe_load((BASE / "secret.example.yaml").read_text())
    kubernetes_validate.validate(secret, KUBERNETES_VERSION, strict=True)
    (token,) = [env for env in container["env"] if env["name"] == "CHAT_API_TOKEN"]
    reference = token["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret["metadata"]["name"] == "uptime-probe-secrets"
    assert reference["key"] in secret["stringData"]
    assert reference.get("optional") is not True, "a missing token should stop the pod"


def test_example_secret_is_not_applied_by_the_base(rendered: list[dict[str, Any]]) -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    assert not [o for o in rendered if o["kind"] == "Secret"]


# --- the StatefulSet -----------------------------------------------------------------------


def test_statefulset_shards_by_ordinal(
    statefulset: dict[str, Any], container: dict[str, Any]
) -> None:
    spec = statefulset["spec"]
    assert spec["replicas"] == 3
    assert spec["podManagementPolicy"] == "Parallel"
    args = container["args"]
    assert args[:3] == ["run", "-c", CONFIG_PATH]
    shard = args[args.index("--shard") + 1]
    # `auto/N` takes INDEX from the pod's ordinal: N must be the number of ordinals.
    assert shard == f"auto/{spec['replicas']}", f"{shard} vs replicas {spec['replicas']}"
    assert args[args.index("--data-dir") + 1] == DATA_DIR


def test_statefulset_is_governed_by_the_headless_service(
    statefulset: dict[str, Any], service: dict[str, Any], pod: dict[str, Any]
) -> None:
    spec = statefulset["spec"]
    assert spec["serviceName"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", 9713)
    container_ports = {p["name"]: p["containerPort"] for p in pod["containers"][0]["ports"]}
    assert container_ports[port["targetPort"]] == 9713


def test_pod_runs_as_the_image_user_without_privileges(
    pod: dict[str, Any], container: dict[str, Any], dockerfile: Dockerfile
) -> None:
    pod_security = pod["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    user = dockerfile.final.last("USER")
    assert user is not None
    uid, _, gid = user.raw.partition(":")
    assert pod_security["runAsUser"] == int(uid), "same uid as the image's USER"
    assert pod_security["fsGroup"] == int(gid or uid), "the data volume must be writable"
    assert pod_security["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_writable_paths_are_volumes(
    statefulset: dict[str, Any], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    pod_volumes = {volume["name"]: volume for volume in pod["volumes"]}
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    # With a read-only root filesystem these are the only places the daemon can write.
    assert mounts[DATA_DIR] in claims or "emptyDir" in pod_volumes[mounts[DATA_DIR]]
    assert "emptyDir" in pod_volumes[mounts["/tmp"]]


def test_probes_hit_health_and_readiness(container: dict[str, Any]) -> None:
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in {"metrics", 9713}


def test_resources_have_requests_and_limits(container: dict[str, Any]) -> None:
    resources = container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section


def test_grace_period_outlasts_the_drain(pod: dict[str, Any]) -> None:
    # The daemon drains for up to 10 s after SIGTERM; the kubelet kills at the grace period.
    assert pod["terminationGracePeriodSeconds"] > 10


def test_image_is_the_project_version(container: dict[str, Any]) -> None:
    version = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"uptime-probe:{version}"


def test_config_comes_from_the_generated_configmap(
    rendered: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    mount_path, volume = config_mount(container, pod)
    configmap = configmap_by_reference(rendered, volume["configMap"]["name"])
    key = PurePosixPath(CONFIG_PATH).relative_to(mount_path).as_posix()
    assert configmap["data"][key] == (REPO_ROOT / "probes.yaml").read_text(encoding="utf-8")


def test_base_probes_yaml_is_a_copy_of_the_repository_config() -> None:
    assert (BASE / "probes.yaml").read_bytes() == (REPO_ROOT / "probes.yaml").read_bytes(), (
        "deploy/kubernetes/base/probes.yaml drifted: cp probes.yaml deploy/kubernetes/base/"
    )


def _config_strings() -> Iterator[tuple[tuple[Any, ...], str]]:
    def walk(value: Any, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], str]]:
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, (*path, index))

    yield from walk(yaml.safe_load((REPO_ROOT / "probes.yaml").read_text()), ())


def test_every_variable_the_config_needs_is_set(
    rendered: list[dict[str, Any]], container: dict[str, Any]
) -> None:
    # Same syntax as uptime_probe.config.loader: ${NAME} is required, ${NAME:-x} is not.
    required = {
        match.group(1)
        for _, text in _config_strings()
        for match in re.finditer(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}", text)
        if match.group(1) and match.group(2) is None
    }
    provided = {env["name"] for env in container.get("env", [])}
    for env_from in container.get("envFrom", []):
        configmap = configmap_by_reference(rendered, env_from["configMapRef"]["name"])
        provided |= set(configmap["data"])
    assert required <= provided, f"the pods would fail config load: {sorted(required - provided)}"


def test_files_the_config_names_are_shipped_with_it(
    rendered: list[dict[str, Any]], pod: dict[str, Any], container: dict[str, Any]
) -> None:
    # The loader resolves json_schema and tls.ca_file relative to probes.yaml's folder.
    named = {
        text
        for path, text in _config_strings()
        if path and path[-1] in {"json_schema", "ca_file"} and not text.startswith("/")
    }
    _, volume = config_mount(container, pod)
    configmap = configmap_by_reference(rendered, volume["configMap"]["name"])
    assert named <= set(configmap["data"]), (
        f"add to configMapGenerator files (ConfigMap keys are flat): {sorted(named)}"
    )


# --- the Prometheus Operator objects (CRDs, checked by hand) ------------------------------

SERVICEMONITOR_ENDPOINT_KEYS = {
    "port", "path", "interval", "scrapeTimeout", "scheme", "honorLabels", "params",
    "relabelings", "metricRelabelings", "tlsConfig",
}  # fmt: skip
GROUP_KEYS = {"name", "interval", "rules", "limit", "query_offset", "labels"}
RULE_KEYS = {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
DURATION = re.compile(r"^((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?$")


def _seconds(duration: str) -> float:
    match = DURATION.match(duration)
    assert duration, "empty duration"
    assert match, f"not a Prometheus duration: {duration!r}"
    units = [365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001]
    return sum(int(match.group(2 * i + 2) or 0) * unit for i, unit in enumerate(units))


def test_servicemonitor_scrapes_the_service(
    rendered: list[dict[str, Any]], service: dict[str, Any]
) -> None:
    monitor = one(rendered, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {port["name"] for port in service["spec"]["ports"]}
    assert spec["endpoints"], "no endpoints"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICEMONITOR_ENDPOINT_KEYS, set(endpoint)
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert _seconds(endpoint["scrapeTimeout"]) <= _seconds(endpoint["interval"])


def test_servicemonitor_interval_matches_grafana(rendered: list[dict[str, Any]]) -> None:
    # Grafana derives $__rate_interval from the datasource's timeInterval.
    datasources = REPO_ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(datasources.read_text())["datasources"]
    monitor = one(rendered, "ServiceMonitor")
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["interval"] == source["jsonData"]["timeInterval"]


def test_prometheusrule_has_the_shape_the_operator_accepts(
    rendered: list[dict[str, Any]],
) -> None:
    rule = one(rendered, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(rule["spec"]) == {"groups"}
    group_names = [group["name"] for group in rule["spec"]["groups"]]
    assert len(group_names) == len(set(group_names)), "group names must be unique"
    for group in rule["spec"]["groups"]:
        assert set(group) <= GROUP_KEYS, (group["name"], set(group))
        if "interval" in group:
            _seconds(group["interval"])
        for item in group["rules"]:
            assert set(item) <= RULE_KEYS, (group["name"], set(item))
            assert ("alert" in item) != ("record" in item), item
            assert isinstance(item["expr"], str), item
            assert item["expr"].strip(), item
            if "record" in item:
                assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", item["record"]), item["record"]
                assert "for" not in item, item["record"]
            if "for" in item:
                _seconds(item["for"])


def _load_generator() -> ModuleType:
    path = KUBERNETES_DIR / "generate_prometheusrule.py"
    spec = importlib.util.spec_from_file_location("generate_prometheusrule", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prometheusrule_is_generated_from_the_rules_file() -> None:
    generator = _load_generator()
    expected = generator.render_file(REPO_ROOT / "prometheus" / "rules" / "uptime-probe.rules.yml")
    committed = (BASE / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert committed == expected, "stale: python deploy/kubernetes/generate_prometheusrule.py"


def test_prometheusrule_carries_every_rule_unchanged() -> None:
    rules = yaml.safe_load(
        (REPO_ROOT / "prometheus" / "rules" / "uptime-probe.rules.yml").read_text()
    )
    committed = yaml.safe_load((BASE / "prometheusrule.yaml").read_text())
    assert committed["spec"]["groups"] == rules["groups"]


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("", "must be a mapping"),
        ("groups: []\n", "non-empty list"),
        ("groups: [{rules: []}]\n", "groups[0].name"),
        ("groups: [{name: a}]\n", "groups[0].rules"),
        ("groups: [{name: a, rules: []}]\nnamespace: x\n", "unknown top-level key 'namespace'"),
        ("groups: [\n", "invalid YAML"),
    ],
)
def test_generator_rejects_what_is_not_a_rule_file(rules: str, message: str) -> None:
    generator = _load_generator()
    with pytest.raises(generator.RulesFileError, match=re.escape(message)):
        generator.render(rules)


def test_generator_check_mode_reports_a_stale_file(tmp_path: Path) -> None:
    generator = _load_generator()
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n  - name: a\n    rules:\n      - record: a:b\n        expr: up\n")
    output = tmp_path / "prometheusrule.yaml"
    args = ["--rules", str(rules), "--output", str(output)]
    assert generator.main([*args, "--check"]) == 1
    assert generator.main(args) == 0
    assert generator.main([*args, "--check"]) == 0
    assert yaml.safe_load(output.read_text())["spec"]["groups"][0]["rules"][0]["record"] == "a:b"


# The renderer was cross-checked against `kubectl kustomize` (its ConfigMap name hashes
# included) when it was written. No kustomize is installable here for every run (Debian's
# kubernetes-client ships a years-old one), so that comparison is not part of the suite:
# a test that could only skip in CI would prove nothing.
