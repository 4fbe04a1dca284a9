"""The engine's limits: tool timeouts, the bounded tool threads, the job time limit, and the
longest tool result kept."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from expert_jobs import (
    AssistantMessage,
    ExpertDefinition,
    FakeClock,
    FunctionProvider,
    GenerationRequest,
    GenerationResponse,
    JobStatus,
    Reply,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    ToolCalls,
    ToolResultsMessage,
    UsageError,
    tool,
)
from expert_jobs.engine.runner import root_run_id
from expert_jobs.engine.threads import ToolThreads
from expert_jobs.engine.tools import Tool
from expert_jobs.engine.watchdog import Watchdog
from expert_jobs.providers.scripted import Turn

from .conftest import add, checkpoints, make_runtime

S = JobStatus
BOUND = 20.0  # seconds: how long a test waits at most for what should take well under one


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event hung sync tools wait on; set when the test ends, so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


async def _results(runtime: Runtime, job_id: str) -> list[tuple[str, str, bool]]:
    history = await runtime.store.load_history(job_id, root_run_id(job_id))
    return [
        (r.name, r.content, r.is_error)
        for m in history
        if isinstance(m, ToolResultsMessage)
        for r in m.results
    ]


def _real_runtime(script: list[Turn], settings: RuntimeSettings, **expert: object) -> Runtime:
    """A runtime on the real clock (timeouts are real time) with an expert ``main``."""
    runtime = Runtime(providers=ScriptedProvider(script), settings=settings)
    runtime.add_expert("main", "You are the main expert.", **expert)  # type: ignore[arg-type]
    return runtime


# ---------------------------------------------------------------- tool timeouts


async def test_an_async_tool_past_its_timeout_gets_an_error_result_and_the_job_goes_on() -> None:
    @tool(timeout=0.2)
    async def slow() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    runtime = _real_runtime([ToolCalls.of(("slow", {})), Reply("done")], RuntimeSettings(), tools=[slow])
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.COMPLETED and job.total_steps == 2
    assert await _results(runtime, job.id) == [("slow", "Tool slow timed out after 0.2 s", True)]


async def test_a_sync_tool_past_its_timeout_gets_an_error_result(gate: threading.Event) -> None:
    def stuck() -> str:
        """Hangs until the test ends."""
        gate.wait(BOUND)
        return "late"

    settings = RuntimeSettings(tool_timeout=0.2)
    runtime = _real_runtime([ToolCalls.of(("stuck", {})), Reply("done")], settings, tools=[stuck])
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.COMPLETED
    [(name, content, is_error)] = await _results(runtime, job.id)
    assert (name, is_error) == ("stuck", True)
    assert content.startswith("Tool stuck timed out after 0.2 s")


async def test_the_tools_timeout_wins_then_the_experts_then_the_runtimes() -> None:
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    own = Tool.from_function(hang, name="own", timeout=0.1)
    plain = Tool.from_function(hang, name="plain")
    script = {
        "strict": [ToolCalls.of(("own", {}), ("plain", {})), Reply("done")],
        "lax": [ToolCalls.of(("own", {}), ("plain", {})), Reply("done")],
    }
    runtime = Runtime(providers=ScriptedProvider(script), settings=RuntimeSettings(tool_timeout=0.3))
    runtime.add_expert("strict", "Strict.", tools=[own, plain], tool_timeout=0.2)
    runtime.add_expert("lax", "Lax.", tools=["own", "plain"])
    strict = await asyncio.wait_for(runtime.run("strict", "q"), BOUND)
    lax = await asyncio.wait_for(runtime.run("lax", "q"), BOUND)
    assert [c for _, c, _ in await _results(runtime, strict.id)] == [
        "Tool own timed out after 0.1 s",
        "Tool plain timed out after 0.2 s",
    ]
    assert [c for _, c, _ in await _results(runtime, lax.id)] == [
        "Tool own timed out after 0.1 s",
        "Tool plain timed out after 0.3 s",
    ]


async def test_an_infinite_or_absent_timeout_arms_no_timer() -> None:
    armed: list[float] = []

    async def quick(n: int) -> str:
        """Answers at once."""
        await asyncio.sleep(0.05)
        return f"ok {n}"

    unlimited = Tool.from_function(quick, name="unlimited", timeout=math.inf)
    runtime = _real_runtime(
        [ToolCalls.of(("unlimited", {"n": 1})), ToolCalls.of(("quick", {"n": 2})), Reply("done")],
        RuntimeSettings(tool_timeout=None),
        tools=[unlimited, quick],
    )

    class Recording(dict[asyncio.Task[object], float]):
        """The watchdog's deadlines, recording each armed timeout (the engine arms inline)."""

        def __setitem__(self, task: asyncio.Task[object], deadline: float) -> None:
            armed.append(round(deadline - time.monotonic()))
            super().__setitem__(task, deadline)

    runtime.watchdog.deadlines = Recording()
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert [c for _, c, _ in await _results(runtime, job.id)] == ["ok 1", "ok 2"]
    assert armed == [300, 300, 300]  # the three generations only


def test_timeouts_are_checked_where_they_are_given() -> None:
    with pytest.raises(UsageError, match="timeout"):
        Tool.from_function(add, timeout=0)
    with pytest.raises(UsageError, match="timeout"):
        tool(timeout=float("nan"))(add)
    with pytest.raises(ValidationError, match="tool_timeout"):
        ExpertDefinition(key="x", instruction="i", tool_timeout=-1)
    for bad in (
        {"tool_timeout": 0},
        {"job_timeout": -5},
        {"tool_threads": 0},
        {"tool_threads": 2.5},
        {"max_tool_result_chars": 0},
    ):
        with pytest.raises(UsageError, match=next(iter(bad))):
            RuntimeSettings(**bad)  # type: ignore[arg-type]


async def test_a_direct_call_applies_the_timeout_it_is_given() -> None:
    @tool
    async def slow() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    @tool
    async def raises() -> str:
        """Raises a TimeoutError of its own."""
        raise TimeoutError("upstream")

    assert await asyncio.wait_for(slow.call({}, 0.05), BOUND) == ("Tool slow timed out after 0.05 s", True)
    assert await raises.call({}, 5) == ("Tool raises failed: TimeoutError: upstream", True)


async def test_a_tool_that_swallows_its_cancellation_keeps_its_answer_and_leaves_no_trace() -> None:
    @tool
    async def stubborn() -> str:
        """Ignores being cancelled."""
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "stubborn"
        return "unreachable"

    watchdog = Watchdog()
    task = asyncio.current_task()
    assert task is not None
    assert await stubborn.call({}, 0.05, watchdog, None, task) == ("stubborn", False)
    assert task.cancelling() == 0  # the watchdog's cancellation was taken back
    assert not watchdog.fired(task)


# ---------------------------------------------------------------- the bounded tool threads


async def test_hung_sync_tools_never_take_more_than_the_pools_threads(gate: threading.Event) -> None:
    entered = threading.Semaphore(0)

    def stuck(n: int) -> str:
        """Hangs until the test ends."""
        entered.release()
        gate.wait(BOUND)
        return f"late {n}"

    async def quick() -> str:
        """Answers at once."""
        return "quick"

    script = {
        "hanging": [ToolCalls.of(*(("stuck", {"n": n}) for n in range(5))), Reply("done")],
        "async": [ToolCalls.of(("quick", {})), ToolCalls.of(("quick", {})), Reply("done")],
    }
    settings = RuntimeSettings(tool_threads=2, tool_timeout=0.3)
    runtime = Runtime(providers=ScriptedProvider(script), settings=settings)
    runtime.add_expert("hanging", "Hangs.", tools=[stuck])
    runtime.add_expert("async", "Quick.", tools=[quick])
    before = threading.active_count()
    hanging = asyncio.create_task(runtime.run("hanging", "q"))
    for _ in range(int(BOUND * 100)):  # polled: waiting in a thread would add one
        if entered.acquire(blocking=False):
            break
        await asyncio.sleep(0.01)
    # Both threads hang; a job with async tools still runs to the end meanwhile.
    other = await asyncio.wait_for(runtime.run("async", "q"), BOUND)
    assert other.status is S.COMPLETED
    job = await asyncio.wait_for(hanging, BOUND)
    assert job.status is S.COMPLETED
    results = await _results(runtime, job.id)
    assert [is_error for _, _, is_error in results] == [True] * 5
    assert all("timed out after 0.3 s" in content for _, content, _ in results)
    assert runtime.tool_threads.started == 2
    assert threading.active_count() <= before + 2
    # Every thread still hangs: one more sync call waits in the queue and times out there.
    assert await asyncio.wait_for(
        runtime.tool("stuck").call({"n": 9}, 0.2, threads=runtime.tool_threads), BOUND
    ) == (
        "Tool stuck timed out after 0.2 s (its thread is left to finish on its own)",
        True,
    )
    gate.set()  # the hung tools return; their threads serve new calls
    assert await asyncio.wait_for(
        runtime.tool("stuck").call({"n": 7}, 5.0, threads=runtime.tool_threads), BOUND
    ) == (
        "late 7",
        False,
    )
    assert runtime.tool_threads.started == 2
    await runtime.close()


async def test_closing_the_runtime_does_not_wait_for_hung_threads(gate: threading.Event) -> None:
    threads = ToolThreads(1)
    loop = asyncio.get_running_loop()
    running = loop.run_in_executor(threads, gate.wait, BOUND)
    queued = threads.submit(lambda: "never")
    threads.shutdown(wait=False, cancel_futures=True)  # returns at once
    assert queued.cancelled()
    with pytest.raises(RuntimeError, match="shut down"):
        threads.submit(lambda: None)
    assert not running.done()
    gate.set()
    assert await asyncio.wait_for(running, BOUND) is True
    runtime = make_runtime([Reply("x")])
    await runtime.close()
    with pytest.raises(RuntimeError):
        runtime.tool_threads.submit(lambda: None)


def test_the_tool_threads_are_daemons_that_end_with_their_pool() -> None:
    threads = ToolThreads(2, name="test-pool")
    assert threads.submit(lambda: 41 + 1).result(BOUND) == 42
    [thread] = [t for t in threading.enumerate() if t.name.startswith("test-pool")]
    assert thread.daemon
    del threads  # garbage: its idle thread ends
    thread.join(BOUND)
    assert not thread.is_alive()
    with pytest.raises(UsageError, match="tool_threads"):
        ToolThreads(0)


# ---------------------------------------------------------------- the job time limit


async def test_a_job_over_its_running_time_fails_at_the_next_step(clock: FakeClock) -> None:
    script = [ToolCalls.of(("add", {"a": i, "b": 1}), delay=4.0) for i in range(5)] + [Reply("never")]
    runtime = make_runtime(script, settings=RuntimeSettings(job_timeout=10), clock=clock)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.FAILED
    assert job.total_steps == 3 and job.total_duration_ms == 12_000  # 3 steps of 4 s: over 10 s
    assert job.error is not None and job.error.kind == "job_timeout"
    assert job.error.message == "the job ran for 12.0 s, over its limit of 10 s (job_timeout)"
    assert (job.error.details["limitSeconds"], job.error.job_id) == (10, job.id)
    last = (await checkpoints(runtime, job))[-1]
    assert (last.kind, last.status, last.run_state) == ("stop", S.FAILED, "failed")
    # The clock runs on across follow-ups: a follow-up of a job over its time fails at once.
    await runtime.continue_job(job.id, "and now?")
    again = await runtime.drive(job.id)
    assert again.status is S.FAILED and again.total_steps == 3
    assert again.error is not None and again.error.kind == "job_timeout"


async def test_the_job_timer_abandons_a_hung_tool_and_keeps_the_history_valid() -> None:
    async def hang() -> str:
        """Never answers."""
        await asyncio.sleep(3600)
        return "unreachable"

    settings = RuntimeSettings(job_timeout=0.3, tool_timeout=None)
    runtime = _real_runtime([ToolCalls.of(("hang", {})), Reply("never")], settings, tools=[hang])
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.FAILED and job.lease_owner is None
    assert job.error is not None and job.error.kind == "job_timeout"
    assert "over its limit of 0.3 s" in job.error.message
    stored = await runtime.get(job.id)
    assert stored.status is S.FAILED and stored.lease_owner is None
    history = await runtime.store.load_history(job.id, root_run_id(job.id))
    # The step in flight (a call with no result) is dropped; the query stays for a follow-up.
    assert [type(m).__name__ for m in history] == ["UserMessage"]


async def test_the_job_timer_abandons_a_hung_generation() -> None:
    async def hang(request: GenerationRequest) -> GenerationResponse:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    runtime = Runtime(providers=FunctionProvider(hang), settings=RuntimeSettings(job_timeout=0.2))
    runtime.add_expert("main", "Main.")
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.FAILED
    assert job.error is not None and job.error.kind == "job_timeout"
    assert not isinstance(
        (await runtime.store.load_history(job.id, root_run_id(job.id)))[-1], AssistantMessage
    )


# ---------------------------------------------------------------- the longest tool result


async def test_long_tool_delegate_and_interactive_results_are_cut_with_a_marker() -> None:
    @tool
    def shout() -> str:
        """A long answer."""
        return "x" * 50

    script = {
        "main@1.0.0": [
            ToolCalls.of(("shout", {}), ("helper", {"query": "long please"})),
            ToolCalls.of(("ask", {"question": "?"})),
            Reply("done"),
        ],
        "helper": [Reply("y" * 45)],
    }
    runtime = make_runtime(script, settings=RuntimeSettings(max_tool_result_chars=20), tools=[shout])
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    await runtime.continue_job(job.id, "z" * 21, interactive=True)
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED
    contents = [c for _, c, _ in await _results(runtime, job.id)]
    assert contents == [
        "x" * 20 + "\n[expert-jobs: tool result truncated: 30 of 50 characters cut; the limit is 20 "
        "(max_tool_result_chars)]",
        "y" * 20 + "\n[expert-jobs: tool result truncated: 25 of 45 characters cut; the limit is 20 "
        "(max_tool_result_chars)]",
        "z" * 20 + "\n[expert-jobs: tool result truncated: 1 of 21 characters cut; the limit is 20 "
        "(max_tool_result_chars)]",
    ]


async def test_a_result_at_the_limit_and_any_result_without_a_limit_are_kept_whole() -> None:
    @tool
    def exact() -> str:
        """Exactly the limit."""
        return "x" * 20

    runtime = make_runtime(
        [ToolCalls.of(("exact", {})), Reply("done")],
        settings=RuntimeSettings(max_tool_result_chars=20),
        tools=[exact],
    )
    job = await runtime.run("main@1.0.0", "q")
    assert [c for _, c, _ in await _results(runtime, job.id)] == ["x" * 20]
    unlimited = make_runtime(
        [ToolCalls.of(("exact", {})), Reply("done")],
        settings=RuntimeSettings(max_tool_result_chars=None),
        tools=[Tool.from_function(lambda: "x" * 200_000, name="exact")],
    )
    job = await unlimited.run("main@1.0.0", "q")
    assert [len(c) for _, c, _ in await _results(unlimited, job.id)] == [200_000]
