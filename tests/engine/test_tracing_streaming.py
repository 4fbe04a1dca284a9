"""Tracing of streamed generations, structured output and cache writes (engine/tracing.py), read
back with the SDK's in-memory exporter (docs/operations.md, "Tracing with OpenTelemetry")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from expert_jobs import FakeClock, Reply, Runtime, RuntimeSettings, ScriptedProvider, ToolCalls, Usage
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.status import JobStatus as S
from expert_jobs.engine.tracing import enable_tracing
from expert_jobs.ports.provider import GenerationRequest, StreamItem
from expert_jobs.providers.scripted import Turn

from .conftest import make_runtime

STREAMED = "expert_jobs.generation.streamed"
FIRST_CHUNK = "expert_jobs.generation.time_to_first_chunk_s"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
ANSWER = "The answer is five, as the tool said."
VALID = '{"number": "A-1", "total": 12.5}'


class Invoice(BaseModel):
    """What the extracting expert answers."""

    number: str
    total: float


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracer_provider


def chats(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The ``chat`` spans, oldest first."""
    found = [s for s in exporter.get_finished_spans() if s.name.startswith("chat ")]
    return sorted(found, key=lambda s: s.start_time or 0)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def steps(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    found = [s for s in exporter.get_finished_spans() if s.name.startswith("step ")]
    return sorted(found, key=lambda s: s.start_time or 0)


def streaming_runtime(
    script: Sequence[Turn], provider_class: type[ScriptedProvider] = ScriptedProvider
) -> Runtime:
    clock = FakeClock()
    runtime = make_runtime([], clock=clock)
    runtime.providers = provider_class(script, sleep=clock.sleep, stream_chunk_chars=4)
    return runtime


def extract_runtime(script: Sequence[Turn]) -> Runtime:
    """A runtime whose ``extract@1.0.0`` expert answers an :class:`Invoice`."""
    clock = FakeClock()
    scripted = ScriptedProvider(script, sleep=clock.sleep)
    scripted.record_requests = True
    runtime = Runtime(providers=scripted, clock=clock, settings=RuntimeSettings())
    runtime.add_expert("extract@1.0.0", "You extract invoices.", output=Invoice)
    return runtime


# ---------------------------------------------------------------------------------- streaming


async def test_a_streamed_generation_says_so_and_times_its_first_chunk(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    class Slow(ScriptedProvider):
        """Takes 50 ms (real time) before its stream's first chunk."""

        async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
            await asyncio.sleep(0.05)
            async for item in super().stream(request):
                yield item

    runtime = streaming_runtime([Reply(ANSWER)], Slow)
    enable_tracing(runtime, provider)
    live: list[JobEvent] = []
    runtime.events.subscribe(live.append, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert any(e.kind == "delta" for e in live)
    (chat,) = chats(exporter)
    got = attributes(chat)
    assert got[STREAMED] is True
    first = got[FIRST_CHUNK]
    assert isinstance(first, float)
    assert chat.start_time is not None and chat.end_time is not None
    assert 0.05 <= first <= (chat.end_time - chat.start_time) / 1e9


async def test_a_generation_not_streamed_says_so_and_has_no_first_chunk_time(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = streaming_runtime([Reply(ANSWER)])
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")  # nobody listens for deltas: generate()
    assert job.status is S.COMPLETED
    (chat,) = chats(exporter)
    got = attributes(chat)
    assert got[STREAMED] is False
    assert FIRST_CHUNK not in got


async def test_a_generation_the_provider_asks_to_stream_is_marked_streamed(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    class Asking(ScriptedProvider):
        def should_stream(self, request: GenerationRequest) -> bool:
            return True

    runtime = streaming_runtime([Reply(ANSWER)], Asking)
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    (chat,) = chats(exporter)
    assert attributes(chat)[STREAMED] is True
    assert attributes(chat)[FIRST_CHUNK] >= 0.0


async def test_a_traced_stream_is_closed_when_the_engine_stops_reading_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    class Watched(ScriptedProvider):
        """Notes when its stream is closed (the engine stops at the response, its last item)."""

        closed = 0

        async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
            try:
                async for item in super().stream(request):
                    yield item
            finally:
                type(self).closed += 1

    runtime = streaming_runtime([Reply(ANSWER)], Watched)
    enable_tracing(runtime, provider)
    runtime.events.subscribe(lambda event: None, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert Watched.closed == 1
    assert attributes(chats(exporter)[0])[STREAMED] is True


# ----------------------------------------------------------------------------- structured output


async def test_a_generation_asking_for_structured_output_names_its_schema(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = extract_runtime([Reply(VALID)])
    enable_tracing(runtime, provider)
    job = await runtime.run("extract@1.0.0", "the invoice")
    assert job.status is S.COMPLETED
    scripted = runtime.providers
    assert isinstance(scripted, ScriptedProvider)
    schema = scripted.requests[0].output_schema
    assert schema is not None and schema.name
    got = attributes(chats(exporter)[0])
    assert got["gen_ai.output.type"] == "json"
    assert got["expert_jobs.output.schema"] == schema.name


async def test_a_generation_without_a_schema_has_no_output_attributes(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = make_runtime([Reply("hi")])
    enable_tracing(runtime, provider)
    assert (await runtime.run("main@1.0.0", "q")).status is S.COMPLETED
    got = attributes(chats(exporter)[0])
    assert "gen_ai.output.type" not in got and "expert_jobs.output.schema" not in got


async def test_an_invalid_structured_answer_is_an_event_of_its_step(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = extract_runtime([Reply("not json at all"), Reply('{"number": "A-1"}'), Reply(VALID)])
    enable_tracing(runtime, provider)
    job = await runtime.run("extract@1.0.0", "the invoice")
    assert job.status is S.COMPLETED
    found = [(step, e) for step in steps(exporter) for e in step.events]
    assert [e.name for _, e in found] == ["expert_jobs.output.invalid"] * 2
    (first_step, first), (second_step, second) = found
    assert first_step is not second_step  # each on the step whose answer it was
    assert first.attributes is not None and second.attributes is not None
    assert [e.attributes["expert_jobs.retry.attempt"] for _, e in found] == [1, 2]  # type: ignore[index]
    assert first.attributes["error.type"] == "invalid_output"
    assert first.attributes["expert_jobs.output.retried"] is True
    assert "exception.message" not in second.attributes  # the reason may quote the answer
    # The generations themselves succeeded.
    assert all(c.status.is_ok for c in chats(exporter))


async def test_an_invalid_answer_that_fails_the_run_is_an_event_saying_so(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = extract_runtime([Reply("not json at all")])
    enable_tracing(runtime, provider)
    job = await runtime.run("extract@1.0.0", "the invoice", max_retries=0)
    assert job.status is S.FAILED
    assert job.error is not None and job.error.kind == "invalid_output"
    (event,) = [e for step in steps(exporter) for e in step.events]
    assert event.name == "expert_jobs.output.invalid"
    assert event.attributes is not None
    assert event.attributes["expert_jobs.retry.attempt"] == 1
    assert event.attributes["expert_jobs.output.retried"] is False
    assert "exception.message" not in event.attributes


# ---------------------------------------------------------------------------------- cache writes


async def test_cache_writes_are_on_the_generation_and_run_spans_when_there_are_any(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    runtime = make_runtime(
        [
            ToolCalls.of(("add", {"a": 2, "b": 3}), usage=Usage.of(100, 5, cached=10, cache_write=30)),
            Reply("5", usage=Usage.of(80, 4, cached=70)),
        ]
    )
    enable_tracing(runtime, provider)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    writing, reading = chats(exporter)
    got = attributes(writing)
    assert got[CACHE_WRITE] == 30
    assert got["gen_ai.usage.cache_read.input_tokens"] == 10
    assert got["gen_ai.usage.input_tokens"] == 100  # cache writes are counted inside it
    # The next generation wrote nothing to the cache: no attribute.
    assert CACHE_WRITE not in attributes(reading)
    assert attributes(reading)["gen_ai.usage.cache_read.input_tokens"] == 70
    root = next(s for s in exporter.get_finished_spans() if s.name == "invoke_agent main@1.0.0")
    assert attributes(root)[CACHE_WRITE] == 30
