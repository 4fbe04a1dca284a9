"""Structured output for Gemini: the request's output schema as ``response_json_schema`` (or, where
Gemini cannot combine one with function calling, as an instruction), the answer as JSON text."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from expert_jobs.domain.deltas import TextDelta, UsageDelta
from expert_jobs.domain.messages import TextPart
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, OutputSchema
from expert_jobs.providers.gemini import SCHEMA_INSTRUCTION, GeminiProvider
from tests.providers.kit import FIXTURES, WEATHER, MockAPI, fixture, request

FORECAST = OutputSchema(
    "forecast",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature_c": {"type": "integer"},
            "sky": {"type": "string", "enum": ["sunny", "cloudy", "rainy"]},
        },
        "required": ["city", "temperature_c", "sky"],
        "additionalProperties": False,
    },
)
ANSWER = {"city": "Paris", "temperature_c": 24, "sky": "sunny"}


def adapter(api: MockAPI) -> GeminiProvider:
    return GeminiProvider(api_key="AIza-test", http_client=api.client())


def structured(model: str, **options: Any) -> GenerationRequest:
    return dataclasses.replace(request(model, **options), output_schema=FORECAST)


def generation_config(body: dict[str, Any]) -> dict[str, Any]:
    """The generation config with camelCase keys, however the SDK spelled them."""
    config = body["generationConfig"]
    names = {"response_mime_type": "responseMimeType", "response_json_schema": "responseJsonSchema"}
    return {names.get(key, key): value for key, value in config.items()}


def system_text(body: dict[str, Any]) -> str:
    instruction = body.get("systemInstruction") or body["system_instruction"]
    return "".join(part["text"] for part in instruction["parts"])


async def test_without_tools_the_schema_is_sent_and_the_answer_is_its_json_text() -> None:
    api = MockAPI().reply(fixture("gemini", "gemini_structured_answer"))

    response = await adapter(api).generate(structured("gemini-2.5-flash"))

    config = generation_config(api.body)
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == FORECAST.json_schema
    assert "responseSchema" not in config and "response_schema" not in config
    assert system_text(api.body) == "You are terse."  # no instruction needed: the API enforces it
    (part,) = response.parts
    assert isinstance(part, TextPart) and json.loads(part.text) == ANSWER
    assert (response.finish_reason, response.usage) == ("stop", Usage.of(58, 21))


async def test_gemini_2_5_with_tools_gets_the_schema_as_an_instruction_not_a_response_schema() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))

    await adapter(api).generate(structured("gemini-2.5-flash", tools=(WEATHER,)))

    config = generation_config(api.body)
    assert "responseMimeType" not in config and "responseJsonSchema" not in config
    assert api.body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    schema_text = json.dumps(FORECAST.json_schema, sort_keys=True)
    assert system_text(api.body) == "You are terse.\n\n" + SCHEMA_INSTRUCTION.format(
        name="forecast", schema=schema_text
    )


async def test_the_instruction_stands_alone_without_a_system_prompt() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))

    await adapter(api).generate(structured("gemini-2.5-pro", tools=(WEATHER,), system=""))

    assert system_text(api.body).startswith("When you give your final answer")


async def test_gemini_3_takes_the_schema_and_the_tools_together() -> None:
    api = MockAPI().reply(fixture("gemini", "tool_call_with_id"))

    await adapter(api).generate(structured("gemini-3-pro-preview", tools=(WEATHER,)))

    config = generation_config(api.body)
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == FORECAST.json_schema
    assert api.body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert system_text(api.body) == "You are terse."


async def test_no_schema_no_json_mode() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))

    await adapter(api).generate(request("gemini-2.5-flash"))

    config = generation_config(api.body)
    assert "responseMimeType" not in config and "responseJsonSchema" not in config


async def test_a_streamed_structured_answer_arrives_as_text_and_ends_as_one_json_part() -> None:
    body = (FIXTURES / "gemini" / "gemini_structured_stream.sse").read_bytes()
    api = MockAPI().raw(body, content_type="text/event-stream").reply(fixture("gemini", "text"))
    provider = adapter(api)
    req = structured("gemini-3-pro-preview", tools=(WEATHER,))

    items = [item async for item in provider.stream(req)]
    await provider.generate(req)

    *deltas, response = items
    assert isinstance(response, GenerationResponse)
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert json.loads(text) == ANSWER
    assert deltas[-1] == UsageDelta(Usage.of(140, 85, reasoning=64))
    (part,) = response.parts
    assert isinstance(part, TextPart) and part.text == text and part.signature is not None
    streamed_call, generated_call = api.sent
    assert streamed_call.body == generated_call.body  # the schema goes out on both paths alike
    assert generation_config(streamed_call.body)["responseJsonSchema"] == FORECAST.json_schema
