"""The tool threads' engine path (``ToolThreads.call_soon``): answers as asyncio futures, calls
abandoned before they start never run, exceptions and context variables carried over, and a
closed loop or a shut-down pool handled."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator

import pytest

from expert_jobs.engine.threads import ToolThreads

BOUND = 20.0  # seconds: the most a test waits for what should take well under one

_who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event blocked calls wait on; set when the test ends, so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


def _echo(value: object) -> object:
    return value


async def _until(event: threading.Event) -> None:
    """Poll ``event`` (set by a pool thread) without blocking the loop, for at most BOUND s."""
    for _ in range(int(BOUND * 200)):
        if event.is_set():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the pool thread never started the call")


async def test_answers_come_back_on_the_loop_many_at_once() -> None:
    threads = ToolThreads(4)
    futures = [threads.call_soon(_echo, {"value": n}) for n in range(200)]
    assert all(isinstance(f, asyncio.Future) for f in futures)
    assert await asyncio.wait_for(asyncio.gather(*futures), BOUND) == list(range(200))
    assert threads.started <= 4
    threads.shutdown()


async def test_exceptions_and_context_variables_reach_the_caller() -> None:
    threads = ToolThreads(1)

    def who() -> str:
        return _who.get()

    def fail(stop: bool) -> None:
        raise StopIteration("done") if stop else KeyError("k")

    _who.set("caller")
    assert await asyncio.wait_for(threads.call_soon(who, {}), BOUND) == "caller"
    with pytest.raises(KeyError):
        await asyncio.wait_for(threads.call_soon(fail, {"stop": False}), BOUND)
    with pytest.raises(RuntimeError, match="StopIteration"):  # an asyncio future refuses StopIteration
        await asyncio.wait_for(threads.call_soon(fail, {"stop": True}), BOUND)
    threads.shutdown()


async def test_a_call_abandoned_while_queued_never_runs(gate: threading.Event) -> None:
    threads = ToolThreads(1)
    ran: list[str] = []

    def record(name: str) -> str:
        ran.append(name)
        return name

    busy = threads.call_soon(gate.wait, {"timeout": BOUND})
    queued = threads.call_soon(record, {"name": "abandoned"})
    queued.cancel()  # as a timeout does
    gate.set()
    assert await asyncio.wait_for(busy, BOUND) is True
    assert await asyncio.wait_for(threads.call_soon(record, {"name": "next"}), BOUND) == "next"
    assert ran == ["next"]
    threads.shutdown()


async def test_an_answer_after_its_caller_gave_up_is_dropped(gate: threading.Event) -> None:
    threads = ToolThreads(1)
    started = threading.Event()

    def slow() -> str:
        started.set()
        gate.wait(BOUND)
        return "late"

    late = threads.call_soon(slow, {})
    await _until(started)
    late.cancel()
    gate.set()
    # The pool goes on serving, and the cancelled future stays cancelled.
    assert await asyncio.wait_for(threads.call_soon(_echo, {"value": 1}), BOUND) == 1
    assert late.cancelled()
    threads.shutdown()


def test_a_call_whose_loop_closed_does_not_break_the_pool(gate: threading.Event) -> None:
    threads = ToolThreads(1)
    started = threading.Event()

    def slow() -> str:
        started.set()
        gate.wait(BOUND)
        return "late"

    async def leave_early() -> None:
        threads.call_soon(slow, {})
        await _until(started)

    asyncio.run(leave_early())  # its loop is closed while the call still runs
    gate.set()

    async def again() -> object:
        return await asyncio.wait_for(threads.call_soon(_echo, {"value": "fine"}), BOUND)

    assert asyncio.run(again()) == "fine"  # a new loop, the same thread
    assert threads.started == 1
    threads.shutdown()


async def test_shutting_down_cancels_queued_calls_and_refuses_new_ones(gate: threading.Event) -> None:
    threads = ToolThreads(1)
    busy = threads.call_soon(gate.wait, {"timeout": BOUND})
    queued = threads.call_soon(_echo, {"value": 1})
    threads.shutdown(wait=False, cancel_futures=True)
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        threads.call_soon(_echo, {"value": 2})
    gate.set()
    assert await asyncio.wait_for(busy, BOUND) is True
