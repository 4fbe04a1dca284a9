"""The runtime knows the runners driving its jobs (``Runtime.runner``: cancel requests and lease
renewals reach them) exactly while they run, however the job is run (a ``Worker``, whose task is
the runner's ``run()`` itself, or ``Runtime.execute`` / ``drive``) and however the run ends."""

from __future__ import annotations

import asyncio

import pytest

from expert_jobs import (
    FunctionProvider,
    GenerationRequest,
    GenerationResponse,
    JobStatus,
    TextPart,
    Usage,
    Worker,
)
from expert_jobs.engine.runner import JobRunner
from expert_jobs.stores.memory import MemoryStore

from .conftest import make_runtime

S = JobStatus


async def test_a_worker_s_runner_is_known_while_it_runs_and_forgotten_after() -> None:
    seen: list[JobRunner | None] = []
    runtime = make_runtime([])

    async def answer(request: GenerationRequest) -> GenerationResponse:
        seen.append(runtime.runner(job.id))
        return GenerationResponse((TextPart("done"),), "stop", Usage.of(1, 1), None, "m", "p")

    runtime.providers = FunctionProvider(answer)
    job = await runtime.submit("main@1.0.0", "q")
    assert runtime.runner(job.id) is None
    assert await Worker(runtime, concurrency=4).run_until_idle() == 1
    assert len(seen) == 1 and isinstance(seen[0], JobRunner) and seen[0].job.id == job.id
    assert runtime.runner(job.id) is None
    assert (await runtime.get(job.id)).status is S.COMPLETED


class _ReleaseCancelled(MemoryStore):
    """A store whose lease release is interrupted (the runner's task cancelled right then)."""

    async def release(self, job_id: str, worker_id: str) -> None:
        raise asyncio.CancelledError


async def test_a_runner_whose_last_release_is_cancelled_is_still_forgotten() -> None:
    runtime = make_runtime([])
    store = runtime.store = _ReleaseCancelled()
    job = await runtime.submit("main@1.0.0", "q")
    claimed = await store.claim("w1", now=runtime.clock.now(), lease_seconds=30, job_id=job.id)
    assert claimed is not None
    stale = claimed.copy()
    claimed.fire("fail")  # someone moves the job: the runner's first write loses its race
    await store.save(claimed, expected_version=claimed.version)
    with pytest.raises(asyncio.CancelledError):
        await runtime.execute(stale, "w1")  # lets the job go, and its release is cancelled
    assert runtime.runner(job.id) is None
