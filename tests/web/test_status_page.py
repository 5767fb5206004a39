"""The status page as served: content from a real Store, escaping, headers, and the parts
(uptime bars, sparkline, incidents) built from history."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass, field
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from uptime_probe.probe.model import CheckResult, Status
from uptime_probe.state.store import DailyUptime, Store
from uptime_probe.web.status import (
    UPTIME_DAYS,
    PageView,
    StatusPage,
    clock,
    day_bars,
    durations_ending_with,
    iso,
    percent,
    span,
    sparkline,
)

from .conftest import MakeClient, MakeHarness
from .harness import FLAPS, HOSTILE, Harness, flapping, make_config, now

DAY = 86400.0


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)


class Page(HTMLParser):
    """Every element with its attributes, and the text directly under elements with an id."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.elements.append(element)
        if tag not in {"meta", "link", "br", "input", "img"}:  # HTML void elements
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text.append(data)

    def by_id(self, id_: str) -> Element:
        found = [e for e in self.elements if e.attrs.get("id") == id_]
        assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
        return found[0]

    def text_of(self, id_: str) -> str:
        return " ".join("".join(self.by_id(id_).text).split())

    def tags(self, tag: str) -> list[Element]:
        return [e for e in self.elements if e.tag == tag]


HOSTILE_DESCRIPTION = 'History <b>loads</b> & "is" <img src=x onerror="window.__pwned=2">'
HOSTILE_MESSAGE = "fetch: length(items) = 0, expected > 0 <svg onload=alert(1)>"


async def outage(make_harness: MakeHarness) -> tuple[Harness, float]:
    """history_sidebar down now (empty_history, a hostile sample); chat_load had a resolved
    incident two days ago; some days of good history before."""
    config = make_config(
        {"name": "chat_load", "description": "Chat page loads"},
        {"name": "history_sidebar", "description": HOSTILE_DESCRIPTION},
        status_page={"title": "SimChat <status>"},
        defaults={"failure_threshold": 2, "success_threshold": 1, "slo": 0.99},
    )
    harness = await make_harness(config)
    t = now()
    for days_ago in (5, 4, 3):
        for name in ("chat_load", "history_sidebar"):
            harness.run(name, Status.UP, at=t - days_ago * DAY, duration=0.05)
    base = t - 2 * DAY
    harness.run("chat_load", Status.DOWN, at=base, reason="http_5xx", http_status=503)
    harness.run("chat_load", Status.DOWN, at=base + 30, reason="http_5xx", http_status=503)
    harness.run("chat_load", Status.UP, at=base + 95)
    # Today's runs are seconds old, so they share today's UTC day but for a few seconds a day.
    for i, duration in enumerate((0.04, 0.05, 0.30, 0.06)):
        harness.run("chat_load", Status.UP, at=t - 4 + i, duration=duration)
    harness.run("history_sidebar", Status.UP, at=t - 3)
    for at in (t - 2, t - 1):
        harness.run(
            "history_sidebar",
            Status.DOWN,
            at=at,
            reason="empty_history",
            step="conversations",
            message=HOSTILE_MESSAGE,
            sample=HOSTILE,
        )
    await harness.flush()
    return harness, t


async def test_page_shows_states_reasons_and_incidents(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness, _t = await outage(make_harness)
    client = await make_client(harness)
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    page = Page(await response.text())

    banner = page.by_id("banner")
    assert banner.attrs["data-banner"] == "partial_outage"
    assert page.text_of("banner") == "Partial outage"

    history = page.by_id("check-history_sidebar")
    assert history.attrs["data-state"] == "down"
    text = page.text_of("check-history_sidebar")
    assert "empty history (HTTP 200) at step conversations" in text
    assert HOSTILE_MESSAGE in text  # shown as text, whole
    assert HOSTILE in text  # the response sample, as text
    assert HOSTILE_DESCRIPTION in text
    assert "Last run" in text
    assert "ago" in text

    chat = page.by_id("check-chat_load")
    assert chat.attrs["data-state"] == "up"
    assert "Chat page loads" in page.text_of("check-chat_load")

    (open_incident,) = [
        e for e in page.tags("article") if e.attrs.get("data-status") == "investigating"
    ]
    assert open_incident.attrs["data-check"] == "history_sidebar"
    incident_text = " ".join("".join(open_incident.text).split())
    assert "empty history" in incident_text
    assert "Investigating" in incident_text
    assert "conversations" in incident_text

    (past,) = [e for e in page.tags("article") if e.attrs.get("data-status") == "resolved"]
    assert past.attrs["data-check"] == "chat_load"
    past_text = " ".join("".join(past.text).split())
    # Opened at the second failed run (base + 30), resolved at base + 95.
    assert "lasted 1m 05s" in past_text
    assert "a server error status (HTTP 503)" not in past_text  # no status on the incident
    assert "a server error status (5xx)" in past_text
    for status in ("Investigating", "Monitoring", "Resolved"):
        assert status in past_text


async def test_user_and_target_strings_are_escaped(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness, _t = await outage(make_harness)
    client = await make_client(harness)
    html = await (await client.get("/")).text()
    page = Page(html)
    # The page has no script at all, so any <script> element came from a string.
    assert page.tags("script") == []
    assert "<script" not in html.lower()
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    # Descriptions and messages: no element or attribute made from them.
    assert page.tags("img") == []
    assert [e for e in page.elements if e.tag == "svg" and "onload" in e.attrs] == []
    assert not [e for e in page.elements if any(a.startswith("on") for a in e.attrs)]
    assert "&lt;b&gt;loads&lt;/b&gt; &amp; &#34;is&#34;" in html
    # The configured title is a user string too.
    assert "<title>Partial outage · SimChat &lt;status&gt;</title>" in html


async def test_page_headers(make_harness: MakeHarness, make_client: MakeClient) -> None:
    harness, _t = await outage(make_harness)
    client = await make_client(harness)
    response = await client.get("/")
    html = await response.text()
    csp = response.headers["Content-Security-Policy"]
    directives = dict(part.strip().partition(" ")[::2] for part in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    nonce = re.fullmatch(r"'nonce-([A-Za-z0-9_-]{16,})'", directives["style-src"])
    assert nonce is not None
    (style,) = Page(html).tags("style")
    assert style.attrs["nonce"] == nonce.group(1)
    # The stylesheet goes in as it is: `&#34;` is not decoded inside <style>, and an
    # escaped font list silently drops the declaration.
    css = resources.files("uptime_probe.web").joinpath("static/status.css").read_text("utf-8")
    assert '"Segoe UI"' in css
    assert css.strip() in html
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    # A fresh nonce on every response.
    again = await client.get("/")
    assert again.headers["Content-Security-Policy"] != csp
    # It refreshes itself without any script.
    (refresh,) = [m for m in Page(html).tags("meta") if m.attrs.get("http-equiv") == "refresh"]
    assert refresh.attrs["content"] == "10"
    (viewport,) = [m for m in Page(html).tags("meta") if m.attrs.get("name") == "viewport"]
    assert "width=device-width" in viewport.attrs["content"]


async def test_uptime_bars_and_sparkline(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness, _t = await outage(make_harness)
    client = await make_client(harness)
    page = Page(await (await client.get("/")).text())
    for name in ("chat_load", "history_sidebar"):
        rects = [
            e
            for e in page.elements
            if e.tag == "rect" and "bar" in e.attrs.get("class", "").split()
        ]
        assert len(rects) == UPTIME_DAYS * 2, name
    classes = [e.attrs["class"] for e in page.tags("rect")]
    # Per check: 5, 4, 3 days ago, 2 days ago (chat_load only, with its incident) and today.
    assert classes.count("bar bar-none") == 2 * UPTIME_DAYS - 9
    assert classes.count("bar bar-bad") == 2  # chat_load 2 days ago; history today (1 of 3)
    (spark_chat, spark_history) = page.tags("polyline")
    assert len(spark_chat.attrs["points"].split()) == 10  # every chat_load run
    assert len(spark_history.attrs["points"].split()) == 6
    text = page.text_of("check-chat_load")
    assert "latest 60 ms, highest 300 ms" in text


async def test_todays_bar_is_never_stale(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    """Past days are cached; today's bar follows every run (an outage shows at once)."""
    harness = await make_harness(make_config({"name": "only"}))
    t = now()
    harness.run("only", Status.UP, at=t - 3 * DAY)
    harness.run("only", Status.UP, at=t - 2)
    await harness.flush()
    client = await make_client(harness)

    async def bars() -> tuple[list[str], str]:
        page = Page(await (await client.get("/")).text())
        classes = [e.attrs["class"].removeprefix("bar bar-") for e in page.tags("rect")]
        return classes, page.text_of("check-only")

    classes, text = await bars()
    assert (classes[-4], classes[-1]) == ("ok", "ok")
    assert "100% uptime" in text
    harness.run("only", Status.DOWN, at=t - 1, reason="timeout")
    await harness.flush()
    classes, text = await bars()
    assert (classes[-4], classes[-1]) == ("ok", "bad")  # today: 1 of 2 runs good
    assert "66.66% uptime" in text


async def test_pending_page_before_any_run(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness = await make_harness(make_config({"name": "only"}))
    client = await make_client(harness)
    response = await client.get("/")
    assert response.status == 200
    page = Page(await response.text())
    assert page.by_id("banner").attrs["data-banner"] == "pending"
    assert page.by_id("check-only").attrs["data-state"] == "pending"
    assert "No run yet" in page.text_of("check-only")
    assert "no history yet" in page.text_of("check-only")


async def test_a_message_sqlite_cannot_encode_does_not_break_the_page(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness = await make_harness(make_config({"name": "only"}))
    harness.run("only", Status.DOWN, at=now(), reason="invalid_json", message="bad \ud800 body")
    client = await make_client(harness)
    response = await client.get("/")
    assert response.status == 200
    assert "bad ? body" in await response.text()


async def _degraded_after_eight_quick_runs(harness: Harness, at: float) -> None:
    for i in range(8):
        harness.run("slow", Status.UP, at=at - 60 + i, duration=0.001 if i % 2 else 0.002)
        await harness.flush()


SLOW_RUN = {"duration": 3.0, "message": "fetch: took 3.000s, above max_latency 1s"}


async def test_duration_summary_ends_with_the_last_run_while_its_row_is_unwritten(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    """Issue 17: "took 3.0 s" beside "Duration, last 8 runs: latest 1 ms, highest 2 ms".
    The last run comes from memory, the summary came from the store, whose writer commits
    in batches and waits its turn behind a retention pass (the lock held here)."""
    harness = await make_harness(make_config({"name": "slow"}))
    t = now()
    await _degraded_after_eight_quick_runs(harness, t)
    client = await make_client(harness)
    async with harness.store._write_lock:  # the writer cannot commit meanwhile
        harness.run("slow", Status.DEGRADED, at=t - 5, **SLOW_RUN)  # type: ignore[arg-type]
        text = Page(await (await client.get("/")).text()).text_of("check-slow")
    assert "took 3000 ms" in text
    assert "Duration, last 9 runs: latest 3000 ms, highest 3000 ms" in text
    await harness.flush()
    text = Page(await (await client.get("/")).text()).text_of("check-slow")
    assert "Duration, last 9 runs: latest 3000 ms, highest 3000 ms" in text  # once, when stored


async def test_duration_summary_ends_with_the_last_run_when_its_row_is_lost(
    tmp_path: Path, make_client: MakeClient
) -> None:
    """A burst larger than the store's queue loses rows (counted, logged): the summary
    still ends with the run shown beside it."""
    store = Store(tmp_path / "data", queue_size=1)
    await store.open()
    try:
        harness = Harness(make_config({"name": "slow"}), store)
        t = now()
        await _degraded_after_eight_quick_runs(harness, t)
        harness.run("slow", Status.UP, at=t - 10, duration=0.002)  # fills the queue
        harness.run("slow", Status.DEGRADED, at=t - 5, **SLOW_RUN)  # type: ignore[arg-type]
        await harness.flush()
        assert store.lost == 1
        client = await make_client(harness)
        text = Page(await (await client.get("/")).text()).text_of("check-slow")
        assert "took 3000 ms" in text
        assert "Duration, last 10 runs: latest 3000 ms, highest 3000 ms" in text
    finally:
        await store.close()


async def _selects_per_view(harness: Harness, client: Any) -> list[int]:
    """How many SELECTs the store ran for each of two views of the page."""
    statements: list[str] = []
    await harness.store.db.set_trace_callback(statements.append)
    counts = []
    for _ in range(2):
        statements.clear()
        assert (await client.get("/")).status == 200
        counts.append(sum(1 for sql in statements if sql.lstrip().upper().startswith("SELECT")))
    await harness.store.db.set_trace_callback(None)
    return counts


@pytest.mark.parametrize("checks", [3, 60])
async def test_page_reads_history_in_one_query_of_each_kind(
    checks: int, make_harness: MakeHarness, make_client: MakeClient
) -> None:
    """Issue 17: one store read per check made the page cost 0.7 s at 500 checks. Now
    the same few queries at any number of checks: the first view reads 90 days of uptime,
    the recent runs and the incidents; later ones today's uptime, the runs stored since
    (for checks that ran since) and the incidents; a view after no run, the incidents."""
    harness = await make_harness(make_config(*({"name": f"c{i:03d}"} for i in range(checks))))
    t = now()
    for i in range(checks):
        harness.run(f"c{i:03d}", Status.UP, at=t - 3 * DAY)
        harness.run(f"c{i:03d}", Status.UP, at=t - 2)
    await harness.flush()
    client = await make_client(harness)
    first, unchanged = await _selects_per_view(harness, client)
    assert first == 3  # daily uptime (90 days), recent runs, incidents
    assert unchanged == 1  # incidents: no check ran since, nothing else can have changed
    harness.run("c000", Status.DOWN, at=t - 1, reason="timeout")
    await harness.flush()
    statements: list[str] = []
    await harness.store.db.set_trace_callback(statements.append)
    page = Page(await (await client.get("/")).text())
    await harness.store.db.set_trace_callback(None)
    # c000's runs and today's uptime (c000 only), the incidents
    assert sum(1 for sql in statements if sql.lstrip().upper().startswith("SELECT")) == 3
    assert "latest 50 ms, highest 50 ms" in page.text_of("check-c000")
    assert "Duration, last 3 runs" in page.text_of("check-c000")


class BrokenStore:
    """Every read fails as a broken disk or database would."""

    problem = None  # the store says nothing of its own state: only its reads fail

    def __getattr__(self, name: str) -> Any:
        async def fail(*_args: Any, **_kwargs: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        return fail


async def test_page_without_history_still_shows_live_state(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness = await make_harness(make_config({"name": "only"}))
    harness.run("only", Status.UP, at=now())
    harness.store = BrokenStore()  # type: ignore[assignment]
    client = await make_client(harness)
    response = await client.get("/")
    assert response.status == 200
    page = Page(await response.text())
    assert page.by_id("check-only").attrs["data-state"] == "up"
    assert "History is unavailable" in await response.text()
    runs = await client.get("/api/v1/checks/only/runs")
    assert runs.status == 503
    assert (await runs.json())["error"]["code"] == "history_unavailable"


def _day(index: int, runs: int, good: int) -> DailyUptime:
    return DailyUptime(day=index * 86400, runs=runs, good=good)


@pytest.mark.parametrize(
    ("runs", "good", "css"),
    [
        (0, 0, "none"),  # no data: grey
        (100, 100, "ok"),
        (1000, 999, "ok"),  # at the objective
        (1000, 998, "warn"),  # below it
        (100, 95, "warn"),
        (100, 94, "bad"),
        (10, 0, "bad"),
    ],
)
def test_day_bar_colour(runs: int, good: int, css: str) -> None:
    bars, _uptime = day_bars([_day(0, runs, good)], slo=0.999)
    assert bars[0].css == css


def test_day_bars_uptime_over_the_period() -> None:
    bars, uptime = day_bars([_day(0, 0, 0), _day(1, 100, 100), _day(2, 100, 50)], slo=0.99)
    assert [bar.x for bar in bars] == [0, 5, 10]
    assert uptime == "75.00%"
    assert bars[0].title.endswith("no data")
    assert day_bars([_day(0, 0, 0)], slo=0.99)[1] is None


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(1.0, "100%"), (0.99996, "99.99%"), (0.5, "50.00%"), (0.0, "0.00%")],
)
def test_percent_never_rounds_up_to_100(ratio: float, text: str) -> None:
    assert percent(ratio) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.5, "0.5s"),
        (9.94, "9.9s"),
        (42.4, "42s"),
        (65, "1m 05s"),
        (7260, "2h 01m"),
        (3 * 86400 + 7200, "3d 2h"),
    ],
)
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_sparkline_scales_to_the_highest_run() -> None:
    assert sparkline([]) is None
    line = sparkline([(0, 0.1), (1, 0.2), (2, 0.05)])
    assert line is not None
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert [x for x, _y in points] == [0, 60, 120]
    assert min(y for _x, y in points) == 2  # the highest run touches the top margin
    assert (line.latest, line.peak, line.runs) == ("50 ms", "200 ms", 3)
    single = sparkline([(0, 0.1)])
    assert single is not None
    assert len(single.points.split()) == 2


def _result(at: float, duration: float) -> CheckResult:
    return CheckResult("c", Status.UP, None, None, "ok", at, duration)


@pytest.mark.parametrize(
    ("stored", "last", "expected"),
    [
        ([(1, 0.1), (2, 0.2)], None, [(1, 0.1), (2, 0.2)]),  # after a restart: stored only
        ([(1, 0.1), (2, 0.2)], (2, 0.2), [(1, 0.1), (2, 0.2)]),  # stored already: once
        ([(1, 0.1), (2, 0.2)], (3, 3.0), [(1, 0.1), (2, 0.2), (3, 3.0)]),  # not yet stored
        ([(1, 0.1), (5, 0.2)], (3, 3.0), [(1, 0.1), (3, 3.0)]),  # a clock stepped back
        (
            [(float(i), 0.1) for i in range(60)],
            (60, 3.0),
            [(float(i), 0.1) for i in range(1, 60)] + [(60, 3.0)],
        ),
    ],
)
def test_durations_end_with_the_last_run(
    stored: list[tuple[float, float]],
    last: tuple[float, float] | None,
    expected: list[tuple[float, float]],
) -> None:
    assert durations_ending_with(stored, _result(*last) if last else None) == expected


async def test_page_is_gzipped_when_the_client_accepts_it(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    harness, _t = await outage(make_harness)
    client = await make_client(harness)
    zipped = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    plain = await client.get("/", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers

    # Same page either way (the client decompresses); only "... ago" may move between them.
    def without_ages(html: str) -> str:
        return re.sub(
            r"[\d.]+\s*(?:ms|s|m|h|d) ago", "AGO", Page(html).text_of("check-history_sidebar")
        )

    assert without_ages(await zipped.text()) == without_ages(await plain.text())


async def test_concurrent_requests_share_one_build(make_harness: MakeHarness) -> None:
    harness = await make_harness(make_config({"name": "only"}))
    page = StatusPage(harness)
    real_model = page.model
    builds: list[float] = []
    release = asyncio.Event()

    async def counted(now: float) -> PageView:
        builds.append(now)
        await release.wait()
        return await real_model(now)

    page.model = counted  # type: ignore[method-assign]
    waiting = [asyncio.ensure_future(page.current()) for _ in range(5)]
    await asyncio.sleep(0)  # let every request reach the shared build
    waiting[0].cancel()  # one viewer goes away; the others still get their page
    release.set()
    pages = await asyncio.gather(*waiting[1:])
    assert len(builds) == 1
    assert all(p is pages[0] for p in pages)
    await page.current()  # a later request builds afresh
    assert len(builds) == 2


async def test_a_flapping_incident_reads_as_one_counted_entry(
    make_harness: MakeHarness, make_client: MakeClient
) -> None:
    start = now() - 2 * DAY
    harness = await flapping(make_harness, start)
    client = await make_client(harness)
    response = await client.get("/")
    assert response.status == 200
    page = Page(await response.text())
    (incident,) = [e for e in page.tags("article") if e.attrs.get("data-check") == "flappy"]
    entries = [e for e in page.tags("li") if "timeline-" in e.attrs.get("class", "")]
    assert len(entries) == 2  # newest first: the counted entry, then the opening
    counted = " ".join("".join(entries[0].text).split())
    assert counted.startswith(
        f"Investigating {clock(start + 20)} to {clock(start + 10 * (FLAPS + 1))}"
    )
    assert f"Flapped {FLAPS:,} times between investigating and monitoring" in counted
    times = [
        e for e in page.tags("time") if e.attrs.get("datetime") == iso(start + 10 * (FLAPS + 1))
    ]
    assert times, "the counted entry's end is a machine-readable time"
    assert incident.attrs["data-status"] == "investigating"
