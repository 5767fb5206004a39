"""The demo's live view shows a streamed answer as its user lived it: a stall is visible."""

from __future__ import annotations

from pathlib import Path

from uptime_probe.config import load_config
from uptime_probe.demo import LiveView
from uptime_probe.probe import Status, compile_checks, run_check
from uptime_probe.simulator import start_simulator
from uptime_probe.simulator.answers import ANSWER
from uptime_probe.sinks import RunOutcome

REPO = Path(__file__).resolve().parents[2]


async def _frame(fault: object) -> str:
    """One run of probes.yaml's chat_answer against the simulator with `fault` on the
    answer, through the live view."""
    async with await start_simulator(token="demo-token") as simulator:
        simulator.set_faults({"answer": fault})
        config = load_config(REPO / "probes.yaml", env={"CHAT_BASE_URL": simulator.url})
        result = await run_check(compile_checks(config)["chat_answer"])
    view = LiveView([check.name for check in config.checks])
    view.accept(RunOutcome(result, result.status, Status.UP, "local"))
    return view.render("a phase", "a note", colour=False)


async def test_a_stalled_answer_shows_its_silence() -> None:
    frame = await _frame({"mode": "stall", "latency": 10})

    assert "  chat_answer       down      down      stream_stalled  answer\n" in frame
    # The role event and 3 tokens came, then probes.yaml's max_gap (3 s) of silence.
    line = next(line for line in frame.splitlines() if "longest silence" in line)
    assert line.startswith("                    answer: first token 0.")
    assert "longest silence 3.0" in line
    assert line.endswith(", 4 events, 10 chars  <- stalled mid-answer")


async def test_a_healthy_answer_shows_its_pace() -> None:
    frame = await _frame("ok")

    line = next(line for line in frame.splitlines() if "longest silence" in line)
    assert line.endswith(f", 12 events, {len(ANSWER)} chars")
    assert "<-" not in line
    # The other journeys have no stream: no line of their own.
    assert frame.count("longest silence") == 1
