"""Maintenance windows opened through the API, and incidents' held-back checks, in a real
SQLite store on tmp_path: written before the call returns, read back after a restart."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from uptime_probe.state.incidents import IncidentEvent, IncidentEventKind
from uptime_probe.state.maintenance import Window, WindowSource
from uptime_probe.state.store import Store

from .test_store import opened_event


def window(window_id: str, start: float, end: float) -> Window:
    return Window(
        id=window_id,
        name="deploy_1234",
        source=WindowSource.API,
        checks=("checkout",),
        tags=("payments",),
        description="release 1234 \u2014 canary",
        start=start,
        end=end,
        created_at=start - 1,
    )


async def test_an_api_window_is_kept_across_a_restart(tmp_path: Path) -> None:
    now = time.time()
    store = Store(tmp_path)
    await store.open()
    try:
        kept = window("api-1", now - 60, now + 3600)
        await store.save_window(kept)
        await store.save_window(window("api-2", now - 7200, now - 3600))  # over
        # No flush: save_window has committed when it returns.
    finally:
        await store.close()

    again = Store(tmp_path)
    await again.open()
    try:
        assert await again.windows(ending_after=now) == [kept]
        ended = replace(kept, end=now)  # DELETE: ended early, rewritten in place
        await again.save_window(ended)
        assert await again.windows(ending_after=now - 1) == [ended]
        assert await again.windows(ending_after=now) == []
    finally:
        await again.close()


async def test_windows_are_kept_as_long_as_raw_runs(tmp_path: Path) -> None:
    now = time.time()
    store = Store(tmp_path, raw_retention=86400.0)
    await store.open()
    try:
        await store.save_window(window("api-old", now - 3 * 86400, now - 2 * 86400))
        await store.save_window(window("api-recent", now - 3600, now - 60))
        await store.apply_retention(now)
        assert [w.id for w in await store.windows(ending_after=0)] == ["api-recent"]
    finally:
        await store.close()


async def test_the_checks_an_incident_held_back_are_stored(tmp_path: Path) -> None:
    store = Store(tmp_path)
    await store.open()
    try:
        incident = replace(opened_event().incident, held_back=("checkout", "cart"))
        store.record_incident(IncidentEvent(IncidentEventKind.UPDATED, incident))
        assert await store.flush()
        (stored,) = await store.open_incidents()
        assert stored.held_back == ("checkout", "cart")
    finally:
        await store.close()
