"""Structured output: the request's schema, validation of the answer, retries, typed results,
delegates and the final checkpoint (docs/providers.md, "Structured output")."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from pydantic import BaseModel

from expert_jobs import (
    AssistantMessage,
    FakeClock,
    JobStatus,
    Reply,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    ToolCalls,
    UsageError,
    UserMessage,
)
from expert_jobs.domain.job import JobQuery
from expert_jobs.domain.output import JobResult
from expert_jobs.engine.runner import root_run_id

from .conftest import ASK_SCHEMA, add, checkpoints

S = JobStatus


class Invoice(BaseModel):
    """What the extracting expert answers."""

    number: str
    total: float
    due: date


VALID = '{"number": "A-1", "total": 12.5, "due": "2026-01-31"}'


def runtime_for(script: Any, **expert: Any) -> Runtime:
    """A runtime whose ``extract@1.0.0`` expert declares ``output`` (default :class:`Invoice`)."""
    clock = FakeClock()
    provider = ScriptedProvider(script, sleep=clock.sleep)
    provider.record_requests = True
    runtime = Runtime(providers=provider, clock=clock, settings=RuntimeSettings())
    runtime.add_expert(
        "extract@1.0.0",
        "You extract invoices.",
        tools=expert.pop("tools", [add]),
        delegates=expert.pop("delegates", ()),
        interactive_tools=expert.pop("interactive_tools", ()),
        output=expert.pop("output", Invoice),
    )
    return runtime


def said(message: Any) -> str:
    """The text of a user message."""
    assert isinstance(message, UserMessage)
    return "".join(getattr(part, "text", "") for part in message.parts)


def requests(runtime: Runtime) -> list[Any]:
    provider = runtime.providers
    assert isinstance(provider, ScriptedProvider)
    return list(provider.requests)


async def test_a_valid_answer_is_the_jobs_output_and_on_its_final_checkpoint() -> None:
    runtime = runtime_for([ToolCalls.of(("add", {"a": 1, "b": 2})), Reply(VALID)])
    job = await runtime.run("extract@1.0.0", "the invoice")
    assert job.status is S.COMPLETED
    assert job.output == {"number": "A-1", "total": 12.5, "due": "2026-01-31"}
    assert job.total_steps == 2
    # Every generation of the run asked for the schema.
    sent = [r.output_schema for r in requests(runtime)]
    assert len(sent) == 2 and all(s is not None for s in sent)
    assert sent[0].name == "Invoice" and sent[0].json_schema["type"] == "object"
    assert sent[0].json_schema["required"] == ["number", "total", "due"]
    assert sent[0].strict is True
    final = (await checkpoints(runtime, job))[-1]
    assert final.kind == "stop" and final.output == job.output
    assert final.to_wire()["output"] == job.output
    earlier = (await checkpoints(runtime, job))[:-1]
    assert all(c.output is None and "output" not in c.to_wire() for c in earlier)


async def test_run_with_output_returns_the_typed_result() -> None:
    runtime = runtime_for([Reply(VALID)])
    result = await runtime.run("extract@1.0.0", "the invoice", output=Invoice)
    assert isinstance(result, JobResult)
    assert result.job.status is S.COMPLETED
    assert result.output == Invoice(number="A-1", total=12.5, due=date(2026, 1, 31))
    again = await runtime.result(result.job.id, Invoice)
    assert again.output == result.output
    plain = await runtime.result(result.job.id)
    assert plain.output == {"number": "A-1", "total": 12.5, "due": "2026-01-31"}
    assert plain.job.output == plain.output


async def test_run_with_output_refuses_an_expert_without_a_schema_or_of_another_type() -> None:
    runtime = runtime_for([Reply(VALID)])
    runtime.add_expert("plain@1.0.0", "You talk.")

    class Other(BaseModel):
        x: int

    with pytest.raises(UsageError, match="declares no output schema"):
        await runtime.run("plain@1.0.0", "hi", output=Other)
    with pytest.raises(UsageError, match="differs"):
        await runtime.run("extract@1.0.0", "hi", output=Other)
    _, total = await runtime.store.list(JobQuery(runtime.settings.application_id))
    assert total == 0  # refused before anything was written


async def test_an_invalid_answer_is_sent_back_and_counted_then_a_valid_one_completes() -> None:
    runtime = runtime_for([Reply("not json at all"), Reply('{"number": "A-1"}'), Reply(VALID)])
    retries: list[dict[str, Any]] = []
    runtime.events.subscribe(lambda e: retries.append(e.detail) if e.kind == "retry" else None)
    job = await runtime.run("extract@1.0.0", "the invoice", max_retries=2)
    assert job.status is S.COMPLETED
    assert job.output is not None and job.output["number"] == "A-1"
    # Invalid answers are failed attempts, not steps.
    assert job.total_steps == 1
    assert [r["attempt"] for r in retries] == [1, 2]
    assert all(r["error"]["kind"] == "invalid_output" for r in retries)
    # The second request saw the invalid answer and the reason it was refused.
    second = requests(runtime)[1]
    assert isinstance(second.messages[-2], AssistantMessage)
    prompt = said(second.messages[-1])
    assert "not valid output" in prompt and "Invalid JSON" in prompt
    third = said(requests(runtime)[2].messages[-1])
    assert "$.total: Field required" in third and "$.due: Field required" in third
    # The history keeps them (a transcript shows why it took three answers).
    history = await runtime.store.load_history(job.id, root_run_id(job.id))
    assert [type(m).__name__ for m in history] == [
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
        "UserMessage",
        "AssistantMessage",
    ]


async def test_invalid_answers_beyond_max_retries_fail_the_job() -> None:
    runtime = runtime_for([Reply("[]"), Reply("{}"), Reply("nope")])
    job = await runtime.run("extract@1.0.0", "the invoice", max_retries=1)
    assert job.status is S.FAILED
    assert job.output is None
    assert job.error is not None and job.error.kind == "invalid_output"
    assert "2 consecutive answers were not valid output" in job.error.message
    assert "maxRetries=1" in job.error.message
    assert len(requests(runtime)) == 2
    final = (await checkpoints(runtime, job))[-1]
    assert final.error is not None and final.error.kind == "invalid_output"
    assert final.output is None


async def test_invalid_answers_in_a_row_are_counted_across_a_pause() -> None:
    """A run paused for a person between two invalid answers (and so restored from its
    checkpoint) counts them in a row, as the same run without the pause would."""
    ask = {"name": "ask", "input_schema": ASK_SCHEMA}
    script = [Reply("{}"), ToolCalls.of(("ask", {"question": "which invoice?"})), Reply("[]"), Reply(VALID)]
    runtime = runtime_for(script, interactive_tools=[ask])
    job = await runtime.run("extract@1.0.0", "the invoice", max_retries=1)
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    job = await runtime.continue_job(job.id, "A-1", interactive=True)
    job = await runtime.drive(job.id)
    assert job.status is S.FAILED
    assert job.error is not None and job.error.kind == "invalid_output"
    assert "2 consecutive answers were not valid output" in job.error.message
    unpaused = runtime_for([Reply("{}"), ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("[]"), Reply(VALID)])
    same = await unpaused.run("extract@1.0.0", "the invoice", max_retries=1)
    assert same.status is S.FAILED and same.error is not None and same.error.message == job.error.message


async def test_max_retries_zero_fails_at_the_first_invalid_answer() -> None:
    runtime = runtime_for([Reply("{}"), Reply(VALID)])
    job = await runtime.run("extract@1.0.0", "q", max_retries=0)
    assert job.status is S.FAILED and job.error is not None and job.error.kind == "invalid_output"


async def test_a_non_object_type_is_wrapped_and_unwrapped() -> None:
    runtime = runtime_for([Reply('{"result": [3, 1, 2]}')], output=list[int])
    result = await runtime.run("extract@1.0.0", "numbers", output=list[int])
    assert result.output == [3, 1, 2]
    assert result.job.output == [3, 1, 2]
    schema = requests(runtime)[0].output_schema
    assert schema.json_schema["required"] == ["result"]
    assert schema.json_schema["properties"]["result"]["type"] == "array"


async def test_a_json_schema_output_is_checked_by_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "rank": {"type": "integer", "minimum": 1}},
        "required": ["city", "rank"],
        "additionalProperties": False,
    }
    runtime = runtime_for(
        [Reply('{"city": "Oslo", "rank": 0}'), Reply('{"city": "Oslo", "rank": 1}')], output=schema
    )
    job = await runtime.run("extract@1.0.0", "q")
    assert job.status is S.COMPLETED and job.output == {"city": "Oslo", "rank": 1}
    assert "$.rank: 0 is less than the minimum of 1" in said(requests(runtime)[1].messages[-1])


async def test_a_delegate_hands_its_parent_the_json_text_of_its_output() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("extract", {"query": "the invoice"})), Reply("done")],
        "extract@1.0.0": [Reply("```json\n" + VALID + "\n```")],
    }
    runtime = runtime_for(script)
    runtime.add_expert("main@1.0.0", "You delegate.", delegates=["extract@1.0.0"])
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert job.output is None  # the root declares no output
    parent = [r for r in requests(runtime) if r.expert_key == "main@1.0.0"]
    assert parent[0].output_schema is None
    result = parent[1].messages[-1].results[0]
    assert not result.is_error
    assert json.loads(result.content) == {"number": "A-1", "total": 12.5, "due": "2026-01-31"}
    assert result.content == '{"number":"A-1","total":12.5,"due":"2026-01-31"}'
    child = [c for c in await checkpoints(runtime, job) if c.parent_run_id is not None]
    assert child[-1].run_state == "completed" and child[-1].output == json.loads(result.content)


async def test_a_delegate_that_never_answers_valid_output_is_an_error_result() -> None:
    script = {
        "main@1.0.0": [ToolCalls.of(("extract", {"query": "x"})), Reply("done")],
        "extract@1.0.0": [Reply("no"), Reply("still no")],
    }
    runtime = runtime_for(script)
    runtime.add_expert("main@1.0.0", "You delegate.", delegates=["extract@1.0.0"])
    job = await runtime.run("main@1.0.0", "q", max_retries=1)
    assert job.status is S.COMPLETED
    parent = [r for r in requests(runtime) if r.expert_key == "main@1.0.0"]
    result = parent[1].messages[-1].results[0]
    assert result.is_error and "not valid output" in result.content


async def test_experts_without_a_schema_send_none_and_keep_the_text() -> None:
    runtime = runtime_for([Reply("hello")])
    runtime.add_expert("plain@1.0.0", "You talk.")
    job = await runtime.run("plain@1.0.0", "hi")
    assert job.status is S.COMPLETED and job.output is None
    assert requests(runtime)[0].output_schema is None
    final = (await checkpoints(runtime, job))[-1]
    assert "output" not in final.to_wire() and "output" not in final.to_data()


async def test_a_follow_up_answers_a_new_output() -> None:
    runtime = runtime_for([Reply(VALID), Reply('{"number": "B-2", "total": 1, "due": "2026-02-01"}')])
    job = await runtime.run("extract@1.0.0", "first")
    await runtime.continue_job(job.id, "and the next one?")
    again = await runtime.drive(job.id)
    assert again.status is S.COMPLETED
    assert again.output is not None and again.output["number"] == "B-2"
    assert (await runtime.result(job.id)).output == again.output
    # The follow-up's resume checkpoint does not carry the earlier output along.
    saved = await checkpoints(runtime, job)
    assert [c.output is not None for c in saved if c.kind in ("stop", "resume")] == [True, False, True]


# -- persistence: the output on the final checkpoint, on every store ------------------------------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store_pair(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """A store, and a way to open a second one on the same data (another process's view)."""
    from expert_jobs.stores.memory import MemoryStore
    from expert_jobs.stores.sqlite import SQLiteStore

    if request.param == "memory":
        store = MemoryStore()

        async def same() -> Any:
            return store

        yield store, same
        return
    if request.param == "sqlite":
        path = tmp_path / "jobs.db"
        first = SQLiteStore(path)
        opened = [first]

        async def reopen() -> Any:
            opened.append(SQLiteStore(path))
            return opened[-1]

        yield first, reopen
        for each in opened:
            await each.close()
        return
    import uuid

    from tests.stores.conftest import _reachable_postgres

    url, why = _reachable_postgres()
    if url is None:
        pytest.skip(why)
    import psycopg

    from expert_jobs.stores.postgres import PostgresStore

    schema = f"ej_test_output_{uuid.uuid4().hex[:12]}"
    pg = [await PostgresStore.open(url, schema=schema, max_size=2)]

    async def reopen_pg() -> Any:
        pg.append(await PostgresStore.open(url, schema=schema, max_size=2))
        return pg[-1]

    try:
        yield pg[0], reopen_pg
    finally:
        for each in pg:
            await each.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def test_the_output_is_persisted_on_the_final_checkpoint_of_every_store(store_pair: Any) -> None:
    store, reopen = store_pair
    script = {
        "extract@1.0.0": [Reply(VALID)],
        "main@1.0.0": [ToolCalls.of(("extract", {"query": "x"})), Reply('{"result": 2}')],
    }
    clock = FakeClock()
    runtime = Runtime(providers=ScriptedProvider(script, sleep=clock.sleep), store=store, clock=clock)
    runtime.add_expert("extract@1.0.0", "You extract.", output=Invoice)
    runtime.add_expert("main@1.0.0", "You delegate.", delegates=["extract@1.0.0"], output=int)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED and job.output == 2
    # Another process, on the same data: the runtime there reads the output from the checkpoint.
    other = Runtime(providers=ScriptedProvider([]), store=await reopen(), clock=clock)
    stored = await other.store.get(job.id)
    assert stored is not None and stored.output is None  # not part of the job's row
    assert (await other.get(job.id)).output == 2  # read from the final checkpoint
    result = await other.result(job.id, int)
    assert result.output == 2 and result.job.output == 2
    saved = await checkpoints(other, job)
    assert saved[-1].output == 2 and saved[-1].to_wire()["output"] == 2
    child = [c for c in saved if c.parent_run_id is not None and c.run_state == "completed"]
    assert [c.output for c in child] == [{"number": "A-1", "total": 12.5, "due": "2026-01-31"}]
    assert all(c.output is None for c in saved if c not in child and c is not saved[-1])


def test_the_readme_typed_results_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Typed results", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match is not None
    exec(compile(match.group(1), "README.md", "exec"), {"__name__": "readme_typed_results"})
    assert capsys.readouterr().out.strip() == "completed number='A-1' total=12.5"


async def test_a_delegate_completed_before_a_hand_back_still_hands_over_its_json_text() -> None:
    import asyncio

    script = {
        "main@1.0.0": [
            ToolCalls.of(("extract", {"query": "a"}), ("slow", {"query": "b"})),
            Reply("done"),
        ],
        "extract@1.0.0": [Reply("```json\n" + VALID + "\n```")],
        "slow@1.0.0": [Reply("late", delay=30), Reply("quick")],
    }
    provider = ScriptedProvider(script)  # real sleeps: the slow delegate is still at work
    provider.record_requests = True
    runtime = Runtime(providers=provider)
    runtime.add_expert("extract@1.0.0", "You extract.", output=Invoice)
    runtime.add_expert("slow@1.0.0", "You are slow.")
    runtime.add_expert("main@1.0.0", "You delegate.", delegates=["extract@1.0.0", "slow@1.0.0"])
    job = await runtime.submit("main@1.0.0", "q")
    driving = asyncio.create_task(runtime.drive(job.id))
    for _ in range(500):  # until the extract delegate's completed checkpoint is written
        saved, _ = await runtime.store.list_checkpoints(job.id, take=100)
        if any(c.run_state == "completed" and c.output is not None for c in saved):
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("the extract delegate never completed")
    driving.cancel()  # a shutdown: the job goes back to the queue, the delegate's work kept
    with pytest.raises(asyncio.CancelledError):
        await driving
    assert (await runtime.get(job.id)).status is S.QUEUED
    done = await runtime.drive(job.id)
    assert done.status is S.COMPLETED
    extract_calls = [r for r in provider.requests if r.expert_key == "extract@1.0.0"]
    assert len(extract_calls) == 1  # restored, not asked again
    final_parent = [r for r in provider.requests if r.expert_key == "main@1.0.0"][-1]
    results = {r.name: r.content for r in final_parent.messages[-1].results}
    assert results["extract"] == '{"number":"A-1","total":12.5,"due":"2026-01-31"}'
    assert results["slow"] == "quick"
    await runtime.close()
