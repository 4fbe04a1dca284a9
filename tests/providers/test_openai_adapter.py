"""The OpenAI adapter (Responses API) through the real ``openai`` SDK on a mock transport."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import (
    AssistantMessage,
    FilePart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import Provider, ReasoningSettings
from expert_jobs.providers.openai import OpenAIProvider
from tests.providers.kit import TIME, WEATHER, MockAPI, fixture, request

QUESTION = UserMessage.text("What is the weather in Paris?")


def adapter(api: MockAPI, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test", http_client=api.client(), **options)


async def test_plain_text_on_a_model_that_takes_temperature() -> None:
    api = MockAPI().reply(fixture("openai", "text"))
    provider = adapter(api)
    assert isinstance(provider, Provider)

    response = await provider.generate(request("gpt-4.1", temperature=0.0))

    assert api.sent[0].url == "https://api.openai.com/v1/responses"
    assert api.body == {
        "model": "gpt-4.1",
        "instructions": "You are terse.",
        "input": [{"role": "user", "content": "What is the weather in Paris?"}],
        "store": False,
        "temperature": 0.0,
    }
    assert api.sent[0].headers["x-stainless-retry-count"] == "0"
    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(36, 9)
    assert response.model == "gpt-4.1-2025-04-14" and response.provider == "openai"


async def test_reasoning_model_drops_temperature_and_asks_for_encrypted_reasoning() -> None:
    api = MockAPI().reply(fixture("openai", "tool_call"))

    response = await adapter(api).generate(
        request("gpt-5", tools=(WEATHER,), temperature=0.3, max_output_tokens=4000)
    )

    body = api.body
    assert "temperature" not in body
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["store"] is False
    assert body["max_output_tokens"] == 4000
    assert "reasoning" not in body  # no settings: the model's default effort
    assert body["tools"] == [
        {
            "type": "function",
            "name": "get_weather",
            "description": "Current weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
            "strict": False,
        }
    ]
    reasoning, call = response.parts
    assert isinstance(reasoning, ThinkingPart) and reasoning.provider == "openai"
    assert reasoning.provider_data is not None
    assert reasoning.provider_data["id"] == "rs_68ad2a5c0a508190a7f3a1b1e1f6f2a50c0f5b4b7d2e8f01"
    assert str(reasoning.provider_data["encrypted_content"]).startswith("gAAAAAB")
    assert call == ToolCall("call_kZ9CwbsTd3fNYPJkCDaH3XeB", "get_weather", {"city": "Paris"})
    assert response.finish_reason == "tool_calls"
    assert response.usage == Usage.of(128, 210, reasoning=192)


async def test_reasoning_items_function_calls_and_outputs_are_replayed_in_order() -> None:
    api = MockAPI().reply(fixture("openai", "parallel")).reply(fixture("openai", "text"))
    provider = adapter(api)

    first = await provider.generate(request("gpt-5-mini", tools=(WEATHER, TIME)))
    reasoning, weather, time = first.parts
    assert isinstance(reasoning, ThinkingPart) and reasoning.provider_data is not None
    assert isinstance(weather, ToolCall) and isinstance(time, ToolCall)

    results = ToolResultsMessage(
        (ToolResult(weather.id, "get_weather", "sunny"), ToolResult(time.id, "get_time", "clock broke", True))
    )
    foreign = ThinkingPart("claude's thoughts", signature="sig", provider="anthropic")
    assistant = AssistantMessage((foreign, *first.parts), "openai")
    await provider.generate(request("gpt-5-mini", QUESTION, assistant, results, tools=(WEATHER, TIME)))

    assert api.body["input"] == [
        {"role": "user", "content": "What is the weather in Paris?"},
        {
            "type": "reasoning",
            "id": reasoning.provider_data["id"],
            "summary": [],
            "encrypted_content": reasoning.provider_data["encrypted_content"],
        },
        {
            "type": "function_call",
            "call_id": weather.id,
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {"type": "function_call", "call_id": time.id, "name": "get_time", "arguments": '{"city": "Paris"}'},
        {"type": "function_call_output", "call_id": weather.id, "output": "sunny"},
        {"type": "function_call_output", "call_id": time.id, "output": "Error: clock broke"},
    ]


async def test_reasoning_items_are_not_sent_to_a_model_that_does_not_reason() -> None:
    api = MockAPI().reply(fixture("openai", "tool_call")).reply(fixture("openai", "text"))
    provider = adapter(api)
    first = await provider.generate(request("gpt-5", tools=(WEATHER,)))
    call = first.parts[1]
    assert isinstance(call, ToolCall)

    history = (
        QUESTION,
        AssistantMessage(first.parts, "openai"),
        ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),)),
        AssistantMessage((TextPart("It is sunny."),), "openai"),
    )
    await provider.generate(request("gpt-4.1", *history, tools=(WEATHER,)))

    assert [item.get("type", item.get("role")) for item in api.body["input"]] == [
        "user",
        "function_call",
        "function_call_output",
        "assistant",
    ]
    assert api.body["input"][3] == {"role": "assistant", "content": "It is sunny."}
    assert "include" not in api.body


async def test_cached_input_is_already_inside_input_tokens() -> None:
    api = MockAPI().reply(fixture("openai", "cached"))

    response = await adapter(api).generate(request("gpt-4.1"))

    assert response.usage == Usage.of(2006, 300, cached=1920)


async def test_reasoning_summary_and_usage() -> None:
    api = MockAPI().reply(fixture("openai", "reasoning"))

    response = await adapter(api, reasoning_summary="auto").generate(
        request("o3", reasoning=ReasoningSettings(effort="minimal"))
    )

    assert api.body["reasoning"] == {"effort": "low", "summary": "auto"}  # the o-series has no "minimal"
    thinking, text = response.parts
    assert isinstance(thinking, ThinkingPart) and thinking.text.startswith("**Comparing decimals**")
    assert text == TextPart("9.9 is greater than 9.11.")
    # output_tokens (1186) already includes the reasoning tokens (1024)
    assert response.usage == Usage.of(75, 1186, reasoning=1024)


@pytest.mark.parametrize(
    ("model", "settings", "effort"),
    [
        ("gpt-5", ReasoningSettings(effort="minimal"), "minimal"),
        ("gpt-5", ReasoningSettings(enabled=False), "minimal"),
        ("o4-mini", ReasoningSettings(enabled=False), "low"),
        ("gpt-5-nano", ReasoningSettings(effort="high"), "high"),
        ("o3-mini", ReasoningSettings(budget_tokens=8000), "medium"),
        ("o3-mini", ReasoningSettings(budget_tokens=30_000), "high"),
    ],
)
async def test_reasoning_settings_map_to_effort(model: str, settings: ReasoningSettings, effort: str) -> None:
    api = MockAPI().reply(fixture("openai", "reasoning"))

    await adapter(api).generate(request(model, reasoning=settings))

    assert api.body["reasoning"] == {"effort": effort}


async def test_no_reasoning_settings_for_a_model_that_does_not_reason() -> None:
    api = MockAPI().reply(fixture("openai", "text"))

    await adapter(api).generate(request("gpt-5-chat-latest", reasoning=ReasoningSettings(effort="high")))

    assert "reasoning" not in api.body and "include" not in api.body
    assert api.body["temperature"] == 0.0


async def test_tools_on_a_model_without_function_calling_fail_before_the_call() -> None:
    api = MockAPI()

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("gpt-5-chat-latest", tools=(WEATHER,)))

    assert caught.value.kind == "bad_request" and not caught.value.retryable
    assert api.sent == []


async def test_files_become_input_image_and_input_file() -> None:
    api = MockAPI().reply(fixture("openai", "text"))
    png, pdf = b"\x89PNG\r\n\x1a\n", b"%PDF-1.7"
    message = UserMessage(
        (
            TextPart("Compare these."),
            FilePart("chart.png", "image/png", png),
            FilePart("report.pdf", "application/pdf", pdf),
        )
    )

    await adapter(api).generate(request("gpt-4.1", message))

    assert api.body["input"][0]["content"] == [
        {"type": "input_text", "text": "Compare these."},
        {
            "type": "input_image",
            "image_url": f"data:image/png;base64,{base64.b64encode(png).decode()}",
            "detail": "auto",
        },
        {
            "type": "input_file",
            "filename": "report.pdf",
            "file_data": f"data:application/pdf;base64,{base64.b64encode(pdf).decode()}",
        },
    ]


async def test_an_incomplete_response_without_output_is_empty_output_with_usage() -> None:
    api = MockAPI().reply(fixture("openai", "incomplete"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("gpt-5"))

    assert caught.value.kind == "empty_output" and caught.value.retryable
    assert "length" in str(caught.value)
    assert caught.value.usage == Usage.of(64, 256, reasoning=256)


async def test_a_failed_response_is_a_retryable_server_error() -> None:
    api = MockAPI().reply(fixture("openai", "failed"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("gpt-5"))

    assert caught.value.kind == "server" and caught.value.retryable
    assert "invalid content" in str(caught.value)


@pytest.mark.parametrize("case", fixture("openai", "errors"), ids=lambda case: case["name"])
async def test_error_bodies_are_classified(case: dict[str, Any]) -> None:
    api = MockAPI().reply(case["body"], case["status"], case.get("headers"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("gpt-5"))

    error = caught.value
    expect = case["expect"]
    assert (error.kind, error.retryable, error.status_code) == (
        expect["kind"],
        expect["retryable"],
        case["status"],
    )
    assert error.retry_after == expect.get("retry_after")
    assert error.provider == "openai"
    assert case["body"]["error"]["message"] in str(error)
    assert isinstance(error.__cause__, openai.APIStatusError)
    assert len(api.sent) == 1


@pytest.mark.parametrize(("failure", "kind"), [("connect", "connection"), ("timeout", "timeout")])
async def test_transport_failures_are_retryable(failure: str, kind: str) -> None:
    api = MockAPI().fail(failure)

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("gpt-5"))

    assert caught.value.kind == kind and caught.value.retryable
    assert len(api.sent) == 1


async def test_an_injected_client_gets_its_retries_switched_off() -> None:
    api = MockAPI().reply(
        {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}}, 500
    )
    provider = OpenAIProvider(openai.AsyncOpenAI(api_key="sk-test", http_client=api.client(), max_retries=4))

    with pytest.raises(ProviderError):
        await provider.generate(request("gpt-5"))

    assert provider.client.max_retries == 0
    assert len(api.sent) == 1
