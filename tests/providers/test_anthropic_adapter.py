"""The Anthropic adapter through the real ``anthropic`` SDK on a mock transport."""

from __future__ import annotations

import base64
import warnings
from typing import Any

import anthropic
import httpx2
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
from expert_jobs.providers.anthropic import AnthropicProvider
from tests.providers.kit import TIME, WEATHER, MockAPI, anthropic_model_tables, fixture, request

MODEL = "claude-haiku-4-5"
QUESTION = UserMessage.text("What is the weather in Paris?")


def adapter(api: MockAPI, **options: Any) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", http_client=api.client(), **options)


async def test_plain_text_request_and_response() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))
    provider = adapter(api)
    assert isinstance(provider, Provider)

    response = await provider.generate(request(MODEL, temperature=0.7))

    assert api.sent[0].url == "https://api.anthropic.com/v1/messages"
    assert api.body == {
        "model": MODEL,
        "max_tokens": 8192,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?"}]}
        ],
        "cache_control": {"type": "ephemeral"},
    }
    assert api.sent[0].headers["x-stainless-retry-count"] == "0"
    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(21, 12)
    assert response.raw_usage is not None and response.raw_usage["input_tokens"] == 21
    assert response.model == "claude-haiku-4-5-20251001"
    assert response.provider == "anthropic"


async def test_temperature_is_never_sent_and_max_tokens_always_is() -> None:
    api = MockAPI().reply(fixture("anthropic", "text")).reply(fixture("anthropic", "text"))
    provider = adapter(api)

    await provider.generate(request("claude-3-5-haiku-latest", temperature=0.0))
    await provider.generate(request(MODEL, max_output_tokens=1000))

    assert "temperature" not in api.sent[0].body
    assert api.sent[0].body["max_tokens"] == 8192  # the model's own maximum
    assert api.sent[1].body["max_tokens"] == 1000


async def test_prompt_caching_can_be_switched_off() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))

    await adapter(api, prompt_caching=False).generate(request(MODEL))

    assert "cache_control" not in api.body


async def test_one_tool_call_and_its_result_round_trip() -> None:
    api = MockAPI().reply(fixture("anthropic", "tool_use")).reply(fixture("anthropic", "text"))
    provider = adapter(api)

    first = await provider.generate(request(MODEL, tools=(WEATHER,)))
    assert api.body["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather in a city.",
            "input_schema": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    call = ToolCall("toolu_01A09q90qw90lq917835lq9", "get_weather", {"city": "Paris"})
    assert first.parts == (TextPart("I'll check the current weather in Paris."), call)
    assert first.finish_reason == "tool_calls"

    history = (
        QUESTION,
        AssistantMessage(first.parts, "anthropic", MODEL),
        ToolResultsMessage((ToolResult(call.id, "get_weather", "sunny, 24 °C"),)),
    )
    await provider.generate(request(MODEL, *history, tools=(WEATHER,)))
    assert api.body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "I'll check the current weather in Paris."},
                {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 24 °C"}],
        },
    ]


async def test_parallel_tool_results_go_in_one_user_message_in_call_order() -> None:
    api = MockAPI().reply(fixture("anthropic", "parallel_tool_use")).reply(fixture("anthropic", "text"))
    provider = adapter(api)

    first = await provider.generate(request(MODEL, tools=(WEATHER, TIME)))
    weather, time = first.parts
    assert isinstance(weather, ToolCall) and isinstance(time, ToolCall)
    assert [weather.name, time.name] == ["get_weather", "get_time"]

    results = ToolResultsMessage(
        (ToolResult(weather.id, "get_weather", "sunny"), ToolResult(time.id, "get_time", "clock broke", True))
    )
    history = (
        QUESTION,
        AssistantMessage(first.parts, "anthropic"),
        results,
        UserMessage.text("And tomorrow?"),
    )
    await provider.generate(request(MODEL, *history, tools=(WEATHER, TIME)))

    assert api.body["messages"][2] == {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": weather.id, "content": "sunny"},
            {"type": "tool_result", "tool_use_id": time.id, "content": "clock broke", "is_error": True},
            {"type": "text", "text": "And tomorrow?"},
        ],
    }
    assert len(api.body["messages"]) == 3


async def test_cached_input_is_added_to_input_tokens() -> None:
    api = MockAPI().reply(fixture("anthropic", "cached"))

    response = await adapter(api).generate(request(MODEL))

    # input_tokens (50) excludes cache reads (8000) and cache writes (1200)
    assert response.usage == Usage.of(9250, 120, cached=8000, cache_write=1200)
    assert response.raw_usage is not None and response.raw_usage["cache_read_input_tokens"] == 8000


async def test_thinking_request_response_and_replay_in_order() -> None:
    api = MockAPI().reply(fixture("anthropic", "thinking")).reply(fixture("anthropic", "text"))
    provider = adapter(api)
    reasoning = ReasoningSettings(budget_tokens=4000)

    first = await provider.generate(
        request("claude-opus-4-1", tools=(WEATHER,), temperature=0.2, reasoning=reasoning)
    )

    assert api.body["thinking"] == {"type": "enabled", "budget_tokens": 4000}
    assert api.body["max_tokens"] == 4000 + 8192
    assert "temperature" not in api.body
    thinking, redacted, call = first.parts
    assert isinstance(thinking, ThinkingPart) and thinking.provider == "anthropic"
    assert thinking.signature is not None and thinking.signature.startswith("EqQBCgIYAhIM")
    assert isinstance(redacted, ThinkingPart) and redacted.redacted_data is not None
    assert isinstance(call, ToolCall)
    assert first.usage == Usage.of(410, 620, reasoning=480)

    foreign = ThinkingPart("gemini thoughts", signature="abc", provider="google")
    replayed = AssistantMessage((foreign, *first.parts), "anthropic")
    results = ToolResultsMessage((ToolResult(call.id, "get_weather", "sunny"),))
    await provider.generate(request("claude-opus-4-1", QUESTION, replayed, results, reasoning=reasoning))

    assert api.body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": thinking.text, "signature": thinking.signature},
        {"type": "redacted_thinking", "data": redacted.redacted_data},
        {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}},
    ]


@pytest.mark.parametrize(
    ("reasoning", "max_output", "thinking", "max_tokens"),
    [
        (ReasoningSettings(effort="low"), None, {"type": "enabled", "budget_tokens": 2048}, 2048 + 8192),
        (ReasoningSettings(budget_tokens=4000), 2000, {"type": "enabled", "budget_tokens": 1999}, 2000),
        (ReasoningSettings(enabled=False), None, {"type": "disabled"}, 8192),
        (ReasoningSettings(budget_tokens=60_000), None, {"type": "enabled", "budget_tokens": 31_999}, 32_000),
    ],
)
async def test_reasoning_settings_map_to_thinking(
    reasoning: ReasoningSettings, max_output: int | None, thinking: dict[str, Any], max_tokens: int
) -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))

    await adapter(api).generate(request("claude-opus-4-1", reasoning=reasoning, max_output_tokens=max_output))

    assert api.body["thinking"] == thinking
    assert api.body["max_tokens"] == max_tokens


async def test_no_thinking_for_a_model_that_does_not_reason() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))

    await adapter(api).generate(
        request("claude-3-5-haiku-latest", reasoning=ReasoningSettings(budget_tokens=4000))
    )

    assert "thinking" not in api.body


async def test_a_thinking_budget_that_cannot_fit_fails_before_the_call() -> None:
    api = MockAPI()

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(
            request("claude-opus-4-1", reasoning=ReasoningSettings(budget_tokens=4000), max_output_tokens=800)
        )

    assert caught.value.kind == "bad_request" and not caught.value.retryable
    assert "max_tokens=800" in str(caught.value)
    assert api.sent == []


async def test_files_become_image_document_and_text_blocks() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))
    png, pdf = b"\x89PNG\r\n\x1a\n", b"%PDF-1.7"
    message = UserMessage(
        (
            TextPart("Compare these."),
            FilePart("chart.png", "image/png", png),
            FilePart("report.pdf", "application/pdf", pdf),
            FilePart("notes.txt", "text/plain", b"hello"),
            TextPart(""),
        )
    )

    await adapter(api).generate(request(MODEL, message))

    content = api.body["messages"][0]["content"]
    assert content[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": base64.b64encode(png).decode()},
    }
    assert content[2] == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": base64.b64encode(pdf).decode()},
        "title": "report.pdf",
    }
    assert (
        content[3]["type"] == "text" and "hello" in content[3]["text"] and "notes.txt" in content[3]["text"]
    )
    assert len(content) == 4


async def test_an_unsupported_file_is_a_non_retryable_error() -> None:
    api = MockAPI()
    message = UserMessage((FilePart("archive.zip", "application/zip", b"PK"),))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL, message))

    assert caught.value.kind == "bad_request" and "application/zip" in str(caught.value)


async def test_empty_output_is_retryable_and_carries_usage() -> None:
    api = MockAPI().reply(fixture("anthropic", "empty"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    assert caught.value.kind == "empty_output" and caught.value.retryable
    assert caught.value.usage == Usage.of(30, 3)


@pytest.mark.parametrize("case", fixture("anthropic", "errors"), ids=lambda case: case["name"])
async def test_error_bodies_are_classified(case: dict[str, Any]) -> None:
    api = MockAPI().reply(case["body"], case["status"], case.get("headers"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    error = caught.value
    expect = case["expect"]
    assert (error.kind, error.retryable, error.status_code) == (
        expect["kind"],
        expect["retryable"],
        case["status"],
    )
    assert error.retry_after == expect.get("retry_after")
    assert error.provider == "anthropic"
    assert case["body"]["error"]["message"] in str(error)
    assert isinstance(error.__cause__, anthropic.APIStatusError)
    assert len(api.sent) == 1  # the SDK did not retry


@pytest.mark.parametrize(("failure", "kind"), [("connect", "connection"), ("timeout", "timeout")])
async def test_transport_failures_are_retryable(failure: str, kind: str) -> None:
    api = MockAPI().fail(failure)

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    assert caught.value.kind == kind and caught.value.retryable
    assert len(api.sent) == 1


async def test_an_injected_client_gets_its_retries_switched_off() -> None:
    api = MockAPI().reply(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, 529
    )
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", http_client=api.client(), max_retries=3)
    provider = AnthropicProvider(client)

    with pytest.raises(ProviderError):
        await provider.generate(request(MODEL))

    assert provider.client.max_retries == 0
    assert len(api.sent) == 1


async def test_a_warning_raised_inside_the_sdk_call_passes_through() -> None:
    # A warning from under the SDK (here its HTTP client's transport), not one from the SDK's model list.
    api = MockAPI().reply(fixture("anthropic", "text"))

    def handle(req: httpx2.Request) -> httpx2.Response:
        warnings.warn("this endpoint is deprecated", DeprecationWarning, stacklevel=2)
        return api.handle(req)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
    provider = AnthropicProvider(api_key="sk-ant-test", http_client=client)

    with pytest.warns(DeprecationWarning, match="this endpoint is deprecated"):
        response = await provider.generate(request(MODEL))

    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)


async def test_the_sdk_deprecation_warning_of_a_retiring_model_passes_through() -> None:
    # The SDK's own warning, for a made-up model put on its list (whatever the release lists itself).
    tables = [t for t in anthropic_model_tables() if isinstance(t, dict)]
    if not tables:
        pytest.skip("this anthropic release keeps no table of retiring models")
    api = MockAPI().reply(fixture("anthropic", "text"))
    tables[0]["claude-test-retiring"] = "the day the tests say"

    with pytest.warns(DeprecationWarning, match="claude-test-retiring") as caught:
        response = await adapter(api).generate(request("claude-test-retiring"))

    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert any("the day the tests say" in str(w.message) for w in caught)


async def test_aclose_closes_only_a_client_it_created() -> None:
    api = MockAPI()
    own = adapter(api)
    await own.aclose()
    assert own.client.is_closed()

    client = anthropic.AsyncAnthropic(api_key="k", http_client=api.client(), max_retries=0)
    await AnthropicProvider(client).aclose()
    assert not client.is_closed()
