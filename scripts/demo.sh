#!/usr/bin/env bash
# Installs uptime-probe into .venv and runs its out-of-the-box demo.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q -e .
exec .venv/bin/uptime-probe demo -c probes.yaml "$@"
