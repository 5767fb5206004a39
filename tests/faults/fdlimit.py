"""Run the daemon through loopwatch.py under a file-descriptor limit set before it starts.

Usage: ``python tests/faults/fdlimit.py SOFT HARD run -c probes.yaml ...``

RLIMIT_NOFILE is set here, in the daemon's own process, before anything else runs: the
daemon sees the limits a host would give it (a soft limit below the hard one, as with
systemd's 1024:524288), and what it does with them at start is what is tested.
"""

from __future__ import annotations

import resource
import sys

import loopwatch  # beside this file: run as a script, its folder is on sys.path

if __name__ == "__main__":
    soft, hard = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    sys.exit(loopwatch.main(sys.argv[3:]))
