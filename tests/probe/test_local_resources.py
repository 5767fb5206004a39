"""A run that cannot open a socket because of the prober's own limits is `local_resources`.

Real descriptors, not a mock: a child process lowers its RLIMIT_NOFILE, checks that the
target answers, then holds every descriptor it has left and runs the same check again. The
socket() inside aiohttp's connector fails with EMFILE ("Too many open files"), which used
to read as `connect_refused`: the target blamed for the prober's own exhaustion. Closing
the held files makes the next run up again, with nothing else changed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from .conftest import Target

REPO = Path(__file__).resolve().parents[2]

CHILD = """
import asyncio, json, resource, sys
from tests.probe.journeys import plan_of, step
from uptime_probe.probe import run_check

LIMIT = 64  # above what the interpreter, the loop and aiohttp hold at rest (~30)


async def main(url):
    plan = plan_of(step(url))
    out = {"before": (await run_check(plan)).status}
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))
    held = []
    # The first run's sockets may still be closing: take what they free too, until a
    # round finds nothing more (bounded: there are never more than LIMIT to take).
    for _ in range(LIMIT):
        gained = 0
        try:
            while len(held) < LIMIT:
                held.append(open("/dev/null", "rb"))
                gained += 1
        except OSError as exc:
            out["filled"] = exc.errno
        if not gained and held:
            break
        await asyncio.sleep(0.05)
    exhausted = await run_check(plan)
    out["exhausted"] = [exhausted.status, exhausted.reason, exhausted.message]
    for f in held:
        f.close()
    out["after"] = (await run_check(plan)).status
    print(json.dumps(out))


asyncio.run(main(sys.argv[1]))
"""


async def test_out_of_descriptors_is_local_resources_not_the_targets_fault(
    target: Target,
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO)])}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, f"{target.url}/status/200",
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, stderr.decode()
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    assert out["before"] == "up", out
    assert out["filled"] == 24, out  # EMFILE: the limit was really reached
    status, reason, message = out["exhausted"]
    assert (status, reason) == ("down", "local_resources"), out
    assert "out of file descriptors" in message, out
    assert out["after"] == "up", out
