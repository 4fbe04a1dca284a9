"""Usage: five non-negative counters with one meaning, camelCase on the wire, that add up."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

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
    rebuilt = Usage.model_validate(total.model_dump())
    assert rebuilt == total
    assert hash(rebuilt) == hash(total)
    assert total.model_fields_set == set(FIELDS)
    assert total.model_dump(by_alias=True) == total.to_wire()
    assert Usage.model_validate_json(total.model_dump_json(by_alias=True)) == total
    assert total.model_copy(update={"input_tokens": 1}).input_tokens == 1
    # Sums share one fields-set: copying one (with an update) must leave the others' alone.
    other = b + a
    total.model_copy(update={"input_tokens": 1}).model_fields_set.add("spurious")
    assert other.model_fields_set == set(FIELDS)
    with pytest.raises(ValidationError):
        total.input_tokens = 0  # type: ignore[misc]


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
    assert Usage.model_validate(wire) == usage
    assert Usage(**dict(zip(FIELDS, (getattr(usage, f) for f in FIELDS), strict=True))) == usage


@pytest.mark.parametrize("field", WIRE)
def test_counters_are_non_negative_integers(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Usage.model_validate({field: -1})
    with pytest.raises(ValidationError, match=field):
        Usage.model_validate({field: 1.5})


def test_unknown_counters_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Usage.model_validate({"promptTokens": 1})


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
