"""`uptime-probe demo`: the simulator replaying 3 December 2025, the daemon probing it,
and a live view of each check in the terminal."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from uptime_probe.app import Daemon, DaemonOptions
from uptime_probe.config import ConfigError, load_config
from uptime_probe.config.model import Config
from uptime_probe.logs import configure_logging
from uptime_probe.probe.kinds.stream import StreamFigures
from uptime_probe.probe.model import CheckResult, FailureReason, Status
from uptime_probe.simulator import RunningSimulator, load_scenario, start_simulator
from uptime_probe.sinks import RunOutcome
from uptime_probe.starter import EXAMPLE_CONFIG

DEMO_SPEED = 11.0  # the 55-minute scenario in 5 minutes
SIMULATOR_PORT = 8765
DEMO_TOKEN = "demo-token"  # noqa: S105 - the simulator's public demo token

_COLOURS = {"up": "\033[32m", "degraded": "\033[33m", "down": "\033[31m", "pending": "\033[2m"}
_RESET = "\033[0m"


@dataclass(slots=True)
class _Row:
    state: str = "pending"
    last: str = "-"
    reason: str = "-"
    step: str = "-"
    answer: str = ""  # a streamed answer's figures, on a line of its own


class LiveView:
    """A result sink that keeps each check's latest state for the terminal view."""

    def __init__(self, checks: list[str]) -> None:
        self.rows = {name: _Row() for name in checks}
        self.changes: list[str] = []

    def accept(self, outcome: RunOutcome) -> None:
        result = outcome.result
        row = self.rows.setdefault(result.check, _Row())
        row.last = result.status.value
        row.state = outcome.state.value if outcome.state else "pending"
        if result.status is Status.DOWN:
            row.reason, row.step = result.reason or "-", result.failed_step or "-"
        elif result.status is Status.DEGRADED:
            row.reason, row.step = result.shown_reason or "-", result.failed_step or "-"
        else:
            row.reason, row.step = "-", "-"
        row.answer = answer_line(result)
        if outcome.state_changed and outcome.state is not None:
            self.changes.append(
                f"{result.check} -> {outcome.state.value}"
                + (f" ({result.reason} at {result.failed_step})" if result.reason else "")
            )

    def render(self, phase: str, note: str, colour: bool) -> str:
        lines = [f"scenario phase: {phase}", f"  {note[:110]}", ""]
        lines.append(f"  {'CHECK':<18}{'STATE':<10}{'LAST RUN':<10}{'REASON':<16}STEP")
        for name, row in self.rows.items():
            state = row.state
            shown = f"{_COLOURS.get(state, '')}{state:<10}{_RESET}" if colour else f"{state:<10}"
            lines.append(f"  {name:<18}{shown}{row.last:<10}{row.reason:<16}{row.step}")
            if row.answer:
                answer = row.answer
                if colour and row.last != "up":
                    answer = f"{_COLOURS.get(row.last, '')}{answer}{_RESET}"
                lines.append(f"  {'':<18}{answer}")
        if self.changes:
            lines += ["", "  recent changes:", *(f"    {c}" for c in self.changes[-5:])]
        return "\n".join(lines)


def answer_line(result: CheckResult) -> str:
    """A streamed answer as its user lived it: when the first word came, the longest
    silence, how much came; a stall says so. Empty for a check without a stream step."""
    for step in result.steps:
        figures = step.figures
        if not isinstance(figures, StreamFigures):
            continue
        first = figures.first_token_seconds
        parts = [f"first token {first:.2f}s" if first is not None else "no token"]
        if figures.longest_gap_seconds is not None:
            parts.append(f"longest silence {figures.longest_gap_seconds:.2f}s")
        parts.append(f"{figures.events} events")
        if figures.answer_chars is not None:
            parts.append(f"{figures.answer_chars} chars")
        line = f"{step.name}: {', '.join(parts)}"
        if step.reason == FailureReason.STREAM_STALLED:
            line += "  <- stalled mid-answer"
        elif step.reason == FailureReason.FIRST_EVENT_TIMEOUT:
            line += "  <- never started"
        return line
    return ""


async def run_demo(
    config_path: Path | None, listen: str, data_dir: Path | None, out: TextIO = sys.stdout
) -> int:
    """`config_path` None: the journeys the package carries (starter.EXAMPLE_CONFIG), so
    the demo runs from any folder; `data_dir` None: the config's `store.data_dir`."""
    config_path = config_path or EXAMPLE_CONFIG
    # The demo always probes its own simulator, whatever the shell's environment says.
    os.environ["CHAT_BASE_URL"] = f"http://127.0.0.1:{SIMULATOR_PORT}"
    os.environ["CHAT_API_TOKEN"] = DEMO_TOKEN
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        print(f"config error:\n{exc}", file=sys.stderr)
        return 2
    data_dir = data_dir or config.store.data_dir_path
    data_dir.mkdir(parents=True, exist_ok=True)
    log_file = (data_dir / "demo.log").open("a", encoding="utf-8")
    logs = configure_logging("info", log_file, force_json=True)
    try:
        simulator: RunningSimulator = await start_simulator(
            "127.0.0.1",
            SIMULATOR_PORT,
            scenario=load_scenario("dec-3-2025"),
            speed=DEMO_SPEED,
            loop=True,
            token=DEMO_TOKEN,
        )
    except OSError as exc:
        print(
            f"cannot start the simulator on 127.0.0.1:{SIMULATOR_PORT}: {exc.strerror}"
            " (is another demo or simulator running?)",
            file=sys.stderr,
        )
        return 1
    view = LiveView([check.name for check in config.checks])
    daemon = Daemon(
        config, DaemonOptions(config_path, listen=listen, data_dir=data_dir), logs, [view]
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, daemon.request_stop, signal.Signals(signum).name)
    try:
        await daemon.start()
    except OSError as exc:
        await simulator.stop()
        print(f"cannot listen on {listen}: {exc}", file=sys.stderr)
        return 1
    assert daemon.address is not None
    base = f"http://{daemon.address[0]}:{daemon.address[1]}"
    print(
        "uptime-probe demo: the 3 December 2025 incident, replayed in about 5 minutes.\n"
        f"  simulated chat service  http://127.0.0.1:{SIMULATOR_PORT}/#token={DEMO_TOKEN}\n"
        f"  status page             {base}/\n"
        f"  metrics                 {base}/metrics\n"
        f"  health                  {base}/healthz\n"
        f"  logs                    {data_dir / 'demo.log'}\n"
        f"{_browser_note(config, data_dir)}"
        "Press Ctrl-C to stop.\n",
        file=out,
        flush=True,
    )
    await _show(view, simulator, daemon, out)
    await daemon.stop()
    await simulator.stop()
    logs.writer.close()
    log_file.close()
    print("demo stopped.", file=out)
    return 0


def _browser_note(config: Config, data_dir: Path) -> str:
    """What the demo says about its browser journeys: where their screenshots go, or,
    where Chromium is missing, that they are skipped and how to get them."""
    if config.skipped_checks:
        return (
            f"  browser journeys        skipped ({', '.join(config.skipped_checks)}): "
            f"{config.skipped_because}\n"
        )
    if any(step.handler == "browser" for check in config.checks for step in check.steps):
        return f"  screenshots             {data_dir / 'artifacts'} (failed browser steps)\n"
    return ""


async def _show(view: LiveView, simulator: RunningSimulator, daemon: Daemon, out: TextIO) -> None:
    tty = out.isatty()
    last = ""
    while True:
        phase = simulator.current_phase()
        frame = view.render(phase.name, phase.note, colour=tty)
        if tty:
            # Redraw in place: cursor up over the previous frame, clear to the end.
            lines_up = last.count("\n") + 1 if last else 0
            out.write((f"\033[{lines_up}F\033[J" if lines_up else "") + frame + "\n")
        elif frame != last:
            out.write(frame + "\n\n")
        out.flush()
        last = frame
        try:
            await asyncio.wait_for(daemon.wait_for_stop(), timeout=1.0)
            return
        except TimeoutError:
            continue
