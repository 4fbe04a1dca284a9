"""Usage: five non-negative counters with one meaning, camelCase on the wire, that add up."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from expert_jobs import Usage
from expert_jobs.domain.usage import ZERO_USAGE
from expert_jobs.testing import usages

FIELDS = ("input_tokens", "output_tokens", "reasoning_tokens", "total_tokens", "cached_input_tokens")
WIRE = ("inputTokens", "outputTokens", "reasoningTokens", "totalTokens", "cachedInputTokens")


@given(usages())
def test_kit_usages_are_consistent(usage: Usage) -> None:
    assert usage.is_consistent()
    assert usage.invariant_violations() == []
    assert usage.cached_input_tokens <= usage.input_tokens
    assert usage.reasoning_tokens <= usage.output_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@given(usages(), usages())
def test_addition_is_per_counter_and_stays_consistent(a: Usage, b: Usage) -> None:
    total = a + b
    for name in FIELDS:
        assert getattr(total, name) == getattr(a, name) + getattr(b, name)
    assert total.is_consistent()
    assert total == b + a


@given(usages(), usages(), usages())
def test_addition_is_associative_with_zero_as_identity(a: Usage, b: Usage, c: Usage) -> None:
    assert (a + b) + c == a + (b + c)
    assert a + ZERO_USAGE == a == ZERO_USAGE + a
    assert sum([a, b, c], ZERO_USAGE) == a + b + c


@given(usages(), usages())
def test_a_sum_is_a_normal_usage(a: Usage, b: Usage) -> None:
    # __add__ skips validation for speed: the result must still behave like a validated Usage.
    total = a + b
    rebuilt = Usage(**{name: getattr(total, name) for name in FIELDS})
    assert rebuilt == total
    assert hash(rebuilt) == hash(total)
    assert repr(rebuilt) == repr(total)
    assert Usage.from_wire(total.to_wire()) == total
    assert pickle.loads(pickle.dumps(total)) == total
    assert copy.deepcopy(total) == total


def test_a_usage_is_immutable() -> None:
    usage = Usage.of(1, 2)
    with pytest.raises(AttributeError, match="immutable"):
        usage.input_tokens = 0  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        del usage.output_tokens
    with pytest.raises(AttributeError):
        usage.anything = 1  # type: ignore[attr-defined]
    assert usage == Usage.of(1, 2)


class _Holder(BaseModel):
    usage: Usage


@given(usages())
def test_as_a_pydantic_field_it_validates_and_serializes_like_a_model(usage: Usage) -> None:
    assert _Holder(usage=usage).usage is usage
    assert _Holder.model_validate({"usage": usage.to_wire()}).usage == usage
    snake = dict(zip(FIELDS, (getattr(usage, f) for f in FIELDS), strict=True))
    assert _Holder.model_validate({"usage": snake}).usage == usage
    holder = _Holder(usage=usage)
    assert holder.model_dump(by_alias=True) == {"usage": usage.to_wire()}
    assert holder.model_dump() == {"usage": snake}
    assert _Holder.model_validate_json(holder.model_dump_json(by_alias=True)).usage == usage
    assert _Holder.model_validate_json(holder.model_dump_json()).usage == usage


def test_as_a_pydantic_field_bad_counters_name_the_field() -> None:
    with pytest.raises(ValidationError, match=r"usage\.inputTokens"):
        _Holder.model_validate({"usage": {"inputTokens": -1}})
    with pytest.raises(ValidationError, match="extra"):
        _Holder.model_validate_json('{"usage": {"promptTokens": 1}}')
    with pytest.raises(ValidationError):
        _Holder.model_validate({"usage": "100 tokens"})


def test_json_schema_is_the_usage_object() -> None:
    schema = _Holder.model_json_schema(by_alias=True)
    usage = schema["$defs"]["Usage"]
    assert list(usage["properties"]) == list(WIRE)
    assert usage["additionalProperties"] is False
    assert all(p["type"] == "integer" and p["minimum"] == 0 for p in usage["properties"].values())
    assert schema["properties"]["usage"] == {"$ref": "#/$defs/Usage"}


def test_adding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Usage.of(1, 2) + 3


def test_of_derives_the_total() -> None:
    usage = Usage.of(100, 20, reasoning=5, cached=40)
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (100, 20, 5)
    assert (usage.cached_input_tokens, usage.total_tokens) == (40, 120)


@given(usages())
def test_wire_form_is_camel_case_and_round_trips(usage: Usage) -> None:
    wire = usage.to_wire()
    assert tuple(wire) == WIRE
    assert Usage.from_wire(wire) == usage
    assert Usage(**dict(zip(FIELDS, (getattr(usage, f) for f in FIELDS), strict=True))) == usage


@pytest.mark.parametrize("field", WIRE)
def test_counters_are_non_negative_integers(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Usage.from_wire({field: -1})
    with pytest.raises(ValidationError, match=field):
        Usage.from_wire({field: 1.5})


def test_unknown_counters_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Usage.from_wire({"promptTokens": 1})


@pytest.mark.parametrize(
    ("usage", "problems"),
    [
        (
            Usage(input_tokens=1, cached_input_tokens=2, total_tokens=1),
            ["cachedInputTokens 2 > inputTokens 1"],
        ),
        (
            Usage(output_tokens=1, reasoning_tokens=3, total_tokens=1),
            ["reasoningTokens 3 > outputTokens 1"],
        ),
        (
            Usage(input_tokens=1, output_tokens=1, total_tokens=3),
            ["totalTokens 3 != inputTokens + outputTokens (2)"],
        ),
        (
            Usage(cached_input_tokens=1, reasoning_tokens=1, total_tokens=1),
            [
                "cachedInputTokens 1 > inputTokens 0",
                "reasoningTokens 1 > outputTokens 0",
                "totalTokens 1 != inputTokens + outputTokens (0)",
            ],
        ),
    ],
)
def test_invariant_violations_name_each_broken_rule(usage: Usage, problems: list[str]) -> None:
    assert usage.invariant_violations() == problems
    assert not usage.is_consistent()


@given(st.tuples(*(st.integers(0, 50) for _ in FIELDS)))
def test_is_consistent_agrees_with_invariant_violations(counters: tuple[int, ...]) -> None:
    usage = Usage(**dict(zip(FIELDS, counters, strict=True)))
    assert usage.is_consistent() is (usage.invariant_violations() == [])


@pytest.mark.parametrize("field", FIELDS)
def test_the_constructor_refuses_bad_counters_naming_the_field(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Usage(**{field: -1})
    with pytest.raises(ValidationError, match=field):
        Usage(**{field: "many"})
    assert getattr(Usage(**{field: 3.0}), field) == 3  # pydantic's lax rules, as on the wire


# ---------------------------------------------------------------------- cache writes (Python only)


@given(usages(), st.integers(0, 50))
def test_cache_writes_are_a_python_only_counter_kept_by_the_stores_form(usage: Usage, writes: int) -> None:
    written = Usage.of(
        usage.input_tokens + writes,
        usage.output_tokens,
        reasoning=usage.reasoning_tokens,
        cached=usage.cached_input_tokens,
        cache_write=writes,
    )
    assert written.is_consistent()
    # Off the wire: the spec's five counters only, and a wire object with it is refused.
    assert tuple(written.to_wire()) == WIRE
    assert _Holder(usage=written).model_dump(by_alias=True) == {"usage": written.to_wire()}
    data = written.to_data()
    assert data == {**written.to_wire(), **({"cacheWriteTokens": writes} if writes else {})}
    assert Usage.from_data(data) == written
    assert pickle.loads(pickle.dumps(written)) == written
    if writes:
        assert written != Usage.from_wire(written.to_wire())  # the wire form drops them
        with pytest.raises(ValidationError, match="extra"):
            Usage.from_wire(data)
    # Summed like the others.
    assert (written + written).cache_write_tokens == 2 * writes


def test_data_written_before_cache_writes_reads_as_none_written() -> None:
    old = {
        "inputTokens": 10,
        "outputTokens": 2,
        "reasoningTokens": 0,
        "totalTokens": 12,
        "cachedInputTokens": 3,
    }
    assert Usage.from_data(old) == Usage.of(10, 2, cached=3)
    assert Usage.from_data(old).cache_write_tokens == 0
    with pytest.raises(ValidationError, match="cacheWriteTokens"):
        Usage.from_data({**old, "cacheWriteTokens": -1})


def test_cache_writes_count_inside_the_input() -> None:
    usage = Usage(input_tokens=10, cached_input_tokens=6, cache_write_tokens=5, total_tokens=10)
    assert usage.invariant_violations() == ["cachedInputTokens 6 + cacheWriteTokens 5 > inputTokens 10"]
    assert not usage.is_consistent()
    assert Usage.of(10, 0, cached=6, cache_write=4).is_consistent()


def test_a_pickle_made_before_cache_writes_still_loads() -> None:
    from expert_jobs.domain.usage import _of_counters

    assert _of_counters(10, 2, 0, 12, 3) == Usage.of(10, 2, cached=3)
