"""The example config the package carries: `uptime-probe demo` runs it when given no
`-c`, and `uptime-probe init` writes a starter `probes.yaml` from it.

One file, `examples/probes.yaml` in the package: the repository's `probes.yaml` is a
symbolic link to it, and the image copies it to /etc/uptime-probe/. So the journeys the
demo probes, the ones the image ships and the ones `init` starts a user with never drift.
"""

from __future__ import annotations

from pathlib import Path

# A path on disk, not an importlib.resources Traversable: the daemon watches its config
# file for changes, and the package is always installed as files (a wheel, or the tree).
EXAMPLE_CONFIG = Path(__file__).resolve().parent / "examples" / "probes.yaml"
