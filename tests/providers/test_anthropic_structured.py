"""Structured output in the Anthropic adapter: native ``output_config.format`` or a forced output tool,
through the real ``anthropic`` SDK on a mock transport."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import anthropic
import pytest

from expert_jobs.domain.deltas import TextDelta, ToolCallArgumentsDelta, ToolCallStartDelta, UsageDelta
from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.messages import TextPart, ThinkingPart, ToolCall
from expert_jobs.domain.models import MODELS
from expert_jobs.ports.provider import (
    GenerationRequest,
    GenerationResponse,
    OutputSchema,
    ReasoningSettings,
    ToolDeclaration,
)
from expert_jobs.providers.anthropic import AnthropicProvider, structured_output_mode
from tests.providers.kit import FIXTURES, WEATHER, MockAPI, fixture, request

REPORT = OutputSchema(
    "weather_report",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature_c": {"type": "number", "minimum": -90},
            "conditions": {"type": "string", "enum": ["sunny", "cloudy", "rain"]},
        },
        "required": ["city", "temperature_c", "conditions"],
    },
)
ANSWER = {"city": "Paris", "temperature_c": 24, "conditions": "sunny"}
NATIVE_MODEL = "claude-sonnet-4-5"
TOOL_MODEL = "claude-opus-4-1"
SSE = "text/event-stream"


def structured(name: str) -> Any:
    """``fixtures/anthropic/anthropic_structured_<name>.json``."""
    return fixture("anthropic", f"anthropic_structured_{name}")


def structured_sse(name: str) -> bytes:
    """``fixtures/anthropic/anthropic_structured_<name>.sse``."""
    return (FIXTURES / "anthropic" / f"anthropic_structured_{name}.sse").read_bytes()


def asking(req: GenerationRequest, schema: OutputSchema = REPORT) -> GenerationRequest:
    return dataclasses.replace(req, output_schema=schema)


def adapter(api: MockAPI, **options: Any) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", http_client=api.client(), **options)


async def streamed(
    provider: AnthropicProvider, req: GenerationRequest
) -> tuple[list[Any], GenerationResponse]:
    *deltas, final = [item async for item in provider.stream(req)]
    assert isinstance(final, GenerationResponse)
    return deltas, final


@pytest.mark.parametrize("model", [m for m in MODELS if m.startswith("claude")])
def test_the_catalogue_models_from_claude_4_5_on_get_the_native_mode(model: str) -> None:
    native = model in {"claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"}
    assert structured_output_mode(model, REPORT) == ("native" if native else "tool")
    # A schema that is not to be enforced exactly goes through the tool on every model.
    assert structured_output_mode(model, dataclasses.replace(REPORT, strict=False)) == "tool"


def test_unknown_and_dated_ids_follow_their_family() -> None:
    assert structured_output_mode("claude-opus-4-6", REPORT) == "native"
    assert structured_output_mode("claude-sonnet-4-5-20250929", REPORT) == "native"
    assert structured_output_mode("claude-opus-4-1-20250805", REPORT) == "tool"
    assert structured_output_mode("claude-sonnet-4-0", REPORT) == "tool"
    assert structured_output_mode("claude-3-7-sonnet-latest", REPORT) == "tool"


async def test_native_mode_sends_the_strict_schema_in_output_config_and_returns_the_json_text() -> None:
    api = MockAPI().reply(structured("native"))

    response = await adapter(api).generate(asking(request(NATIVE_MODEL)))

    body = api.body
    schema = body["output_config"]["format"]["schema"]
    assert body["output_config"]["format"]["type"] == "json_schema"
    assert schema == anthropic.transform_schema(dict(REPORT.json_schema))
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["city", "temperature_c", "conditions"]
    assert "minimum" not in schema["properties"]["temperature_c"]  # moved into its description
    assert "tools" not in body and "tool_choice" not in body
    assert response.parts == (TextPart(json.dumps(ANSWER, separators=(",", ":"))),)
    assert response.finish_reason == "stop"


async def test_native_mode_keeps_the_experts_tools_callable() -> None:
    api = MockAPI().reply(fixture("anthropic", "tool_use"))

    response = await adapter(api).generate(asking(request(NATIVE_MODEL, tools=(WEATHER,))))

    assert [tool["name"] for tool in api.body["tools"]] == ["get_weather"]
    assert "tool_choice" not in api.body
    assert "output_config" in api.body
    assert response.finish_reason == "tool_calls"


async def test_tool_mode_forces_a_tool_named_after_the_schema_and_returns_its_input_as_text() -> None:
    api = MockAPI().reply(structured("tool"))

    response = await adapter(api).generate(asking(request(TOOL_MODEL)))

    body = api.body
    assert "output_config" not in body
    (tool,) = body["tools"]
    assert tool["name"] == "weather_report"
    assert tool["input_schema"] == dict(REPORT.json_schema)
    assert "strict" not in tool  # models before Claude 4.5 have no strict tools
    assert body["tool_choice"] == {"type": "tool", "name": "weather_report"}
    assert body["system"] == "You are terse."
    (answer,) = response.parts
    assert type(answer) is TextPart and json.loads(answer.text) == ANSWER
    assert response.finish_reason == "stop"


async def test_tool_mode_beside_the_experts_tools_asks_for_any_tool_and_maps_real_calls() -> None:
    api = MockAPI().reply(fixture("anthropic", "tool_use"))

    response = await adapter(api).generate(asking(request(TOOL_MODEL, tools=(WEATHER,))))

    assert [tool["name"] for tool in api.body["tools"]] == ["get_weather", "weather_report"]
    assert api.body["tool_choice"] == {"type": "any"}
    assert response.finish_reason == "tool_calls"
    assert ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris"}) in response.parts


@pytest.mark.parametrize(("system", "sent"), [("You are terse.", "You are terse.\n\n"), ("", "")])
async def test_tool_mode_with_thinking_asks_in_the_instruction_and_drops_the_preamble(
    system: str, sent: str
) -> None:
    api = MockAPI().reply(structured("tool_thinking"))
    req = asking(request(TOOL_MODEL, reasoning=ReasoningSettings(budget_tokens=4000), system=system))

    response = await adapter(api).generate(req)

    # The API refuses a forced tool choice while thinking.
    assert "tool_choice" not in api.body
    assert api.body["system"] == sent + "Give your final answer by calling the weather_report tool."
    thinking, answer = response.parts
    assert isinstance(thinking, ThinkingPart) and thinking.signature is not None
    assert type(answer) is TextPart and json.loads(answer.text) == ANSWER
    assert response.finish_reason == "stop"


async def test_only_the_first_call_of_the_output_tool_is_the_answer() -> None:
    body = structured("tool")
    second = dict(body["content"][0], id="toolu_second", input={"city": "Lyon"})
    body["content"].append(second)
    api = MockAPI().reply(body)

    response = await adapter(api).generate(asking(request(TOOL_MODEL)))

    (answer,) = response.parts
    assert type(answer) is TextPart and json.loads(answer.text) == ANSWER


async def test_a_schema_not_to_be_enforced_exactly_uses_the_tool_without_strict() -> None:
    api = MockAPI().reply(structured("tool"))

    await adapter(api).generate(asking(request(NATIVE_MODEL), dataclasses.replace(REPORT, strict=False)))

    assert "output_config" not in api.body
    (tool,) = api.body["tools"]
    assert tool["input_schema"] == dict(REPORT.json_schema) and "strict" not in tool


async def test_the_tool_mode_forced_on_a_recent_model_makes_the_tool_strict() -> None:
    api = MockAPI().reply(structured("tool"))

    await adapter(api, structured_output="tool").generate(asking(request(NATIVE_MODEL)))

    (tool,) = api.body["tools"]
    assert tool["strict"] is True
    assert tool["input_schema"] == anthropic.transform_schema(dict(REPORT.json_schema))
    assert "output_config" not in api.body


async def test_the_native_mode_forced_on_an_older_model_sends_output_config() -> None:
    api = MockAPI().reply(structured("native"))

    await adapter(api, structured_output="native").generate(asking(request(TOOL_MODEL)))

    assert api.body["output_config"]["format"]["type"] == "json_schema"
    assert "tools" not in api.body


async def test_a_schema_strict_mode_cannot_take_falls_back_to_the_tool() -> None:
    # transform_schema refuses a schema with no type, anyOf, oneOf, allOf, const or enum.
    loose = OutputSchema("loose", {"type": "object", "properties": {"anything": {"description": "any"}}})
    api = MockAPI().reply(structured("tool"))

    await adapter(api).generate(asking(request(NATIVE_MODEL), loose))

    assert "output_config" not in api.body
    (tool,) = api.body["tools"]
    assert tool["name"] == "loose" and tool["input_schema"] == dict(loose.json_schema)


@pytest.mark.parametrize(
    ("name", "tools", "expected"),
    [
        ("weather report!", (), "weather_report_"),
        ("get_weather", (WEATHER,), "get_weather_2"),
        ("x" * 80, (), "x" * 64),
        ("", (), "final_answer"),
    ],
)
async def test_the_output_tool_name_is_valid_and_unlike_the_experts_tools(
    name: str, tools: tuple[ToolDeclaration, ...], expected: str
) -> None:
    api = MockAPI().reply(structured("tool"))

    await adapter(api).generate(
        asking(request(TOOL_MODEL, tools=tools), dataclasses.replace(REPORT, name=name))
    )

    assert api.body["tools"][-1]["name"] == expected


async def test_a_native_answer_streams_as_text_and_ends_as_generate_returns_it() -> None:
    api = MockAPI().raw(structured_sse("native"), content_type=SSE).reply(structured("native"))
    provider = adapter(api)
    req = asking(request(NATIVE_MODEL))

    deltas, final = await streamed(provider, req)
    generated = await provider.generate(req)

    assert final == generated
    text = [d.text for d in deltas if isinstance(d, TextDelta)]
    assert json.loads("".join(text)) == ANSWER and len(text) == 3
    assert api.sent[0].body["output_config"] == api.sent[1].body["output_config"]


async def test_a_tool_mode_answer_streams_as_text_never_as_a_tool_call() -> None:
    api = MockAPI().raw(structured_sse("tool"), content_type=SSE).reply(structured("tool"))
    provider = adapter(api)
    req = asking(request(TOOL_MODEL))

    deltas, final = await streamed(provider, req)
    generated = await provider.generate(req)

    assert not any(isinstance(d, ToolCallStartDelta | ToolCallArgumentsDelta) for d in deltas)
    text = "".join(d.text for d in deltas if isinstance(d, TextDelta))
    assert json.loads(text) == ANSWER
    assert any(isinstance(d, UsageDelta) for d in deltas)
    assert final == generated
    (answer,) = final.parts
    assert type(answer) is TextPart and json.loads(answer.text) == ANSWER
    assert final.finish_reason == "stop"
    assert api.sent[0].body["tool_choice"] == {"type": "tool", "name": "weather_report"}


def test_an_unknown_structured_output_mode_is_refused() -> None:
    with pytest.raises(UsageError, match="structured_output"):
        AnthropicProvider(api_key="k", structured_output="json")  # type: ignore[arg-type]


async def test_no_output_schema_changes_nothing_in_the_request() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))

    await adapter(api).generate(request(NATIVE_MODEL, tools=(WEATHER,)))

    assert not {"output_config", "tool_choice"} & set(api.body)
    assert [tool["name"] for tool in api.body["tools"]] == ["get_weather"]
