"""The tool threads' engine path (``ToolThreads.call_soon``): answers as asyncio futures, calls
abandoned before they start never run, exceptions and context variables carried over, and a
closed loop or a shut-down pool handled."""

from __future__ import annotations

import asyncio
import contextvars
import os
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


class _LoopWithoutReaders(asyncio.SelectorEventLoop):
    """A loop that cannot watch sockets (as Windows' proactor loop cannot)."""

    def add_reader(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError


def test_a_loop_that_cannot_watch_sockets_is_woken_by_call_soon_threadsafe() -> None:
    threads = ToolThreads(2)

    async def many() -> list[object]:
        futures = [threads.call_soon(_echo, {"value": n}) for n in range(50)]
        return list(await asyncio.wait_for(asyncio.gather(*futures), BOUND))

    loop = _LoopWithoutReaders()
    try:
        assert loop.run_until_complete(many()) == list(range(50))
    finally:
        loop.close()
    threads.shutdown()


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc/self/fd")
def test_a_new_loop_does_not_leak_the_last_loops_socket_pair() -> None:
    threads = ToolThreads(1)

    async def once() -> object:
        return await asyncio.wait_for(threads.call_soon(_echo, {"value": 1}), BOUND)

    asyncio.run(once())  # the thread and its bell exist from here on
    before = _open_descriptors()
    for _ in range(30):
        assert asyncio.run(once()) == 1
    # Each loop's socket pair is closed when the next loop calls (the last one's stays open).
    assert _open_descriptors() <= before + 2
    threads.shutdown()


def test_shutting_down_ends_idle_threads_and_closes_their_sockets() -> None:
    threads = ToolThreads(3, name="bell-pool")

    async def burst() -> list[object]:
        futures = [threads.call_soon(_echo, {"value": n}) for n in range(30)]
        return list(await asyncio.wait_for(asyncio.gather(*futures), BOUND))

    assert asyncio.run(burst()) == list(range(30))
    pool = [t for t in threading.enumerate() if t.name.startswith("bell-pool")]
    assert 1 <= len(pool) <= 3
    threads.shutdown(wait=False)
    for thread in pool:
        thread.join(BOUND)
        assert not thread.is_alive()


async def test_calls_keep_being_answered_while_threads_go_idle_and_wake() -> None:
    # Alternates single calls (a thread goes idle between them) and bursts (calls queued while
    # threads are busy or about to sleep): a lost wake-up would leave a call unanswered.
    threads = ToolThreads(2)
    for round_ in range(300):
        if round_ % 3:
            assert await asyncio.wait_for(threads.call_soon(_echo, {"value": round_}), BOUND) == round_
        else:
            futures = [threads.call_soon(_echo, {"value": n}) for n in range(5)]
            assert await asyncio.wait_for(asyncio.gather(*futures), BOUND) == list(range(5))
    assert threads.started <= 2
    threads.shutdown()


def test_submit_from_many_threads_at_once() -> None:
    threads = ToolThreads(3)
    answers: list[list[int]] = [[] for _ in range(6)]

    def submitter(k: int) -> None:
        futures = [threads.submit(_echo, k * 1000 + n) for n in range(100)]
        answers[k] = [f.result(BOUND) for f in futures]  # type: ignore[misc]

    workers = [threading.Thread(target=submitter, args=(k,)) for k in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(BOUND)
    assert answers == [[k * 1000 + n for n in range(100)] for k in range(6)]
    assert threads.started <= 3
    threads.shutdown()


def test_a_loop_closed_before_it_rang_loses_no_thread() -> None:
    threads = ToolThreads(1)

    async def once() -> object:
        return await asyncio.wait_for(threads.call_soon(_echo, {"value": "first"}), BOUND)

    assert asyncio.run(once()) == "first"  # the one thread exists, and is idle

    loop = asyncio.new_event_loop()

    def call_and_stop() -> None:
        threads.call_soon(_echo, {"value": "orphan"})  # a thread is rung in the loop's next pass,
        loop.stop()  # which never comes

    loop.call_soon(call_and_stop)
    loop.run_forever()
    loop.close()
    # The thread was not lost with the closed loop: a new loop's call is answered.
    assert asyncio.run(once()) == "first"
    threads.shutdown()


async def test_a_burst_of_blocking_calls_gets_a_thread_each(gate: threading.Event) -> None:
    # Calls made in one pass of the loop, each blocking until the gate opens: each needs its own
    # thread (up to the pool's size), or one blocked call would hold up the others.
    threads = ToolThreads(4)
    assert await asyncio.wait_for(threads.call_soon(_echo, {"value": 0}), BOUND) == 0  # one idle thread
    entered = threading.Semaphore(0)

    def blocked(n: int) -> int:
        entered.release()
        gate.wait(BOUND)
        return n

    futures = [threads.call_soon(blocked, {"n": n}) for n in range(4)]
    started = 0
    for _ in range(int(BOUND * 200)):  # polled: waiting in a thread would need one
        while entered.acquire(blocking=False):
            started += 1
        if started == 4:
            break
        await asyncio.sleep(0.005)
    assert started == 4
    gate.set()
    assert await asyncio.wait_for(asyncio.gather(*futures), BOUND) == [0, 1, 2, 3]
    assert threads.started == 4
    threads.shutdown()
