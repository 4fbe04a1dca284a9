"""``tool_threads_on_loop_cpu``: the tool threads and the calling loop's thread kept on one CPU,
the loop thread's CPUs given back at shutdown, blocking tools still never stalling other jobs, and
a platform that cannot (or will not) pin threads running on unpinned with a warning."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from expert_jobs import Reply, Runtime, RuntimeSettings, ScriptedProvider, ToolCalls, tool
from expert_jobs.domain.errors import UsageError
from expert_jobs.engine import affinity
from expert_jobs.engine.threads import ToolThreads

BOUND = 20.0

T = TypeVar("T")

needs_affinity = pytest.mark.skipif(not affinity.supported(), reason="needs os.sched_setaffinity (Linux)")


def _in_own_thread(main: Callable[[], Awaitable[T]]) -> T:
    """Run ``main`` on a new event loop in a new thread (pinning that thread, not pytest's)."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(asyncio.run(main()))
        except BaseException as exc:  # handed to the test's thread
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), "the loop thread did not finish"
    if isinstance(out[0], BaseException):
        raise out[0]
    result: T = out[0]
    return result


def _cpus() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0))


@needs_affinity
def test_the_pool_and_the_calling_loop_keep_to_the_loops_cpu() -> None:
    threads = ToolThreads(3, on_loop_cpu=True)
    # A thread started before any loop called (by submit, from this thread) is moved too.
    assert threads.submit(_cpus).result(BOUND) == _cpus()

    async def main() -> tuple[frozenset[int], frozenset[int], list[frozenset[int]], frozenset[int]]:
        before = _cpus()
        in_tool = await asyncio.wait_for(threads.call_soon(_cpus, {}), BOUND)
        loop_cpus = _cpus()
        pool = [frozenset(os.sched_getaffinity(t.native_id or 0)) for t in threads._threads]
        threads.shutdown()
        return before, in_tool, pool, loop_cpus

    before, in_tool, pool, loop_cpus = _in_own_thread(main)
    assert len(loop_cpus) == 1 and loop_cpus <= before
    assert in_tool == loop_cpus
    assert pool and all(cpus == loop_cpus for cpus in pool)


@needs_affinity
def test_shutdown_gives_the_loop_thread_its_cpus_back() -> None:
    async def main() -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        threads = ToolThreads(1, on_loop_cpu=True)
        before = _cpus()
        await asyncio.wait_for(threads.call_soon(_cpus, {}), BOUND)
        during = _cpus()
        threads.shutdown()
        return before, during, _cpus()

    before, during, after = _in_own_thread(main)
    assert len(during) == 1
    assert after == before


@needs_affinity
def test_off_by_default_nothing_is_pinned() -> None:
    async def main() -> tuple[frozenset[int], frozenset[int], frozenset[int]]:
        threads = ToolThreads(1)
        before = _cpus()
        in_tool = await asyncio.wait_for(threads.call_soon(_cpus, {}), BOUND)
        after = _cpus()
        threads.shutdown()
        return before, in_tool, after

    before, in_tool, after = _in_own_thread(main)
    assert in_tool == before == after


@needs_affinity
def test_a_runtime_with_the_setting_runs_sync_tools_on_the_loops_cpu_and_blocks_no_job() -> None:
    """Two jobs at once: one's tool sleeps in its thread, the other's answers at once; the quick
    job completes while the sleeper still sleeps (one CPU, but the loop is never blocked)."""
    release = threading.Event()

    @tool
    def where() -> str:
        """Where this tool ran."""
        return ",".join(map(str, sorted(_cpus())))

    @tool
    def sleeper() -> str:
        """Sleep until released."""
        release.wait(BOUND)
        return "woke"

    async def main() -> tuple[str, frozenset[int], frozenset[int], bool]:
        before = _cpus()
        provider = ScriptedProvider(
            {
                "quick": [ToolCalls.of(("where", {})), Reply("done")],
                "slow": [ToolCalls.of(("sleeper", {})), Reply("done")],
            }
        )
        runtime = Runtime(providers=provider, settings=RuntimeSettings(tool_threads_on_loop_cpu=True))
        runtime.add_expert("quick", "Quick.", tools=[where])
        runtime.add_expert("slow", "Slow.", tools=[sleeper])
        slow = asyncio.create_task(runtime.run("slow", "sleep"))
        await asyncio.sleep(0.05)
        quick = await asyncio.wait_for(runtime.run("quick", "where"), BOUND)
        slept_meanwhile = not slow.done()
        release.set()
        await asyncio.wait_for(slow, BOUND)
        checkpoints, _ = await runtime.store.list_checkpoints(quick.id)
        answer = next(
            r.content for c in checkpoints for m in c.new_messages for r in getattr(m, "results", ())
        )
        during = _cpus()
        await runtime.close()
        assert quick.status.value == "completed"
        assert _cpus() == before  # given back by close()
        return answer, during, before, slept_meanwhile

    answer, during, before, slept_meanwhile = _in_own_thread(main)
    assert len(during) == 1 and during <= before
    assert answer == ",".join(map(str, sorted(during)))
    assert slept_meanwhile


def test_a_platform_that_cannot_pin_runs_unpinned_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(affinity, "supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="expert_jobs.engine"):
        threads = ToolThreads(1, on_loop_cpu=True)
    assert threads.on_loop_cpu is False
    assert "cannot keep threads on a CPU" in caplog.text

    async def main() -> str:
        answer: str = await asyncio.wait_for(threads.call_soon(lambda: "ok", {}), BOUND)
        return answer

    assert asyncio.run(main()) == "ok"
    threads.shutdown()


@needs_affinity
def test_a_refused_pin_is_a_warning_and_the_call_still_runs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(pid: int, cpus: Any) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "sched_setaffinity", refuse)
    threads = ToolThreads(1, on_loop_cpu=True)

    async def main() -> str:
        answer: str = await asyncio.wait_for(threads.call_soon(lambda: "ok", {}), BOUND)
        return answer

    with caplog.at_level(logging.WARNING, logger="expert_jobs.engine"):
        assert _in_own_thread(main) == "ok"
    assert "could not keep thread" in caplog.text
    threads.shutdown()


def test_the_setting_must_be_a_bool() -> None:
    with pytest.raises(UsageError, match="tool_threads_on_loop_cpu must be True or False"):
        RuntimeSettings(tool_threads_on_loop_cpu=1)  # type: ignore[arg-type]


def test_current_cpu_is_one_the_thread_may_run_on() -> None:
    cpu = affinity.current_cpu()
    if not affinity.supported():
        assert cpu is None
        return
    assert cpu in os.sched_getaffinity(0)
    assert affinity.thread_cpus() == _cpus()
