"""How long a reload holds the daemon's event loop, in process, at 1,000 and 10,000 checks.

The daemon (`app.Daemon`, as `uptime-probe run` builds it, on uvloop) starts on a config
of N checks, then reloads a rewritten file while a ticker task on the loop wakes every
millisecond and records how late each wake-up was. The longest lateness during the reload
is the longest the loop was held: whatever else shares the loop (a run's timers, a scrape,
/healthz) waited that long. It counts every cause alike: our code on the loop, the
interpreter lock held by the thread that parses the file, a garbage collection.

Kinds of reload, each from the same first config:

- `touch`: the file rewritten with one check's description changed (the common edit);
- `intervals`: every check's interval changed, so every check's timer is re-armed;
- `replace`: every check renamed, so all are removed and as many added.

Checks point at a closed port on 127.0.0.1 with a long interval: few runs happen, so what
is measured is the reload, not probing.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.common import LoopTicker, Spread, run_daemon_measure
from bench.contenders import probes_config

KINDS = ("touch", "intervals", "replace")
INTERVAL_SECONDS = 3600.0


def _config(checks: int, kind: str | None) -> dict[str, Any]:
    config = probes_config(checks=checks, interval=INTERVAL_SECONDS, url="http://127.0.0.1:9/json")
    config["server"] = {"watch_interval": "1h"}
    if kind == "touch":
        config["checks"][0]["description"] = f"touched at {time.time()}"
    elif kind == "intervals":
        config["defaults"]["interval"] = f"{INTERVAL_SECONDS - 60:g}s"
    elif kind == "replace":
        for check in config["checks"]:
            check["name"] = "r" + check["name"][1:]
    return config


async def _measure(checks: int, repeats: int) -> dict[str, Any]:
    from uptime_probe.app import Daemon, DaemonOptions, load_deployment_config

    out: dict[str, Any] = {"checks": checks}
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "probes.yaml"
        path.write_text(yaml.safe_dump(_config(checks, None), sort_keys=False))
        options = DaemonOptions(path, listen="127.0.0.1:0", data_dir=Path(directory) / "data")
        daemon = Daemon(load_deployment_config(options), options, None)
        await daemon.start()
        try:
            await asyncio.sleep(1.0)  # past the start's own work
            for kind in KINDS:
                pauses, walls, wall_pauses = [], [], []
                for _ in range(repeats):
                    for step in (kind, None):  # there and back, so each reload changes as much
                        text = yaml.safe_dump(_config(checks, step), sort_keys=False)
                        path.write_text(text)
                        ticker = LoopTicker()
                        ticker.start()
                        started = time.perf_counter()
                        outcome = await daemon.reload("bench")
                        walls.append(time.perf_counter() - started)
                        await asyncio.sleep(0.05)  # what the reload left for the loop
                        await ticker.stop()
                        if not outcome.ok:
                            raise RuntimeError(f"reload failed: {outcome.message}")
                        pauses.append(max(ticker.held, default=0.0))
                        wall_pauses.append(max(ticker.late, default=0.0))
                out[kind] = {
                    "pause_ms": Spread.of(p * 1e3 for p in pauses).as_dict(),
                    "wall_pause_ms": Spread.of(p * 1e3 for p in wall_pauses).as_dict(),
                    "reload_seconds": Spread.of(walls).as_dict(),
                }
        finally:
            await daemon.stop()
    return out


def reload_pause(checks: int, repeats: int = 3) -> dict[str, Any]:
    """The longest event-loop pause of each kind of reload of `checks` checks (uvloop)."""
    return run_daemon_measure(_measure(checks, repeats), tuned_gc=True)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(reload_pause(int(sys.argv[1]) if len(sys.argv) > 1 else 1000), indent=1))
