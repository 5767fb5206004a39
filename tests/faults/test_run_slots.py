"""scheduler.RunSlots, the concurrency cap: quick checks first under overload, no slot lost.

The daemon-level proof is test_overload.py; these pin the queue's rules one by one.
"""

from __future__ import annotations

import asyncio

import pytest

from uptime_probe.scheduler import RunSlots

SETTLE = 50
"""Loop turns to let woken waiters run: plenty for a handful of tasks, and bounded."""


async def settle() -> None:
    for _ in range(SETTLE):
        await asyncio.sleep(0)


async def take(slots: RunSlots, cost: float, order: list[float], hold: asyncio.Event) -> None:
    await slots.acquire(cost)
    order.append(cost)
    try:
        await hold.wait()
    finally:
        slots.release()


async def test_free_slots_are_taken_at_once_up_to_the_cap() -> None:
    slots = RunSlots(2)
    await asyncio.wait_for(slots.acquire(5.0), 1)
    await asyncio.wait_for(slots.acquire(5.0), 1)
    third = asyncio.create_task(slots.acquire(0.0))
    await settle()
    assert not third.done()  # the cap: a third waits whatever its cost
    slots.release()
    await asyncio.wait_for(third, 1)


async def test_waiters_are_served_cheapest_first_then_in_arrival_order() -> None:
    slots = RunSlots(1)
    await slots.acquire(0.0)  # the cap is reached: everyone below queues
    order: list[float] = []
    hold = asyncio.Event()
    hold.set()  # each releases as soon as it runs
    costs = [1.0, 0.01, 0.5, 1.0, 0.01]
    tasks = []
    for cost in costs:
        tasks.append(asyncio.create_task(take(slots, cost, order, hold)))
        await settle()  # arrival order is creation order
    assert order == []

    slots.release()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)

    assert order == sorted(costs)


@pytest.mark.parametrize("when", ["while waiting", "just after being granted"])
async def test_a_cancelled_waiter_never_loses_a_slot(when: str) -> None:
    slots = RunSlots(1)
    await slots.acquire(0.0)
    doomed = asyncio.create_task(slots.acquire(0.0))
    survivor = asyncio.create_task(slots.acquire(1.0))
    await settle()

    if when == "while waiting":
        doomed.cancel()
        await settle()
        slots.release()
    else:
        slots.release()  # grants `doomed`, which is cancelled before it can run
        doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed

    await asyncio.wait_for(survivor, 1)  # the slot went on to the next waiter
    slots.release()
    await asyncio.wait_for(slots.acquire(0.0), 1)  # and the count is whole again


async def test_the_longest_waiter_gets_every_sixteenth_slot_whatever_its_cost() -> None:
    """Quick checks that alone fill the cap must not starve one that never ran (queued at its
    whole timeout): it is served within FAIR_SHARE_EVERY grants."""
    slots = RunSlots(1)
    await slots.acquire(0.0)
    order: list[float] = []
    hold = asyncio.Event()
    never_ran = asyncio.create_task(take(slots, 30.0, order, hold))
    await settle()
    quick: list[asyncio.Task[None]] = []
    for _ in range(3 * RunSlots.FAIR_SHARE_EVERY):  # always a cheaper waiter queued
        quick.append(asyncio.create_task(take(slots, 0.01, order, hold)))
    await settle()

    grants = 0
    while 30.0 not in order and grants < 2 * RunSlots.FAIR_SHARE_EVERY:
        slots.release()  # the holder's slot, handed on
        grants += 1
        await settle()
    assert grants == RunSlots.FAIR_SHARE_EVERY
    assert order == [0.01] * (RunSlots.FAIR_SHARE_EVERY - 1) + [30.0]

    hold.set()
    slots.release()
    await asyncio.wait_for(asyncio.gather(never_ran, *quick), 5)
