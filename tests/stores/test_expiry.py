"""Expiry with a durable store: the sweeper moves jobs that waited too long in ``queued`` or in
either pause to ``expired``, with a final checkpoint, and leaves everything else alone."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from expert_jobs.domain.job import Job
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.runner import root_run_id
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.sweeper import sweep
from expert_jobs.engine.worker import Worker
from expert_jobs.ports.clock import FakeClock
from expert_jobs.ports.store import JobStore
from expert_jobs.providers.scripted import ScriptedProvider, ToolCalls
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.stores.sqlite import SQLiteStore

S = JobStatus
ASK = {"name": "ask", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}
QUEUED_LIMIT = 60.0
PAUSED_LIMIT = 600.0


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    """A SQLite file store (and, for comparison, the memory store)."""
    opened: JobStore = MemoryStore()
    if request.param == "sqlite":
        opened = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        yield opened
    finally:
        await opened.close()


def _runtime(store: JobStore, clock: FakeClock | None = None, **limits: float | None) -> Runtime:
    settings = RuntimeSettings(
        queued_expiry_seconds=limits.get("queued", QUEUED_LIMIT),
        paused_expiry_seconds=limits.get("paused", PAUSED_LIMIT),
    )
    provider = ScriptedProvider([ToolCalls.of(("ask", {"q": "?"}))], sleep=(clock or FakeClock()).sleep)
    runtime = Runtime(providers=provider, store=store, clock=clock, settings=settings)
    runtime.add_expert("main@1", "Ask the user.", interactive_tools=[ASK])
    return runtime


async def _delegate_paused(store: JobStore, clock: FakeClock) -> Job:
    """A job left in ``requestDelegateResult`` by no worker: the sweeper hands it back to the queue
    (nothing drives its delegates), where, with no worker claiming it, it then expires."""
    job = Job(
        id="delegatepaused0000000000",
        organization_id="org",
        application_id="app",
        expert_key="main@1",
        expert={},
        model="claude-sonnet-4-5",
        temperature=0.0,
        max_steps=10,
        max_retries=1,
        created_at=clock.now(),
        status=S.REQUEST_DELEGATE_RESULT,
    )
    await store.create(job)
    return job


async def _final_checkpoint_is_expired(store: JobStore, job_id: str) -> None:
    job = await store.get(job_id)
    assert job is not None and job.status is S.EXPIRED
    checkpoints, total = await store.list_checkpoints(job_id, take=1000)
    last = checkpoints[-1]
    assert (last.status, last.run_state, last.kind) == (S.EXPIRED, "expired", "stop")
    assert last.id == job.last_checkpoint_id and total == job.checkpoint_seq
    assert last.run_id == root_run_id(job_id)


async def test_jobs_waiting_too_long_expire_with_a_final_checkpoint(store: JobStore) -> None:
    clock = FakeClock()
    runtime = _runtime(store, clock)
    queued = await runtime.submit("main@1", "nobody runs me")
    paused = await runtime.run("main@1", "ask me")
    assert paused.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    delegating = await _delegate_paused(store, clock)
    claimed = await runtime.submit("main@1", "a worker holds me")
    assert await store.claim("w1", now=clock.now(), lease_seconds=10 * PAUSED_LIMIT, job_id=claimed.id)

    clock.advance(QUEUED_LIMIT)  # exactly at the limit: not yet
    assert (await sweep(runtime)).expired == []
    clock.advance(1)
    report = await sweep(runtime)
    assert report.expired == [queued.id]  # a queued job under a live lease is not waiting
    await _final_checkpoint_is_expired(store, queued.id)

    clock.advance(PAUSED_LIMIT - QUEUED_LIMIT)
    assert sorted((await sweep(runtime)).expired) == sorted([paused.id, delegating.id])
    for job_id in (paused.id, delegating.id):
        await _final_checkpoint_is_expired(store, job_id)
    history = await store.load_history(paused.id, root_run_id(paused.id))
    assert len(history) == 2  # the query and the interactive call: the history is kept
    held = await store.get(claimed.id)
    assert held is not None and held.status is S.QUEUED
    assert (await sweep(runtime)).expired == []  # expired is final: nothing happens twice


async def test_no_limit_means_never(store: JobStore) -> None:
    clock = FakeClock()
    runtime = _runtime(store, clock, queued=None, paused=None)
    queued = await runtime.submit("main@1", "q")
    paused = await runtime.run("main@1", "p")
    clock.advance(10 * 365 * 86400.0)
    assert (await sweep(runtime)).expired == []
    assert {(await runtime.get(j.id)).status for j in (queued, paused)} == {
        S.QUEUED,
        S.REQUEST_INTERACTIVE_TOOL_RESULT,
    }


async def test_a_worker_sweeps_expired_pauses_on_its_own(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    runtime = _runtime(store, paused=0.2)
    paused = await runtime.run("main@1", "ask me")
    assert paused.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    worker = Worker(runtime, sweep_interval=0.05, poll_interval=0.05)
    await worker.start()
    try:
        for _ in range(100):
            if (await runtime.get(paused.id)).status is S.EXPIRED:
                break
            await asyncio.sleep(0.02)
        await _final_checkpoint_is_expired(store, paused.id)
    finally:
        await worker.stop()
        await runtime.close()


def test_the_documented_defaults() -> None:
    settings = RuntimeSettings()
    assert settings.queued_expiry_seconds == 24 * 3600.0
    assert settings.paused_expiry_seconds == 7 * 24 * 3600.0
    assert settings.lease_seconds == 30.0
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text(encoding="utf-8")
    for phrase in ("24 hours", "7 days", "30 s"):
        assert phrase in docs
