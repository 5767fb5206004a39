#!/usr/bin/env bash
# Installs everything the tests need (Debian packages, the package with its test
# extra in .venv), then runs lint, types and the whole test suite. `.ci/run` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real programs the end-to-end tests drive: Prometheus + promtool, Alertmanager, Chromium;
# mount/umount for real full and read-only filesystems; podman, debootstrap and runc build
# and run the container image (tests/deploy/test_image.py).
missing=()
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
{ command -v alertmanager || command -v prometheus-alertmanager; } >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# tests/faults/test_data_dir.py mounts a full and a read-only tmpfs (needs root, as in CI).
{ command -v mount && command -v umount; } >/dev/null 2>&1 || missing+=(mount)
command -v podman >/dev/null 2>&1 || missing+=(podman)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check src tests
.venv/bin/mypy --strict src
exec .venv/bin/pytest "$@"
