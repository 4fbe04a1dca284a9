"""The DeepSeek adapter (Chat Completions) through the real ``openai`` SDK on a mock transport."""

from __future__ import annotations

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
from expert_jobs.providers.deepseek import DeepSeekProvider
from tests.providers.kit import TIME, WEATHER, MockAPI, fixture, request

QUESTION = UserMessage.text("What is the weather in Paris?")


def adapter(api: MockAPI, **options: Any) -> DeepSeekProvider:
    return DeepSeekProvider(api_key="sk-ds-test", http_client=api.client(), **options)


async def test_plain_text_at_deepseeks_base_url() -> None:
    api = MockAPI().reply(fixture("deepseek", "text"))
    provider = adapter(api)
    assert isinstance(provider, Provider)

    response = await provider.generate(request("deepseek-chat", temperature=0.5))

    assert api.sent[0].url == "https://api.deepseek.com/chat/completions"
    assert api.sent[0].headers["authorization"] == "Bearer sk-ds-test"
    assert api.body == {
        "model": "deepseek-chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is the weather in Paris?"},
        ],
        "temperature": 0.5,
    }
    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(16, 10)
    assert response.model == "deepseek-chat" and response.provider == "deepseek"


async def test_reasoner_tool_call_replays_its_reasoning_content() -> None:
    api = MockAPI().reply(fixture("deepseek", "tool_call")).reply(fixture("deepseek", "reasoning"))
    provider = adapter(api)

    first = await provider.generate(
        request("deepseek-reasoner", tools=(WEATHER,), temperature=0.7, max_output_tokens=4096)
    )

    assert "temperature" not in api.body  # thinking mode ignores it; the catalogue says so
    assert api.body["max_tokens"] == 4096
    assert api.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    thinking, call = first.parts
    assert isinstance(thinking, ThinkingPart) and thinking.provider == "deepseek"
    assert thinking.text.startswith("The user asks for the weather")
    assert call == ToolCall("call_00_Q2hlY2tXZWF0aGVyUGFyaXM", "get_weather", {"city": "Paris"})
    assert first.usage == Usage.of(300, 150, reasoning=120, cached=256)

    results = ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),))
    await provider.generate(request("deepseek-reasoner", QUESTION, AssistantMessage(first.parts), results))

    assert api.body["messages"][2:] == [
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": thinking.text,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]


async def test_reasoner_gets_empty_reasoning_for_turns_it_did_not_produce() -> None:
    api = MockAPI().reply(fixture("deepseek", "reasoning"))
    call = ToolCall("toolu_01", "get_weather", {"city": "Paris"})
    foreign = ThinkingPart("claude thought", signature="sig", provider="anthropic")
    history = (
        QUESTION,
        AssistantMessage((foreign, TextPart("Checking."), call), "anthropic"),
        ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),)),
    )

    await adapter(api).generate(request("deepseek-reasoner", *history))

    assistant = api.body["messages"][2]
    assert assistant["reasoning_content"] == ""
    assert assistant["content"] == "Checking."


async def test_chat_model_gets_no_reasoning_content() -> None:
    api = MockAPI().reply(fixture("deepseek", "parallel")).reply(fixture("deepseek", "text"))
    provider = adapter(api)

    first = await provider.generate(request("deepseek-chat", tools=(WEATHER, TIME)))
    weather, time = first.parts
    assert isinstance(weather, ToolCall) and isinstance(time, ToolCall)
    assert [weather.name, time.name] == ["get_weather", "get_time"]

    results = ToolResultsMessage(
        (ToolResult(weather.id, "get_weather", "sunny"), ToolResult(time.id, "get_time", "clock broke", True))
    )
    await provider.generate(request("deepseek-chat", QUESTION, AssistantMessage(first.parts), results))

    assistant, *tools = api.body["messages"][2:]
    assert "reasoning_content" not in assistant
    assert [c["id"] for c in assistant["tool_calls"]] == [weather.id, time.id]
    assert tools == [
        {"role": "tool", "tool_call_id": weather.id, "content": "sunny"},
        {"role": "tool", "tool_call_id": time.id, "content": "Error: clock broke"},
    ]


async def test_cache_hits_are_already_inside_prompt_tokens() -> None:
    api = MockAPI().reply(fixture("deepseek", "cached"))

    response = await adapter(api).generate(request("deepseek-chat"))

    assert response.usage == Usage.of(1000, 40, cached=896)
    assert response.raw_usage is not None and response.raw_usage["prompt_cache_miss_tokens"] == 104


async def test_reasoning_tokens_are_already_inside_completion_tokens() -> None:
    api = MockAPI().reply(fixture("deepseek", "reasoning"))

    response = await adapter(api).generate(
        request("deepseek-reasoner", reasoning=ReasoningSettings(effort="high"))
    )

    assert api.body["reasoning_effort"] == "high"
    thinking, text = response.parts
    assert isinstance(thinking, ThinkingPart) and text == TextPart("9.9 is greater than 9.11.")
    assert response.usage == Usage.of(24, 500, reasoning=420)


async def test_no_reasoning_effort_for_the_chat_model() -> None:
    api = MockAPI().reply(fixture("deepseek", "text"))

    await adapter(api).generate(request("deepseek-chat", reasoning=ReasoningSettings(effort="high")))

    assert "reasoning_effort" not in api.body


async def test_insufficient_system_resource_is_a_retryable_overload() -> None:
    api = MockAPI().reply(fixture("deepseek", "insufficient"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("deepseek-chat"))

    assert caught.value.kind == "overloaded" and caught.value.retryable
    assert caught.value.usage == Usage.of(16, 2)


async def test_malformed_tool_arguments_are_a_retryable_failure() -> None:
    api = MockAPI().reply(fixture("deepseek", "bad_arguments"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("deepseek-chat", tools=(WEATHER,)))

    assert caught.value.retryable and "get_weather" in str(caught.value)


async def test_text_files_are_inlined_and_images_refused() -> None:
    api = MockAPI().reply(fixture("deepseek", "text"))
    provider = adapter(api)

    await provider.generate(
        request(
            "deepseek-chat", UserMessage((TextPart("Read:"), FilePart("a.md", "text/markdown", b"# Title")))
        )
    )
    assert api.body["messages"][1]["content"].startswith("Read:\n\n<file name='a.md'>\n# Title")

    with pytest.raises(ProviderError) as caught:
        await provider.generate(
            request("deepseek-chat", UserMessage((FilePart("a.png", "image/png", b"\x89PNG"),)))
        )
    assert caught.value.kind == "bad_request" and not caught.value.retryable


@pytest.mark.parametrize("case", fixture("deepseek", "errors"), ids=lambda case: case["name"])
async def test_error_bodies_are_classified(case: dict[str, Any]) -> None:
    api = MockAPI().reply(case["body"], case["status"], case.get("headers"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("deepseek-chat"))

    error = caught.value
    expect = case["expect"]
    assert (error.kind, error.retryable, error.status_code) == (
        expect["kind"],
        expect["retryable"],
        case["status"],
    )
    assert error.provider == "deepseek"
    assert case["body"]["error"]["message"] in str(error)
    assert isinstance(error.__cause__, openai.APIStatusError)
    assert len(api.sent) == 1


@pytest.mark.parametrize(("failure", "kind"), [("connect", "connection"), ("timeout", "timeout")])
async def test_transport_failures_are_retryable(failure: str, kind: str) -> None:
    api = MockAPI().fail(failure)

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request("deepseek-chat"))

    assert caught.value.kind == kind and caught.value.retryable


async def test_a_custom_base_url_is_used() -> None:
    api = MockAPI().reply(fixture("deepseek", "text"))
    provider = DeepSeekProvider(
        api_key="k", base_url="https://gateway.example/deepseek", http_client=api.client()
    )

    await provider.generate(request("deepseek-chat"))

    assert api.sent[0].url == "https://gateway.example/deepseek/chat/completions"
