"""OpenTelemetry spans of job runs (engine/tracing.py), read back with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from expert_jobs import (
    Fail,
    FakeClock,
    FunctionProvider,
    Reply,
    Runtime,
    ScriptedProvider,
    SQLiteStore,
    TextPart,
    ToolCall,
    ToolCalls,
    Usage,
)
from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.experts import delegate_tool_name
from expert_jobs.domain.status import JobStatus as S
from expert_jobs.engine.tracing import JobTracing, enable_tracing
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse
from expert_jobs.providers.scripted import Turn
from expert_jobs.stores._rows import checkpoint_json, dumps

from .conftest import ASK_SCHEMA, add, make_runtime


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def by_name(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def one(spans: Sequence[ReadableSpan], name: str) -> ReadableSpan:
    found = by_name(spans, name)
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def span_id(span: ReadableSpan) -> int:
    context = span.context
    assert context is not None
    return int(context.span_id)


async def test_a_job_with_a_tool_call_and_a_retry_makes_the_span_tree(
    provider: TracerProvider, exporter: InMemorySpanExporter, clock: FakeClock
) -> None:
    usage = Usage.of(100, 20, reasoning=5, cached=40)
    script: list[Turn] = [
        ToolCalls.of(("add", {"a": 2, "b": 3}), usage=usage),
        Fail("server", "overloaded, try again"),
        Reply("5", usage=Usage.of(130, 4)),
    ]
    runtime = make_runtime(script, clock=clock)
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "What is 2 + 3?")
    assert job.status is S.COMPLETED and job.total_steps == 2
    spans = exporter.get_finished_spans()
    model = job.model

    root = one(spans, "invoke_agent main@1.0.0")
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    attributes = dict(root.attributes or {})
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "main@1.0.0"
    assert attributes["gen_ai.request.model"] == model
    assert attributes["expert_jobs.job.id"] == job.id
    assert attributes["expert_jobs.job.status.start"] == "queued"
    assert attributes["expert_jobs.job.status"] == "completed"
    assert attributes["expert_jobs.job.total_steps"] == 2
    assert attributes["gen_ai.usage.input_tokens"] == 230
    assert attributes["gen_ai.usage.output_tokens"] == 24
    assert root.status.status_code is StatusCode.UNSET

    step1, step2 = one(spans, "step 1"), one(spans, "step 2")
    assert parent_of(step1) == parent_of(step2) == span_id(root)
    assert step1.attributes is not None and step1.attributes["expert_jobs.step"] == 1
    assert not step1.events
    # The retry is an event of the step whose generation failed.
    (retry,) = step2.events
    assert retry.name == "expert_jobs.retry"
    assert retry.attributes is not None
    assert retry.attributes["expert_jobs.retry.attempt"] == 1
    assert retry.attributes["error.type"] == "server"
    assert "overloaded" in str(retry.attributes["exception.message"])

    chats = by_name(spans, f"chat {model}")
    assert len(chats) == 3
    first, failed, last = sorted(chats, key=lambda s: s.start_time or 0)
    assert [parent_of(s) for s in (first, failed, last)] == [span_id(step1), span_id(step2), span_id(step2)]
    assert first.kind is SpanKind.CLIENT
    got = dict(first.attributes or {})
    assert got["gen_ai.operation.name"] == "chat"
    assert got["gen_ai.request.model"] == model
    assert got["gen_ai.response.model"] == "scripted"
    assert got["gen_ai.provider.name"] == "scripted"
    assert got["gen_ai.usage.input_tokens"] == 100
    assert got["gen_ai.usage.output_tokens"] == 20
    assert got["gen_ai.usage.cache_read.input_tokens"] == 40
    assert got["gen_ai.usage.reasoning.output_tokens"] == 5
    assert got["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "server"
    assert last.attributes is not None and last.attributes["gen_ai.response.finish_reasons"] == ("stop",)

    tool = one(spans, "execute_tool add")
    assert parent_of(tool) == span_id(step1)
    got = dict(tool.attributes or {})
    assert got["gen_ai.operation.name"] == "execute_tool"
    assert got["gen_ai.tool.name"] == "add"
    assert got["gen_ai.tool.call.id"] == "call_0_0"
    assert tool.status.status_code is StatusCode.UNSET
    # Every span of the run, in one trace, carries the job id.
    assert len(spans) == 7
    assert {s.context.trace_id for s in spans if s.context} == {root.context.trace_id if root.context else 0}
    assert all((s.attributes or {}).get("expert_jobs.job.id") == job.id for s in spans)


async def test_a_tool_error_is_an_error_span_and_async_tools_run_inside_their_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry import trace

    seen: list[str] = []

    async def look() -> str:
        """Look around."""
        seen.append(trace.get_current_span().get_span_context().span_id.to_bytes(8, "big").hex())
        return "nothing"

    def boom() -> str:
        """Fail."""
        raise RuntimeError("it broke")

    runtime = make_runtime(
        [ToolCalls.of("look", "boom"), ToolCalls.of("look"), Reply("ok")], tools=[look, boom]
    )
    runtime.tracing = JobTracing(provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    spans = exporter.get_finished_spans()
    looks = by_name(spans, "execute_tool look")
    assert len(looks) == 2  # the batch path (two calls) and the one-call path
    assert sorted(seen) == sorted(format(span_id(s), "016x") for s in looks)
    failed = one(spans, "execute_tool boom")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "tool_error"
    assert all(s.status.status_code is StatusCode.UNSET for s in looks)


async def test_a_paused_and_resumed_job_links_its_runs(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = make_runtime([ToolCalls.of(("ask", {"question": "ok?"})), Reply("thanks")])
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    job = await runtime.continue_job(job.id, "yes", interactive=True)
    job = await runtime.drive(job.id)
    assert job.status is S.COMPLETED
    first, second = by_name(exporter.get_finished_spans(), "invoke_agent main@1.0.0")
    assert first.attributes is not None and second.attributes is not None
    assert first.attributes["expert_jobs.job.status"] == "requestInteractiveToolResult"
    assert second.attributes["expert_jobs.job.status.start"] == "queued"
    assert second.attributes["expert_jobs.job.status"] == "completed"
    assert first.attributes["expert_jobs.job.id"] == second.attributes["expert_jobs.job.id"] == job.id
    assert first.attributes["expert_jobs.job.resumed"] is False
    assert second.attributes["expert_jobs.job.resumed"] is True
    assert not first.links
    (link,) = second.links
    assert first.context is not None
    assert (link.context.trace_id, link.context.span_id) == (first.context.trace_id, first.context.span_id)
    assert link.attributes is not None and link.attributes["expert_jobs.link"] == "previous_run"


async def test_a_delegates_run_hangs_under_the_step_that_delegated(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    script: dict[str, list[Turn]] = {
        "main@1.0.0": [ToolCalls.of((delegate_tool_name("helper"), {"query": "help"})), Reply("done")],
        "helper": [ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("2")],
    }
    runtime = make_runtime(script)
    runtime.add_expert("helper", "You help.", description="A helper expert", tools=[add])
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED and job.total_steps == 4
    spans = exporter.get_finished_spans()
    root = one(spans, "invoke_agent main@1.0.0")
    child = one(spans, "invoke_agent helper")
    (root_step1,) = [s for s in by_name(spans, "step 1") if parent_of(s) == span_id(root)]
    assert parent_of(child) == span_id(root_step1)
    assert child.attributes is not None and child.attributes["expert_jobs.run.state"] == "completed"
    child_steps = [s for s in spans if s.name.startswith("step ") and parent_of(s) == span_id(child)]
    assert len(child_steps) == 2
    tool = one(spans, "execute_tool add")
    assert parent_of(tool) in {span_id(s) for s in child_steps}


async def test_a_failed_job_has_an_error_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = make_runtime([Fail("authentication", "bad key")])
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.FAILED
    root = one(exporter.get_finished_spans(), "invoke_agent main@1.0.0")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["error.type"] == "authentication"
    assert root.attributes["expert_jobs.job.status"] == "failed"


async def test_tracing_off_makes_no_spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    runtime = make_runtime([Reply("hi")])
    assert runtime.tracing is None
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert exporter.get_finished_spans() == ()


def test_tracing_off_imports_no_opentelemetry_module() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        from expert_jobs import Reply, Runtime, ScriptedProvider
        import expert_jobs.engine.tracing

        async def main():
            runtime = Runtime(providers=ScriptedProvider([Reply("hi")]))
            runtime.add_expert("e", "You answer.")
            job = await runtime.run("e", "q")
            assert job.status.value == "completed", job.status
            await runtime.close()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")
        print(loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    with pytest.raises(ImportError, match=r"pip install 'expert-jobs\[otel\]'"):
        JobTracing()


def test_remember_bounds_the_links_kept(provider: TracerProvider) -> None:
    with pytest.raises(ValueError, match="remember must be >= 0"):
        JobTracing(provider, remember=-1)


class Counting(SpanProcessor):
    """Counts the spans started and ended."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        self.ended += 1


async def test_a_job_canceled_during_parallel_delegations_ends_every_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    counting = Counting()
    provider.add_span_processor(counting)
    started = asyncio.Event()

    async def answer(request: GenerationRequest) -> GenerationResponse:
        if request.expert_key == "helper":
            started.set()
            await asyncio.sleep(3600)
        if request.expert_key == "other":
            return GenerationResponse((TextPart("from other"),), "stop", Usage.of(1, 1))
        calls = (ToolCall("c1", "helper", {"query": "a"}), ToolCall("c2", "other", {"query": "b"}))
        return GenerationResponse(calls, "tool_calls", Usage.of(1, 1))

    runtime = make_runtime([])
    runtime.providers = FunctionProvider(answer)
    enable_tracing(runtime, provider)
    job = await runtime.submit("main@1.0.0", "q")
    task = asyncio.create_task(runtime.drive(job.id))
    await asyncio.wait_for(started.wait(), 10)
    await runtime.cancel(job.id)
    final = await asyncio.wait_for(task, 10)
    assert final.status is S.CANCELED
    assert counting.started == counting.ended > 0
    spans = exporter.get_finished_spans()
    root = one(spans, "invoke_agent main@1.0.0")
    assert root.attributes is not None and root.attributes["expert_jobs.job.status"] == "canceled"
    (step1,) = [s for s in by_name(spans, "step 1") if parent_of(s) == span_id(root)]
    helper, other = one(spans, "invoke_agent helper"), one(spans, "invoke_agent other")
    assert parent_of(helper) == parent_of(other) == span_id(step1)
    assert other.attributes is not None and other.attributes["expert_jobs.run.state"] == "completed"
    (abandoned,) = [s for s in spans if (s.attributes or {}).get("error.type") == "abandoned"]
    assert abandoned.name.startswith("chat ") and parent_of(abandoned) != span_id(step1)


def _sqlite_runtime(path: Any, script: Sequence[Turn]) -> Runtime:
    runtime = Runtime(providers=ScriptedProvider(script), store=SQLiteStore(path))
    runtime.add_expert(
        "main@1.0.0", "You help.", interactive_tools=[{"name": "ask", "input_schema": ASK_SCHEMA}]
    )
    return runtime


async def test_a_run_in_another_process_links_to_the_paused_runs_span(tmp_path: Any) -> None:
    # Two runtimes on one SQLite file, each with its own tracing: as two processes would be.
    first_exporter, second_exporter = InMemorySpanExporter(), InMemorySpanExporter()
    first_provider, second_provider = TracerProvider(), TracerProvider()
    first_provider.add_span_processor(SimpleSpanProcessor(first_exporter))
    second_provider.add_span_processor(SimpleSpanProcessor(second_exporter))
    path = tmp_path / "jobs.db"

    script = [ToolCalls.of(("ask", {"question": "ok?"})), Reply("thanks")]
    first = _sqlite_runtime(path, script)
    enable_tracing(first, first_provider)
    job = await first.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    await first.close()
    paused = one(first_exporter.get_finished_spans(), "invoke_agent main@1.0.0").context
    assert paused is not None

    second = _sqlite_runtime(path, script)
    enable_tracing(second, second_provider)
    pause = [c for c in (await second.store.list_checkpoints(job.id, take=100))[0] if c.kind == "pause"]
    assert pause[-1].traceparent == (
        f"00-{paused.trace_id:032x}-{paused.span_id:016x}-{int(paused.trace_flags):02x}"
    )
    await second.continue_job(job.id, "yes", interactive=True)
    job = await second.drive(job.id)
    assert job.status is S.COMPLETED, job.error
    resumed = one(second_exporter.get_finished_spans(), "invoke_agent main@1.0.0")
    (link,) = resumed.links
    assert (link.context.trace_id, link.context.span_id) == (paused.trace_id, paused.span_id)
    assert link.attributes is not None and link.attributes["expert_jobs.link"] == "previous_run"
    assert resumed.attributes is not None and resumed.attributes["expert_jobs.job.resumed"] is True
    # The run span still starts when the run did, though it opens once the checkpoint is read.
    assert resumed.start_time is not None and resumed.end_time is not None
    steps = [s for s in second_exporter.get_finished_spans() if s.name.startswith("step ")]
    assert steps and all(resumed.start_time <= (s.start_time or 0) for s in steps)
    await second.close()


async def test_without_tracing_no_checkpoint_keeps_a_trace_context(tmp_path: Any) -> None:
    runtime = _sqlite_runtime(tmp_path / "jobs.db", [ToolCalls.of(("ask", {"question": "ok?"}))])
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=100)
    assert checkpoints[-1].kind == "pause"
    assert all(c.traceparent is None for c in checkpoints)
    assert all("traceparent" not in checkpoint_json(c) for c in checkpoints)
    await runtime.close()


def test_a_malformed_traceparent_links_nothing(provider: TracerProvider) -> None:
    tracing = JobTracing(provider)
    assert tracing.span_context("00-not-a-trace-context") is None
    assert tracing.span_context("00-" + "0" * 32 + "-" + "0" * 16 + "-01") is None


def test_a_checkpoints_trace_context_round_trips_and_is_absent_from_rows_without_one() -> None:
    plain = Checkpoint(
        id="c1", job_id="j", run_id="r", seq=1, step=1, kind="pause",
        status=S.REQUEST_INTERACTIVE_TOOL_RESULT, run_state="waitingInteractive", expert_key="e",
        created_at=1.5, new_messages=(), message_count=0, usage=Usage.of(1, 2),
        run_usage=Usage.of(1, 2), step_usage=Usage.of(1, 2), total_steps=1, total_duration_ms=3,
    )  # fmt: skip
    text = checkpoint_json(plain)
    assert "traceparent" not in text and text == dumps(plain.to_data())
    assert text.endswith('"delegations":[],"error":null}')  # the constant tail, as before
    traced = plain._replace(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    assert traced.to_data()["traceparent"] == traced.traceparent
    assert checkpoint_json(traced) == dumps(traced.to_data())
    assert Checkpoint.from_data(traced.to_data()) == traced
    assert Checkpoint.from_data(plain.to_data()) == plain
    assert "traceparent" not in traced.to_wire()
