"""Structured output on the ``openai`` SDK's two adapters: OpenAI's ``json_schema`` text format
(strict when the schema allows it) and DeepSeek's JSON mode with the schema in the system message."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from expert_jobs.domain.messages import TextPart, ThinkingPart
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, OutputSchema
from expert_jobs.providers.deepseek import DeepSeekProvider
from expert_jobs.providers.openai import OpenAIProvider, strict_schema_ok
from tests.providers.kit import FIXTURES, WEATHER, MockAPI, request
from tests.providers.test_openai_streaming import StreamAPI, collect, split, sse

REPORT = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "temperature_c": {"type": "integer"},
        "conditions": {"type": "string"},
    },
    "required": ["city", "temperature_c", "conditions"],
    "additionalProperties": False,
}
ANSWER = {"city": "Paris", "temperature_c": 24, "conditions": "sunny"}


def answer_fixture(name: str) -> Any:
    return json.loads((FIXTURES / name.split("_", 1)[0] / f"{name}.json").read_text())


def structured(model: str, schema: OutputSchema, *, system: str = "You are terse.") -> GenerationRequest:
    return replace(request(model, tools=(WEATHER,), system=system), output_schema=schema)


async def test_openai_asks_for_a_strict_json_schema_and_answers_with_the_json_text() -> None:
    api = MockAPI().reply(answer_fixture("openai_structured_answer"))
    provider = OpenAIProvider(api_key="sk-test", http_client=api.client())

    response = await provider.generate(structured("gpt-5-mini", OutputSchema("weather_report", REPORT)))

    assert api.body["text"] == {
        "format": {"type": "json_schema", "name": "weather_report", "schema": REPORT, "strict": True}
    }
    assert [t["name"] for t in api.body["tools"]] == ["get_weather"]  # tools stay available
    thinking, text = response.parts
    assert isinstance(thinking, ThinkingPart)
    assert isinstance(text, TextPart) and json.loads(text.text) == ANSWER
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(96, 148, reasoning=128)


@pytest.mark.parametrize(
    ("schema", "asked", "strict"),
    [
        ({**REPORT, "required": ["city"]}, True, False),  # optional properties
        ({k: v for k, v in REPORT.items() if k != "additionalProperties"}, True, False),
        (REPORT, False, False),  # the request itself asks for no strictness
        (
            {
                "type": "object",
                "properties": {"days": {"type": "array", "items": {"$ref": "#/$defs/day"}}},
                "required": ["days"],
                "additionalProperties": False,
                "$defs": {
                    "day": {"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}
                },
            },
            True,
            False,  # a definition that allows other properties
        ),
        (
            {
                "type": "object",
                "properties": {"at": {"anyOf": [{"type": "null"}, REPORT]}},
                "required": ["at"],
                "additionalProperties": False,
            },
            True,
            True,
        ),
    ],
    ids=["optional-property", "open-object", "not-asked", "open-definition", "nested-anyof"],
)
async def test_openai_strict_mode_only_for_schemas_that_meet_its_rules(
    schema: dict[str, Any], asked: bool, strict: bool
) -> None:
    api = MockAPI().reply(answer_fixture("openai_structured_answer"))
    provider = OpenAIProvider(api_key="sk-test", http_client=api.client())

    await provider.generate(structured("gpt-5-mini", OutputSchema("weather", schema, strict=asked)))

    assert api.body["text"]["format"]["strict"] is strict
    assert api.body["text"]["format"]["schema"] == schema
    assert strict_schema_ok(schema) is (strict or not asked)


async def test_openai_schema_names_are_made_acceptable_to_the_api() -> None:
    api = MockAPI().reply(answer_fixture("openai_structured_answer"))
    provider = OpenAIProvider(api_key="sk-test", http_client=api.client())

    await provider.generate(
        structured("gpt-5-mini", OutputSchema("weather report: Paris/" + "x" * 80, REPORT))
    )

    name = api.body["text"]["format"]["name"]
    assert name.startswith("weather_report__Paris_") and len(name) == 64


async def test_openai_streams_structured_output_with_the_same_request() -> None:
    body = answer_fixture("openai_structured_answer")
    events = sse(
        {"type": "response.output_text.delta", "sequence_number": 1, "output_index": 1, "content_index": 0,
         "item_id": body["output"][1]["id"], "delta": '{"city":"Paris",', "logprobs": []},
        {"type": "response.completed", "sequence_number": 2, "response": body},
    )  # fmt: skip
    api = StreamAPI().serve(events)
    provider = OpenAIProvider(api_key="sk-test", http_client=api.client())

    _, final = split(
        await collect(provider, structured("gpt-5-mini", OutputSchema("weather_report", REPORT)))
    )

    assert api.body["text"]["format"]["type"] == "json_schema" and api.body["stream"] is True
    assert json.loads(final.parts[-1].text) == ANSWER  # type: ignore[union-attr]


async def test_deepseek_turns_on_json_mode_and_puts_the_schema_in_the_system_message() -> None:
    api = MockAPI().reply(answer_fixture("deepseek_structured_answer"))
    provider = DeepSeekProvider(api_key="sk-ds-test", http_client=api.client())

    response = await provider.generate(structured("deepseek-chat", OutputSchema("weather_report", REPORT)))

    assert api.body["response_format"] == {"type": "json_object"}
    system = api.body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are terse.\n\n")
    assert "json" in system["content"]  # DeepSeek refuses JSON mode without the word in the prompt
    assert json.loads(system["content"].split("\n", 3)[-1]) == REPORT
    assert "weather_report" in system["content"]
    (text,) = response.parts
    assert isinstance(text, TextPart) and json.loads(text.text) == ANSWER
    assert response.usage == Usage.of(141, 27, cached=128)


async def test_deepseek_json_mode_without_an_instruction_gets_a_system_message_of_its_own() -> None:
    api = MockAPI().reply(answer_fixture("deepseek_structured_answer"))
    provider = DeepSeekProvider(api_key="sk-ds-test", http_client=api.client())

    await provider.generate(
        structured("deepseek-reasoner", OutputSchema("weather_report", REPORT), system="")
    )

    first = api.body["messages"][0]
    assert first["role"] == "system" and first["content"].startswith("Give your final answer in json")
    assert api.body["messages"][1]["role"] == "user"


async def test_no_output_schema_sends_no_format_to_either_provider() -> None:
    openai_api = MockAPI().reply(answer_fixture("openai_structured_answer"))
    deepseek_api = MockAPI().reply(answer_fixture("deepseek_structured_answer"))

    await OpenAIProvider(api_key="sk-test", http_client=openai_api.client()).generate(request("gpt-5-mini"))
    await DeepSeekProvider(api_key="sk-ds-test", http_client=deepseek_api.client()).generate(
        request("deepseek-chat")
    )

    assert "text" not in openai_api.body
    assert "response_format" not in deepseek_api.body
    assert deepseek_api.body["messages"][0] == {"role": "system", "content": "You are terse."}
