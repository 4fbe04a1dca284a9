"""Cancellation, events, checkpoints, the worker, the sweeper."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from expert_jobs import (
    Checkpoint,
    FakeClock,
    FunctionProvider,
    GenerationRequest,
    GenerationResponse,
    IllegalTransition,
    Job,
    JobEvent,
    JobStatus,
    Reply,
    RuntimeSettings,
    TextPart,
    ToolCalls,
    Usage,
    Worker,
)
from expert_jobs.engine.sweeper import sweep
from expert_jobs.stores.memory import MemoryStore

from .conftest import checkpoints, make_runtime

S = JobStatus


def _blocking_provider(started: asyncio.Event) -> FunctionProvider:
    async def hang(request: GenerationRequest) -> GenerationResponse:
        started.set()
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    return FunctionProvider(hang)


async def test_cancel_a_queued_job_is_immediate_with_a_final_checkpoint() -> None:
    runtime = make_runtime([Reply("x")])
    job = await runtime.submit("main@1.0.0", "q")
    job = await runtime.cancel(job.id)
    assert job.status is S.CANCELED
    cps = await checkpoints(runtime, job)
    assert cps[-1].status is S.CANCELED and cps[-1].run_state == "canceled"
    with pytest.raises(IllegalTransition):
        await runtime.cancel(job.id)  # canceled is final


async def test_cancel_abandons_an_in_flight_model_call_promptly() -> None:
    started = asyncio.Event()
    runtime = make_runtime([])
    runtime.providers = _blocking_provider(started)
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id))
    await asyncio.wait_for(started.wait(), 2)
    t0 = time.monotonic()
    canceling = await runtime.cancel(job.id)
    assert canceling.status is S.CANCELING
    final = await asyncio.wait_for(task, 2)
    assert time.monotonic() - t0 < 1.0
    assert final.status is S.CANCELED
    stored = await runtime.get(job.id)
    assert stored.status is S.CANCELED and stored.lease_owner is None
    assert (await checkpoints(runtime, job))[-1].status is S.CANCELED


async def test_cancel_during_delegation_cancels_the_children() -> None:
    started = asyncio.Event()

    async def answer(request: GenerationRequest) -> GenerationResponse:
        if request.expert_key == "helper":
            started.set()
            await asyncio.sleep(3600)
        from expert_jobs import ToolCall

        return GenerationResponse((ToolCall("c1", "helper", {"query": "x"}),), "tool_calls", Usage.of(1, 1))

    runtime = make_runtime([])
    runtime.providers = FunctionProvider(answer)
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id))
    await asyncio.wait_for(started.wait(), 2)
    assert (await runtime.get(job.id)).status is S.REQUEST_DELEGATE_RESULT
    await runtime.cancel(job.id)
    final = await asyncio.wait_for(task, 2)
    assert final.status is S.CANCELED
    assert final.usage == Usage.of(1, 1)


async def test_cancel_a_paused_job_is_immediate() -> None:
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "?"}))])
    job = await runtime.run("main@1.0.0", "q")
    job = await runtime.cancel(job.id)
    assert job.status is S.CANCELED


async def test_cancel_seen_by_a_worker_in_another_process_through_the_store() -> None:
    """A job canceled by someone else (another process) stops at its next write."""
    gate = asyncio.Event()
    calls = 0

    async def answer(request: GenerationRequest) -> GenerationResponse:
        nonlocal calls
        calls += 1
        if calls == 2:
            await gate.wait()
        from expert_jobs import ToolCall

        return GenerationResponse(
            (ToolCall(f"c{calls}", "add", {"a": 1, "b": 1}),), "tool_calls", Usage.of(1, 1)
        )

    runtime = make_runtime([])
    runtime.providers = FunctionProvider(answer)
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id))
    # Let the runner reach its second model call (after a sync tool's trip to a thread: polled
    # on the clock, not for a number of loop passes, which a busy machine can outlast).
    for _ in range(2000):
        if calls >= 2:
            break
        await asyncio.sleep(0.005)
    assert calls == 2
    other = await runtime.store.get(job.id)
    assert other is not None
    other.fire("cancel")
    await runtime.store.save(other, expected_version=other.version)  # as another process would
    gate.set()
    final = await asyncio.wait_for(task, 2)
    assert final.status is S.CANCELED
    assert final.total_steps == 1  # the step in flight was abandoned
    assert final.usage == Usage.of(2, 2)  # but what it spent is counted


async def test_status_update_applies_table_edges_only() -> None:
    runtime = make_runtime([Reply("x")])
    job = await runtime.submit("main@1.0.0", "q")
    with pytest.raises(IllegalTransition, match="completed"):
        await runtime.update_status(job.id, "completed")
    job = await runtime.update_status(job.id, "failed")
    assert job.status is S.FAILED
    job = await runtime.update_status(job.id, "queued")  # follow_up edge
    assert job.status is S.QUEUED


async def test_events_are_typed_and_a_failing_subscriber_never_breaks_a_job(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("x")])
    seen: list[JobEvent] = []

    def broken(event: JobEvent) -> None:
        raise RuntimeError("subscriber bug")

    runtime.events.subscribe(broken)
    runtime.events.subscribe(seen.append)
    with caplog.at_level(logging.ERROR):
        job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert "subscriber bug" in caplog.text or "failed" in caplog.text
    kinds = [e.kind for e in seen]
    assert kinds.count("step") == 2 and "toolCall" in kinds and kinds[-1] == "transition"
    assert all(e.job_id == job.id and e.expert_key == "main@1.0.0" for e in seen)


async def test_stream_of_one_job_ends_at_a_resting_status() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("x")])
    job = await runtime.submit("main@1.0.0", "q")
    collected: list[JobEvent] = []

    async def consume() -> None:
        async for event in runtime.events.stream(job.id):
            collected.append(event)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await runtime.drive(job.id)
    await asyncio.wait_for(consumer, 2)
    assert collected[-1].status is S.COMPLETED


async def test_checkpoint_cost_does_not_grow_with_history() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1}))] * 100 + [Reply("x")])
    job = await runtime.run("main@1.0.0", "q", max_steps=200)
    cps = await checkpoints(runtime, job)
    assert [c.seq for c in cps] == list(range(1, len(cps) + 1))
    assert max(len(c.new_messages) for c in cps[5:]) <= 2  # a delta, never the whole history
    assert cps[-1].message_count == 202


async def test_worker_runs_every_queued_job_concurrently() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("x")])
    jobs = [await runtime.submit("main@1.0.0", f"q{i}") for i in range(20)]
    worker = Worker(runtime, concurrency=5)
    assert await worker.run_until_idle() == 20
    for job in jobs:
        assert (await runtime.get(job.id)).status is S.COMPLETED


async def test_graceful_stop_hands_running_jobs_back_to_the_queue() -> None:
    started = asyncio.Event()
    runtime = make_runtime([])
    runtime.providers = _blocking_provider(started)
    job = await runtime.submit("main@1.0.0", "q")
    worker = Worker(runtime, concurrency=2, poll_interval=0.01)
    await worker.start()
    await asyncio.wait_for(started.wait(), 2)
    await worker.stop(grace=0.05)
    stored = await runtime.get(job.id)
    assert stored.status is S.QUEUED and stored.lease_owner is None
    # Handed back during its first step, the job resumes with its query (not an empty history).
    seen: list[int] = []

    def answer(request: GenerationRequest) -> GenerationResponse:
        seen.append(len(request.messages))
        return GenerationResponse((TextPart("done"),), "stop", Usage.of(1, 1))

    runtime.providers = FunctionProvider(answer)
    assert (await runtime.drive(job.id)).status is S.COMPLETED
    assert seen == [1]


async def test_a_restarted_worker_takes_back_what_it_held() -> None:
    runtime = make_runtime([Reply("x")])
    job = await runtime.submit("main@1.0.0", "q")
    claimed = await runtime.store.claim("w1", now=runtime.clock.now(), lease_seconds=30)
    assert claimed is not None
    claimed.fire("start")
    await runtime.store.save(claimed, expected_version=claimed.version)  # then w1 "dies"
    assert await Worker(runtime, worker_id="w1").run_until_idle() == 1
    assert (await runtime.get(job.id)).status is S.COMPLETED


async def test_sweeper_recovers_lapsed_leases_and_expires_waiting_jobs(clock: FakeClock) -> None:
    settings = RuntimeSettings(lease_seconds=10, queued_expiry_seconds=60, paused_expiry_seconds=120)
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "?"}))], settings=settings, clock=clock)
    stalled = await runtime.submit("main@1.0.0", "stalled")
    claimed = await runtime.store.claim("dead", now=clock.now(), lease_seconds=10, job_id=stalled.id)
    assert claimed is not None
    claimed.fire("start")
    await runtime.store.save(claimed, expected_version=claimed.version)
    paused = await runtime.run("main@1.0.0", "paused")
    waiting = await runtime.submit("main@1.0.0", "waiting")
    clock.advance(11)
    report = await sweep(runtime)
    assert report.recovered == [stalled.id]
    assert (await runtime.get(stalled.id)).status is S.QUEUED
    clock.advance(61)
    report = await sweep(runtime)
    assert set(report.expired) == {stalled.id, waiting.id}
    clock.advance(60)
    report = await sweep(runtime)
    assert report.expired == [paused.id]
    for job_id in (stalled.id, waiting.id, paused.id):
        job = await runtime.get(job_id)
        assert job.status is S.EXPIRED
        last = (await runtime.store.list_checkpoints(job_id, take=1000))[0][-1]
        assert last.status is S.EXPIRED


async def test_provider_answer_with_text_part_only_completes() -> None:
    runtime = make_runtime([])
    runtime.providers = FunctionProvider(
        lambda r: GenerationResponse((TextPart("hi"),), "stop", Usage.of(1, 1))
    )
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED


async def test_leases_are_renewed_while_a_long_generation_runs() -> None:
    settings = RuntimeSettings(lease_seconds=0.15)
    runtime = make_runtime([Reply("slow answer", delay=0.5)], settings=settings)
    runtime.providers._sleep = asyncio.sleep  # type: ignore[union-attr]  # a real, long call
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id, worker_id="w1"))
    await asyncio.sleep(0.3)  # two lease periods later the job is still ours
    assert (await runtime.store.lapsed_leases(now=runtime.clock.now())) == []
    final = await asyncio.wait_for(task, 2)
    assert final.status is S.COMPLETED


async def test_a_runner_that_lost_its_lease_lets_the_job_go_without_writing() -> None:
    settings = RuntimeSettings(lease_seconds=0.15)
    runtime = make_runtime([Reply("slow answer", delay=2.0)], settings=settings)
    runtime.providers._sleep = asyncio.sleep  # type: ignore[union-attr]
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id, worker_id="w1"))
    await asyncio.sleep(0.02)
    await runtime.store.release(job.id, "w1")  # as if the lease had lapsed and another worker took it
    final = await asyncio.wait_for(task, 2)
    assert final.status is S.PROCESSING  # this runner wrote nothing more
    stored = await runtime.get(job.id)
    assert stored.status is S.PROCESSING and stored.total_steps == 0


async def test_tool_results_are_published_as_events() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1}), ("nosuch", {})), Reply("x")])
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    await runtime.run("main@1.0.0", "q")
    results = [e.detail for e in seen if e.kind == "toolResult"]
    assert results is not None and len(results) == 2
    assert {r["name"]: r["isError"] for r in results if r} == {"add": False, "nosuch": True}


class _LeaseWatchingStore(MemoryStore):
    """A MemoryStore that records which saves dropped a lease and every separate release."""

    def __init__(self) -> None:
        super().__init__()
        self.releasing_saves: list[tuple[str, JobStatus]] = []
        self.releases: list[str] = []

    async def save(
        self,
        job: Job,
        *,
        expected_version: int,
        checkpoint: Checkpoint | None = None,
        release_for: str | None = None,
    ) -> None:
        await super().save(
            job, expected_version=expected_version, checkpoint=checkpoint, release_for=release_for
        )
        if release_for is not None:
            self.releasing_saves.append((release_for, job.status))

    async def release(self, job_id: str, worker_id: str) -> None:
        self.releases.append(worker_id)
        await super().release(job_id, worker_id)


async def test_a_runs_last_write_drops_the_lease_and_no_release_follows() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("3")])
    store = runtime.store = _LeaseWatchingStore()
    job = await runtime.submit("main@1.0.0", "q")
    done = await runtime.drive(job.id, worker_id="w1")
    assert done.status is S.COMPLETED and done.lease_owner is None
    assert store.releasing_saves == [("w1", S.COMPLETED)]  # only the final write releases
    assert store.releases == []
    assert (await runtime.get(job.id)).lease_owner is None


async def test_a_pause_releases_with_its_write_and_a_lost_race_releases_separately() -> None:
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")])
    store = runtime.store = _LeaseWatchingStore()
    job = await runtime.submit("main@1.0.0", "q")
    paused = await runtime.drive(job.id, worker_id="w1")
    assert paused.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    assert store.releasing_saves == [("w1", S.REQUEST_INTERACTIVE_TOOL_RESULT)]
    assert store.releases == []
    # A runner whose first write loses its race (someone moved the job) releases on its way out.
    other = await runtime.submit("main@1.0.0", "q2")
    claimed = await store.claim("w2", now=runtime.clock.now(), lease_seconds=30, job_id=other.id)
    assert claimed is not None
    stale = claimed.copy()
    claimed.fire("fail")  # e.g. an operator's status update, while w2 still holds the lease
    await store.save(claimed, expected_version=claimed.version)
    await runtime.execute(stale, "w2")
    assert store.releases == ["w2"]
    stored = await runtime.get(other.id)
    assert stored.status is S.FAILED and stored.lease_owner is None


async def test_a_cancel_met_on_the_first_write_is_finished_with_a_releasing_write() -> None:
    runtime = make_runtime([Reply("x")])
    store = runtime.store = _LeaseWatchingStore()
    job = await runtime.submit("main@1.0.0", "q")
    claimed = await store.claim("w1", now=runtime.clock.now(), lease_seconds=30, job_id=job.id)
    assert claimed is not None
    stale = claimed.copy()
    claimed.fire("cancel")  # the service cancels the job the worker has just claimed
    await store.save(claimed, expected_version=claimed.version)
    done = await runtime.execute(stale, "w1")
    assert done.status is S.CANCELED
    assert store.releasing_saves == [("w1", S.CANCELED)] and store.releases == []
    assert (await runtime.get(job.id)).lease_owner is None
