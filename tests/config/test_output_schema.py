"""``outputJsonSchema`` on an expert: loaded as a table or a JSON string, checked at load with the
place of the problem, and given to the expert's definition (structured output)."""

from __future__ import annotations

import json

import pytest

from expert_jobs.config import ConfigError, build_experts
from tests.config.conftest import Load

_TABLE = """
[experts."extract"]
instruction = "Extract the invoice."

[experts."extract".outputJsonSchema]
title = "Invoice"
type = "object"
required = ["number", "total"]
additionalProperties = false

[experts."extract".outputJsonSchema.properties.number]
type = "string"

[experts."extract".outputJsonSchema.properties.total]
type = "number"
minimum = 0
"""


def test_an_output_schema_as_a_table_reaches_the_expert(load: Load) -> None:
    config = load(_TABLE)
    _, experts = build_experts(config)
    (expert,) = experts
    assert expert.output is not None
    assert expert.output.name == "Invoice"  # its title
    assert not expert.output.wrapped and expert.output.strict
    assert expert.output.json_schema["required"] == ["number", "total"]
    assert expert.output.parse('{"number": "A-1", "total": 3}') == {"number": "A-1", "total": 3}


def test_an_output_schema_as_a_json_string_and_a_non_object_root(load: Load) -> None:
    schema = json.dumps({"type": "array", "items": {"type": "string"}})
    config = load(f'[experts."tags"]\ninstruction = "Tag it."\noutputJsonSchema = {json.dumps(schema)}\n')
    _, experts = build_experts(config)
    (expert,) = experts
    assert expert.output is not None and expert.output.wrapped
    assert expert.output.name == "tags"  # no title: the expert's name
    assert expert.output.parse('{"result": ["a", "b"]}') == ["a", "b"]


def test_any_draft_2020_12_keyword_may_be_used(load: Load) -> None:
    config = load(
        """
[experts."x"]
instruction = "i"

[experts."x".outputJsonSchema]
type = "object"
patternProperties = { "^n_" = { type = "integer" } }
unevaluatedProperties = false
"""
    )
    _, experts = build_experts(config)
    (expert,) = experts
    assert expert.output is not None
    assert expert.output.parse('{"n_a": 1}') == {"n_a": 1}
    with pytest.raises(ValueError, match=r"\$\.n_a: 'x' is not of type 'integer'"):
        expert.output.parse('{"n_a": "x"}')


def test_experts_without_one_have_none(load: Load) -> None:
    _, experts = build_experts(load('[experts."x"]\ninstruction = "i"\n'))
    assert experts[0].output is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('"{not json"', "not valid JSON"),
        ("[1, 2]", "must be a JSON schema object"),
        ('{ type = "strnig" }', "/type: 'strnig' is not valid"),
        ('{ type = "string", pattern = "(" }', "/pattern: '(' is not a 'regex'"),
        (
            '{ type = "object", properties = { a = { "$ref" = "#/$defs/missing" } } }',
            "/properties/a/$ref: '#/$defs/missing' points to nothing in the schema",
        ),
        (
            '{ type = "object", properties = { a = { "$ref" = "https://example.com/a.json" } } }',
            "/properties/a/$ref: 'https://example.com/a.json' is not inside the schema",
        ),
        ('{ type = "integer", minimum = "0" }', "/minimum: '0' is not of type 'number'"),
    ],
)
def test_a_bad_output_schema_is_refused_at_load_with_its_place(load: Load, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(f'[experts."x"]\ninstruction = "i"\noutputJsonSchema = {value}\n')
    text = str(caught.value)
    assert 'experts."x".outputJsonSchema' in text
    assert message in text


def test_an_output_schema_too_big_is_refused(load: Load) -> None:
    properties = ", ".join(f'p{i} = {{ type = "string", description = "{"d" * 200}" }}' for i in range(600))
    with pytest.raises(ConfigError, match="over 100000"):
        schema = f'{{ type = "object", properties = {{ {properties} }} }}'
        load(f'[experts."x"]\ninstruction = "i"\noutputJsonSchema = {schema}\n')
