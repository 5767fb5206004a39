"""The container image, built from the real Dockerfile and run as a container would run it.

How it is built and run on machines without Docker is in container_image.py; which way it ran,
where the base came from and what each part cost are printed at the end of pytest's output
("container image"). Each test checks one promise docs/deployment.md makes about the image,
against the daemon started from the image's own entrypoint, command, environment and user. A
variant of the image (one with Chromium, say) is one more entry in VARIANTS: every test here
runs for it too, and tests of its own can ask for `image.variant.name`.

The tests run in file order on one started container per variant; the last one stops it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
import tomllib
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest
import yaml
from container_image import (
    TEMPORARY_DIRS,
    BuiltImage,
    ImageVariant,
    PythonImage,
    RunningImage,
    StandInBase,
    Tools,
    build_image,
    note,
    parse_python_image,
    podman_run_refusal,
    require_tools,
    stand_in_base,
    start_image,
)
from dockerfile_syntax import Dockerfile
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.stack import wait_for

from uptime_probe.config.units import parse_duration

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# The default image, and the one with Chromium for browser steps (docs/deployment.md).
VARIANTS = (
    ImageVariant("runtime"),
    ImageVariant("chromium", build_args={"WITH_CHROMIUM": "true"}, chromium=True),
)

CONFIG_PATH = "/etc/uptime-probe/probes.yaml"
DATA_DIR = "/var/lib/uptime-probe"
IMAGE_UID = 10001
START_TIMEOUT = 60.0  # seconds; the daemon answers /healthz about 2 s after it starts

# Families a dashboard or an alert rule reads, present from the first scrape on.
FAMILIES = (
    "uptime_probe_build_info",
    "uptime_probe_check_runs_total",
    "uptime_probe_check_success",
    "uptime_probe_check_state",
    "uptime_probe_check_duration_seconds",
    "uptime_probe_check_interval_seconds",
    "uptime_probe_config_last_reload_successful",
    "uptime_probe_runs_in_flight",
    "uptime_probe_shard_checks",
)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tools() -> Tools:
    return require_tools()


@pytest.fixture(scope="session")
def image_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("image")


@pytest.fixture(scope="session")
def pinned(dockerfile: Dockerfile) -> PythonImage:
    return parse_python_image(dockerfile.resolve(dockerfile.final.base))


@pytest.fixture(scope="session")
def base(
    tools: Tools, pinned: PythonImage, image_logs: Path, request: pytest.FixtureRequest
) -> StandInBase:
    made = stand_in_base(tools, pinned, image_logs)
    note(
        request.config,
        f"stand-in for {pinned.tag}: {made.ref}, from the {made.came_from} in {made.seconds:.0f} s",
    )
    return made


@pytest.fixture(scope="session")
def run_refusal(tools: Tools, base: StandInBase) -> str | None:
    """None where `podman run` works; else why not, and the chroot way is used."""
    return podman_run_refusal(tools, base.ref)


@pytest.fixture(scope="module", params=VARIANTS, ids=lambda variant: variant.name)
def image(
    request: pytest.FixtureRequest,
    tools: Tools,
    base: StandInBase,
    pinned: PythonImage,
    repo_root: Path,
    image_logs: Path,
) -> BuiltImage:
    built = build_image(tools, repo_root, base.ref, request.param, image_logs)
    version = built.config.env.get("PYTHON_VERSION", "")
    if not version.startswith(f"{pinned.python}."):
        pytest.fail(
            f"the Dockerfile pins Python {pinned.python} ({pinned.tag}), but the stand-in base "
            f"made from Debian {pinned.release} has Python {version or '(unknown)'}: the image "
            "would be tested on another interpreter",
            pytrace=False,
        )
    note(
        request.config,
        f"image {built.variant.tag}: built in {built.seconds:.0f} s, "
        f"{built.config.size / 1e6:.0f} MB (on the stand-in base, Python {version})",
    )
    return built


@pytest.fixture(scope="session")
def grace(repo_root: Path) -> float:
    """The stop grace period every deployment gives the daemon (compose's, = Kubernetes'
    terminationGracePeriodSeconds and the docs' --stop-timeout)."""
    compose = yaml.safe_load((repo_root / "deploy/compose/compose.yaml").read_text())
    text = compose["services"]["uptime-probe"]["stop_grace_period"]
    match = re.fullmatch(r"(\d+)s", text)
    assert match, f"stop_grace_period {text!r} is not whole seconds"
    return float(match.group(1))


@pytest.fixture(scope="module")
def container(
    request: pytest.FixtureRequest,
    image: BuiltImage,
    tools: Tools,
    run_refusal: str | None,
    image_logs: Path,
    grace: float,
) -> Iterator[RunningImage]:
    log_path = image_logs / f"run-{image.variant.name}.log"
    running = start_image(tools, image.config, run_refusal, log_path, grace)
    try:
        running.wait_until_healthy(START_TIMEOUT)
        note(request.config, f"image {image.variant.tag}: ran with {running.way}")
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def config(repo_root: Path, image: BuiltImage) -> dict[str, Any]:
    """The bundled config, with the checks the image runs: all of them in the image with
    Chromium; in the default image, which has none, the example's
    `browser.when_missing: skip` leaves its browser journeys out (and the daemon says so)."""
    loaded: dict[str, Any] = yaml.safe_load((repo_root / "probes.yaml").read_text())
    assert loaded.get("browser", {}).get("when_missing") == "skip", loaded.get("browser")
    if not image.variant.chromium:
        loaded["checks"] = [check for check in loaded["checks"] if not browser_steps(check)]
    return loaded


def browser_steps(check: dict[str, Any]) -> list[str]:
    return [step["name"] for step in check["steps"] if "browser" in step]


# --- the daemon answers --------------------------------------------------------------------


def test_healthz_and_readyz_answer(container: RunningImage, config: dict[str, Any]) -> None:
    healthz = container.fetch("/healthz")
    assert healthz.status == 200, f"/healthz: {healthz}\n{container.describe()}"
    readyz = container.fetch("/readyz")
    assert readyz.status == 200, f"/readyz: {readyz}\n{container.describe()}"
    # The bundled config's checks, all scheduled.
    assert readyz.body.strip() == f"ready: {len(config['checks'])} checks scheduled", readyz


def test_metrics_have_our_families(
    container: RunningImage, config: dict[str, Any], repo_root: Path
) -> None:
    metrics = container.fetch("/metrics")
    assert metrics.status == 200, metrics
    families = list(text_string_to_metric_families(metrics.body))  # fails on a bad exposition
    assert families, "empty /metrics"
    exposed = set(re.findall(r"^# TYPE (\S+) ", metrics.body, flags=re.MULTILINE))
    missing = [name for name in FAMILIES if name not in exposed]
    assert not missing, f"/metrics lacks {missing}; it has {sorted(exposed)}"
    samples = [sample for family in families for sample in family.samples]
    checks = {
        sample.labels["check"]
        for sample in samples
        if sample.name == "uptime_probe_check_interval_seconds"
    }
    assert checks == {check["name"] for check in config["checks"]}
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    (build,) = [sample for sample in samples if sample.name == "uptime_probe_build_info"]
    assert build.labels["version"] == project["version"], build


def test_status_page_renders(container: RunningImage, config: dict[str, Any]) -> None:
    page = container.fetch("/")
    assert page.status == 200, f"status page: {page.status}\n{page.body[:500]}"
    assert page.headers.get("Content-Type", "").startswith("text/html"), page.headers
    assert escape(config["status_page"]["title"]) in page.body
    for check in config["checks"]:
        assert escape(check["description"]) in page.body, f"{check['name']} not on the page"


# --- what runs, and as whom ----------------------------------------------------------------


def test_bundled_config_is_the_repositorys(
    container: RunningImage, image: BuiltImage, repo_root: Path
) -> None:
    bundled = container.image_path(CONFIG_PATH)
    assert bundled.is_file(), f"no {CONFIG_PATH} in the image"
    assert bundled.read_bytes() == (repo_root / "probes.yaml").read_bytes(), (
        f"{CONFIG_PATH} in the image differs from the repository's probes.yaml"
    )
    assert image.config.env.get("UPTIME_PROBE_CONFIG") == CONFIG_PATH
    # The running daemon is the image's entrypoint with the image's command, which names it.
    cmd = image.config.cmd
    assert cmd[cmd.index("-c") + 1] == CONFIG_PATH, cmd
    cmdline = container.cmdline()
    assert cmdline[-len(cmd) :] == cmd, f"the daemon runs {cmdline}, the image's CMD is {cmd}"
    assert Path(cmdline[-len(cmd) - 1]).name == image.config.entrypoint[0], cmdline


def test_image_runs_this_trees_code(container: RunningImage, repo_root: Path) -> None:
    """What the image installed is src/uptime_probe, file for file: a build that reused an old
    layer, or a wheel built from other files, fails here."""
    where = container.exec_as_image_user(
        ["python", "-c", "import os, uptime_probe; print(os.path.dirname(uptime_probe.__file__))"]
    )
    assert where.returncode == 0, f"import uptime_probe in the image:\n{where.stderr}"
    installed = container.image_path(where.stdout.strip())
    source = repo_root / "src" / "uptime_probe"
    files = [
        path.relative_to(installed)
        for path in sorted(installed.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    ]
    differ = [
        str(path)
        for path in files
        if (installed / path).read_bytes() != (source / path).read_bytes()
    ]
    assert not differ, f"the image's uptime_probe differs from src/ in {differ}"
    modules = {path.relative_to(source) for path in source.rglob("*.py")}
    absent = sorted(str(path) for path in modules - set(files))
    assert not absent, f"not in the image: {absent}"


def test_daemon_runs_as_the_images_non_root_user_as_pid_1(
    container: RunningImage, image: BuiltImage
) -> None:
    uids = container.status_of("Uid").split()  # real, effective, saved, filesystem
    gids = container.status_of("Gid").split()
    user = f"the image's USER is {image.config.user!r}, its user is {IMAGE_UID}:{IMAGE_UID}"
    assert set(uids) == {str(IMAGE_UID)}, f"the daemon runs as uid {uids[0]}: {user}"
    assert set(gids) == {str(IMAGE_UID)}, f"the daemon runs as gid {gids[0]}: {user}"
    # Numeric: Kubernetes' runAsNonRoot can only verify a number.
    assert image.config.user == f"{IMAGE_UID}:{IMAGE_UID}", user
    assert "0" not in container.status_of("Groups").split(), "the daemon is in group root"
    assert int(container.status_of("CapEff"), 16) == 0, "the daemon has capabilities"
    # PID 1 of its container: the exec-form ENTRYPOINT gets STOPSIGNAL itself.
    assert container.status_of("NSpid").split()[-1] == "1", (
        f"the daemon is not PID 1 in the container: {container.cmdline()}"
    )


def test_image_user_can_write_only_its_data_dir(container: RunningImage) -> None:
    # Everything the image's user may write, found by the user itself (`-writable` asks the
    # kernel); /proc, /sys and /dev are the engine's, not the image's. Symbolic links are
    # left out: `-writable` judges a link's target (Debian masks services with links to
    # /dev/null, /run/shm links to /dev/shm), and a link itself changes only through its
    # directory, which is judged on its own.
    found = container.exec_as_image_user(
        [
            "find",
            "/",
            "(",
            "-path",
            "/proc",
            "-o",
            "-path",
            "/sys",
            "-o",
            "-path",
            "/dev",
            ")",
            "-prune",
            "-o",
            "!",
            "-type",
            "l",
            "-writable",
            "-print",
        ],
    )
    writable = found.stdout.split()
    assert DATA_DIR in writable, f"the data dir is not writable by the image's user:\n{found}"
    allowed = (DATA_DIR, *TEMPORARY_DIRS)
    outside = [
        path
        for path in writable
        if not any(path == top or path.startswith(f"{top}/") for top in allowed)
    ]
    assert not outside, f"the image's user can write outside {DATA_DIR}: {outside[:20]}"
    # And the daemon did write there: its store, owned by the image's user.
    data = container.image_path(DATA_DIR)
    stores = [path for path in data.iterdir() if path.suffix == ".sqlite3"]
    assert stores, f"no SQLite store in {DATA_DIR}: {sorted(p.name for p in data.iterdir())}"
    owner = stores[0].stat()
    assert owner.st_uid == IMAGE_UID, f"{stores[0].name} belongs to uid {owner.st_uid}"
    assert not stat.S_IWOTH & data.stat().st_mode, f"{DATA_DIR} is world-writable"


def test_healthcheck_passes(container: RunningImage, image: BuiltImage) -> None:
    test = image.config.healthcheck
    assert test[:1] in (["CMD"], ["CMD-SHELL"]), f"the image has no HEALTHCHECK: {test}"
    result = container.healthcheck()
    assert result.returncode == 0, (
        f"the image's HEALTHCHECK {test} failed against the running daemon "
        f"(exit {result.returncode}):\n{result.stdout}{result.stderr}\n{container.describe()}"
    )


# --- browser steps: only in the image with Chromium ------------------------------------------

# What the image's user finds: Chromium on PATH, Playwright importable, and where
# Playwright's own browser download would have gone (it must not be there).
_BROWSER_PARTS = """
import importlib.util, json, os, shutil
spec = importlib.util.find_spec("playwright")
package = os.path.dirname(spec.origin) if spec else None
print(json.dumps({
    "chromium": shutil.which("chromium"),
    "playwright": package,
    "bundled_browsers": bool(package) and os.path.isdir(
        os.path.join(package, "driver", "package", ".local-browsers")),
}))
"""
# Where `playwright install` puts browsers for root (the build's user) and for the image's.
PLAYWRIGHT_DOWNLOADS = ("/root/.cache/ms-playwright", "/nonexistent/.cache/ms-playwright")


def test_chromium_is_only_in_the_chromium_image(
    container: RunningImage, image: BuiltImage, config: dict[str, Any], repo_root: Path
) -> None:
    found = container.exec_as_image_user(["python", "-c", _BROWSER_PARTS])
    assert found.returncode == 0, f"looking for Chromium in the image:\n{found.stderr}"
    parts = json.loads(found.stdout)
    bundled = yaml.safe_load((repo_root / "probes.yaml").read_text())["checks"]
    journeys = [check["name"] for check in bundled if browser_steps(check)]
    assert journeys, "the bundled probes.yaml has no browser journey"
    skipped = [
        record
        for record in log_records(container.output())
        if record.get("event") == "browser_checks_skipped"
    ]
    if not image.variant.chromium:
        # The default image stays small: neither Chromium nor Playwright, and the daemon
        # says it left the browser journeys out.
        assert parts["chromium"] is None, f"the default image has Chromium: {parts}"
        assert parts["playwright"] is None, f"the default image has Playwright: {parts}"
        assert not container.image_path("/usr/lib/chromium").exists(), "/usr/lib/chromium"
        assert [record.get("checks") for record in skipped] == [journeys], (
            f"the daemon should say it skips {journeys}: {skipped}\n{container.describe()}"
        )
        return
    assert parts["chromium"] == "/usr/bin/chromium", f"no Debian Chromium on PATH: {parts}"
    assert parts["playwright"], f"Playwright is not importable in the image: {parts}"
    # Every library Chromium links is in the image (a missing one fails here, by name).
    version = container.exec_as_image_user(["chromium", "--version"])
    said = f"`chromium --version` as the image's user:\n{version.stdout}{version.stderr}"
    assert version.returncode == 0, said
    assert version.stdout.startswith("Chromium "), said
    # Playwright's driver (the Node.js its wheel bundles) starts: `playwright --version` runs it.
    driver = container.exec_as_image_user(["playwright", "--version"])
    said = f"Playwright's driver as the image's user:\n{driver.stdout}{driver.stderr}"
    assert driver.returncode == 0, said
    assert driver.stdout.startswith("Version "), said
    # Debian's Chromium, never Playwright's browser download.
    assert not parts["bundled_browsers"], f"Playwright downloaded browsers into {parts}"
    downloaded = [path for path in PLAYWRIGHT_DOWNLOADS if container.image_path(path).exists()]
    assert not downloaded, f"`playwright install` ran in the build: {downloaded}"
    assert not skipped, f"the image with Chromium skipped browser journeys: {skipped}"


def test_browser_journey_passes_in_the_chromium_image(
    container: RunningImage,
    image: BuiltImage,
    config: dict[str, Any],
    image_logs: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The bundled browser journey, run by the daemon's own Chromium inside the image, against
    the simulator's front end (the image's `uptime-probe simulator`, at the config's default
    base URL): its check turns up, a real page rendered with the sidebar's conversations."""
    journeys = {check["name"]: check for check in config["checks"] if browser_steps(check)}
    if not image.variant.chromium:
        assert not journeys  # the config fixture left them out; the daemon does not run them
        unknown = container.fetch("/api/v1/checks/sidebar_renders/runs")
        assert unknown.status == 404, f"the default image runs sidebar_renders: {unknown}"
        return
    assert journeys, "the bundled probes.yaml has no browser journey"
    started = time.monotonic()
    simulator = container.spawn_as_image_user(
        ["uptime-probe", "simulator", "--listen", "127.0.0.1:8765"],
        image_logs / f"simulator-{image.variant.name}.log",
    )
    try:
        # A run on each journey's schedule after the simulator answers; a slow first one
        # (Chromium starting) may be degraded, so allow the run after it too.
        longest = max(
            2 * parse_duration(check.get("interval", config["defaults"]["interval"]))
            + parse_duration(check.get("timeout", config["defaults"]["timeout"]))
            for check in journeys.values()
        )
        last: dict[str, Any] = {}

        def all_up() -> bool:
            if simulator.poll() is not None:
                raise AssertionError(f"the simulator exited with {simulator.returncode}")
            answer = container.fetch("/api/v1/checks")
            assert answer.status == 200, answer
            for check in json.loads(answer.body)["checks"]:
                if check["name"] in journeys:
                    last[check["name"]] = check
            return all(last.get(name, {}).get("state") == "up" for name in journeys)

        wait_for(
            all_up,
            timeout=longest + 30,
            what=f"the browser journeys {sorted(journeys)} to turn up",
            state=lambda: f"{json.dumps(last, indent=1)}\n{container.describe()}",
        )
        note(
            request.config,
            f"image {image.variant.tag}: browser journeys {sorted(journeys)} up "
            f"{time.monotonic() - started:.0f} s after the simulator started",
        )
        for name in journeys:
            run = last[name]["last_run"]
            assert (run["status"], run["reason"]) == ("up", None), run
        # /metrics agrees (before the simulator stops: a run after that fails).
        families = text_string_to_metric_families(container.fetch("/metrics").body)
        success = {
            sample.labels["check"]: sample.value
            for family in families
            for sample in family.samples
            if sample.name == "uptime_probe_check_success"
        }
        assert all(success.get(name) == 1 for name in journeys), success
        chromium = chromium_command_lines(container)
    finally:
        simulator.kill()
        simulator.wait(timeout=30)
    # Chromium's own sandbox wherever the container lets the image's user make a user
    # namespace (what Debian's Chromium builds it from); without it elsewhere, and said.
    can = container.exec_as_image_user(["python", "-c", _USER_NAMESPACE])
    started = [r for r in log_records(container.output()) if r.get("event") == "chromium_started"]
    assert started, f"the daemon did not log chromium_started\n{container.describe()}"
    assert chromium, "no Chromium process beside the daemon"
    unsandboxed = [command for command in chromium if "--no-sandbox" in command]
    if can.returncode == 0:
        assert [record["sandbox"] for record in started] == [True] * len(started), started
        assert not unsandboxed, f"Chromium runs without its sandbox: {unsandboxed[0]}"
    else:
        assert [record["sandbox"] for record in started] == [False] * len(started), started
        assert all(record.get("why") for record in started), started
        assert unsandboxed, f"the daemon says unsandboxed, but no --no-sandbox: {chromium}"
    note(
        request.config,
        f"image {image.variant.tag}: Chromium "
        + ("in its own sandbox" if can.returncode == 0 else f"unsandboxed: {started[0]['why']}")
        + f" (user namespaces for the image's user: {'yes' if can.returncode == 0 else 'no'})",
    )


# --- last: it stops --------------------------------------------------------------------------


def test_stop_signal_ends_it_with_exit_0_within_the_grace_period(
    container: RunningImage, image: BuiltImage, grace: float
) -> None:
    assert image.config.stop_signal == "SIGTERM", f"STOPSIGNAL {image.config.stop_signal}"
    stopped = container.stop(grace)
    what = (
        f"on SIGTERM the daemon ended with code {stopped.code} after {stopped.seconds:.1f} s "
        f"(grace: {grace:.0f} s)\n{container.describe()}"
    )
    assert stopped.seconds < grace, what
    assert stopped.code == 0, what
    # It drained on the signal (not, say, on a crash that happened to exit 0).
    records = log_records(container.output())
    stops = [record.get("why") for record in records if record.get("event") == "stop_requested"]
    assert stops == ["SIGTERM"], f"{what}\nstop_requested: {stops}"
    assert records[-1].get("event") == "daemon_stopped", f"{what}\nlast: {records[-1]}"


# Exit 0 when the caller may make a user namespace (unshare(CLONE_NEWUSER)).
_USER_NAMESPACE = (
    "import ctypes, sys; sys.exit(ctypes.CDLL(None, use_errno=True).unshare(0x10000000) != 0)"
)


def chromium_command_lines(container: RunningImage) -> list[str]:
    """The command lines of Chromium's processes in the daemon's PID namespace."""
    namespace = os.readlink(f"/proc/{container.pid}/ns/pid")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns/pid") != namespace:
                continue
            command = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:  # gone meanwhile
            continue
        if command and Path(command[0]).name == "chromium":
            found.append(" ".join(command))
    return found


def log_records(output: str) -> list[dict[str, Any]]:
    """The daemon's JSON log lines (podman may add lines of its own)."""
    records = []
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
