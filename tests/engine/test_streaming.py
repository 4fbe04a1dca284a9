"""Streaming generations: when the engine streams, delta events, the idle timeout, a cancel and a
stream broken mid-way (docs: the README's "Streaming", engine/runner.py ``_streamed``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from expert_jobs import Fail, FakeClock, Reply, RuntimeSettings, ScriptedProvider, ToolCalls, Usage
from expert_jobs.domain.deltas import TextDelta, ThinkingDelta, ToolCallStartDelta, UsageDelta
from expert_jobs.domain.errors import JobNotFound, UsageError
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.messages import AssistantMessage, TextPart
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.events import DELTA_BACKLOG
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, StreamItem

from .conftest import checkpoints, make_runtime

S = JobStatus
ANSWER = "The answer is five, as the tool said."


class Spy(ScriptedProvider):
    """A scripted provider counting its generate() and stream() calls."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generated = 0
        self.streamed = 0

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        self.generated += 1
        return await super().generate(request)

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        self.streamed += 1
        async for item in super().stream(request):
            yield item


def spy_runtime(script: list[Any], *, settings: RuntimeSettings | None = None, **options: Any) -> Any:
    clock = FakeClock()
    runtime = make_runtime([], clock=clock, settings=settings)
    runtime.providers = Spy(script, sleep=clock.sleep, stream_chunk_chars=4, **options)
    return runtime


def deltas_of(events: list[JobEvent]) -> list[JobEvent]:
    return [e for e in events if e.kind == "delta"]


async def test_without_a_delta_listener_the_engine_calls_generate() -> None:
    runtime = spy_runtime([ToolCalls.of(("add", {"a": 2, "b": 3})), Reply(ANSWER)])
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)  # an ordinary subscriber: no deltas
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert (runtime.providers.generated, runtime.providers.streamed) == (2, 0)
    assert not deltas_of(seen)


async def test_a_delta_subscriber_gets_the_answer_as_it_streams_and_the_history_the_whole() -> None:
    runtime = spy_runtime([ToolCalls.of(("add", {"a": 2, "b": 3})), Reply(ANSWER, thinking="Five it is.")])
    plain: list[JobEvent] = []
    live: list[JobEvent] = []
    runtime.events.subscribe(plain.append)
    runtime.events.subscribe(live.append, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert (runtime.providers.generated, runtime.providers.streamed) == (0, 2)
    assert not deltas_of(plain)
    deltas = deltas_of(live)
    root = (await checkpoints(runtime, job))[-1].run_id
    assert {e.run_id for e in deltas} == {root}
    assert {e.job_id for e in deltas} == {job.id}
    # Each delta event carries the typed delta and its wire form, and the step being generated.
    assert all(e.delta is not None and e.detail == e.delta.to_wire() for e in deltas)
    first = [e for e in deltas if e.step == 1]
    second = [e for e in deltas if e.step == 2]
    assert len(first) + len(second) == len(deltas)
    assert isinstance(first[0].delta, ToolCallStartDelta) and first[0].delta.name == "add"
    text = "".join(e.delta.text for e in second if isinstance(e.delta, TextDelta))
    thinking = "".join(e.delta.text for e in second if isinstance(e.delta, ThinkingDelta))
    assert (text, thinking) == (ANSWER, "Five it is.")
    assert sum(isinstance(e.delta, TextDelta) for e in second) > 1  # in pieces, not at once
    assert isinstance(second[-1].delta, UsageDelta)
    # Deltas come before the step they build, and the history holds the complete response.
    step_events = [i for i, e in enumerate(live) if e.kind == "step"]
    assert live.index(second[-1]) < step_events[-1]
    history = await runtime.store.load_history(job.id, root)
    assert isinstance(history[-1], AssistantMessage) and history[-1].text == ANSWER


async def test_runtime_stream_follows_one_job_and_only_that_job_streams() -> None:
    runtime = spy_runtime([Reply(ANSWER)])
    other = await runtime.submit("main@1.0.0", "not followed")
    job = await runtime.submit("main@1.0.0", "followed")
    await runtime.drive(other.id)
    assert (runtime.providers.generated, runtime.providers.streamed) == (1, 0)
    driving = asyncio.create_task(runtime.drive(job.id))
    events = [event async for event in runtime.stream(job.id)]
    assert (await driving).status is S.COMPLETED
    assert (runtime.providers.generated, runtime.providers.streamed) == (1, 1)
    text = "".join(e.delta.text for e in events if isinstance(e.delta, TextDelta))
    assert text == ANSWER
    assert events[-1].kind == "transition" and events[-1].status is S.COMPLETED
    assert {e.job_id for e in events} == {job.id}
    assert not runtime.events.deltas  # the stream closed its queue


async def test_runtime_stream_of_a_resting_job_ends_at_once_and_of_an_unknown_one_raises() -> None:
    runtime = spy_runtime([Reply(ANSWER)])
    job = await runtime.run("main@1.0.0", "q")
    assert [event async for event in runtime.stream(job.id)] == []
    with pytest.raises(JobNotFound):
        async for _ in runtime.stream("nosuchjob000000000000000"):
            pass
    assert not runtime.events.deltas and not runtime.events.active


async def test_a_stream_broken_mid_way_is_retried_and_nothing_partial_is_kept() -> None:
    script = [Fail("connection", "connection reset", partial=Reply("The answer is sev")), Reply(ANSWER)]
    runtime = spy_runtime(script, settings=RuntimeSettings(backoff_base=0.0))
    live: list[JobEvent] = []
    runtime.events.subscribe(live.append, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED and job.total_steps == 1
    kinds = [e.kind for e in live if e.kind in ("delta", "retry")]
    retry = kinds.index("retry")
    assert "delta" in kinds[:retry] and "delta" in kinds[retry:]  # the broken attempt streamed
    retry_event = next(e for e in live if e.kind == "retry")
    assert retry_event.detail is not None and retry_event.detail["error"]["kind"] == "connection"
    saved = await checkpoints(runtime, job)
    history = await runtime.store.load_history(job.id, saved[-1].run_id)
    texts = [m.text for m in history if isinstance(m, AssistantMessage)]
    assert texts == [ANSWER]
    assert all("sev" not in str(c.new_messages) for c in saved)


class Stalling:
    """A streaming provider that yields deltas ``gap`` seconds apart and then, if ``stall``, never
    another; it records whether its stream was closed."""

    def __init__(self, pieces: list[str], gap: float, *, stall: bool = False) -> None:
        self.pieces = pieces
        self.gap = gap
        self.stall = stall
        self.started = asyncio.Event()
        self.closed = 0
        self.calls = 0

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        raise AssertionError("this test's generations must stream")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        self.calls += 1
        try:
            for piece in self.pieces:
                await asyncio.sleep(self.gap)
                yield TextDelta(piece)
                self.started.set()
            if self.stall and self.calls == 1:
                await asyncio.sleep(3600)
            text = "".join(self.pieces)
            yield GenerationResponse((TextPart(text),), "stop", Usage.of(10, 5), None, "stall", "stall")
        finally:
            self.closed += 1


async def test_the_generation_timeout_is_an_idle_timeout_between_chunks() -> None:
    # Six chunks 0.06 s apart: 0.36 s in all, well past the 0.2 s timeout, never 0.2 s idle.
    provider = Stalling(["a", "b", "c", "d", "e", "f"], 0.06)
    runtime = make_runtime([], settings=RuntimeSettings(generation_timeout=0.2, backoff_base=0.0))
    runtime.providers = provider
    runtime.events.subscribe(lambda event: None, deltas=True)
    job = await runtime.run("main@1.0.0", "q", max_retries=0)
    assert job.status is S.COMPLETED, job.error
    assert provider.calls == 1 and provider.closed == 1


async def test_a_stream_that_goes_quiet_times_out_and_is_retried() -> None:
    provider = Stalling(["Hel", "lo"], 0.0, stall=True)
    runtime = make_runtime([], settings=RuntimeSettings(generation_timeout=0.1, backoff_base=0.0))
    runtime.providers = provider
    live: list[JobEvent] = []
    runtime.events.subscribe(live.append, deltas=True)
    job = await asyncio.wait_for(runtime.run("main@1.0.0", "q", max_retries=1), 5)
    assert job.status is S.COMPLETED
    assert provider.calls == 2 and provider.closed == 2
    retry = next(e for e in live if e.kind == "retry")
    assert retry.detail is not None
    assert retry.detail["error"]["kind"] == "timeout"
    assert "idle for 0.1 s" in retry.detail["error"]["message"]


class Endless(Stalling):
    """A lively stream that never ends: a delta every (fake) second, forever."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__([], 0.0)
        self.clock = clock

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        self.calls += 1
        try:
            while True:
                await self.clock.sleep(1.0)
                yield TextDelta("more ")
        finally:
            self.closed += 1


async def test_a_stream_that_never_ends_is_cut_at_the_stream_timeout() -> None:
    clock = FakeClock()
    settings = RuntimeSettings(stream_timeout=30.0, backoff_base=0.0)
    runtime = make_runtime([], settings=settings, clock=clock)
    provider = Endless(clock)
    runtime.providers = provider
    runtime.events.subscribe(lambda event: None, deltas=True)
    job = await asyncio.wait_for(runtime.run("main@1.0.0", "q", max_retries=1), 5)
    assert job.status is S.FAILED and job.error is not None
    assert job.error.kind == "timeout" and "stream_timeout" in job.error.message
    assert provider.calls == 2 and provider.closed == 2  # both attempts cut, their streams closed
    assert 60.0 <= clock.monotonic() < 65.0  # 30 s each, not a delta more


def test_the_stream_timeout_is_a_positive_number_or_none() -> None:
    assert RuntimeSettings(stream_timeout=None).stream_timeout is None
    for wrong in (0, -1.0, float("nan"), True):
        with pytest.raises(UsageError, match="stream_timeout"):
            RuntimeSettings(stream_timeout=wrong)


async def test_a_cancel_abandons_the_stream_at_once() -> None:
    provider = Stalling(["Hel", "lo"], 0.0, stall=True)
    runtime = make_runtime([])
    runtime.providers = provider
    runtime.events.subscribe(lambda event: None, deltas=True)
    job = await runtime.submit("main@1.0.0", "q")
    driving = asyncio.create_task(runtime.drive(job.id))
    await asyncio.wait_for(provider.started.wait(), 5)
    await asyncio.sleep(0)
    await runtime.cancel(job.id)
    done = await asyncio.wait_for(driving, 2)
    assert done.status is S.CANCELED
    assert provider.closed == 1  # the iterator was closed, not left to the collector
    assert done.total_steps == 0


async def test_a_stream_without_a_final_response_is_a_retryable_invalid_response() -> None:
    class Truncated(Stalling):
        async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
            self.calls += 1
            yield TextDelta("cut")
            if self.calls > 1:
                yield GenerationResponse((TextPart("whole"),), "stop", Usage.of(1, 1))

    provider = Truncated([], 0.0)
    runtime = make_runtime([], settings=RuntimeSettings(backoff_base=0.0))
    runtime.providers = provider
    live: list[JobEvent] = []
    runtime.events.subscribe(live.append, deltas=True)
    job = await runtime.run("main@1.0.0", "q", max_retries=1)
    assert job.status is S.COMPLETED and provider.calls == 2
    retry = next(e for e in live if e.kind == "retry")
    assert retry.detail is not None and retry.detail["error"]["kind"] == "invalid_response"


async def test_a_provider_asking_to_stream_streams_with_nobody_listening() -> None:
    class Asking(Spy):
        def should_stream(self, request: GenerationRequest) -> bool:
            return request.expert_key == "main@1.0.0"

    clock = FakeClock()
    runtime = make_runtime([], clock=clock)
    runtime.providers = Asking({"main@1.0.0": [Reply(ANSWER)], "helper": [Reply("x")]}, sleep=clock.sleep)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert (runtime.providers.generated, runtime.providers.streamed) == (0, 1)
    other = await runtime.run("helper", "q")
    assert other.status is S.COMPLETED
    assert (runtime.providers.generated, runtime.providers.streamed) == (1, 1)


async def test_delegates_stream_under_their_own_run_id() -> None:
    clock = FakeClock()
    runtime = make_runtime([], clock=clock)
    script = {
        "main@1.0.0": [ToolCalls.of(("helper", {"query": "help"})), Reply("Root done.")],
        "helper": [Reply("Helper here.")],
    }
    runtime.providers = ScriptedProvider(script, sleep=clock.sleep, stream_chunk_chars=3)
    live: list[JobEvent] = []
    runtime.events.subscribe(live.append, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    by_run: dict[str | None, str] = {}
    for event in deltas_of(live):
        if isinstance(event.delta, TextDelta):
            by_run[event.run_id] = by_run.get(event.run_id, "") + event.delta.text
    assert sorted(by_run.values()) == ["Helper here.", "Root done."]


async def test_a_listener_that_leaves_mid_stream_gets_no_more_and_the_job_finishes() -> None:
    runtime = spy_runtime([Reply(ANSWER)])
    got: list[JobEvent] = []

    def once(event: JobEvent) -> None:
        got.append(event)
        if event.kind == "delta":
            unsubscribe()

    unsubscribe = runtime.events.subscribe(once, deltas=True)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is S.COMPLETED
    assert len(deltas_of(got)) == 1
    assert not runtime.events.deltas


async def test_a_per_job_stream_nobody_reads_holds_a_bounded_number_of_deltas() -> None:
    long_answer = "x" * (DELTA_BACKLOG + 500)
    runtime = spy_runtime([Reply(long_answer)])
    runtime.providers = Spy([Reply(long_answer)], stream_chunk_chars=1)
    job = await runtime.submit("main@1.0.0", "q")
    queue = runtime.events.open_stream(job.id, deltas=True)
    try:
        done = await runtime.drive(job.id)
        assert done.status is S.COMPLETED and runtime.providers.streamed == 1
        held = [queue.get_nowait() for _ in range(queue.qsize())]
        assert sum(e.kind == "delta" for e in held) <= DELTA_BACKLOG
        assert held[-1].kind == "transition" and held[-1].status is S.COMPLETED  # never dropped
    finally:
        runtime.events.close_stream(job.id, queue)
    assert not runtime.events.deltas


@pytest.mark.parametrize(
    "delta",
    [
        TextDelta("a"),
        ThinkingDelta("b"),
        ToolCallStartDelta(0, "call_1", "add"),
        UsageDelta(Usage.of(3, 4)),
    ],
)
def test_the_fast_delta_event_is_the_event_the_dataclass_makes(delta: Any) -> None:
    from expert_jobs.domain.events import delta_event

    made = delta_event("j", "r", "e@1", 3, 1.5, S.PROCESSING, delta)
    expected = JobEvent("delta", "j", "r", "e@1", 3, 1.5, S.PROCESSING, detail=delta.to_wire(), delta=delta)
    assert made == expected and repr(made) == repr(expected)
    assert made.to_wire() == expected.to_wire()
    with pytest.raises(AttributeError):
        made.step = 4  # type: ignore[misc]  # still frozen


def test_the_readme_streaming_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Streaming", 1)[1]
    example = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert example is not None
    exec(compile(example.group(1), "README.md", "exec"), {"__name__": "readme_streaming"})
    out = capsys.readouterr().out
    assert out == "Streamed|, a few |characte|rs at a |time.|completed\n"
