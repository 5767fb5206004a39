#!/usr/bin/env bash
# The benchmark: uptime-probe against Prometheus blackbox_exporter on this machine, written to
# docs/benchmarks.md. Not part of the test suite (it takes about an hour at full scale).
#
#   bash scripts/bench.sh                      # everything, full scale
#   bash scripts/bench.sh --scale reduced      # short windows: proves the harness (~25 min)
#   bash scripts/bench.sh --only throughput,cpu
#   bash scripts/bench.sh --soak [--minutes 10]   # the soak (bench/soak.py) -> docs/reliability.md
#
# It installs what is missing: the Debian packages below (as root, or with sudo) and the
# project with its `bench` extra into .venv. Everything it starts listens on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus-blackbox-exporter >/dev/null 2>&1 || command -v blackbox_exporter >/dev/null 2>&1 \
  || missing+=(prometheus-blackbox-exporter)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian packages start system services where an init system runs; the benchmark starts
# its own copies on free loopback ports, so those are left alone (and never relied on).

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e '.[bench]'

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ "${1:-}" = "--soak" ]; then
  shift
  exec .venv/bin/python -m bench.soak "$@"
fi
exec .venv/bin/python -m bench.run "$@"
