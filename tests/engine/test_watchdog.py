"""The watchdog: one deadline per armed call, one watcher task per loop, timeouts within a period."""

from __future__ import annotations

import asyncio

from expert_jobs.engine.watchdog import Watchdog


async def _armed_sleeper(watchdog: Watchdog, limit: float, sleep: float) -> str:
    task = asyncio.current_task()
    assert task is not None
    watchdog.arm(task, limit)
    try:
        await asyncio.sleep(sleep)
        return "finished"
    except asyncio.CancelledError:
        return "fired" if watchdog.fired(task) else "cancelled"
    finally:
        watchdog.disarm(task)


async def test_an_overrun_call_is_cancelled_and_told_apart_from_other_cancellations() -> None:
    watchdog = Watchdog()
    assert await asyncio.create_task(_armed_sleeper(watchdog, 0.04, 5)) == "fired"
    assert await asyncio.create_task(_armed_sleeper(watchdog, 5, 0.01)) == "finished"
    other = asyncio.create_task(_armed_sleeper(watchdog, 5, 5))
    await asyncio.sleep(0.01)
    other.cancel()
    assert await other == "cancelled"


async def test_a_shorter_timeout_gets_a_watcher_that_wakes_often_enough() -> None:
    watchdog = Watchdog()
    slow = asyncio.create_task(_armed_sleeper(watchdog, 30, 0.5))  # a watcher waking every second
    await asyncio.sleep(0)
    started = asyncio.get_running_loop().time()
    assert await asyncio.create_task(_armed_sleeper(watchdog, 0.04, 5)) == "fired"
    assert asyncio.get_running_loop().time() - started < 0.5  # not a whole second later
    assert await slow == "finished"


def test_each_event_loop_gets_its_own_watcher() -> None:
    watchdog = Watchdog()
    for _ in range(2):
        assert asyncio.run(_armed_sleeper(watchdog, 0.04, 5)) == "fired"
