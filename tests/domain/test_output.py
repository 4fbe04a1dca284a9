"""Output specs (domain/output.py): types and JSON schemas, wrapping, JSON-schema checking (by the
jsonschema library: the schema at load, each answer), bounds, and the output on a checkpoint and a
job."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import Any
from unittest.mock import Mock

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.experts import ExpertDefinition
from expert_jobs.domain.job import STATE_FIELDS, TRANSIENT_FIELDS
from expert_jobs.domain.messages import (
    AssistantMessage,
    TextPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.output import (
    MAX_OUTPUT_SCHEMA_DEPTH,
    OutputInvalid,
    OutputSpec,
    check_json_schema,
    invalid_answers_in_a_row,
    output_spec,
    retry_prompt,
    typed_output,
)
from expert_jobs.domain.wire import CheckpointWire
from expert_jobs.stores._rows import _PLAIN_TAIL_VALUES, _TAIL_START, checkpoint_json, dumps
from tests.stores.factories import make_checkpoint, make_job


class Point(BaseModel):
    """A point."""

    x: int
    y: int


class Tree(BaseModel):
    """A recursive model: pydantic's schema of it is a root ``$ref``."""

    name: str
    children: list[Tree] = []


class Color(Enum):
    """An enum: not an object, so wrapped."""

    RED = "red"
    BLUE = "blue"


@dataclass
class Pair:
    """A dataclass."""

    a: str
    b: float


def spec(value: Any) -> OutputSpec:
    made = output_spec(value)
    assert made is not None
    return made


# -- Python types --------------------------------------------------------------------------------


def test_a_model_is_an_object_schema_closed_and_strict() -> None:
    made = spec(Point)
    assert made.name == "Point" and not made.wrapped and made.python_type is Point
    assert made.json_schema["additionalProperties"] is False
    assert made.strict
    assert made.parse('{"x": 1, "y": "2"}') == {"x": 1, "y": 2}


def test_a_model_with_optional_fields_is_not_strict() -> None:
    class Loose(BaseModel):
        a: int
        b: int = 0

    assert not spec(Loose).strict


def test_a_recursive_model_is_inlined_not_wrapped() -> None:
    made = spec(Tree)
    assert not made.wrapped and made.json_schema["type"] == "object"
    assert "Tree" in made.json_schema["$defs"]
    assert made.parse('{"name": "a", "children": [{"name": "b"}]}') == {
        "name": "a",
        "children": [{"name": "b", "children": []}],
    }


@pytest.mark.parametrize(
    ("tp", "answer", "value"),
    [
        (list[int], '{"result": [1, 2]}', [1, 2]),
        (int, '{"result": 7}', 7),
        (Color, '{"result": "red"}', "red"),
        (int | None, '{"result": null}', None),
        (list[Point], '{"result": [{"x": 1, "y": 2}]}', [{"x": 1, "y": 2}]),
    ],
)
def test_non_object_types_are_wrapped_and_unwrapped(tp: Any, answer: str, value: Any) -> None:
    made = spec(tp)
    assert made.wrapped
    assert made.json_schema["required"] == ["result"]
    assert made.json_schema["additionalProperties"] is False
    assert made.parse(answer) == value


def test_a_dataclass_is_an_object() -> None:
    made = spec(Pair)
    assert not made.wrapped and made.parse('{"a": "x", "b": 1}') == {"a": "x", "b": 1.0}


def test_invalid_answers_say_what_and_where() -> None:
    made = spec(list[Point])
    with pytest.raises(OutputInvalid, match=r"\$\[0\]\.y: Field required"):
        made.parse('{"result": [{"x": 1}]}')
    with pytest.raises(OutputInvalid, match="Invalid JSON"):
        made.parse("Sure! Here it is")


def test_many_problems_are_cut_to_a_few_and_counted() -> None:
    made = spec(list[Point])
    answer = json.dumps({"result": [{} for _ in range(10)]})
    with pytest.raises(OutputInvalid) as caught:
        made.parse(answer)
    assert "(and 17 more)" in str(caught.value)
    assert str(caught.value).count("Field required") == 3


def test_a_code_fence_is_tolerated() -> None:
    assert spec(Point).parse('```json\n{"x": 1, "y": 2}\n```') == {"x": 1, "y": 2}
    assert spec(Point).parse('  ```\n{"x": 1, "y": 2}\n```  ') == {"x": 1, "y": 2}


def test_values_that_are_not_output_schemas_are_refused() -> None:
    for bad in ("Point", 3, [Point], b"{}"):
        with pytest.raises(ValueError, match=r"a type .* or a JSON schema mapping"):
            output_spec(bad)
    with pytest.raises(ValueError, match="cannot be an output type"):
        output_spec(object())
    assert output_spec(None) is None
    made = spec(Point)
    assert output_spec(made) is made


def test_typed_output_reads_a_json_value_as_the_type() -> None:
    assert typed_output({"x": 1, "y": 2}, Point) == Point(x=1, y=2)
    assert typed_output([1, 2], list[int]) == [1, 2]
    point = Point(x=1, y=1)
    assert typed_output(point, Point) is point
    with pytest.raises(ValueError):
        typed_output({"x": "no"}, Point)


def test_the_retry_prompt_names_the_reason_and_the_shape() -> None:
    text = retry_prompt(spec(list[int]), "$: Input should be an object")
    assert "$: Input should be an object" in text and '{"result": ...}' in text


def test_an_expert_holds_its_spec_and_dumps_its_schema() -> None:
    expert = ExpertDefinition(key="e@1.0.0", instruction="i", output=Point)
    assert isinstance(expert.output, OutputSpec)
    assert expert.model_dump()["output"] == dict(expert.output.json_schema)
    assert ExpertDefinition(key="e@1.0.0", instruction="i", output=Point) == expert
    assert ExpertDefinition(key="e@1.0.0", instruction="i").output is None
    assert "output" not in expert.digest()  # the API's expert object stays the spec's


# -- JSON schemas ---------------------------------------------------------------------------------

_ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "integer", "minimum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "uniqueItems": True},
        "kind": {"enum": ["a", "b", 1]},
        "flag": {"const": True},
        "price": {"type": "number", "multipleOf": 0.5, "exclusiveMaximum": 100},
        "code": {"type": "string", "pattern": "^[A-Z]{2}$"},
        "ref": {"$ref": "#/$defs/Ref"},
        "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "one": {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
        "not_five": {"not": {"const": 5}},
        "extra": {"type": "object", "additionalProperties": {"type": "boolean"}, "maxProperties": 2},
    },
    "required": ["id"],
    "additionalProperties": False,
    "$defs": {"Ref": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}},
}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"id": 1}, None),
        ({"id": 1.0}, None),  # 1.0 is an integer in JSON schema
        ({"id": True}, "$.id: True is not of type 'integer'"),
        ({"id": 0}, "$.id: 0 is less than the minimum of 1"),
        ({}, "$: 'id' is a required property"),
        ({"id": 1, "other": 1}, "$: Additional properties are not allowed ('other' was unexpected)"),
        ({"id": 1, "tags": ["ab", "ab"]}, "$.tags: ['ab', 'ab'] has non-unique elements"),
        ({"id": 1, "tags": ["toolong"]}, "$.tags[0]: 'toolong' is too long"),
        ({"id": 1, "kind": True}, "$.kind: True is not one of ['a', 'b', 1]"),
        ({"id": 1, "kind": 1}, None),
        ({"id": 1, "flag": 1}, "$.flag: True was expected"),
        ({"id": 1, "price": 1.25}, "$.price: 1.25 is not a multiple of 0.5"),
        ({"id": 1, "price": 100}, "$.price: 100 is greater than or equal to the maximum of 100"),
        ({"id": 1, "code": "abc"}, "$.code: 'abc' does not match '^[A-Z]{2}$'"),
        ({"id": 1, "ref": {}}, "$.ref: 'n' is a required property"),
        ({"id": 1, "either": 3}, "$.either: 3 is not valid under any of the given schemas"),
        ({"id": 1, "one": 3}, "$.one: 3 is valid under each of"),
        ({"id": 1, "one": 0.5}, None),
        ({"id": 1, "not_five": 5}, "$.not_five: 5 should not be valid under {'const': 5}"),
        (
            {"id": 1, "extra": {"a": True, "b": False, "c": True}},
            "$.extra: {'a': True, 'b': False, 'c': True}",
        ),
        ({"id": 1, "extra": {"a": 1}}, "$.extra.a: 1 is not of type 'boolean'"),
    ],
)
def test_the_json_schema_validator(value: Any, problem: str | None) -> None:
    made = spec(_ITEM)
    if problem is None:
        assert made.parse(json.dumps(value)) == value
    else:
        with pytest.raises(OutputInvalid) as caught:
            made.parse(json.dumps(value))
        assert problem in str(caught.value)


_FULL_DRAFT = {
    "type": "object",
    "properties": {
        "kind": {"enum": ["card", "cash"]},
        "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": False},
        "labels": {
            "type": "object",
            "patternProperties": {"^x-": {"type": "string"}},
            "additionalProperties": False,
        },
        "items": {"type": "array", "contains": {"const": "gift"}},
    },
    "if": {"properties": {"kind": {"const": "card"}}, "required": ["kind"]},
    "then": {"required": ["last4"]},
    "dependentRequired": {"last4": ["kind"]},
    "unevaluatedProperties": {"type": "string"},
}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"kind": "cash", "pair": ["a", 1], "labels": {"x-a": "b"}, "items": ["gift"], "note": "n"}, None),
        ({"kind": "card"}, "$: 'last4' is a required property"),  # if / then
        ({"last4": "1234"}, "$: 'kind' is a dependency of 'last4'"),  # dependentRequired
        ({"pair": ["a", "b"]}, "$.pair[1]: 'b' is not of type 'integer'"),  # prefixItems
        ({"pair": ["a", 1, 2]}, "$.pair"),  # items: false after the prefix
        ({"labels": {"y": "b"}}, "$.labels: 'y' does not match any of the regexes: '^x-'"),
        ({"items": ["toy"]}, "$.items: ['toy'] does not contain items matching the given schema"),
        ({"note": 3}, "$: Unevaluated properties are not valid"),  # unevaluatedProperties
    ],
)
def test_the_whole_draft_2020_12_is_checked(value: Any, problem: str | None) -> None:
    made = spec(_FULL_DRAFT)
    if problem is None:
        assert made.parse(json.dumps(value)) == value
    else:
        with pytest.raises(OutputInvalid) as caught:
            made.parse(json.dumps(value))
        assert problem in str(caught.value)


def test_format_is_an_annotation_not_asserted() -> None:
    made = spec({"type": "object", "properties": {"day": {"type": "string", "format": "date"}}})
    assert made.parse('{"day": "not a date"}') == {"day": "not a date"}


def test_problems_are_reported_broadest_first_a_few_and_counted() -> None:
    # Its keywords list the property before the required ones, as jsonschema reports them.
    made = spec(
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["a", "b", "c", "d"]}
    )
    with pytest.raises(OutputInvalid) as caught:
        made.parse('{"n": "x"}')
    assert str(caught.value) == (
        "$: 'a' is a required property; $: 'b' is a required property; "
        "$: 'c' is a required property (and 2 more)"
    )
    many = spec({"type": "array", "items": {"type": "integer"}})
    with pytest.raises(OutputInvalid) as caught:
        many.parse(json.dumps({"result": ["x"] * 500}))
    assert str(caught.value).startswith("$[0]: 'x' is not of type 'integer'; $[1]: ")
    assert str(caught.value).endswith("(and over 97 more)")


def test_a_long_problem_is_cut() -> None:
    made = spec({"type": "object", "properties": {"id": {"type": "integer"}}})
    with pytest.raises(OutputInvalid) as caught:
        made.parse(json.dumps({"id": "x" * 5_000}))
    assert str(caught.value).startswith("$.id: 'xxx")
    assert len(str(caught.value)) < 320 and str(caught.value).endswith("…")


def test_the_validator_is_built_once_per_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    made_validators = Mock(wraps=jsonschema.Draft202012Validator)
    monkeypatch.setattr(jsonschema, "Draft202012Validator", made_validators)
    made = spec(_ITEM)
    for _ in range(3):
        made.parse('{"id": 1}')
        with pytest.raises(OutputInvalid):
            made.parse('{"id": 0}')
    assert made_validators.call_count == 1


def test_a_non_object_json_schema_is_wrapped_with_its_definitions_at_the_root() -> None:
    made = spec({"type": "array", "items": {"$ref": "#/$defs/N"}, "$defs": {"N": {"type": "integer"}}})
    assert made.wrapped and made.strict
    assert made.json_schema["$defs"] == {"N": {"type": "integer"}}
    assert made.parse('{"result": [1, 2]}') == [1, 2]
    with pytest.raises(OutputInvalid, match=r"\$\[1\]: 'x' is not of type 'integer'"):
        made.parse('{"result": [1, "x"]}')
    with pytest.raises(OutputInvalid, match=r"\$: \[1, 2\] is not of type 'object'"):
        made.parse("[1, 2]")
    with pytest.raises(OutputInvalid, match=r"\$: 'result' is a required property"):
        made.parse("{}")
    with pytest.raises(OutputInvalid, match="not JSON"):
        made.parse("[1")


def test_a_wrapped_schema_keeps_its_id_and_anchors() -> None:
    made = spec(
        {
            "$id": "https://example.com/tags",
            "type": "array",
            "items": {"$ref": "#tag"},
            "$defs": {"Tag": {"$anchor": "tag", "type": "string", "maxLength": 3}},
        }
    )
    assert made.wrapped and made.json_schema["$id"] == "https://example.com/tags"
    assert "$id" not in made.json_schema["properties"]["result"]
    assert made.parse('{"result": ["a"]}') == ["a"]
    with pytest.raises(OutputInvalid, match=r"\$\[0\]: 'long' is too long"):
        made.parse('{"result": ["long"]}')


@pytest.mark.parametrize(
    ("schema", "place"),
    [
        ({"type": "array", "items": {"$ref": "#"}}, "/items/$ref"),
        (
            {"type": "array", "items": {"type": "integer"}, "$defs": {"I": {"$ref": "#/items"}}},
            "/$defs/I/$ref",
        ),
        ({"$anchor": "me", "type": "array", "items": {"$ref": "#me"}}, "/items/$ref"),
    ],
)
def test_a_wrapped_schema_cannot_refer_to_its_root(schema: Any, place: str) -> None:
    with pytest.raises(ValueError, match="cannot refer to its root or into it") as caught:
        output_spec(schema)
    assert str(caught.value).startswith(place + ": ")


def test_references_inside_the_schema_are_followed() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/definitions/A"},
            "b": {"$ref": "#bee"},
            "c": {"$ref": "item"},  # an embedded resource, by its $id
            "d": {
                "$id": "item",
                "type": "object",
                "properties": {"x": {"$ref": "#/$defs/X"}},
                "$defs": {"X": {"type": "integer"}},
            },
        },
        "definitions": {"A": {"type": "string"}},
        "$defs": {"B": {"$anchor": "bee", "type": "boolean"}},
    }
    made = spec(schema)
    assert made.parse('{"a": "s", "b": true, "c": {"x": 1}, "d": {"x": 2}}')
    with pytest.raises(OutputInvalid) as caught:
        made.parse('{"a": 1, "b": 1, "c": {"x": "no"}}')
    assert str(caught.value) == (
        "$.a: 1 is not of type 'string'; $.b: 1 is not of type 'boolean'; "
        "$.c.x: 'no' is not of type 'integer'"
    )


def test_a_recursive_json_schema_is_followed() -> None:
    tree = {
        "type": "object",
        "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}},
        "additionalProperties": False,
    }
    assert spec(tree).parse('{"kids": [{"kids": []}]}') == {"kids": [{"kids": []}]}
    with pytest.raises(OutputInvalid, match=r"\$\.kids\[0\]\.kids\[0\]: Additional properties"):
        spec(tree).parse('{"kids": [{"kids": [{"kid": 1}]}]}')


@pytest.mark.parametrize(
    ("schema", "place"),
    [
        (
            {
                "type": "object",
                "properties": {"a": {"$ref": "#/$defs/A"}},
                "$defs": {"A": {"$ref": "#/$defs/A"}},
            },
            "/$defs/A/$ref",
        ),
        (
            {"type": "object", "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"not": {"$ref": "#/$defs/A"}}}},
            "/$defs/B/not/$ref",
        ),
        (
            {"type": "object", "anyOf": [{"type": "object"}, {"allOf": [{"$ref": "#"}]}]},
            "/anyOf/1/allOf/0/$ref",
        ),
        ({"type": "object", "$defs": {"C": {"$anchor": "c", "if": {"$ref": "#c"}}}}, "/$defs/C/if/$ref"),
    ],
)
def test_a_reference_loop_is_refused_at_load(schema: Any, place: str) -> None:
    with pytest.raises(ValueError, match="references loop") as caught:
        output_spec(schema)
    assert str(caught.value).startswith(place + ": ")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "an output schema must be a JSON object, got list"),
        ({"type": ["string", "date"]}, "/type: ['string', 'date'] is not valid"),
        ({"properties": []}, "/properties: [] is not of type 'object'"),
        ({"anyOf": []}, "/anyOf: []"),
        ({"required": "a"}, "/required: 'a' is not of type 'array'"),
        ({"minLength": -1}, "/minLength: -1 is less than the minimum of 0"),
        ({"multipleOf": 0}, "/multipleOf: 0 is less than or equal to the minimum of 0"),
        ({"minimum": True}, "/minimum: True is not of type 'number'"),
        ({"pattern": "("}, "/pattern: '(' is not a 'regex'"),
        ({"patternProperties": {"(": {}}}, "/patternProperties: '(' is not a 'regex'"),
        ({"items": 3}, "/items: 3 is not of type 'object', 'boolean'"),
        ({"uniqueItems": 1}, "/uniqueItems: 1 is not of type 'boolean'"),
        ({"properties": {"a/b": {"type": "strnig"}}}, "/properties/a~1b/type: 'strnig' is not valid"),
        ({"$ref": "http://x/schema"}, "/$ref: 'http://x/schema' is not inside the schema (remote references"),
        (
            {"properties": {"a": {"items": {"$ref": "s.json#/x"}}}},
            "/properties/a/items/$ref: 's.json#/x' is not",
        ),
        ({"$dynamicRef": "https://example.com/meta#m"}, "/$dynamicRef: 'https://example.com/meta#m' is not"),
        ({"$ref": "#/$defs/nope"}, "/$ref: '#/$defs/nope' points to nothing in the schema"),
        ({"$defs": {"a": {"$ref": "#nope"}}}, "/$defs/a/$ref: '#nope' points to nothing in the schema"),
    ],
)
def test_json_schemas_are_checked_with_the_place_of_the_problem(schema: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_json_schema(schema)
    assert str(caught.value).startswith(message)


def test_references_in_data_are_not_references() -> None:
    schema = {"type": "object", "enum": [{"$ref": "https://example.com/x"}], "default": {"$ref": "#/nope"}}
    check_json_schema(schema)
    assert spec(schema).parse('{"$ref": "https://example.com/x"}') == {"$ref": "https://example.com/x"}


def test_schemas_are_bounded_in_depth_and_size() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(MAX_OUTPUT_SCHEMA_DEPTH + 2):
        deep = {"type": "array", "items": deep}
    with pytest.raises(ValueError, match="deeper than"):
        output_spec(deep)
    very_deep: dict[str, Any] = {}
    for _ in range(10_000):
        very_deep = {"not": very_deep}
    with pytest.raises(ValueError, match="deeper than"):
        output_spec(very_deep)
    with pytest.raises(ValueError, match="must be JSON data"):
        output_spec({"enum": [{1, 2}]})
    big = {"type": "object", "description": "x" * 100_001}
    with pytest.raises(ValueError, match="over 100000"):
        output_spec(big)


def test_the_deepest_schema_allowed_is_checked_and_used() -> None:
    deepest: dict[str, Any] = {"type": "string"}
    answer: Any = "x"
    for _ in range(MAX_OUTPUT_SCHEMA_DEPTH - 1):
        deepest = {"type": "array", "items": deepest}
        answer = [answer]
    made = spec(deepest)
    assert made.parse(json.dumps({"result": answer})) == answer
    with pytest.raises(OutputInvalid, match=r"\$(\[0\]){31}: 1 is not of type 'string'"):
        made.parse(json.dumps({"result": json.loads(json.dumps(answer).replace('"x"', "1"))}))


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=6,
    )
)
def test_an_open_schema_takes_any_json_value(value: Any) -> None:
    made = spec({})
    assert made.wrapped
    assert made.parse(json.dumps({"result": value})) == value


# -- on checkpoints and jobs --------------------------------------------------------------------------


def test_a_checkpoint_keeps_its_output_through_data_json_and_wire() -> None:
    job = make_job()
    plain = make_checkpoint(job, 1)
    typed = plain._replace(output={"city": "Oslo", "n": [1, 2.5, None]})
    data = typed.to_data()
    assert data["output"] == {"city": "Oslo", "n": [1, 2.5, None]}
    assert Checkpoint.from_data(json.loads(json.dumps(data))) == typed
    assert checkpoint_json(typed) == dumps(data)
    wire = typed.to_wire()
    assert wire["output"] == data["output"]
    assert CheckpointWire.model_validate(wire).output == data["output"]
    assert "output" not in plain.to_data() and "output" not in plain.to_wire()
    assert checkpoint_json(plain) == dumps(plain.to_data())
    CheckpointWire.model_validate(plain.to_wire())


def test_the_plain_checkpoint_tail_covers_every_field_after_retry_count() -> None:
    # Else every checkpoint would take the slow path of the stores' encoder.
    assert len(_PLAIN_TAIL_VALUES) == len(Checkpoint._fields) - _TAIL_START
    assert make_checkpoint(make_job(), 1)[_TAIL_START:] == _PLAIN_TAIL_VALUES


def test_a_jobs_output_is_transient() -> None:
    assert "output" in TRANSIENT_FIELDS
    assert "output" not in STATE_FIELDS
    job = make_job()
    assert job.output is None
    job.output = {"a": 1}
    assert job.copy().output == {"a": 1}
    assert "output" not in job.to_wire()


def test_invalid_answers_in_a_row_are_the_retry_prompts_since_the_last_other_user_message() -> None:
    spec = output_spec(int)
    other = output_spec(str)
    answer = AssistantMessage((TextPart("nope"),))
    prompt = UserMessage.text(retry_prompt(spec, "Invalid JSON"))
    query = UserMessage.text("how many?")
    assert invalid_answers_in_a_row([query], spec) == 0
    assert invalid_answers_in_a_row([query, answer, prompt, answer, prompt], spec) == 2
    # A continue's query (after a valid answer) starts a new row; tool steps do not.
    calls = AssistantMessage((ToolCall("c1", "add", {}),))
    results = ToolResultsMessage((ToolResult("c1", "add", "3"),))
    history = [query, answer, prompt, answer, UserMessage.text("and now?"), answer, prompt, calls, results]
    assert invalid_answers_in_a_row(history, spec) == 1
    # Another schema's prompt, or a person who typed the opening, is not a retry prompt of this one.
    assert invalid_answers_in_a_row([query, answer, UserMessage.text(retry_prompt(other, "x"))], spec) == 0
    typed = UserMessage.text("Your answer is not valid output: x")
    assert invalid_answers_in_a_row([query, typed], spec) == 0
