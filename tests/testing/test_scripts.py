"""``expert_jobs.testing``'s strategies for a user's expert: schema-valid arguments, scripts of
turns of every kind, and the invariants they let a user state in a few lines."""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import re
import uuid
from typing import Annotated, Any, Literal

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from expert_jobs import (
    AssistantMessage,
    FakeClock,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    Tool,
    ToolCalls,
    ToolResultsMessage,
    Usage,
    UsageError,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.providers.scripted import Fail, Reply, Turn
from expert_jobs.testing import (
    FAILURE_KINDS,
    NON_RETRYABLE_KINDS,
    RETRYABLE_KINDS,
    arguments_for,
    run_histories,
    run_until_settled,
    scripts_for,
    turns_for,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Point(BaseModel):
    x: int
    y: Annotated[float, Field(ge=-1, lt=1)]
    label: str | None = None


def everything(
    count: Annotated[int, Field(ge=1, le=5)],
    ratio: Annotated[float, Field(gt=0, le=1)],
    name: Annotated[str, Field(min_length=2, max_length=6)],
    code: Annotated[str, Field(pattern=r"^[A-Z]{3}-\d{2}$")],
    flag: bool,
    tags: Annotated[list[str], Field(max_length=3)],
    scores: dict[str, int],
    mode: Literal["fast", "slow"],
    color: Color,
    point: Point,
    points: list[Point],
    when: dt.datetime,
    day: dt.date,
    ident: uuid.UUID,
    pair: tuple[int, str],
    maybe: int | None = None,
    even: Annotated[int, Field(multiple_of=2, ge=0, le=10)] = 0,
) -> str:
    """A tool with every kind of argument a Python tool can declare."""
    return "ok"


TOOL = Tool.from_function(everything)


@FAST
@given(arguments_for(TOOL.input_schema))
def test_arguments_are_accepted_by_the_tool_they_were_made_for(arguments: dict[str, Any]) -> None:
    text, is_error = asyncio.run(TOOL.call(arguments))
    assert (text, is_error) == ("ok", False), (arguments, text)


@FAST
@given(st.data())
def test_hand_written_schemas(data: st.DataObject) -> None:
    schema = {
        "type": "object",
        "properties": {
            "choice": {"enum": ["a", "b", 3]},
            "fixed": {"const": {"k": [1]}},
            "either": {"anyOf": [{"type": "integer", "minimum": 10}, {"type": "null"}]},
            "kinds": {"type": ["string", "boolean"]},
            "ref": {"$ref": "#/$defs/Thing"},
            "odd": {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
            "unique": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 3},
                       "uniqueItems": True, "minItems": 2},
            "both": {"allOf": [
                {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]},
            ]},
        },
        "required": ["choice", "fixed", "either", "kinds", "ref", "odd", "unique", "both"],
        "$defs": {"Thing": {"type": "object", "properties": {"n": {"type": "number", "minimum": 0.5}},
                            "required": ["n"], "additionalProperties": False}},
    }  # fmt: skip
    value = data.draw(arguments_for(schema))
    assert value["choice"] in ("a", "b", 3)
    assert value["fixed"] == {"k": [1]}
    assert value["either"] is None or value["either"] >= 10
    assert isinstance(value["kinds"], str | bool)
    assert set(value["ref"]) == {"n"} and value["ref"]["n"] >= 0.5
    assert value["odd"] in (1, 2)
    assert len(value["unique"]) == len(set(value["unique"])) >= 2
    assert isinstance(value["both"]["a"], int) and isinstance(value["both"]["b"], str)


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$ref": "http://example.com/x"}, "only local $ref"),
        ({"$ref": "#/$defs/Missing"}, "does not resolve"),
        ({"type": "tuple"}, "unknown JSON schema type 'tuple'"),
        ({"$defs": {"Loop": {"$ref": "#/$defs/Loop"}}, "$ref": "#/$defs/Loop"}, "nests too deeply"),
    ],
)
def test_schemas_it_cannot_satisfy_are_refused(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        arguments_for(schema)


def test_failure_kinds_are_the_providers() -> None:
    from expert_jobs import ProviderError

    assert set(RETRYABLE_KINDS) == ProviderError.RETRYABLE_KINDS
    assert not set(NON_RETRYABLE_KINDS) & set(RETRYABLE_KINDS)
    assert FAILURE_KINDS == RETRYABLE_KINDS + NON_RETRYABLE_KINDS
    for kind in NON_RETRYABLE_KINDS:
        assert not ProviderError("x", kind=kind).retryable


@FAST
@given(turns_for([TOOL], max_turns=5, max_calls=2, delays=2.0))
def test_turns_call_the_tools_with_valid_arguments_and_end_with_a_reply(turns: list[Turn]) -> None:
    assert isinstance(turns[-1], Reply)
    assert len(turns) <= 6
    for turn in turns[:-1]:
        assert isinstance(turn, ToolCalls | Fail)
        assert 0 <= turn.delay <= 2.0
        if isinstance(turn, ToolCalls):
            assert 1 <= len(turn.calls) <= 2
            for call in turn.calls:
                assert call.name == "everything"
                assert asyncio.run(TOOL.call(call.arguments)) == ("ok", False)
        else:
            assert turn.kind in FAILURE_KINDS


def _kinds_of(turns: list[Turn]) -> set[str]:
    """What kinds of turn ``turns`` holds (test_turns_cover_every_kind_of_turn's names)."""
    seen: set[str] = set()
    for turn in turns:
        if isinstance(turn, ToolCalls):
            seen.add("calls")
            seen.update(["text"] if turn.text else [])
        if isinstance(turn, Fail):
            seen.add(turn.kind)
            seen.update(["retry_after"] if turn.retry_after else [])
        if isinstance(turn, Reply):
            seen.add("reply")
        seen.update(["thinking"] if getattr(turn, "thinking", None) else [])
    return seen


@pytest.mark.parametrize("kind", ["calls", "text", "retry_after", "reply", "thinking", *FAILURE_KINDS])
def test_turns_cover_every_kind_of_turn(kind: str) -> None:
    # Searched for, not counted in a fixed sample: which examples a derandomized run draws depends
    # on the modules loaded before it (Hypothesis draws constants from them), so "400 examples
    # cover every kind" held or not depending on the tests that ran first.
    strategy = turns_for([("ask", {"type": "object", "properties": {"q": {"type": "string"}}})], max_turns=4)
    found = find(
        strategy,
        lambda turns: kind in _kinds_of(turns),
        settings=settings(max_examples=2_000, database=None, phases=[Phase.generate], deadline=None),
    )
    assert kind in _kinds_of(found)


@FAST
@given(turns_for([TOOL], failures=["rate_limit"], thinking=False, invalid_calls=True, max_turns=8))
def test_options_narrow_the_turns(turns: list[Turn]) -> None:
    for turn in turns:
        assert getattr(turn, "thinking", None) is None
        if isinstance(turn, Fail):
            assert turn.kind == "rate_limit"


def test_invalid_calls_are_mixed_in_on_request() -> None:
    names: set[str] = set()
    arguments: list[Any] = []

    @settings(max_examples=100, derandomize=True, database=None, phases=[Phase.generate], deadline=None)
    @given(turns_for([TOOL], invalid_calls=True, failures=False, max_turns=4))
    def look(turns: list[Turn]) -> None:
        for turn in turns:
            if isinstance(turn, ToolCalls):
                names.update(call.name for call in turn.calls)
                arguments.extend(call.arguments for call in turn.calls if call.name == TOOL.name)

    async def refused() -> int:
        return sum([(await TOOL.call(each))[1] for each in arguments])

    look()
    assert names == {TOOL.name, "no_such_tool"}
    assert 0 < asyncio.run(refused()) < len(arguments)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_turns": 3, "max_turns": 2}, "min_turns <= max_turns"),
        ({"max_calls": 0}, "max_calls must be >= 1"),
        ({"delays": -1.0}, "delays must be >= 0"),
        ({"failures": ["gremlins"]}, "unknown failure kinds ['gremlins']"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        turns_for([TOOL], **options)


def test_a_tool_list_of_something_else_is_refused() -> None:
    with pytest.raises(UsageError, match="is not a ToolDeclaration"):
        turns_for([42])


# ------------------------------------------------------------------ a user's expert, end to end


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b


def make_runtime(clock: FakeClock | None = None, scripts: Any = ()) -> Runtime:
    clock = clock or FakeClock()
    runtime = Runtime(
        providers=ScriptedProvider(scripts, sleep=clock.sleep),
        clock=clock,
        settings=RuntimeSettings(default_max_steps=8),
    )
    runtime.add_expert("phraser@1.0.0", "You phrase results.", tools=[add], description="Phrases a result")
    runtime.add_expert(
        "calculator@1.0.0",
        "You add numbers.",
        tools=[add],
        interactive_tools=[{"name": "confirm", "input_schema": {
            "type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}}],
        delegates=["phraser@1.0.0"],
    )  # fmt: skip
    return runtime


TEMPLATE = make_runtime()


def test_scripts_cover_the_expert_and_its_delegates() -> None:
    @settings(max_examples=100, derandomize=True, database=None, phases=[Phase.generate], deadline=None)
    @given(scripts_for(TEMPLATE, "calculator@1.0.0", failures=False))
    def look(scripts: dict[str, list[Turn]]) -> None:
        assert set(scripts) == {"calculator@1.0.0", "phraser@1.0.0"}
        for key, turns in scripts.items():
            for turn in turns[:-1]:
                assert isinstance(turn, ToolCalls)
                names = {call.name for call in turn.calls}
                allowed = {"add", "confirm", "phraser"} if key == "calculator@1.0.0" else {"add"}
                assert names <= allowed, (key, names)
                seen.update(names)

    seen: set[str] = set()
    look()
    assert seen == {"add", "confirm", "phraser"}


def test_scripts_for_needs_an_expert_when_there_are_several() -> None:
    several = r"name the expert; the runtime has 2 \(calculator@1.0.0, phraser@1.0.0\)"
    with pytest.raises(UsageError, match=several):
        scripts_for(TEMPLATE)
    single = Runtime(providers=ScriptedProvider([]))
    single.add_expert("solo", "Alone.")
    assert isinstance(scripts_for(single), st.SearchStrategy)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scripts_for(TEMPLATE, "calculator@1.0.0", delays=3.0, invalid_calls=True))
def test_whatever_the_model_does_the_job_settles_and_accounts_for_everything(
    scripts: dict[str, list[Turn]],
) -> None:
    asyncio.run(_settles(scripts))


async def _settles(scripts: dict[str, list[Turn]]) -> None:
    clock = FakeClock()
    runtime = make_runtime(clock, scripts)
    job = await runtime.submit("calculator@1.0.0", "What is 2 + 3?", max_retries=2)
    job = await run_until_settled(runtime, job)
    assert job.status in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXCEEDED_MAX_STEPS}
    assert job.total_steps <= job.max_steps
    total = Usage()
    for messages in (await run_histories(runtime, job)).values():
        calls = [c.id for m in messages if isinstance(m, AssistantMessage) for c in m.tool_calls]
        results = [r.call_id for m in messages if isinstance(m, ToolResultsMessage) for r in m.results]
        assert sorted(calls) == sorted(results)  # every call got exactly one result
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=10_000)
    for checkpoint in checkpoints:
        total = total + checkpoint.step_usage
    assert total == job.usage


async def test_run_until_settled_refuses_a_job_that_stays_paused() -> None:
    asks = [ToolCalls.of(("confirm", {"question": "again?"}))] * 5 + [Reply("done")]
    runtime = make_runtime(FakeClock(), {"*": asks})
    job = await runtime.submit("calculator@1.0.0", "go")
    with pytest.raises(AssertionError, match="still requestInteractiveToolResult after 2 answers"):
        await run_until_settled(runtime, job, max_answers=2)
    done = await run_until_settled(runtime, job.id)
    assert done.status is JobStatus.COMPLETED


async def test_max_steps_bounds_the_steps_of_delegates_run_one_after_the_other() -> None:
    scripts = {
        "calculator@1.0.0": [
            ToolCalls.of(
                ("phraser", {"query": "a"}), ("phraser", {"query": "b"}), ("phraser", {"query": "c"})
            ),
            Reply("done"),
        ],
        "phraser@1.0.0": [ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("3")],
    }
    runtime = make_runtime(FakeClock(), scripts)
    job = await runtime.run("calculator@1.0.0", "go", max_steps=4)
    assert job.status is JobStatus.EXCEEDED_MAX_STEPS
    assert job.total_steps <= 4
