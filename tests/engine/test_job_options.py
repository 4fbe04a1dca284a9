"""A library caller gets the API's ranges too: ``Runtime.submit``, ``continue_job`` and
``branch_from`` refuse ``maxSteps`` over ``MAX_STEPS_LIMIT``, ``maxRetries`` over
``MAX_RETRIES_LIMIT`` and a temperature outside [0, 1] with a ``UsageError`` naming the field and
the limit, before anything is written (on PostgreSQL the counts are int4: a larger value would
otherwise be a store error)."""

from __future__ import annotations

from typing import Any

import pytest

from expert_jobs import JobQuery, JobStatus, MemoryStore, Reply, Runtime, ScriptedProvider
from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.wire import MAX_RETRIES_LIMIT, MAX_STEPS_LIMIT
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID

REFUSED: list[tuple[dict[str, Any], str]] = [
    ({"max_steps": MAX_STEPS_LIMIT + 1}, "maxSteps must be at most 1000000 (MAX_STEPS_LIMIT), got 1000001"),
    ({"max_steps": 2**31}, "maxSteps must be at most 1000000 (MAX_STEPS_LIMIT), got 2147483648"),
    ({"max_steps": 0}, "maxSteps must be >= 1, got 0"),
    ({"max_steps": 2.5}, "maxSteps must be a whole number, got 2.5"),
    ({"max_steps": True}, "maxSteps must be a whole number, got True"),
    ({"max_retries": MAX_RETRIES_LIMIT + 1}, "maxRetries must be at most 100 (MAX_RETRIES_LIMIT), got 101"),
    ({"max_retries": -1}, "maxRetries must be >= 0, got -1"),
    ({"temperature": 1.5}, "temperature must be between 0 and 1, got 1.5"),
    ({"temperature": float("nan")}, "temperature must be between 0 and 1, got nan"),
    ({"temperature": "0.5"}, "temperature must be a number between 0 and 1, got '0.5'"),
]


def _runtime() -> Runtime:
    runtime = Runtime(providers=ScriptedProvider([Reply("one"), Reply("two")]), store=MemoryStore())
    runtime.add_expert("echo", "You echo.")
    return runtime


async def _count(runtime: Runtime) -> int:
    return (await runtime.store.list(JobQuery(DEFAULT_APPLICATION_ID)))[1]


@pytest.mark.parametrize(("options", "message"), REFUSED)
async def test_submit_refuses_options_out_of_range(options: dict[str, Any], message: str) -> None:
    runtime = _runtime()
    with pytest.raises(UsageError) as caught:
        await runtime.submit("echo", "q", **options)
    assert str(caught.value) == message
    assert await _count(runtime) == 0


async def test_submit_takes_the_limits_themselves() -> None:
    runtime = _runtime()
    job = await runtime.submit("echo", "q", max_steps=MAX_STEPS_LIMIT, max_retries=MAX_RETRIES_LIMIT)
    assert (job.max_steps, job.max_retries) == (MAX_STEPS_LIMIT, MAX_RETRIES_LIMIT)


@pytest.mark.parametrize(("options", "message"), REFUSED)
async def test_continue_and_branch_refuse_overrides_out_of_range(
    options: dict[str, Any], message: str
) -> None:
    runtime = _runtime()
    job = await runtime.run("echo", "q")
    assert job.status is JobStatus.COMPLETED
    version = job.version
    first = (await runtime.store.list_checkpoints(job.id, take=1))[0][0]
    with pytest.raises(UsageError) as caught:
        await runtime.continue_job(job.id, "more", **options)
    assert str(caught.value) == f"job {job.id}: {message}"
    with pytest.raises(UsageError) as caught:
        await runtime.branch_from(job.id, first.id, **options)  # a branch that only overrides
    assert str(caught.value) == f"job {job.id}: {message}"
    with pytest.raises(UsageError):
        await runtime.branch_from(job.id, first.id, "more", **options)
    assert (await runtime.get(job.id)).version == version  # nothing written
    assert await _count(runtime) == 1  # no branch made


async def test_continue_and_branch_take_overrides_in_range() -> None:
    runtime = _runtime()
    job = await runtime.run("echo", "q")
    first = (await runtime.store.list_checkpoints(job.id, take=1))[0][0]
    continued = await runtime.continue_job(
        job.id, "more", max_steps=MAX_STEPS_LIMIT, max_retries=MAX_RETRIES_LIMIT, temperature=1
    )
    assert (continued.max_steps, continued.max_retries, continued.temperature) == (
        MAX_STEPS_LIMIT,
        MAX_RETRIES_LIMIT,
        1.0,
    )
    branch = await runtime.branch_from(job.id, first.id, max_steps=7, max_retries=0)
    assert (branch.max_steps, branch.max_retries) == (7, 0)
