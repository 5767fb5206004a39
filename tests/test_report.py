"""`uptime-probe incidents`: the Markdown and JSON renderings, and the command itself."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from uptime_probe.probe.artifacts import ArtifactStore
from uptime_probe.probe.model import CheckResult, Status, StepResult
from uptime_probe.report import print_incidents, render_incidents
from uptime_probe.sinks import RunOutcome
from uptime_probe.state.incidents import Incident, IncidentEvent, IncidentTracker
from uptime_probe.state.machine import CheckState, next_state
from uptime_probe.state.store import Store

T0 = 1_764_756_000.0  # 2025-12-03 10:00:00 UTC
CLI_DEADLINE = 30.0


def run(
    check: str,
    code: str,
    at: float,
    *,
    message: str = "length(items) = 0, expected > 0",
    sample: str | None = '{"items": []}',
) -> CheckResult:
    if code == "u":
        return CheckResult(check, Status.UP, None, None, "ok", at, 0.05)
    reason, step = ("empty_history", "conversations") if code == "d" else ("timeout", "page")
    failed = StepResult(
        step, Status.DOWN, reason, message, 0.05, http_status=200, response_sample=sample
    )
    return CheckResult(check, Status.DOWN, reason, step, message, at, 0.05, (failed,))


def play(check: str, codes: str, start: float, **kwargs: str | None) -> list[IncidentEvent]:
    """Runs 10 s apart through a tracker (failure_threshold 2, success_threshold 1)."""
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append])
    down = 0
    previous: Status | None = None
    for i, code in enumerate(codes):
        result = run(check, code, start + 10 * i, **kwargs)  # type: ignore[arg-type]
        down = down + 1 if code != "u" else 0
        state = Status.DOWN if down >= 2 else (Status.UP if code == "u" else previous)
        tracker.accept(RunOutcome(result, state, previous, "eu-west"))
        previous = state
    return events


def incident(
    check: str = "history_sidebar", codes: str = "ddtdu", **kwargs: str | None
) -> Incident:
    return play(check, codes, T0, **kwargs)[-1].incident


def fenced_blocks(markdown: str) -> list[str]:
    """The contents of the backtick-fenced code blocks, as CommonMark reads them: a block
    closes at the first line of at least as many backticks as opened it."""
    blocks = []
    lines = markdown.split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^ {0,3}(`{3,})[^`]*$", lines[i])
        i += 1
        if opening is None:
            continue
        width = len(opening.group(1))
        body = []
        while i < len(lines) and not re.match(rf"^ {{0,3}}`{{{width},}}\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        i += 1
        blocks.append("\n".join(body))
    return blocks


def table_cells(row: str) -> list[str]:
    """A Markdown table row split on its unescaped pipes."""
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1]]


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_tells_the_story() -> None:
    md = render_incidents([incident()], "markdown", now=T0 + 3600)
    lines = md.splitlines()
    assert lines[0] == "# Incidents (1)"
    assert "## history_sidebar: empty_history (resolved)" in lines
    assert "- Check: `history_sidebar` (location `eu-west`)" in lines
    opened = next(line for line in lines if line.startswith("- Opened:"))
    assert "2025-12-03 10:00:10 UTC" in opened
    assert "resolved 2025-12-03 10:00:40 UTC" in opened
    assert "(duration 30s)" in opened
    assert "- Detected 10s after the first failed run (2025-12-03 10:00:00 UTC)" in lines
    assert "- Reasons seen: `empty_history` x3, `timeout` x1" in lines
    assert "- Failing steps: `conversations`, `page`" in lines
    assert "- First failure: `length(items) = 0, expected > 0`" in lines
    assert fenced_blocks(md) == ['{"items": []}']

    header = lines.index("| time | status | update |")
    assert lines[header + 1] == "| --- | --- | --- |"
    rows = [table_cells(line) for line in lines[header + 2 :]]
    assert [(r[0], r[1]) for r in rows] == [
        ("2025-12-03 10:00:10 UTC", "investigating"),
        ("2025-12-03 10:00:20 UTC", "investigating"),
        ("2025-12-03 10:00:40 UTC", "monitoring"),
        ("2025-12-03 10:00:40 UTC", "resolved"),
    ]
    assert "timeout" in rows[1][2]


def test_reasons_are_listed_most_frequent_first() -> None:
    md = render_incidents([incident(codes="tdddu")], "markdown", now=T0 + 3600)
    assert "## history_sidebar: timeout (resolved)" in md  # the first failure's reason
    assert "- Reasons seen: `empty_history` x3, `timeout` x1\n" in md


def test_markdown_of_an_open_incident_counts_to_now() -> None:
    md = render_incidents([incident(codes="dd")], "markdown", now=T0 + 10 + 3725)
    assert "## history_sidebar: empty_history (investigating)" in md
    assert "; still open (duration 1h 2m 5s)" in md


@pytest.mark.parametrize(
    "sample",
    [
        '{"items": []}',
        "```\n## injected heading\n```",
        "````",
        "a ``` b\n```` four\n`````",
        "   ```\nindented fence",
        "ends with ```",
        "trailing newline\n",
    ],
)
def test_sample_cannot_break_out_of_its_code_block(sample: str) -> None:
    md = render_incidents([incident(sample=sample)], "markdown", now=T0 + 3600)
    assert fenced_blocks(md) == [sample]
    # Everything after the sample is still Markdown: the timeline table follows the block.
    after = md.split(sample, 1)[1]
    assert "| time | status | update |" in after
    assert "## injected heading" not in md.replace(sample, "")


def test_no_sample_no_code_block() -> None:
    md = render_incidents([incident(codes="ttu", sample=None)], "markdown", now=T0 + 3600)
    assert fenced_blocks(md) == []
    assert "response sample" not in md


def test_messages_stay_inside_their_list_item_and_table_cell() -> None:
    message = "items[0] = 'a | b'\n## injected\n| x | y |"
    md = render_incidents([incident(message=message)], "markdown", now=T0 + 3600)
    lines = md.splitlines()
    assert not any(line.startswith("## injected") for line in lines)
    first = next(line for line in lines if line.startswith("- First failure:"))
    assert "## injected" in first
    header = lines.index("| time | status | update |")
    for row in lines[header + 2 :]:
        assert len(table_cells(row)) == 3, row


def test_markdown_lists_incidents_oldest_first() -> None:
    older = play("chat_load", "ddu", T0)[-1].incident
    newer = play("history_sidebar", "dd", T0 + 600)[-1].incident
    md = render_incidents([newer, older], "markdown", now=T0 + 3600)  # the store's order
    assert md.index("## chat_load") < md.index("## history_sidebar")
    assert md.startswith("# Incidents (2)")


def test_no_incidents() -> None:
    assert render_incidents([], "markdown", now=T0) == "No incidents in this period.\n"
    assert json.loads(render_incidents([], "json", now=T0)) == []


# --- JSON -------------------------------------------------------------------------------------


# The incident JSON contract, shared by the report and the web API (tests/web/test_api.py).
INCIDENT_KEYS = {
    "id",
    "check",
    "location",
    "status",
    "opened_at",
    "resolved_at",
    "first_failure_at",
    "time_to_detect_seconds",
    "first_reason",
    "first_message",
    "response_sample",
    "artifact",
    "trace",
    "reasons",
    "failing_steps",
    "held_back",
    "timeline",
}


TIMELINE_KEYS = {"at", "status", "message", "kind", "count", "until"}


def test_json_shape() -> None:
    (doc,) = json.loads(render_incidents([incident()], "json", now=T0 + 3600))
    assert set(doc) == INCIDENT_KEYS
    assert doc["id"].startswith("history_sidebar-")
    assert doc["check"] == "history_sidebar"
    assert doc["location"] == "eu-west"
    assert doc["status"] == "resolved"
    assert doc["opened_at"] == T0 + 10
    assert doc["resolved_at"] == T0 + 40
    assert doc["first_failure_at"] == T0
    assert doc["time_to_detect_seconds"] == 10.0
    assert doc["first_reason"] == "empty_history"
    assert doc["first_message"] == "length(items) = 0, expected > 0"
    assert doc["response_sample"] == '{"items": []}'
    assert doc["reasons"] == {"empty_history": 3, "timeout": 1}
    assert doc["failing_steps"] == ["conversations", "page"]
    assert [e["status"] for e in doc["timeline"]] == [
        "investigating",
        "investigating",
        "monitoring",
        "resolved",
    ]
    assert all(set(e) == TIMELINE_KEYS for e in doc["timeline"])
    assert all((e["kind"], e["count"], e["until"]) == ("update", 1, None) for e in doc["timeline"])


def test_json_of_an_open_incident() -> None:
    (doc,) = json.loads(render_incidents([incident(codes="dd")], "json", now=T0))
    assert doc["status"] == "investigating"
    assert doc["resolved_at"] is None


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
async def data_dir(tmp_path: Path) -> Path:
    """A data dir as the daemon leaves it: one resolved incident an hour ago, one open, one
    resolved three days ago."""
    now = time.time()
    directory = tmp_path / "data"
    store = Store(directory)
    await store.open()
    for check, codes, start in [
        ("history_sidebar", "ddtdu", now - 7200),
        ("chat_load", "dd", now - 1800),
        ("old_check", "ddu", now - 3 * 86400),
    ]:
        for event in play(check, codes, start):
            store.record_incident(event)
    await store.close()
    return directory


async def cli(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPTIME_PROBE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uptime_probe.cli",
        "incidents",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_DEADLINE)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_incidents_command(data_dir: Path, tmp_path: Path) -> None:
    d = str(data_dir)
    markdown, everything, one, missing, bad_since, bad_format = await asyncio.gather(
        cli("--data-dir", d),
        cli("--data-dir", d, "--since", "7d", "--format", "json"),
        cli("--data-dir", d, "--format", "json", "--check", "history_sidebar"),
        cli("--data-dir", str(tmp_path / "nowhere"), "--format", "json"),
        cli("--data-dir", d, "--since", "yesterday"),
        cli("--data-dir", d, "--format", "xml"),
    )

    code, out, err = markdown
    assert (code, err) == (0, "")
    assert out.startswith("# Incidents (2)\n")  # --since 24h: not the one 3 days ago
    assert "## history_sidebar: empty_history (resolved)" in out
    assert "## chat_load: empty_history (investigating)" in out
    assert "old_check" not in out
    assert fenced_blocks(out) == ['{"items": []}'] * 2

    code, out, err = everything
    assert (code, err) == (0, "")
    docs = json.loads(out)
    assert [d["check"] for d in docs] == ["chat_load", "history_sidebar", "old_check"]

    code, out, err = one
    assert code == 0
    (doc,) = json.loads(out)
    assert doc["check"] == "history_sidebar"
    assert doc["status"] == "resolved"
    assert doc["reasons"] == {"empty_history": 3, "timeout": 1}
    assert doc["time_to_detect_seconds"] == 10.0

    code, out, err = missing
    assert code == 1
    assert out == ""  # nothing a JSON consumer would try to parse
    assert f"no history in {tmp_path / 'nowhere'}/" in err
    assert "--data-dir" in err

    code, out, err = bad_since
    assert code == 2
    assert out == ""
    assert "--since" in err
    assert "'yesterday'" in err

    code, _out, err = bad_format
    assert code == 2
    assert "xml" in err


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"this is not an SQLite database, just text" * 100, "not a database"), (b"", "no such")],
)
async def test_unreadable_history_is_a_clear_error(
    tmp_path: Path, content: bytes, why: str
) -> None:
    store = Store(tmp_path)
    store.path.write_bytes(content)
    out, err = io.StringIO(), io.StringIO()
    assert await print_incidents(tmp_path, 86400.0, "json", None, out, err) == 1
    assert out.getvalue() == ""
    assert str(store.path) in err.getvalue()
    assert why in err.getvalue()


async def test_report_reads_while_the_daemon_writes(tmp_path: Path) -> None:
    # The daemon keeps its connection open: the report opens read-only beside it.
    store = Store(tmp_path)
    await store.open()
    try:
        for event in play("history_sidebar", "dd", time.time() - 60):
            store.record_incident(event)
        assert await store.flush()
        out = io.StringIO()
        assert await print_incidents(tmp_path, 3600.0, "json", None, out, io.StringIO()) == 0
        assert [d["status"] for d in json.loads(out.getvalue())] == ["investigating"]
    finally:
        await store.close()


SHOT = "history_sidebar/20251203T100000.000Z-page.png"


@pytest.mark.parametrize("fmt", ["markdown", "json"])
def test_a_trace_is_named_only_when_the_daemon_kept_it(tmp_path: Path, fmt: str) -> None:
    # A daemon with `browser.keep_traces: false`, or one that could not save a trace, has a
    # screenshot and no trace beside it: the report must not send readers to a missing file.
    shot = dataclasses.replace(incident(), artifact=SHOT)
    files = ArtifactStore(tmp_path / "artifacts", keep=0)
    (tmp_path / "artifacts" / "history_sidebar").mkdir(parents=True)
    (tmp_path / "artifacts" / SHOT).write_bytes(b"png")

    def named() -> str | None:
        text = render_incidents([shot], fmt, now=T0 + 3600, files=files)
        if fmt == "json":
            (doc,) = json.loads(text)
            assert doc["artifact"] == SHOT
            return doc["trace"]  # type: ignore[no-any-return]
        assert f"artifacts/{SHOT}" in text
        found = re.search(r"trace: `artifacts/([^`]+)`", text)
        return found.group(1) if found else None

    assert named() is None
    trace = SHOT.removesuffix(".png") + ".zip"
    (tmp_path / "artifacts" / trace).write_bytes(b"zip")
    assert named() == trace
    # Without the daemon's files at hand nothing is claimed either.
    assert "trace" not in render_incidents([shot], "markdown", now=T0 + 3600)


async def test_the_report_looks_for_traces_where_the_daemon_keeps_them(tmp_path: Path) -> None:
    store = Store(tmp_path)
    await store.open()
    try:
        for event in play("history_sidebar", "dd", time.time() - 60):
            store.save_incident(dataclasses.replace(event.incident, artifact=SHOT))
        assert await store.flush()
    finally:
        await store.close()
    trace = tmp_path / "artifacts" / (SHOT.removesuffix(".png") + ".zip")
    trace.parent.mkdir(parents=True)
    trace.write_bytes(b"zip")
    out = io.StringIO()
    assert await print_incidents(tmp_path, 3600.0, "json", None, out, io.StringIO()) == 0
    kept = trace.relative_to(tmp_path / "artifacts").as_posix()
    assert [d["trace"] for d in json.loads(out.getvalue())] == [kept]


# --- hostile text from a target ----------------------------------------------------------------

HOSTILE_VALUES = [
    "<!-- [click](http://evil) ![x](http://evil/pixel.png)",
    "<img src=x onerror=alert(1)> <script>alert(1)</script>",
    "[click](javascript:alert(1)) <http://evil> https://evil.example/x",
    "a | b || c \\| d",
    "``` ```` `x` `",
    "`starts and ends with a backtick`",
    "line one\n## injected heading\n- injected item\r\n| x | y |",
    "*emph* _emph_ **strong** ~~gone~~ &amp; &lt;b&gt;",
    "\\",
    " ",
]


def render_html(markdown: str) -> tuple[str, list[Any]]:
    """The report as a code-hosting site renders it: CommonMark with GFM tables, raw HTML
    passed through (as GitHub does before its sanitizer)."""
    parser = MarkdownIt("gfm-like", {"html": True, "linkify": False})
    tokens = parser.parse(markdown)
    return parser.renderer.render(tokens, parser.options, {}), tokens


def flatten(tokens: list[Any]) -> list[Any]:
    out = []
    for token in tokens:
        out.append(token)
        out.extend(flatten(token.children or []))
    return out


@pytest.mark.parametrize("hostile", HOSTILE_VALUES)
def test_text_from_a_target_is_shown_not_rendered(hostile: str) -> None:
    """A target's text (in the first failure, the timeline and the sample) stays text: no
    HTML, comment, link or image reaches the page, and the document's shape holds."""
    md = render_incidents(
        [incident(message=f"v = {hostile}", sample=hostile)], "markdown", now=T0 + 3600
    )
    html, tokens = render_html(md)
    kinds = {token.type for token in flatten(tokens)}
    assert not kinds & {"html_inline", "html_block", "link_open", "image", "s_open"}, kinds
    assert not kinds & {"em_open", "strong_open", "heading_open"} - {
        t.type for t in flatten(render_html("## history_sidebar")[1])
    }
    assert html.count("<h2>") == 1  # the incident's own heading, nothing injected
    assert "<!--" not in html
    # The timeline is one table of 4 rows of 3 cells, after the list and the sample.
    assert html.count("<table>") == 1
    body = html.split("<tbody>", 1)[1]
    assert body.count("<tr>") == 4
    assert body.count("<td>") == 12
    # What the target said is all there, in code, as it was (line breaks made spaces).
    shown = " ".join(hostile.splitlines())
    codes = [t.content for t in flatten(tokens) if t.type == "code_inline"]
    if shown.strip():
        assert f"v = {shown}" in codes or f"v = {shown}".strip() in codes, codes
        assert any(shown.strip() in code for code in codes[3:]), codes  # a timeline cell
    fences = [t.content for t in flatten(tokens) if t.type == "fence"]
    sample = hostile.replace("\r\n", "\n")  # as any Markdown reader normalises it
    assert fences == [sample + ("\n" if not sample.endswith("\n") else "")], fences


def test_a_table_cell_keeps_its_pipes_and_backslashes() -> None:
    md = render_incidents([incident(message="a | b \\| c")], "markdown", now=T0 + 3600)
    _, tokens = render_html(md)
    cells = [t.content for t in flatten(tokens) if t.type == "code_inline"]
    assert any("a | b \\| c" in cell for cell in cells[3:]), cells


# --- a flapping check ------------------------------------------------------------------------


def flapping_incident(flips: int) -> Incident:
    """Down twice (opens), then up and down in turn, under success_threshold 2."""
    events: list[IncidentEvent] = []
    tracker = IncidentTracker([events.append])
    state = CheckState()
    for i in range(flips + 2):
        code = "d" if i < 2 or i % 2 else "u"
        before = state
        state = next_state(
            before,
            Status.DOWN if code == "d" else Status.UP,
            failure_threshold=2,
            success_threshold=2,
        )
        tracker.accept(
            RunOutcome(run("flappy", code, T0 + 10 * i), state.state, before.state, "eu-west")
        )
    return events[-1].incident


def test_a_flapping_check_reads_as_one_counted_row() -> None:
    md = render_incidents([flapping_incident(10_000)], "markdown", now=T0 + 200_000)
    lines = md.splitlines()
    header = lines.index("| time | status | update |")
    rows = [table_cells(line) for line in lines[header + 2 :]]
    assert len(rows) == 2
    assert rows[0][0] == "2025-12-03 10:00:10 UTC"
    assert rows[1][:2] == ["2025-12-03 10:00:20 UTC to 2025-12-04 13:46:50 UTC", "investigating"]
    assert rows[1][2].startswith("`Flapped 10,000 times between investigating and monitoring; ")
    (doc,) = json.loads(render_incidents([flapping_incident(10_000)], "json", now=T0))
    counted = doc["timeline"][1]
    assert (counted["kind"], counted["count"]) == ("flapping", 10_000)
    assert (counted["at"], counted["until"]) == (T0 + 20, T0 + 10 * 10_001)


CONFIG_WITH_DATA_DIR = """\
store:
  data_dir: {data_dir}
checks:
  - name: history_sidebar
    steps:
      - name: conversations
        request: {{url: "http://127.0.0.1:9/"}}
"""


async def test_incidents_takes_the_data_dir_from_the_config(data_dir: Path, tmp_path: Path) -> None:
    """`-c` as for every other command: the history is where the daemon running that config
    keeps it (`store.data_dir`, relative to the config's folder), from any working folder;
    `--data-dir` still wins."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    relative = tmp_path / "probes.yaml"
    relative.write_text(CONFIG_WITH_DATA_DIR.format(data_dir="data"))
    absolute = elsewhere / "absolute.yaml"
    absolute.write_text(CONFIG_WITH_DATA_DIR.format(data_dir=data_dir))
    broken = elsewhere / "broken.yaml"
    broken.write_text("store: {data_dir: 7}\n")
    by_relative, by_absolute, flag_wins, invalid, missing = await asyncio.gather(
        cli("-c", str(relative), "--format", "json", cwd=elsewhere),
        cli("--config", str(absolute), "--format", "json", "--check", "chat_load", cwd=elsewhere),
        cli("-c", str(relative), "--data-dir", str(elsewhere), "--format", "json", cwd=elsewhere),
        cli("-c", str(broken), cwd=elsewhere),
        cli("-c", str(elsewhere / "nope.yaml"), cwd=elsewhere),
    )

    code, out, err = by_relative
    assert (code, err) == (0, "")
    assert sorted(doc["check"] for doc in json.loads(out)) == ["chat_load", "history_sidebar"]

    code, out, err = by_absolute
    assert (code, err) == (0, "")
    assert [doc["check"] for doc in json.loads(out)] == ["chat_load"]

    code, out, err = flag_wins
    assert (code, out) == (1, "")
    assert f"no history in {elsewhere}/" in err

    for code, out, err in (invalid, missing):
        assert (code, out) == (2, "")
        assert err.startswith("config error:")


async def test_incidents_without_a_config_reads_data_in_the_working_folder(
    data_dir: Path, tmp_path: Path
) -> None:
    """No `-c` and no probes.yaml where it runs: `data/` there, as before."""
    code, out, err = await cli("--format", "json", cwd=tmp_path)
    assert (code, err) == (0, "")
    assert len(json.loads(out)) == 2
