"""The worker on a SQLite store: claims in concurrent rounds, survives a store hiccup, and lets go
of jobs it claimed but never started when it stops."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from expert_jobs.domain.errors import StoreError
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.worker import Worker
from expert_jobs.providers.scripted import Reply, ScriptedProvider, ToolCalls
from expert_jobs.stores.sqlite import SQLiteStore


async def noop(step: int = 0) -> str:
    """Do nothing."""
    return "ok"


def _runtime(store: SQLiteStore) -> Runtime:
    script = [ToolCalls.of(("noop", {"step": 1})), Reply("done")]
    runtime = Runtime(providers=ScriptedProvider(script), store=store, settings=RuntimeSettings())
    runtime.add_expert("main@1", "Work.", tools=[noop])
    return runtime


async def test_many_jobs_are_claimed_in_few_transactions(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    runtime = _runtime(store)
    try:
        jobs = await asyncio.gather(*(runtime.submit("main@1", f"job {i}") for i in range(200)))
        before = store.writer.batches
        assert await Worker(runtime, concurrency=200).run_until_idle() == 200
        for job in jobs:
            assert (await runtime.get(job.id)).status is JobStatus.COMPLETED
        # 200 jobs x (claim, start, step, completion, release) = 1,000 writes.
        assert store.writer.operations >= 1000
        assert store.writer.batches - before < 200  # one claim per transaction would be >= 200 alone
    finally:
        await runtime.close()


async def test_a_store_hiccup_does_not_kill_the_claim_loop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    runtime = _runtime(store)
    real_claim = store.claim
    failures = [StoreError("SQLite store: database is locked")]

    async def flaky_claim(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop()
        return await real_claim(*args, **kwargs)  # type: ignore[arg-type]

    store.claim = flaky_claim  # type: ignore[method-assign]
    worker = Worker(runtime, poll_interval=0.02)
    try:
        job = await runtime.submit("main@1", "q")
        with caplog.at_level(logging.ERROR, logger="expert_jobs.worker"):
            await worker.start()
            for _ in range(200):
                if (await runtime.get(job.id)).status is JobStatus.COMPLETED:
                    break
                await asyncio.sleep(0.02)
        assert (await runtime.get(job.id)).status is JobStatus.COMPLETED
        assert "claiming failed" in caplog.text
    finally:
        await worker.stop()
        await runtime.close()


async def test_stop_releases_jobs_claimed_but_never_started(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    runtime = _runtime(store)
    worker = Worker(runtime, worker_id="w1", poll_interval=3600)
    try:
        await worker.start()
        await asyncio.sleep(0.05)  # its first claim round found nothing; the next is an hour away
        job = await _runtime(store).submit("main@1", "q")  # another runtime: this worker is not woken
        # A claim that committed after the claim loop stopped looking (its caller was cancelled).
        assert await store.claim("w1", now=runtime.clock.now(), lease_seconds=30, job_id=job.id)
        await worker.stop()
        stored = await runtime.get(job.id)
        assert stored.status is JobStatus.QUEUED and stored.lease_owner is None
    finally:
        await runtime.close()
