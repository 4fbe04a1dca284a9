"""A generation that fails after the job's first step is handled exactly as one at its first step:
the runner makes a later step's first attempt itself (no ``_generate`` coroutine) and hands a
failure on to ``_generate``, which must treat it as its own first attempt (the retry counted,
the timeout recognised, an unexpected exception classified, an empty answer refused)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from expert_jobs import (
    FunctionProvider,
    GenerationRequest,
    GenerationResponse,
    JobEvent,
    JobStatus,
    RuntimeSettings,
    TextPart,
    ToolCall,
    Usage,
)
from expert_jobs.domain.errors import ProviderError

from .conftest import make_runtime

USAGE = Usage.of(10, 2)


def _answer(*parts: Any) -> GenerationResponse:
    return GenerationResponse(parts, "stop", USAGE, None, "m", "p")


async def _rate_limited() -> GenerationResponse:
    raise ProviderError("slow down", kind="rate_limit", retryable=True)


async def _broken() -> GenerationResponse:
    raise RuntimeError("adapter bug")


async def _empty() -> GenerationResponse:
    return _answer()


async def _hangs() -> GenerationResponse:
    await asyncio.sleep(30)
    raise AssertionError("the watchdog should have cancelled this call")


FAILURES = {
    "rate_limit": _rate_limited,
    "invalid_response": _broken,
    "empty_output": _empty,
    "timeout": _hangs,
}


@pytest.mark.parametrize("kind", list(FAILURES))
@pytest.mark.parametrize("failing_step", [1, 2])
async def test_a_failed_attempt_is_retried_alike_at_any_step(kind: str, failing_step: int) -> None:
    calls = 0
    answers = [
        _answer(ToolCall("c1", "add", {"a": 1, "b": 2})),
        _answer(ToolCall("c2", "add", {"a": 3, "b": 4})),
        _answer(TextPart("done")),
    ]

    async def generate(request: GenerationRequest) -> GenerationResponse:
        nonlocal calls
        calls += 1
        if calls == failing_step:
            return await FAILURES[kind]()
        return answers.pop(0)

    runtime = make_runtime([], settings=RuntimeSettings(generation_timeout=0.05, default_max_retries=2))
    runtime.providers = FunctionProvider(generate)
    retries: list[JobEvent] = []
    runtime.events.subscribe(lambda event: retries.append(event) if event.kind == "retry" else None)

    job = await runtime.run("main@1.0.0", "q")

    assert job.status is JobStatus.COMPLETED
    assert job.total_steps == 3 and calls == 4  # three answers and the failed attempt
    assert [e.detail["attempt"] for e in retries] == [1]
    assert retries[0].detail["error"]["kind"] == kind
    # The failed attempt used nothing (its usage is counted when a failure reports some: the
    # empty answer's, ``USAGE``).
    assert job.usage == (USAGE + USAGE + USAGE + USAGE if kind == "empty_output" else USAGE + USAGE + USAGE)


async def test_a_failure_that_is_not_retried_fails_the_job_mid_way() -> None:
    calls = 0

    async def generate(request: GenerationRequest) -> GenerationResponse:
        nonlocal calls
        calls += 1
        if calls == 1:
            return _answer(ToolCall("c1", "add", {"a": 1, "b": 2}))
        raise ProviderError("bad key", kind="authentication", retryable=False)

    runtime = make_runtime([])
    runtime.providers = FunctionProvider(generate)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is JobStatus.FAILED and job.error is not None
    assert job.error.kind == "authentication" and job.error.step == 2 and job.total_steps == 1
