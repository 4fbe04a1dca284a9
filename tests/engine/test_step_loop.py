"""The step loop's decided semantics (the README's "Step loop semantics"), one test per rule."""

from __future__ import annotations

import asyncio

import pytest

from expert_jobs import (
    Fail,
    FakeClock,
    JobStatus,
    Reply,
    RuntimeSettings,
    ToolCalls,
    ToolResultsMessage,
    Usage,
    UsageError,
    UserMessage,
)
from expert_jobs.domain.errors import JobError
from expert_jobs.providers.scripted import Call

from .conftest import checkpoints, make_runtime

S = JobStatus


async def test_a_text_answer_completes_in_one_step() -> None:
    runtime = make_runtime([Reply("hello", usage=Usage.of(10, 2))])
    job = await runtime.run("main@1.0.0", "hi")
    assert job.status is S.COMPLETED
    assert (job.current_step, job.total_steps) == (1, 1)
    assert job.usage == Usage.of(10, 2)
    cps = await checkpoints(runtime, job)
    assert [c.kind for c in cps] == ["stop"]
    assert cps[-1].status is S.COMPLETED and cps[-1].run_state == "completed"


async def test_tool_results_go_back_to_the_model_in_call_order() -> None:
    runtime = make_runtime(
        [ToolCalls.of(("add", {"a": 1, "b": 2}), ("add", {"a": 3, "b": 4})), Reply("done")]
    )
    job = await runtime.run("main@1.0.0", "sum")
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[0].run_id)
    results = history[2]
    assert isinstance(results, ToolResultsMessage)
    assert [r.content for r in results.results] == ["3", "7"]
    assert job.total_steps == 2


@pytest.mark.parametrize("max_steps", [1, 2, 5])
async def test_exactly_max_steps_steps_run_then_exceeded(max_steps: int) -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1}))] * 10)
    job = await runtime.run("main@1.0.0", "loop", max_steps=max_steps)
    assert job.status is S.EXCEEDED_MAX_STEPS
    assert job.total_steps == max_steps
    assert job.error is not None and f"maxSteps={max_steps}" in job.error.message


async def test_completion_at_the_last_allowed_step_wins_over_the_limit() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("done")])
    job = await runtime.run("main@1.0.0", "q", max_steps=2)
    assert job.status is S.COMPLETED
    assert job.total_steps == 2


async def test_step_counter_is_job_wide_delegates_included() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("helper", {"query": "do it"})), Reply("done")],
        "helper": [ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("helped")],
    }
    runtime = make_runtime(script)
    runtime.add_expert("helper", "You help.", tools=["add"])
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert job.total_steps == 4  # parent 1, child 2 and 3, parent 4
    steps = [
        c.step for c in await checkpoints(runtime, job) if c.kind == "step" or c.run_state == "completed"
    ]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)


async def test_max_steps_reached_inside_a_delegate_stops_the_whole_job() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("helper", {"query": "loop"})), Reply("never")],
        "helper": [ToolCalls.of(("add", {"a": 1, "b": 1}))] * 10,
    }
    runtime = make_runtime(script)
    runtime.add_expert("helper", "You help.", tools=["add"])
    job = await runtime.run("main@1.0.0", "q", max_steps=3)
    assert job.status is S.EXCEEDED_MAX_STEPS
    assert job.total_steps == 3
    # Every call of the root has exactly one result in its final history.
    cps = await checkpoints(runtime, job)
    root = cps[-1]
    history = await runtime.store.load_history(job.id, root.run_id)
    assert isinstance(history[-1], ToolResultsMessage)
    assert history[-1].results[0].is_error


async def test_resuming_after_a_pause_spends_no_step() -> None:
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "ok?"})), Reply("thanks")])
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT and job.total_steps == 1
    job = await runtime.continue_job(job.id, "yes", interactive=True)
    assert job.status is S.QUEUED and job.total_steps == 1
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED and job.total_steps == 2


async def test_consecutive_failures_are_retried_with_backoff_and_reset_by_success(clock: FakeClock) -> None:
    script = [
        Fail("server"),
        Fail("overloaded"),
        ToolCalls.of(("add", {"a": 1, "b": 1})),
        Fail("rate_limit"),
        Reply("ok"),
    ]
    runtime = make_runtime(script, clock=clock, settings=RuntimeSettings(backoff_base=1.0, backoff_max=60.0))
    job = await runtime.run("main@1.0.0", "q", max_retries=2)
    assert job.status is S.COMPLETED
    assert len(clock.sleeps) == 3
    # attempt 1 -> [0.5, 1], attempt 2 -> [1, 2], then reset: attempt 1 again.
    assert 0.5 <= clock.sleeps[0] <= 1.0
    assert 1.0 <= clock.sleeps[1] <= 2.0
    assert 0.5 <= clock.sleeps[2] <= 1.0


async def test_retries_exhausted_fail_the_job_with_the_last_error(clock: FakeClock) -> None:
    runtime = make_runtime(
        [Fail("server", "boom 1"), Fail("server", "boom 2"), Fail("server", "boom 3")], clock=clock
    )
    job = await runtime.run("main@1.0.0", "q", max_retries=2)
    assert job.status is S.FAILED
    assert job.error is not None
    assert "3 consecutive failed attempts exhausted maxRetries=2" in job.error.message
    assert "boom 3" in job.error.message
    assert job.total_steps == 0  # a failed attempt is not a step
    assert len(clock.sleeps) == 2


async def test_the_jobs_error_is_a_typed_value_with_its_context(clock: FakeClock) -> None:
    runtime = make_runtime(
        [ToolCalls.of(("add", {"a": 1, "b": 2}))] + [Fail("rate_limit", "slow")] * 3, clock=clock
    )
    job = await runtime.run("main@1.0.0", "q", max_retries=2)
    assert job.status is S.FAILED
    assert job.error == JobError(
        "rate_limit",
        "3 consecutive failed attempts exhausted maxRetries=2: slow",
        retryable=True,
        attempt=3,
        provider="scripted",
        job_id=job.id,
        step=2,  # the step whose model call failed
    )
    stored = await runtime.get(job.id)
    assert stored.error == job.error
    [*_, last] = await checkpoints(runtime, job)
    assert last.error == job.error
    assert last.to_wire()["error"] == job.error.to_data()

    exceeded = await make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1}))] * 3).run(
        "main@1.0.0", "loop", max_steps=1
    )
    assert exceeded.error == JobError("max_steps", "step 1 reached maxSteps=1", job_id=exceeded.id)


async def test_max_retries_zero_fails_on_the_first_failure(clock: FakeClock) -> None:
    runtime = make_runtime([Fail("server"), Reply("never")], clock=clock)
    job = await runtime.run("main@1.0.0", "q", max_retries=0)
    assert job.status is S.FAILED
    assert clock.sleeps == []


@pytest.mark.parametrize("kind", ["authentication", "bad_request", "billing", "not_found"])
async def test_non_retryable_errors_fail_at_once(kind: str, clock: FakeClock) -> None:
    runtime = make_runtime([Fail(kind, "nope"), Reply("never")], clock=clock)
    job = await runtime.run("main@1.0.0", "q", max_retries=5)
    assert job.status is S.FAILED
    assert job.error is not None and job.error.kind == kind and job.error.retryable is False
    assert clock.sleeps == []


async def test_retry_after_is_honoured_when_longer_than_the_backoff(clock: FakeClock) -> None:
    runtime = make_runtime([Fail("rate_limit", retry_after=30.0), Reply("ok")], clock=clock)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert clock.sleeps == [30.0]


async def test_a_generation_timeout_is_a_retryable_failure() -> None:
    slow = [Reply("late", delay=5.0), Reply("on time")]
    runtime = make_runtime(slow, settings=RuntimeSettings(generation_timeout=0.05, backoff_base=0.0))
    runtime.providers._sleep = asyncio.sleep  # type: ignore[union-attr]  # real delay, real timeout
    job = await runtime.run("main@1.0.0", "q", max_retries=1)
    assert job.status is S.COMPLETED
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[0].run_id)
    assert history[-1].text == "on time"  # type: ignore[union-attr]


async def test_empty_output_is_a_retryable_failure() -> None:
    from expert_jobs import FunctionProvider, GenerationResponse, TextPart

    calls = []

    def answer(request: object) -> GenerationResponse:
        calls.append(request)
        if len(calls) == 1:
            return GenerationResponse((), "stop", Usage.of(5, 0))
        return GenerationResponse((TextPart("ok"),), "stop", Usage.of(5, 1))

    runtime = make_runtime([])
    runtime.providers = FunctionProvider(answer)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert job.usage == Usage.of(10, 1)  # the failed attempt's usage is counted


async def test_usage_sums_per_step_run_and_job_failed_attempts_and_delegates_included() -> None:
    script = {
        "main@1.0.0": [
            Fail("server", usage=Usage.of(7, 0)),
            ToolCalls.of(("helper", {"query": "x"}), usage=Usage.of(100, 10, cached=40)),
            Reply("done", usage=Usage.of(200, 20, reasoning=5)),
        ],
        "helper": [Reply("helped", usage=Usage.of(50, 5))],
    }
    runtime = make_runtime(script)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert job.usage == Usage.of(357, 35, reasoning=5, cached=40)
    cps = await checkpoints(runtime, job)
    total = Usage()
    for c in cps:
        total = total + c.step_usage
    assert total == job.usage
    root_id = cps[-1].run_id
    assert cps[-1].run_usage == Usage.of(307, 30, reasoning=5, cached=40)
    child = [c for c in cps if c.run_id != root_id]
    assert child[-1].run_usage == Usage.of(50, 5)


async def test_counters_and_duration(clock: FakeClock) -> None:
    script = [ToolCalls.of(("add", {"a": 1, "b": 1}), delay=1.5), Reply("done", delay=0.5)]
    runtime = make_runtime(script, clock=clock)
    job = await runtime.submit("main@1.0.0", "q")
    clock.advance(100)  # queueing time is not running time
    job = await runtime.drive(job.id)
    assert job.total_duration_ms == 2000
    assert job.current_step == job.total_steps == 2


async def test_submit_refuses_bad_input_without_writing_a_job() -> None:
    runtime = make_runtime([Reply("x")])
    with pytest.raises(UsageError, match="Query or files are required"):
        await runtime.submit("main@1.0.0")
    with pytest.raises(UsageError, match="Expert not found"):
        await runtime.submit("nobody", "q")
    with pytest.raises(UsageError, match="unknown model"):
        await runtime.submit("main@1.0.0", "q", model="gpt-9")
    with pytest.raises(UsageError, match="maxSteps"):
        await runtime.submit("main@1.0.0", "q", max_steps=0)
    jobs, total = await runtime.store.list(
        __import__("expert_jobs").JobQuery(runtime.settings.application_id)
    )
    assert total == 0 and jobs == []


async def test_the_first_message_holds_the_query() -> None:
    runtime = make_runtime([Reply("x")])
    job = await runtime.run("main@1.0.0", "the query")
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[0].run_id)
    assert history[0] == UserMessage.text("the query")


async def test_explicit_call_ids_are_kept() -> None:
    runtime = make_runtime([ToolCalls((Call("add", {"a": 2, "b": 2}, id="mine"),)), Reply("done")])
    job = await runtime.run("main@1.0.0", "q")
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[0].run_id)
    assert history[2].results[0].call_id == "mine"  # type: ignore[union-attr]
