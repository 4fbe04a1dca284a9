"""Faults in the engine's way (issue 12, "no job stuck"): whatever breaks — a tool that hangs, a
provider that raises something unexpected, a store that fails a write — every job ends in a final
status within a bounded time, with a typed error and a final checkpoint, or is recovered by the
sweeper. No job stays ``processing`` with nobody at it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from expert_jobs import (
    Checkpoint,
    FakeClock,
    FunctionProvider,
    GenerationRequest,
    GenerationResponse,
    Job,
    JobEvent,
    JobStatus,
    Reply,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    TextPart,
    ToolCall,
    ToolCalls,
    ToolResultsMessage,
    Usage,
    Worker,
    tool,
)
from expert_jobs.domain.messages import UserMessage
from expert_jobs.engine.runner import root_run_id
from expert_jobs.engine.sweeper import sweep
from expert_jobs.engine.tools import Tool, ToolOutcome
from expert_jobs.ports.store import JobStore
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.stores.url import open_store

S = JobStatus
BOUND = 20.0  # seconds: the most any job here may take to reach a final status (they take < 1 s)
USAGE = Usage.of(10, 2)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """What hung sync tools wait on; set when the test ends, so their threads finish."""
    event = threading.Event()
    yield event
    event.set()


async def _all_checkpoints(runtime: Runtime, job_id: str) -> list[Checkpoint]:
    found, _ = await runtime.store.list_checkpoints(job_id, take=10_000)
    return found


async def _tool_results(runtime: Runtime, job_id: str) -> list[tuple[str, bool]]:
    history = await runtime.store.load_history(job_id, root_run_id(job_id))
    return [(r.content, r.is_error) for m in history if isinstance(m, ToolResultsMessage) for r in m.results]


async def _assert_rests_failed(runtime: Runtime, job: Job, kind: str) -> Checkpoint:
    """The job is ``failed`` with error ``kind`` in the store too, without a lease, and its last
    checkpoint is the final one."""
    stored = await runtime.get(job.id)
    assert stored.status is S.FAILED, stored.status
    assert stored.lease_owner is None
    assert stored.error is not None and stored.error.kind == kind, stored.error
    last = (await _all_checkpoints(runtime, job.id))[-1]
    assert (last.kind, last.status, last.run_state) == ("stop", S.FAILED, "failed")
    assert last.error == stored.error
    assert stored.last_checkpoint_id == last.id
    return last


def _answer(*calls: tuple[str, dict[str, Any]]) -> GenerationResponse:
    parts = tuple(ToolCall(f"c{i}", name, args) for i, (name, args) in enumerate(calls)) or (
        TextPart("done"),
    )
    return GenerationResponse(parts, "tool_use" if calls else "stop", USAGE)


# ---------------------------------------------------------------- hanging tools


async def test_a_hanging_async_tool_ends_in_a_final_status_with_an_error_result() -> None:
    @tool
    async def hang() -> str:
        """Never answers."""
        await asyncio.Event().wait()
        return "unreachable"

    runtime = Runtime(
        providers=ScriptedProvider([ToolCalls.of(("hang", {})), Reply("I could not get it.")]),
        settings=RuntimeSettings(tool_timeout=0.2),
    )
    runtime.add_expert("main", "Main.", tools=[hang])
    job = await runtime.submit("main", "q")
    await asyncio.wait_for(Worker(runtime, worker_id="w1").run_until_idle(), BOUND)
    done = await runtime.get(job.id)
    assert done.status is S.COMPLETED and done.lease_owner is None
    assert await _tool_results(runtime, job.id) == [("Tool hang timed out after 0.2 s", True)]


async def test_a_hanging_sync_tool_ends_in_a_final_status_with_an_error_result(gate: threading.Event) -> None:
    def hang() -> str:
        """Never answers (until the test ends)."""
        gate.wait(BOUND * 2)
        return "late"

    runtime = Runtime(
        providers=ScriptedProvider([ToolCalls.of(("hang", {})), Reply("I could not get it.")]),
        settings=RuntimeSettings(tool_timeout=0.2, tool_threads=1),
    )
    runtime.add_expert("main", "Main.", tools=[hang])
    jobs = [await runtime.submit("main", f"q{i}") for i in range(3)]
    await asyncio.wait_for(Worker(runtime, worker_id="w1").run_until_idle(), BOUND)
    for job in jobs:  # the second and third calls waited for the one hung thread, then timed out
        done = await runtime.get(job.id)
        assert done.status is S.COMPLETED and done.lease_owner is None
        [(content, is_error)] = await _tool_results(runtime, job.id)
        assert is_error and content.startswith("Tool hang timed out after 0.2 s")
    assert runtime.tool_threads.started == 1
    await runtime.close()


# ---------------------------------------------------------------- providers that raise


async def test_a_provider_raising_a_plain_exception_fails_the_job_as_an_invalid_response() -> None:
    clock = FakeClock()
    attempts: list[int] = []

    def broken(request: GenerationRequest) -> GenerationResponse:
        attempts.append(len(request.messages))
        raise KeyError("choices")  # a malformed response an adapter did not expect

    runtime = Runtime(providers=FunctionProvider(broken), clock=clock)
    runtime.add_expert("main", "Main.")
    job = await runtime.submit("main", "q", max_retries=2)
    events: list[JobEvent] = []

    async def follow() -> None:
        async for event in runtime.events.stream(job.id):
            events.append(event)

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0)
    final = await asyncio.wait_for(runtime.drive(job.id), BOUND)
    await asyncio.wait_for(follower, BOUND)  # the subscriber's stream ends with the job
    assert final.status is S.FAILED
    assert len(attempts) == 3 and len(clock.sleeps) == 2  # retried, counting against maxRetries
    last = await _assert_rests_failed(runtime, job, "invalid_response")
    assert last.error is not None and last.error.retryable is True
    assert "the provider raised KeyError: 'choices'" in last.error.message
    assert "3 consecutive failed attempts exhausted maxRetries=2" in last.error.message
    assert [e.trigger for e in events if e.kind == "transition"] == ["start", "fail"]
    assert events[-1].status is S.FAILED
    history = await runtime.store.load_history(job.id, root_run_id(job.id))
    assert [type(m) for m in history] == [UserMessage]  # the query is kept for a follow-up


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (TimeoutError("read timed out"), "timeout"),
        (ConnectionResetError("reset by peer"), "connection"),
        (ValueError("Expecting value: line 1 column 1"), "invalid_response"),
    ],
)
async def test_an_unexpected_provider_exception_is_retried_as_its_kind(raised: Exception, kind: str) -> None:
    failures = [raised]

    def once(request: GenerationRequest) -> GenerationResponse:
        if failures:
            raise failures.pop()
        return _answer()

    runtime = Runtime(providers=FunctionProvider(once), clock=FakeClock())
    runtime.add_expert("main", "Main.")
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await runtime.run("main", "q")
    assert job.status is S.COMPLETED and job.total_steps == 1
    [retry] = [e.detail for e in seen if e.kind == "retry"]
    assert retry is not None and retry["error"]["kind"] == kind
    assert retry["error"]["message"] == f"the provider raised {type(raised).__name__}: {raised}"


async def test_a_provider_raising_after_some_steps_fails_the_job_keeping_those_steps() -> None:
    calls = 0

    async def flaky(request: GenerationRequest) -> GenerationResponse:
        nonlocal calls
        calls += 1
        if calls <= 2:
            return _answer(("add", {"a": calls, "b": 1}))
        raise ValueError("unexpected end of stream")

    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    runtime = Runtime(providers=FunctionProvider(flaky), clock=FakeClock())
    runtime.add_expert("main", "Main.", tools=[add])
    job = await runtime.run("main", "q", max_retries=0)
    assert job.status is S.FAILED and job.total_steps == 2
    last = await _assert_rests_failed(runtime, job, "invalid_response")
    assert last.error is not None and "ValueError: unexpected end of stream" in last.error.message
    assert last.total_steps == 2
    assert await _tool_results(runtime, job.id) == [("2", False), ("3", False)]
    assert job.usage == USAGE + USAGE


async def test_a_tool_path_bug_fails_the_job_as_internal() -> None:
    class Broken(Tool):
        async def call(self, arguments: Any, *rest: Any, **options: Any) -> ToolOutcome:
            raise KeyError("no such slot")  # a bug in the engine's tool path, not in the tool

    async def fine() -> str:
        """Fine."""
        return "ok"

    broken = Broken.from_function(fine)
    runtime = Runtime(providers=ScriptedProvider([ToolCalls.of(("fine", {})), Reply("x")]))
    runtime.add_expert("main", "Main.", tools=[broken])
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.FAILED
    last = await _assert_rests_failed(runtime, job, "internal")
    assert last.error is not None and last.error.to_data() == {
        "kind": "internal",
        "message": "KeyError: 'no such slot'",
        "retryable": False,
        "jobId": job.id,
        "step": 1,  # the step that was running
        "exception": "KeyError",
    }
    assert seen[-1].kind == "transition" and seen[-1].status is S.FAILED
    # The step in flight is dropped: the history stays valid for a follow-up.
    history = await runtime.store.load_history(job.id, root_run_id(job.id))
    assert [type(m) for m in history] == [UserMessage]


# ---------------------------------------------------------------- a store that fails


class _FlakyStore(MemoryStore):
    """A MemoryStore whose ``save`` fails on chosen calls (after writing, with ``landed``)."""

    def __init__(self, fail_on: Callable[[int, Checkpoint | None], bool], *, landed: bool = False) -> None:
        super().__init__()
        self.fail_on = fail_on
        self.landed = landed
        self.saves = 0
        self.release_fails = False

    async def save(self, job: Job, **options: Any) -> None:
        self.saves += 1
        if self.fail_on(self.saves, options.get("checkpoint")):
            if self.landed:
                await super().save(job, **options)
            raise ConnectionResetError("the database went away")
        await super().save(job, **options)

    async def release(self, job_id: str, worker_id: str) -> None:
        if self.release_fails:
            raise ConnectionResetError("the database went away")
        await super().release(job_id, worker_id)


def _steps_runtime(store: JobStore, steps: int = 4, clock: FakeClock | None = None) -> Runtime:
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    script = [ToolCalls.of(("add", {"a": i, "b": 1}), usage=USAGE) for i in range(steps - 1)]
    runtime = Runtime(
        providers=ScriptedProvider([*script, Reply("done", usage=USAGE)]),
        store=store,
        clock=clock or FakeClock(),
        settings=RuntimeSettings(lease_seconds=30),
    )
    runtime.add_expert("main", "Main.", tools=[add])
    return runtime


@pytest.mark.parametrize("landed", [False, True], ids=["lost", "committed-then-raised"])
async def test_a_store_save_that_raises_once_mid_job_fails_it_cleanly(landed: bool) -> None:
    # The 3rd save is step 2's checkpoint (1st: start, 2nd: step 1).
    store = _FlakyStore(lambda n, checkpoint: n == 3, landed=landed)
    runtime = _steps_runtime(store)
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.FAILED
    last = await _assert_rests_failed(runtime, job, "internal")
    assert last.error is not None
    assert last.error.message == "ConnectionResetError: the database went away"
    assert last.error.exception == "ConnectionResetError"
    stored = await runtime.get(job.id)
    steps = 2 if landed else 1
    assert stored.total_steps == steps and last.total_steps == steps
    # Every token is counted once: the failed attempt's step only if its write landed... and the
    # usage of a step whose write was lost is still in the final checkpoint.
    assert stored.usage == USAGE + USAGE
    assert (
        sum((c.step_usage for c in await _all_checkpoints(runtime, job.id)), Usage.of(0, 0)) == stored.usage
    )
    history = await runtime.store.load_history(job.id, root_run_id(job.id))
    assert [type(m).__name__ for m in history][-1] == "ToolResultsMessage"
    assert len(await _tool_results(runtime, job.id)) == steps
    checkpoint_ids = [e.detail["checkpointId"] for e in seen if e.kind == "checkpoint" and e.detail]
    assert checkpoint_ids == [c.id for c in await _all_checkpoints(runtime, job.id)]  # each published once
    assert [e.status for e in seen if e.kind == "transition"] == [S.PROCESSING, S.FAILED]


async def test_a_final_write_that_committed_then_raised_leaves_the_job_as_written() -> None:
    store = _FlakyStore(
        lambda n, checkpoint: checkpoint is not None and checkpoint.kind == "stop", landed=True
    )
    runtime = _steps_runtime(store, steps=2)
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await asyncio.wait_for(runtime.run("main", "q"), BOUND)
    assert job.status is S.COMPLETED and job.lease_owner is None
    stored = await runtime.get(job.id)
    assert (stored.status, stored.total_steps, stored.lease_owner) == (S.COMPLETED, 2, None)
    assert [c.kind for c in await _all_checkpoints(runtime, job.id)] == ["step", "stop"]
    assert [e.status for e in seen if e.kind == "transition"] == [S.PROCESSING, S.COMPLETED]


async def test_a_job_whose_failure_cannot_be_written_is_recovered_by_the_sweeper() -> None:
    clock = FakeClock()
    store = _FlakyStore(lambda n, checkpoint: n >= 3)  # the store goes down at step 2 and stays down
    runtime = _steps_runtime(store, clock=clock)
    job = await runtime.submit("main", "q")
    final = await asyncio.wait_for(runtime.drive(job.id, worker_id="w1"), BOUND)  # no exception escapes
    stored = await runtime.get(job.id)
    assert final.status is S.PROCESSING and stored.status is S.PROCESSING
    assert stored.lease_owner is None  # the release still worked: nobody holds the job
    store.fail_on = lambda n, checkpoint: False  # the store is back
    clock.advance(31)
    report = await sweep(runtime)
    assert report.recovered == [job.id]
    assert (await runtime.get(job.id)).status is S.QUEUED
    await asyncio.wait_for(Worker(runtime, worker_id="w2").run_until_idle(), BOUND)
    done = await runtime.get(job.id)
    # Resumed from step 1's checkpoint (the scripted provider plays on from its next turn).
    assert done.status is S.COMPLETED and done.total_steps == 3


async def test_a_job_whose_lease_cannot_be_released_either_is_recovered_when_it_lapses() -> None:
    clock = FakeClock()
    store = _FlakyStore(lambda n, checkpoint: n >= 3)
    store.release_fails = True
    runtime = _steps_runtime(store, clock=clock)
    job = await runtime.submit("main", "q")
    await asyncio.wait_for(runtime.drive(job.id, worker_id="w1"), BOUND)
    stored = await runtime.get(job.id)
    assert (stored.status, stored.lease_owner) == (S.PROCESSING, "w1")
    store.fail_on = lambda n, checkpoint: False
    store.release_fails = False
    assert (await sweep(runtime)).recovered == []  # the lease is still live
    clock.advance(31)
    assert (await sweep(runtime)).recovered == [job.id]
    await asyncio.wait_for(Worker(runtime, worker_id="w2").run_until_idle(), BOUND)
    assert (await runtime.get(job.id)).status is S.COMPLETED


# ---------------------------------------------------------------- the sweeper's second line


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    """A MemoryStore, or an SQLite store in a temporary file."""
    opened = MemoryStore() if request.param == "memory" else open_store(f"sqlite:///{tmp_path / 'jobs.db'}")
    try:
        yield opened
    finally:
        await opened.close()


async def _left_behind(runtime: Runtime, status: JobStatus, waited: float) -> Job:
    """A job as a crashed runner that dropped its lease leaves it: ``status``, no lease, one step
    done (its checkpoint written), queued ``waited`` seconds ago."""
    job = await runtime.submit("main", "q")
    claimed = await runtime.store.claim(
        "dead-worker", now=runtime.clock.now(), lease_seconds=30, job_id=job.id
    )
    assert claimed is not None
    claimed.fire("start")
    await runtime.store.save(claimed, expected_version=claimed.version)
    if status is not S.PROCESSING:
        claimed.fire({S.REQUEST_DELEGATE_RESULT: "request_delegate_result", S.CANCELING: "cancel"}[status])
        await runtime.store.save(claimed, expected_version=claimed.version)
    await runtime.store.release(job.id, "dead-worker")
    assert isinstance(runtime.clock, FakeClock)
    runtime.clock.advance(waited)
    return await runtime.get(job.id)


@pytest.mark.parametrize("status", [S.PROCESSING, S.REQUEST_DELEGATE_RESULT, S.CANCELING])
async def test_the_sweeper_recovers_a_job_nobody_holds(store: JobStore, status: JobStatus) -> None:
    runtime = _steps_runtime(store, steps=2)
    left = await _left_behind(runtime, status, waited=31)
    assert (left.status, left.lease_owner) == (status, None)
    assert await store.lapsed_leases(now=runtime.clock.now()) == []  # not a lapsed lease: no lease
    await asyncio.wait_for(Worker(runtime, worker_id="w2").run_until_idle(), BOUND)  # recover, sweep, run
    done = await runtime.get(left.id)
    assert done.status is (S.CANCELED if status is S.CANCELING else S.COMPLETED)
    assert done.lease_owner is None


async def test_the_sweeper_leaves_held_and_just_started_jobs_alone(store: JobStore) -> None:
    runtime = _steps_runtime(store, steps=2)
    fresh = await _left_behind(runtime, S.PROCESSING, waited=5)  # queued less than a lease ago
    held = await runtime.submit("main", "held")
    claimed = await store.claim("live-worker", now=runtime.clock.now(), lease_seconds=30, job_id=held.id)
    assert claimed is not None
    claimed.fire("start")
    await store.save(claimed, expected_version=claimed.version)
    assert (await sweep(runtime)).recovered == []
    assert (await runtime.get(fresh.id)).status is S.PROCESSING
    assert isinstance(runtime.clock, FakeClock)
    runtime.clock.advance(26)  # fresh: 31 s since queued; held: its lease still live (renewed)
    assert await store.renew_lease(held.id, "live-worker", now=runtime.clock.now(), lease_seconds=30)
    assert (await sweep(runtime)).recovered == [fresh.id]
    assert (await runtime.get(held.id)).status is S.PROCESSING
