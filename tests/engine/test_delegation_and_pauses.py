"""Delegation, interactive pauses, continue and follow-up."""

from __future__ import annotations

import pytest

from expert_jobs import (
    AssistantMessage,
    CannotContinue,
    Fail,
    JobStatus,
    Reply,
    ScriptedProvider,
    ToolCalls,
    ToolResultsMessage,
    UserMessage,
)

from .conftest import checkpoints, make_runtime

S = JobStatus


async def test_a_delegate_starts_with_empty_history_and_just_its_query() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("helper", {"query": "find x"})), Reply("done")],
        "helper": [Reply("x is 42")],
    }
    runtime = make_runtime(script)
    provider = runtime.providers
    assert isinstance(provider, ScriptedProvider)
    provider.record_requests = True
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    child_request = next(r for r in provider.requests if r.expert_key == "helper")
    assert list(child_request.messages) == [UserMessage.text("find x")]
    assert {t.name for t in child_request.tools} == set()  # no interactive tools, none of its own
    parent_request = next(r for r in provider.requests if r.expert_key == "main@1.0.0")
    assert {t.name for t in parent_request.tools} == {"add", "ask", "helper", "other"}
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[-1].run_id)
    assert isinstance(history[2], ToolResultsMessage)
    assert history[2].results[0].content == "x is 42"


async def test_parallel_delegates_and_their_order() -> None:
    script = {
        "main@1.0.0": [
            ToolCalls.of(("helper", {"query": "a"}), ("add", {"a": 1, "b": 1}), ("other", {"query": "b"})),
            Reply("done"),
        ],
        "helper": [Reply("from helper")],
        "other": [Reply("from other")],
    }
    runtime = make_runtime(script)
    statuses: list[str] = []
    runtime.events.subscribe(lambda e: statuses.append(e.status.value) if e.kind == "transition" else None)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert statuses == ["processing", "requestDelegateResult", "queued", "processing", "completed"]
    root = (await checkpoints(runtime, job))[-1]
    history = await runtime.store.load_history(job.id, root.run_id)
    results = history[2]
    assert isinstance(results, ToolResultsMessage)
    assert [r.content for r in results.results] == ["from helper", "2", "from other"]


async def test_a_failed_delegate_becomes_an_error_result_not_a_failed_job() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("helper", {"query": "a"})), Reply("recovered")],
        "helper": [Fail("authentication", "bad key")],
    }
    runtime = make_runtime(script)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[-1].run_id)
    result = history[2].results[0]  # type: ignore[union-attr]
    assert result.is_error and "Delegate helper failed" in result.content and "bad key" in result.content


async def test_interactive_pause_keeps_pending_calls_in_the_checkpoint() -> None:
    runtime = make_runtime(
        [ToolCalls.of(("add", {"a": 1, "b": 2}), ("ask", {"question": "sure?"})), Reply("ok")]
    )
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    assert job.lease_owner is None  # an interactive pause holds no lease
    last = (await checkpoints(runtime, job))[-1]
    assert last.kind == "step" or last.kind == "pause"
    assert [c.name for c in last.pending_calls] == ["ask"]
    assert [r.content for r in last.partial_results] == ["3"]


async def test_continue_answers_by_call_id_or_the_first_pending_one() -> None:
    runtime = make_runtime(
        [ToolCalls.of(("ask", {"question": "one?"}), ("ask", {"question": "two?"})), Reply("ok")]
    )
    job = await runtime.run("main@1.0.0", "q")
    _, second = (await checkpoints(runtime, job))[-1].pending_calls
    job = await runtime.continue_job(job.id, "answer two", interactive=True, tool_call_id=second.id)
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT  # one still pending
    job = await runtime.continue_job(job.id, "answer one", interactive=True)
    assert job.status is S.QUEUED and job.interactive_tool_call_result is True
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[-1].run_id)
    results = history[2]
    assert isinstance(results, ToolResultsMessage)
    assert [r.content for r in results.results] == ["answer one", "answer two"]


async def test_continue_refuses_other_statuses_and_unknown_calls() -> None:
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "?"})), Reply("ok")])
    job = await runtime.run("main@1.0.0", "q")
    with pytest.raises(CannotContinue, match="no pending tool call"):
        await runtime.continue_job(job.id, "x", interactive=True, tool_call_id="nope")
    with pytest.raises(CannotContinue, match="Current status is unable to continue"):
        await runtime.continue_job(job.id, "follow up")  # not finished: no follow-up
    job = await runtime.continue_job(job.id, "yes", interactive=True)
    with pytest.raises(CannotContinue, match="Current status is unable to continue"):
        await runtime.continue_job(job.id, "yes", interactive=True)


async def test_follow_up_continues_the_history_of_a_finished_job() -> None:
    runtime = make_runtime([Reply("first answer"), Reply("second answer")])
    job = await runtime.run("main@1.0.0", "first question")
    job = await runtime.continue_job(job.id, "second question", max_steps=10)
    assert job.status is S.QUEUED and job.max_steps == 10
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED and job.total_steps == 2
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[-1].run_id)
    assert [type(m).__name__ for m in history] == [
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
    ]
    assert isinstance(history[-1], AssistantMessage) and history[-1].text == "second answer"


async def test_delegates_then_interactive_calls_of_one_response() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("ask", {"question": "?"}), ("helper", {"query": "h"})), Reply("done")],
        "helper": [Reply("helped")],
    }
    runtime = make_runtime(script)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    last = (await checkpoints(runtime, job))[-1]
    assert [c.name for c in last.pending_calls] == ["ask"]
    assert [r.content for r in last.partial_results] == ["helped"]
    job = await runtime.continue_job(job.id, "yes", interactive=True)
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED


async def test_branch_from_a_checkpoint_starts_a_new_job_with_that_history() -> None:
    runtime = make_runtime([ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("first"), Reply("branched")])
    job = await runtime.run("main@1.0.0", "q")
    first_step = (await checkpoints(runtime, job))[0]
    branch = await runtime.branch_from(job.id, first_step.id)
    assert branch.id != job.id and branch.status is S.QUEUED and branch.total_steps == 1
    branch = await runtime.drive(branch.id)
    assert branch.status is S.COMPLETED and branch.total_steps == 2
    cps = await checkpoints(runtime, branch)
    total = cps[0].step_usage
    for c in cps[1:]:
        total = total + c.step_usage
    assert total == branch.usage
