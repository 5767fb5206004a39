"""Build the real Dockerfile with podman and run the image the way a container engine would.

Our machines have no Docker daemon and no image registry (docs/deployment.md, "How the image
is verified"), so:

- the `PYTHON_IMAGE` base is a stand-in made from Debian packages of the release the pinned
  tag names (debootstrap, then a venv at /usr/local so `python` and `pip` are where the
  official image has them). It is cached as an image archive keyed on the release, the recipe
  and the machine's CA bundle;
- `podman build --isolation chroot` builds the real Dockerfile on it;
- the image runs with `podman run` where the machine allows it. Where it does not (crun and
  runc both refuse on some hosts), it runs from a writable `podman mount` of a created
  container: the image's own entrypoint and command, environment, working directory and user,
  chrooted into the image's filesystem, as PID 1 of its own PID namespace.

Either way the daemon gets a network namespace of its own with only a loopback interface: it
listens on 0.0.0.0:9713 as the image intends, and nothing outside the namespace can reach it.
The test talks to it by entering that namespace (`nsenter --net`) for each request.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.stack import require_binary, wait_for

# A directory CI can keep between runs; the stand-in base is the only thing in it.
CACHE_DIR_ENV = "UPTIME_PROBE_TEST_CACHE"
DEFAULT_CACHE_DIR = Path("/var/cache/uptime-probe-test")
# "podman" or "chroot" forces one way of running the image (to exercise the other one).
RUN_WAY_ENV = "UPTIME_PROBE_TEST_IMAGE_RUN"

# Bump when the recipe below changes: it is part of the cache key (DEBIAN_IMAGE_CONFIG is too).
BASE_RECIPE = (
    "debootstrap minbase + python3 python3-venv ca-certificates; venv at /usr/local; "
    "Debian image config; v2"
)
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"

BOOTSTRAP_TIMEOUT = 900.0  # seconds; measured 40 s to 110 s
BUILD_TIMEOUT = 900.0  # seconds; the runtime stage downloads the dependencies
COMMAND_TIMEOUT = 120.0

# Official images leave these out (the engine supplies /dev; apt's lists and the docs are
# dead weight): the stand-in does the same, so sizes and the filesystem compare.
TRIMMED = (
    "dev",
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)

# What Debian's official images (debian:RELEASE-slim, under python:*-slim) configure for
# builds on top of them, in substance (debuerreotype's minimizing-config and slimify): a
# Dockerfile's `apt-get install` behaves on the stand-in as on the real base. Without it the
# image with Chromium kept the downloaded packages (260 MB), docs and locales, and dpkg
# synced after every file.
DEBIAN_IMAGE_CONFIG = {
    # Services never start during a build.
    "usr/sbin/policy-rc.d": "#!/bin/sh\nexit 101\n",
    # No sync() after each package: a build that dies is rebuilt from scratch anyway.
    "etc/dpkg/dpkg.cfg.d/docker-apt-speedup": "force-unsafe-io\n",
    # The slim variant: packages installed later leave these out too.
    "etc/dpkg/dpkg.cfg.d/docker": "".join(
        f"path-exclude {path}\n"
        for path in (
            "/usr/share/doc/*",
            "/usr/share/groff/*",
            "/usr/share/info/*",
            "/usr/share/linda/*",
            "/usr/share/lintian/overrides/*",
            "/usr/share/locale/*",
            "/usr/share/man/*",
        )
    )
    + "path-include /usr/share/doc/*/copyright\npath-include /usr/share/locale/locale.alias\n",
    # `apt-get clean` after every install: no downloaded package stays in a layer.
    "etc/apt/apt.conf.d/docker-clean": (
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    ),
    "etc/apt/apt.conf.d/docker-gzip-indexes": 'Acquire::GzipIndexes "true";\n',
    "etc/apt/apt.conf.d/docker-no-languages": 'Acquire::Languages "none";\n',
    "etc/apt/apt.conf.d/docker-autoremove-suggests": 'Apt::AutoRemove::SuggestsImportant "false";\n',
}

# What an image's user may write besides its data directory: the world-writable, sticky
# temporary directories every Debian-based image has.
TEMPORARY_DIRS = ("/tmp", "/var/tmp", "/run/lock", "/var/lock", "/dev/shm")

_NO_SYSTEMD = "unable to get systemd connection"

# The same request from inside the daemon's network namespace, printed as JSON.
_FETCH = r"""
import json, sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
        status, headers, body = response.status, dict(response.headers), response.read()
except urllib.error.HTTPError as error:
    status, headers, body = error.code, dict(error.headers), error.read()
json.dump({"status": status, "headers": headers, "body": body.decode("utf-8", "replace")},
          sys.stdout)
"""


# --- tools ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    podman: str
    debootstrap: str
    nsenter: str
    unshare: str
    ip: str
    mount: str
    env: str


def require_tools() -> Tools:
    """Every program the image test drives; FAIL (never skip) when one is missing."""
    if os.geteuid() != 0:
        pytest.fail(
            "the container image test builds and runs the image as root (podman's rootful "
            "store, chroot, namespaces); CI runs it as root",
            pytrace=False,
        )
    return Tools(
        podman=require_binary("podman", package="podman"),
        debootstrap=require_binary("debootstrap", package="debootstrap"),
        nsenter=require_binary("nsenter", package="util-linux"),
        unshare=require_binary("unshare", package="util-linux"),
        ip=require_binary("ip", package="iproute2"),
        mount=require_binary("mount", package="mount"),
        env=require_binary("env", package="coreutils"),
    )


def run(
    args: Sequence[str], *, timeout: float = COMMAND_TIMEOUT, check: bool = True, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; with `check`, fail with its output when it fails."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kwargs
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"`{' '.join(args)}` exited with {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


def tail(text: str, lines: int = 25) -> str:
    kept = text.rstrip().splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in kept) or "    (no output)"


# --- the stand-in base ---------------------------------------------------------------------


@dataclass(frozen=True)
class PythonImage:
    """What the Dockerfile's pinned base says: python:<version>-slim-<debian release>."""

    tag: str
    python: str  # "3.11"
    release: str  # "bookworm"


def parse_python_image(tag: str) -> PythonImage:
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?-slim-([a-z]+)", tag)
    assert match, f"PYTHON_IMAGE {tag!r} is not python:X.Y[.Z]-slim-RELEASE"
    return PythonImage(tag=tag, python=match.group(1), release=match.group(2))


def debian_mirror(release: str) -> str:
    """The machine's configured Debian mirror for `release` (deb822 or one-line sources)."""
    sources = Path("/etc/apt")
    for path in sorted(sources.glob("sources.list.d/*.sources")):
        for paragraph in path.read_text(encoding="utf-8").split("\n\n"):
            fields = dict(
                line.split(":", 1)
                for line in paragraph.splitlines()
                if ":" in line and not line.startswith("#")
            )
            suites = fields.get("Suites", "").split()
            if release in suites and "deb" in fields.get("Types", "").split():
                return fields["URIs"].split()[0]
    for path in [sources / "sources.list", *sorted(sources.glob("sources.list.d/*.list"))]:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == release:
                return words[1]
    return DEFAULT_DEBIAN_MIRROR


@contextmanager
def locked(directory: Path) -> Iterator[None]:
    """One test process at a time makes the stand-in base (CI may run two on one cache)."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass(frozen=True)
class StandInBase:
    ref: str
    came_from: str  # "podman store", "cache archive" or "debootstrap"
    seconds: float


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def stand_in_base(tools: Tools, pinned: PythonImage, log_dir: Path) -> StandInBase:
    """The stand-in for `pinned`, from podman's store, else the cache archive, else made."""
    started = time.monotonic()
    ca = HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.is_file() else b""
    recipe = json.dumps([BASE_RECIPE, pinned.release, DEBIAN_IMAGE_CONFIG], sort_keys=True)
    key = hashlib.sha256(recipe.encode() + b"\n" + ca).hexdigest()[:12]
    ref = f"localhost/uptime-probe-test/python-base:{pinned.release}-{key}"
    if run([tools.podman, "image", "exists", ref], check=False).returncode == 0:
        return StandInBase(ref, "podman store", time.monotonic() - started)
    directory = cache_dir()
    archive = directory / f"python-base-{pinned.release}-{key}.tar"
    with locked(directory):
        if archive.is_file():
            run([tools.podman, "load", "--quiet", "--input", str(archive)], timeout=300)
            return StandInBase(ref, "cache archive", time.monotonic() - started)
        _make_stand_in(tools, pinned, ref, ca, archive, log_dir)
        for stale in directory.glob(f"python-base-{pinned.release}-*.tar"):
            if stale != archive:
                stale.unlink()
    return StandInBase(ref, "debootstrap", time.monotonic() - started)


def _make_stand_in(
    tools: Tools, pinned: PythonImage, ref: str, ca: bytes, archive: Path, log_dir: Path
) -> None:
    mirror = debian_mirror(pinned.release)
    with tempfile.TemporaryDirectory(dir=archive.parent, prefix="rootfs-") as work:
        rootfs = Path(work) / "rootfs"
        log = log_dir / "debootstrap.log"
        with log.open("w") as output:
            result = subprocess.run(
                [
                    tools.debootstrap,
                    "--variant=minbase",
                    f"--include={','.join(BASE_PACKAGES)}",
                    pinned.release,
                    str(rootfs),
                    mirror,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=BOOTSTRAP_TIMEOUT,
                check=False,
            )
        if result.returncode != 0:
            pytest.fail(
                f"debootstrap of {pinned.release} from {mirror} failed "
                f"({result.returncode}):\n{tail(log.read_text(errors='replace'))}",
                pytrace=False,
            )
        # Where the official image has its interpreter: /usr/local/bin/python and pip.
        run(["chroot", str(rootfs), "python3", "-m", "venv", "/usr/local"])
        version = run(
            [
                "chroot",
                str(rootfs),
                "/usr/local/bin/python",
                "-c",
                "import platform; print(platform.python_version())",
            ]
        ).stdout.strip()
        for relative in TRIMMED:
            for child in (rootfs / relative).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        for relative, text in DEBIAN_IMAGE_CONFIG.items():
            path = rootfs / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            path.chmod(0o755 if relative.startswith("usr/sbin/") else 0o644)
        # Builds download from PyPI through this machine's CA bundle (it may hold a proxy's
        # CA); the official image's bundle would do on an ordinary machine.
        if ca:
            (rootfs / "etc/ssl/certs/ca-certificates.crt").write_bytes(ca)
        changes = [
            "PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG=C.UTF-8",
            f"PYTHON_VERSION={version}",  # as the official image sets it
            "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            "PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
        ]
        tarball = Path(work) / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."], timeout=300)
        run(
            [
                tools.podman,
                "import",
                *[f"--change=ENV {change}" for change in changes],
                '--change=CMD ["python3"]',
                str(tarball),
                ref,
            ],
            timeout=300,
        )
        partial = archive.with_suffix(".partial")
        run(
            [tools.podman, "save", "--format", "docker-archive", "--output", str(partial), ref],
            timeout=300,
        )
        partial.rename(archive)


# --- the image -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageVariant:
    """One image the Dockerfile makes. A variant with Chromium (a build argument or a second
    target) is one more entry in test_image.VARIANTS, with its own checks beside the common
    ones."""

    name: str
    target: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    # What the tests expect of it: Chromium and Playwright installed, browser steps running.
    chromium: bool = False

    @property
    def tag(self) -> str:
        return f"localhost/uptime-probe-test:{self.name}"


@dataclass(frozen=True)
class ImageConfig:
    """What a container engine reads from the image to run it (`podman image inspect`)."""

    ref: str
    user: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    workdir: str
    stop_signal: str
    healthcheck: list[str]  # ["CMD", ...], ["CMD-SHELL", "..."], or [] when there is none
    healthcheck_timeout: float
    size: int
    labels: dict[str, str]


def inspect_image(tools: Tools, ref: str) -> ImageConfig:
    (data,) = json.loads(run([tools.podman, "image", "inspect", ref]).stdout)
    config = data.get("Config") or {}
    health = data.get("Healthcheck") or {}
    return ImageConfig(
        ref=ref,
        user=config.get("User") or "",
        env=dict(item.split("=", 1) for item in config.get("Env") or []),
        entrypoint=list(config.get("Entrypoint") or []),
        cmd=list(config.get("Cmd") or []),
        workdir=config.get("WorkingDir") or "/",
        stop_signal=config.get("StopSignal") or "SIGTERM",
        healthcheck=list(health.get("Test") or []),
        healthcheck_timeout=(health.get("Timeout") or 30_000_000_000) / 1e9,
        size=int(data["Size"]),
        labels=dict(config.get("Labels") or {}),
    )


@dataclass(frozen=True)
class BuiltImage:
    variant: ImageVariant
    config: ImageConfig
    seconds: float


def build_failure(log: str) -> str:
    """The step that failed and podman's error, from a build log."""
    lines = log.splitlines()
    steps = [line for line in lines if re.search(r"STEP \d+/\d+:", line)]
    errors = [line for line in lines if line.startswith(("Error:", "error"))]
    step = steps[-1] if steps else "(before the first step)"
    return f"failed at `{step}`: {errors[-1] if errors else '(no error line)'}"


def build_image(
    tools: Tools, repo_root: Path, base: str, variant: ImageVariant, log_dir: Path
) -> BuiltImage:
    """`podman build` of the repository's Dockerfile for `variant` on the stand-in base."""
    revision = run(["git", "rev-parse", "HEAD"], check=False, cwd=repo_root).stdout.strip()
    # The previous build of this variant: replaced, so repeated runs do not fill the store.
    run([tools.podman, "rmi", "--force", variant.tag], check=False)
    args = [
        tools.podman,
        "build",
        "--isolation",
        "chroot",
        # Docker's format: the OCI image format has no HEALTHCHECK, podman would drop it.
        "--format",
        "docker",
        # No layer cache: buildah 1.28 (Debian bookworm's) reuses the
        # `RUN --mount=type=bind,from=builder` layer even when the wheel behind the mount
        # changed, which would test yesterday's code; and where the builder stage came
        # whole from the cache, that mount fails ("couldn't find .../wheels on host").
        "--layers=false",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "--build-arg",
        f"VCS_REF={revision or 'unknown'}",
        *[f"--build-arg={name}={value}" for name, value in variant.build_args.items()],
        *(["--target", variant.target] if variant.target else []),
        "--tag",
        variant.tag,
        "--file",
        str(repo_root / "Dockerfile"),
        str(repo_root),
    ]
    log_path = log_dir / f"build-{variant.name}.log"
    started = time.monotonic()
    with log_path.open("w") as log:
        result = subprocess.run(
            args, stdout=log, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT, check=False
        )
    seconds = time.monotonic() - started
    if result.returncode != 0:
        text = log_path.read_text(errors="replace")
        pytest.fail(
            f"podman build of the Dockerfile ({variant.name}) {build_failure(text)}\n"
            f"last lines of {log_path}:\n{tail(text)}",
            pytrace=False,
        )
    return BuiltImage(variant, inspect_image(tools, variant.tag), seconds)


def podman_run_refusal(tools: Tools, base: str) -> str | None:
    """None when `podman run` works on this machine, else podman's reason."""
    forced = os.environ.get(RUN_WAY_ENV)
    if forced == "chroot":
        return f"{RUN_WAY_ENV}=chroot"
    result = run(
        [tools.podman, "run", "--rm", "--network", "none", *ulimits(), base, "true"], check=False
    )
    if result.returncode == 0:
        return None
    reason = [line for line in result.stderr.splitlines() if "level=" not in line]
    why = reason[-1] if reason else f"exit {result.returncode}"
    if forced == "podman":
        pytest.fail(f"{RUN_WAY_ENV}=podman, but podman run fails here: {why}", pytrace=False)
    return why


def ulimits() -> list[str]:
    """`--ulimit` values a runtime can set without CAP_SYS_RESOURCE. podman asks by default
    for up to 1048576 open files and processes; where raising a hard limit is denied (it is
    on our machines), runc refuses to start any container ("error setting rlimits"). Open
    files: this process's own hard limit, at most 65536. Processes (counted per uid: the
    daemon's threads and the commands the test runs as its user): 4096."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    cap = 65536
    nofile = cap if nofile == resource.RLIM_INFINITY else min(nofile, cap)
    nproc = 4096 if nproc == resource.RLIM_INFINITY else min(nproc, 4096)
    return ["--ulimit", f"nofile={nofile}:{nofile}", "--ulimit", f"nproc={nproc}:{nproc}"]


@dataclass(frozen=True)
class ImageUser:
    uid: int
    gid: int
    home: str


def resolve_user(rootfs: Path, spec: str) -> ImageUser:
    """USER as a container engine reads it: "uid[:gid]" or names, looked up in the image's
    own /etc/passwd and /etc/group (no USER means root); HOME from /etc/passwd, else /."""
    user, _, group = (spec or "0").partition(":")
    passwd = [line.split(":") for line in (rootfs / "etc/passwd").read_text().splitlines()]
    groups = [line.split(":") for line in (rootfs / "etc/group").read_text().splitlines()]
    entry = next((row for row in passwd if user in (row[0], row[2])), None)
    if user.isdigit():
        uid = int(user)
    else:
        assert entry is not None, f"USER {user!r} is not in the image's /etc/passwd"
        uid = int(entry[2])
    gid = int(entry[3]) if entry is not None else 0
    if group.isdigit():
        gid = int(group)
    elif group:
        row = next((row for row in groups if row[0] == group), None)
        assert row is not None, f"USER group {group!r} is not in the image's /etc/group"
        gid = int(row[2])
    return ImageUser(uid, gid, entry[5] if entry is not None else "/")


# --- running it ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class Stopped:
    code: int
    seconds: float


class RunningImage(ABC):
    """The image's entrypoint and command, started; the ways differ in how (subclasses)."""

    way = ""

    def __init__(self, tools: Tools, image: ImageConfig, log_path: Path) -> None:
        self.tools = tools
        self.image = image
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    # What a subclass provides.

    @abstractmethod
    def start(self) -> None:
        raise NotImplementedError

    @abstractmethod
    def daemon_pid(self) -> int | None:
        """The daemon's PID as this machine sees it, once it exists."""
        raise NotImplementedError

    @abstractmethod
    def exec_as_image_user(
        self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        """`argv` in the running container, as the image's user, with its environment."""
        raise NotImplementedError

    @abstractmethod
    def spawn_as_image_user(self, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        """`argv` started beside the daemon (its network, its filesystem), as the image's
        user, with its environment; it ends when the test kills it or the container stops."""
        raise NotImplementedError

    @abstractmethod
    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        raise NotImplementedError

    @abstractmethod
    def stop(self, grace: float) -> Stopped:
        """Stop it the way the engine stops a container: the image's STOPSIGNAL, then SIGKILL
        after `grace` seconds."""
        raise NotImplementedError

    @abstractmethod
    def close(self) -> None:
        raise NotImplementedError

    # Common to both ways.

    @property
    def pid(self) -> int:
        pid = self.daemon_pid()
        assert pid, "the daemon has no PID yet"
        return pid

    def exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def output(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def describe(self) -> str:
        status = "running"
        if self.process is not None and self.process.poll() is not None:
            status = f"exited with code {self.process.returncode}"
        # podman without systemd complains that it cannot schedule the healthcheck timer; the
        # test runs the healthcheck itself, and the complaint would crowd out the daemon's lines.
        output = "\n".join(line for line in self.output().splitlines() if _NO_SYSTEMD not in line)
        return (
            f"--- the image, run with {self.way}, {status}; last lines of {self.log_path}:\n"
            f"{tail(output, 30)}"
        )

    def fetch(self, path: str, port: int = 9713) -> Response:
        """GET http://127.0.0.1:PORT/PATH from inside the daemon's network namespace."""
        result = run(
            [
                self.tools.nsenter,
                f"--net=/proc/{self.pid}/ns/net",
                "--",
                sys.executable,
                "-I",
                "-c",
                _FETCH,
                f"http://127.0.0.1:{port}{path}",
            ],
            check=False,
            timeout=30,
        )
        if result.returncode != 0:
            raise ConnectionError(result.stderr.strip().splitlines()[-1:] or "fetch failed")
        data = json.loads(result.stdout)
        return Response(int(data["status"]), dict(data["headers"]), str(data["body"]))

    def wait_until_healthy(self, timeout: float) -> None:
        """Until /healthz answers 200; fails at once, with the output, if the process ends."""

        def state() -> str | None:
            if self.exited():
                return "exited"
            if not self.daemon_pid():
                return None
            return "up" if self.fetch("/healthz").status == 200 else None

        outcome = wait_for(
            state, timeout=timeout, what="/healthz to answer 200", state=self.describe
        )
        if outcome == "exited":
            raise AssertionError(
                f"the image's entrypoint exited before /healthz answered\n{self.describe()}"
            )

    def status_of(self, field_name: str) -> str:
        """A line of /proc/PID/status, e.g. Uid."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name == field_name:
                return value.strip()
        raise KeyError(field_name)

    def cmdline(self) -> list[str]:
        return Path(f"/proc/{self.pid}/cmdline").read_bytes().decode().split("\0")[:-1]

    def image_path(self, path: str) -> Path:
        """A path of the container's filesystem, as the daemon sees it."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")


class PodmanRun(RunningImage):
    """`podman run`, attached (its exit code is the container's), in `--network none`."""

    way = "podman run"

    def __init__(self, tools: Tools, image: ImageConfig, log_path: Path, grace: float) -> None:
        super().__init__(tools, image, log_path)
        self.name = f"uptime-probe-test-{os.getpid()}-{int(time.time() * 1000)}"
        self.grace = grace
        self._pid = 0

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.tools.podman,
                    "run",
                    "--name",
                    self.name,
                    "--network",
                    "none",
                    f"--stop-timeout={round(self.grace)}",
                    *ulimits(),
                    self.image.ref,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def daemon_pid(self) -> int | None:
        if not self._pid:
            result = run(
                [self.tools.podman, "inspect", "--format", "{{.State.Pid}}", self.name],
                check=False,
            )
            pid = result.stdout.strip()
            self._pid = int(pid) if result.returncode == 0 and pid.isdigit() else 0
        return self._pid or None

    def exec_as_image_user(
        self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return run([self.tools.podman, "exec", self.name, *argv], check=False, timeout=timeout)

    def spawn_as_image_user(self, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [self.tools.podman, "exec", self.name, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        result = run([self.tools.podman, "healthcheck", "run", self.name], check=False)
        if result.returncode == 0:
            return result
        # "unhealthy" says nothing more: run the command itself to show why.
        test = self.image.healthcheck
        argv = test[1:] if test[:1] == ["CMD"] else ["/bin/sh", "-c", *test[1:]]
        detail = self.exec_as_image_user(argv, timeout=self.image.healthcheck_timeout + 5)
        return subprocess.CompletedProcess(
            result.args,
            result.returncode,
            result.stdout + detail.stdout,
            result.stderr + detail.stderr,
        )

    def stop(self, grace: float) -> Stopped:
        assert self.process is not None
        started = time.monotonic()
        # `podman stop` sends the image's STOPSIGNAL, then SIGKILL after --stop-timeout.
        run([self.tools.podman, "stop", self.name], check=False, timeout=grace + 30)
        code = self.process.wait(timeout=30)
        return Stopped(code, time.monotonic() - started)

    def close(self) -> None:
        run([self.tools.podman, "rm", "--force", "--volumes", self.name], check=False)
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


# Run by the host's sh inside the new namespaces, as root: loopback up, /proc and a minimal
# /dev in the image's filesystem (what an engine provides), then the rest of the command
# line, which becomes the image's user (env -i ... unshare --root ... -- ENTRYPOINT CMD).
_PREPARE = """
set -eu
ip=$1 mount=$2 root=$3
shift 3
"$ip" link set lo up
"$mount" -t proc -o nosuid,nodev,noexec proc "$root/proc"
"$mount" -t tmpfs -o nosuid,mode=0755 tmpfs "$root/dev"
for node in null zero full random urandom tty; do
  : > "$root/dev/$node"
  "$mount" --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/shm"
"$mount" -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/dev/shm"
exec "$@"
"""


class ChrootOfMount(RunningImage):
    """The image's filesystem from `podman mount` of a created container (writable, as a
    container's is), entered with `unshare --root` as the image's user.

    `unshare --net --mount --pid --fork` gives it what a container has: its own network with
    only loopback, its own mounts (/proc, /dev), and PID 1, which gets SIGTERM only through a
    handler it installed, as in a container."""

    def __init__(self, tools: Tools, image: ImageConfig, log_path: Path, refusal: str) -> None:
        super().__init__(tools, image, log_path)
        self.way = f"chroot of podman mount (podman run refused: {refusal})"
        self.container = ""
        self.root = Path()
        self.user = ImageUser(0, 0, "/")
        self._pid = 0

    def _as_image_user(self, argv: Sequence[str]) -> list[str]:
        """`argv` in the image's root, directory, environment and user (run as root)."""
        env = {"HOME": self.user.home, **self.image.env}
        return [
            self.tools.env,
            "-i",
            *[f"{name}={value}" for name, value in env.items()],
            self.tools.unshare,
            f"--root={self.root}",
            f"--wd={self.image.workdir}",
            f"--setuid={self.user.uid}",
            f"--setgid={self.user.gid}",
            "--",
            *argv,
        ]

    def start(self) -> None:
        self.container = run([self.tools.podman, "create", self.image.ref]).stdout.strip()
        self.root = Path(run([self.tools.podman, "mount", self.container]).stdout.strip())
        self.user = resolve_user(self.root, self.image.user)
        command = self._as_image_user([*self.image.entrypoint, *self.image.cmd])
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    self.tools.unshare,
                    "--net",
                    "--mount",
                    "--pid",
                    "--fork",
                    "--kill-child",
                    "--",
                    "/bin/sh",
                    "-c",
                    _PREPARE,
                    "sh",
                    self.tools.ip,
                    self.tools.mount,
                    str(self.root),
                    *command,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def daemon_pid(self) -> int | None:
        """The forked child of `unshare`: sh, then env, unshare and the daemon, one PID."""
        if not self._pid and self.process is not None:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
            try:
                found = children.read_text().split()
            except FileNotFoundError:
                found = []
            self._pid = int(found[0]) if found else 0
        return self._pid or None

    def _in_namespaces(self, argv: Sequence[str]) -> list[str]:
        return [
            self.tools.nsenter,
            f"--target={self.pid}",
            "--net",
            "--mount",
            "--",
            *self._as_image_user(argv),
        ]

    def exec_as_image_user(
        self, argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT
    ) -> subprocess.CompletedProcess[str]:
        return run(self._in_namespaces(argv), check=False, timeout=timeout)

    def spawn_as_image_user(self, argv: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
        # nsenter, env and unshare each exec the next: the Popen's PID is `argv`'s.
        with log_path.open("ab") as log:
            return subprocess.Popen(
                self._in_namespaces(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        test = self.image.healthcheck
        argv = test[1:] if test[:1] == ["CMD"] else ["/bin/sh", "-c", *test[1:]]
        try:
            return self.exec_as_image_user(argv, timeout=self.image.healthcheck_timeout)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(
                argv, -1, "", f"timed out after {self.image.healthcheck_timeout:.0f}s"
            )

    def stop(self, grace: float) -> Stopped:
        assert self.process is not None
        started = time.monotonic()
        os.kill(self.pid, signal.Signals[self.image.stop_signal])
        try:
            code = self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()  # --kill-child takes the daemon with it
            self.process.wait(timeout=30)
            code = -signal.SIGKILL
        return Stopped(code, time.monotonic() - started)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        if self.container:
            run([self.tools.podman, "umount", self.container], check=False)
            run([self.tools.podman, "rm", "--force", "--volumes", self.container], check=False)


def start_image(
    tools: Tools, image: ImageConfig, refusal: str | None, log_path: Path, grace: float
) -> RunningImage:
    running: RunningImage = (
        PodmanRun(tools, image, log_path, grace)
        if refusal is None
        else ChrootOfMount(tools, image, log_path, refusal)
    )
    running.start()
    return running


# --- what the run says about itself ----------------------------------------------------------

# Lines for the end of pytest's output (tests/deploy/conftest.py prints them): which way the
# image ran, where the base came from, how long each part took, the image's size.
NOTES = pytest.StashKey[list[str]]()


def note(config: pytest.Config, text: str) -> None:
    config.stash.setdefault(NOTES, []).append(text)
