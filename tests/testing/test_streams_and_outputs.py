"""The kit and the two newer features: scripts with streams broken mid-way (``Fail(partial=...)``)
and answers valid and invalid for an expert's output schema, and the invariants they let us state
about a job watched by a delta listener."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from pydantic import BaseModel, Field

from expert_jobs import (
    AssistantMessage,
    FakeClock,
    OutputInvalid,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    TestProvider,
    Usage,
    UsageError,
)
from expert_jobs.domain.deltas import TextDelta, ToolCallStartDelta, UsageDelta
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.output import OutputSpec, output_spec, typed_output
from expert_jobs.domain.status import JobStatus
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, ToolDeclaration
from expert_jobs.providers.scripted import Fail, Reply, ToolCalls, Turn, response_deltas
from expert_jobs.testing import (
    RETRYABLE_KINDS,
    invalid_answers,
    run_histories,
    run_until_settled,
    scripts_for,
    turns_for,
    valid_answers,
)

PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
QUICK = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Invoice(BaseModel):
    number: str = Field(min_length=1, max_length=12)
    total: float


async def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b


CONFIRM = {
    "name": "confirm",
    "description": "Ask the user to confirm",
    "input_schema": {
        "type": "object",
        "properties": {"question": {"type": "string"}},
        "required": ["question"],
    },
}


def make_runtime(provider: Any, clock: FakeClock | None = None) -> Runtime:
    runtime = Runtime(
        providers=provider, clock=clock or FakeClock(), settings=RuntimeSettings(backoff_base=0.01)
    )
    runtime.add_expert("tally@1.0.0", "You count.", tools=[add], output=list[int], description="Counts")
    runtime.add_expert("writer@1.0.0", "You write.", tools=[add], description="Writes")
    runtime.add_expert(
        "extract@1.0.0",
        "You extract invoices.",
        tools=[add],
        interactive_tools=[CONFIRM],
        delegates=["tally@1.0.0", "writer@1.0.0"],
        output=Invoice,
    )
    return runtime


TEMPLATE = make_runtime(ScriptedProvider([]))
SPECS: dict[str, OutputSpec | None] = {key: e.output for key, e in TEMPLATE.experts.as_mapping().items()}


class Recording(ScriptedProvider):
    """A scripted provider that records the turns it plays, per run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.played: dict[str, list[Turn]] = {}
        self.experts: dict[str, str] = {}

    def _take(self, request: GenerationRequest) -> Any:
        entry = super()._take(request)
        assert request.run_id is not None and request.expert_key is not None
        self.played.setdefault(request.run_id, []).append(entry.turn)
        self.experts[request.run_id] = request.expert_key
        return entry


def is_invalid(spec: OutputSpec | None, turn: Turn) -> bool:
    """Whether ``turn`` is an answer the run's output schema refuses."""
    if spec is None or not isinstance(turn, Reply):
        return False
    try:
        spec.parse(turn.text)
    except OutputInvalid:
        return True
    return False


def expected_attempts(spec: OutputSpec | None, turns: list[Turn]) -> list[tuple[str, str]]:
    """What a delta listener must see of a run that played ``turns``: each complete generation's
    text (``done``), each failed attempt's partial text (``void``, then a retry), each invalid
    answer's retry (``invalid``)."""
    seen: list[tuple[str, str]] = []
    for turn in turns:
        if isinstance(turn, Fail):
            seen.append(("void", (turn.partial.text or "") if turn.partial is not None else ""))
        else:
            seen.append(("done", turn.text or ""))
            if is_invalid(spec, turn):
                seen.append(("invalid", ""))
    return seen


def observed_attempts(events: list[JobEvent], run_id: str) -> tuple[list[tuple[str, str]], str]:
    """The same, read from the events: text deltas up to a usage delta are a complete generation,
    up to a retry event a void attempt; and the text of an attempt the run never finished."""
    seen: list[tuple[str, str]] = []
    buffer: list[str] = []
    for each in events:
        if each.run_id != run_id:
            continue
        if each.kind == "delta":
            if isinstance(each.delta, TextDelta):
                buffer.append(each.delta.text)
            elif isinstance(each.delta, UsageDelta):
                seen.append(("done", "".join(buffer)))
                buffer = []
        elif each.kind == "retry":
            assert each.detail is not None
            if each.detail["error"]["kind"] == "invalid_output":
                assert not buffer, "an invalid answer's retry comes right after its complete generation"
                seen.append(("invalid", ""))
            else:
                seen.append(("void", "".join(buffer)))
                buffer = []
    return seen, "".join(buffer)


FAILURES = (*RETRYABLE_KINDS, "bad_request")  # mostly retried: more broken streams seen through


def roots_and_scripts() -> SearchStrategy[tuple[str, dict[str, list[Turn]]]]:
    return st.sampled_from(["extract@1.0.0", "writer@1.0.0"]).flatmap(
        lambda key: scripts_for(TEMPLATE, key, min_turns=1, max_turns=5, max_calls=2, failures=FAILURES).map(
            lambda scripts: (key, scripts)
        )
    )


@PROPERTY
@given(roots_and_scripts(), st.integers(0, 2), st.integers(1, 12))
def test_a_watched_job_streams_what_its_history_holds(
    root_and_scripts: tuple[str, dict[str, list[Turn]]], max_retries: int, chunk: int
) -> None:
    root, scripts = root_and_scripts

    async def scenario() -> None:
        clock = FakeClock()
        provider = Recording(scripts, sleep=clock.sleep, stream_chunk_chars=chunk)
        runtime = make_runtime(provider, clock)
        events: list[JobEvent] = []
        runtime.events.subscribe(events.append, deltas=True)
        job = await runtime.submit(root, "Invoice A-1, 12.50 EUR", max_retries=max_retries, max_steps=12)
        job = await run_until_settled(runtime, job)

        # the job rests
        event(f"{root} {job.status.value} {job.error.kind if job.error else ''}")
        event(f"runs={len(provider.played)}")
        if any(isinstance(t, Fail) and t.partial is not None for ts in provider.played.values() for t in ts):
            event("a broken stream played")
        assert job.status in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXCEEDED_MAX_STEPS}
        histories = await run_histories(runtime, job)
        assert set(histories) <= set(provider.played)
        checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=10_000)
        root_runs = {c.run_id for c in checkpoints if c.parent_run_id is None}
        assert len(root_runs) == 1
        total = Usage()
        for run_id, turns in provider.played.items():
            spec = SPECS[provider.experts[run_id]]
            successes = [t for t in turns if not isinstance(t, Fail)]
            # the history holds the complete generations, in order, nothing of a broken stream
            written = [m for m in histories.get(run_id, []) if isinstance(m, AssistantMessage)]
            assert [(m.text, [(c.name, c.arguments) for c in m.tool_calls]) for m in written] == [
                (
                    t.text or "",
                    [(c.name, dict(c.arguments)) for c in t.calls] if isinstance(t, ToolCalls) else [],
                )
                for t in successes[: len(written)]
            ]
            # ...all of them, but for a generation cut off by the run's end (the job's step limit,
            # a last invalid answer); a root run of a completed job has none
            ended_well = run_id in root_runs and job.status is JobStatus.COMPLETED
            assert len(successes) - len(written) <= (0 if ended_well else 1)
            # the deltas: each complete generation's text, each void attempt followed by a retry
            expected = expected_attempts(spec, turns)
            seen, unfinished = observed_attempts(events, run_id)
            if seen != expected:
                event("last attempt failed for good")
                # the run's last attempt failed for good: no retry event after it (a delegate's
                # failure is a tool result for its parent; the root's fails the job)
                assert not ended_well
                assert expected[-1][0] in ("void", "invalid") and seen == expected[:-1]
                unfinished_text = expected[-1][1]
                assert unfinished == unfinished_text
            else:
                assert unfinished == ""
            # usage: the complete generations' and what failed attempts reported, never a partial's
            total += sum((t.usage for t in successes), Usage())
            total += sum((t.usage for t in turns if isinstance(t, Fail) and t.usage is not None), Usage())
        assert job.usage == total

        spec = SPECS[root]
        (root_run,) = root_runs
        assert provider.experts[root_run] == root
        invalid = sum(is_invalid(spec, t) for t in provider.played[root_run])
        if spec is None:
            assert job.output is None
        elif job.status is JobStatus.COMPLETED:
            assert invalid <= max_retries
            assert isinstance(typed_output(job.output, Invoice), Invoice)
            last = provider.played[root_run][-1]
            assert isinstance(last, Reply) and job.output == spec.parse(last.text)
        if spec is not None and invalid > max_retries:
            assert job.status is JobStatus.FAILED and job.error is not None
            assert job.error.kind == "invalid_output"
        if job.error is not None and job.error.kind == "invalid_output":
            assert invalid == max_retries + 1

    asyncio.run(scenario())


@QUICK
@given(st.integers(0, 2), st.data())
def test_too_many_invalid_answers_in_a_row_fail_the_job(max_retries: int, data: st.DataObject) -> None:
    """More than maxRetries invalid answers in a row, whatever they are, fail the job."""
    spec = SPECS["extract@1.0.0"]
    bad = data.draw(st.lists(invalid_answers(Invoice), min_size=max_retries + 1, max_size=max_retries + 1))
    good = data.draw(valid_answers(Invoice))
    script = [Reply(text) for text in bad] + [Reply(good)]

    async def scenario() -> None:
        runtime = make_runtime(ScriptedProvider({"extract@1.0.0": script}))
        job = await runtime.run("extract@1.0.0", "Invoice?", max_retries=max_retries)
        assert (job.status, job.error and job.error.kind) == (JobStatus.FAILED, "invalid_output")
        assert job.output is None
        # one fewer invalid answer and the valid one completes it
        runtime = make_runtime(ScriptedProvider({"extract@1.0.0": script[1:]}))
        job = await runtime.run("extract@1.0.0", "Invoice?", max_retries=max_retries)
        assert job.status is JobStatus.COMPLETED
        assert spec is not None and job.output == spec.parse(good)

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the strategies


def drawn(strategy: SearchStrategy[Any], count: int = 60) -> list[Any]:
    """``count`` examples of ``strategy`` (generated, never shrunk: quick)."""
    examples: list[Any] = []

    @settings(max_examples=count, phases=[Phase.generate], deadline=None, database=None)
    @given(strategy)
    def take(example: Any) -> None:
        examples.append(example)

    take()
    return examples


LIST = output_spec(list[int])
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["name"],
}


@QUICK
@given(
    st.sampled_from([Invoice, list[int], SCHEMA]).flatmap(lambda o: st.tuples(st.just(o), valid_answers(o)))
)
def test_valid_answers_are_valid_output(case: tuple[Any, str]) -> None:
    output, text = case
    spec = output_spec(output)
    assert spec is not None
    spec.parse(text)


@QUICK
@given(
    st.sampled_from([Invoice, list[int], SCHEMA]).flatmap(lambda o: st.tuples(st.just(o), invalid_answers(o)))
)
def test_invalid_answers_are_refused(case: tuple[Any, str]) -> None:
    output, text = case
    spec = output_spec(output)
    assert spec is not None
    with pytest.raises(OutputInvalid):
        spec.parse(text)


@QUICK
@given(valid_answers(list[int], st.lists(st.integers(0, 9), max_size=3)))
def test_valid_answers_take_the_users_values_and_wrap_them(text: str) -> None:
    assert LIST is not None
    value = LIST.parse(text)
    assert all(0 <= n <= 9 for n in value)
    assert '"result"' in text


@QUICK
@given(valid_answers(Invoice, st.builds(Invoice, number=st.just("A-1"), total=st.floats(0, 10))))
def test_valid_answers_take_models(text: str) -> None:
    assert typed_output(output_spec(Invoice).parse(text), Invoice).number == "A-1"  # type: ignore[union-attr]


def test_values_off_the_shape_are_filtered_out() -> None:
    wrong = valid_answers(Invoice, st.builds(dict, number=st.just("A-1"), total=st.just("lots")))
    with pytest.raises(Unsatisfiable):
        drawn(wrong, 5)


ADD_SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
ADD = (ToolDeclaration("add", "Add", ADD_SCHEMA),)


def test_broken_streams_come_by_default_and_only_with_the_option() -> None:
    def broken(turns: list[Turn]) -> bool:
        return any(isinstance(t, Fail) and t.partial is not None for t in turns)

    partials = [t.partial for ts in drawn(turns_for(ADD)) for t in ts if isinstance(t, Fail)]
    assert any(isinstance(p, Reply) for p in partials) and any(isinstance(p, ToolCalls) for p in partials)

    @QUICK
    @given(turns_for(ADD, broken_streams=False))
    def never(turns: list[Turn]) -> None:
        assert not broken(turns)

    never()


def test_with_an_output_the_final_answer_is_valid_and_invalid_ones_come_before() -> None:
    spec = output_spec(Invoice)
    scripts = turns_for(ADD, output=Invoice, failures=False)
    examples = drawn(scripts)
    assert any(is_invalid(spec, t) for ts in examples for t in ts)
    for turns in examples:
        assert isinstance(turns[-1], Reply) and not is_invalid(spec, turns[-1])
        assert spec is not None
        spec.parse(turns[-1].text)

    @QUICK
    @given(turns_for(ADD, output=Invoice, invalid_outputs=False))
    def only_valid(turns: list[Turn]) -> None:
        assert not any(is_invalid(spec, t) for t in turns)
        assert isinstance(turns[-1], Reply)
        assert spec is not None
        spec.parse(turns[-1].text)

    only_valid()


def test_scripts_for_takes_each_experts_output_and_the_users_values() -> None:
    tally = st.lists(st.just(7), min_size=1, max_size=1)
    scripts = scripts_for(TEMPLATE, "extract@1.0.0", outputs={"tally@1.0.0": tally}, failures=False)
    extract = SPECS["extract@1.0.0"]
    assert LIST is not None and extract is not None
    for example in drawn(scripts, 20):
        tally = example["tally@1.0.0"]
        assert isinstance(tally[-1], Reply) and LIST.parse(tally[-1].text) == [7]
        assert isinstance(example["extract@1.0.0"][-1], Reply)
        extract.parse(example["extract@1.0.0"][-1].text)
        # the writer has no output: no answer of its is refused, whatever its text
        assert isinstance(example["writer@1.0.0"][-1], Reply)


def test_options_that_cannot_work_are_refused() -> None:
    with pytest.raises(UsageError, match="outputs= needs output="):
        turns_for(ADD, outputs=st.just([1]))
    with pytest.raises(UsageError, match="not an output schema"):
        turns_for(ADD, output="Invoice")
    with pytest.raises(UsageError, match="output schema is required"):
        valid_answers(None)
    with pytest.raises(UsageError, match="comes from its definition"):
        scripts_for(TEMPLATE, "extract@1.0.0", output=Invoice)
    with pytest.raises(UsageError, match="declares no output schema"):
        scripts_for(TEMPLATE, "extract@1.0.0", outputs={"writer@1.0.0": st.just("x")})
    with pytest.raises(UsageError, match="not an expert of this job"):
        scripts_for(TEMPLATE, "writer@1.0.0", outputs={"tally@1.0.0": st.just([1])})


# --------------------------------------------------------------------------- TestProvider


def test_the_test_provider_streams_what_it_generates() -> None:
    provider = TestProvider(stream_chunk_chars=3, final_text="Added: all good.")
    first = GenerationRequest("m", "sys", (), ADD)

    async def scenario() -> None:
        *deltas, response = [item async for item in provider.stream(first)]
        assert isinstance(response, GenerationResponse)
        assert response == await provider.generate(first)
        assert tuple(deltas) == response_deltas(response, 3)
        assert isinstance(deltas[0], ToolCallStartDelta) and deltas[0].name == "add"
        answered = GenerationRequest("m", "sys", (AssistantMessage(response.parts, "test", "m"),), ADD)
        *deltas, final = [item async for item in provider.stream(answered)]
        assert isinstance(final, GenerationResponse)
        text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
        assert text == "Added: all good." == final.parts[0].text  # type: ignore[union-attr]
        assert [d.text for d in deltas if isinstance(d, TextDelta)][:2] == ["Add", "ed:"]

    asyncio.run(scenario())
    with pytest.raises(UsageError, match="stream_chunk_chars"):
        TestProvider(stream_chunk_chars=0)


def test_a_watched_job_of_the_test_provider_streams() -> None:
    async def scenario() -> None:
        runtime = make_runtime(TestProvider())
        events: list[JobEvent] = []
        runtime.events.subscribe(events.append, deltas=True)
        job = await runtime.run("writer@1.0.0", "anything")
        assert job.status is JobStatus.COMPLETED
        assert any(isinstance(e.delta, ToolCallStartDelta) and e.delta.name == "add" for e in events)

    asyncio.run(scenario())


async def test_the_test_provider_answers_an_output_schema_with_a_value_of_it() -> None:
    from pydantic import BaseModel

    from expert_jobs import Runtime, TestProvider

    class Total(BaseModel):
        amount: int
        currency: str

    runtime = Runtime(providers=TestProvider())
    runtime.add_expert("totals@1.0.0", "You total.", output=Total)
    result = await runtime.run("totals@1.0.0", "q", output=Total)
    assert result.job.status.value == "completed", result.job.error
    assert isinstance(result.output, Total)
