"""The Gemini adapter through the real ``google-genai`` SDK on a mock transport."""

from __future__ import annotations

import base64
from typing import Any

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
from expert_jobs.providers.gemini import GeminiProvider
from tests.providers.kit import TIME, WEATHER, MockAPI, fixture, request

MODEL = "gemini-2.5-flash"
QUESTION = UserMessage.text("What is the weather in Paris?")


def adapter(api: MockAPI, **options: Any) -> GeminiProvider:
    return GeminiProvider(api_key="AIza-test", http_client=api.client(), **options)


def signature_of(part: dict[str, Any]) -> bytes:
    """The bytes of a part's thought signature as sent on the wire (base64 or base64url)."""
    value = part.get("thoughtSignature") or part["thought_signature"]
    return base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_"))


def fixture_signature(name: str, index: int) -> str:
    return str(fixture("gemini", name)["candidates"][0]["content"]["parts"][index]["thoughtSignature"])


async def test_plain_text_request_and_response() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))
    provider = adapter(api)
    assert isinstance(provider, Provider)

    response = await provider.generate(request(MODEL, temperature=0.4, max_output_tokens=2048))

    sent = api.sent[0]
    assert sent.url.endswith(f"/models/{MODEL}:generateContent")
    assert sent.headers["x-goog-api-key"] == "AIza-test"
    assert api.body["contents"] == [{"role": "user", "parts": [{"text": "What is the weather in Paris?"}]}]
    assert api.body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    config = api.body["generationConfig"]
    assert config["temperature"] == 0.4
    assert config["maxOutputTokens"] == 2048
    assert "tools" not in api.body
    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert response.finish_reason == "stop"
    assert response.usage == Usage.of(12, 9)
    assert response.model == MODEL and response.provider == "google"


async def test_a_tool_call_without_id_gets_a_stable_synthetic_id_and_round_trips() -> None:
    api = MockAPI().reply(fixture("gemini", "tool_call")).reply(fixture("gemini", "text"))
    provider = adapter(api)

    first = await provider.generate(request(MODEL, tools=(WEATHER,)))

    declarations = api.body["tools"][0]["functionDeclarations"]
    assert len(declarations) == 1
    assert declarations[0]["name"] == "get_weather"
    assert declarations[0]["description"] == "Current weather in a city."
    schema = declarations[0].get("parametersJsonSchema") or declarations[0]["parameters_json_schema"]
    assert schema == {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    (call,) = first.parts
    assert isinstance(call, ToolCall)
    assert call.id == "gemini_call_1_0"  # one message before the response, first call
    assert (call.name, dict(call.arguments)) == ("get_weather", {"city": "Paris"})
    assert call.signature == fixture_signature("tool_call", 0)
    assert first.finish_reason == "tool_calls"
    # candidatesTokenCount (15) excludes thoughtsTokenCount (120)
    assert first.usage == Usage.of(80, 135, reasoning=120)

    history = (
        QUESTION,
        AssistantMessage(first.parts, "google"),
        ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),)),
    )
    await provider.generate(request(MODEL, *history, tools=(WEATHER,)))

    model_turn, results_turn = api.body["contents"][1:]
    assert model_turn["role"] == "model"
    (part,) = model_turn["parts"]
    assert part["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}}  # no synthetic id sent
    assert signature_of(part) == base64.b64decode(fixture_signature("tool_call", 0))
    assert results_turn == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}],
    }


async def test_parallel_calls_get_distinct_ids_and_results_return_in_call_order() -> None:
    api = MockAPI().reply(fixture("gemini", "parallel")).reply(fixture("gemini", "text"))
    provider = adapter(api)
    earlier = (QUESTION, AssistantMessage((TextPart("Let me look."),), "google"), UserMessage.text("Go on."))

    first = await provider.generate(request(MODEL, *earlier, tools=(WEATHER, TIME)))
    weather, time = first.parts
    assert isinstance(weather, ToolCall) and isinstance(time, ToolCall)
    assert (weather.id, time.id) == ("gemini_call_3_0", "gemini_call_3_1")
    assert weather.signature is not None and time.signature is None

    results = ToolResultsMessage(
        (ToolResult(weather.id, "get_weather", "sunny"), ToolResult(time.id, "get_time", "clock broke", True))
    )
    await provider.generate(request(MODEL, *earlier, AssistantMessage(first.parts, "google"), results))

    model_turn, results_turn = api.body["contents"][3:]
    assert [p["functionCall"]["name"] for p in model_turn["parts"]] == ["get_weather", "get_time"]
    assert signature_of(model_turn["parts"][0]) == base64.b64decode(fixture_signature("parallel", 0))
    assert "thoughtSignature" not in model_turn["parts"][1]
    assert results_turn["parts"] == [
        {"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
        {"functionResponse": {"name": "get_time", "response": {"error": "clock broke"}}},
    ]


async def test_ids_gemini_gives_are_kept_and_sent_back() -> None:
    api = MockAPI().reply(fixture("gemini", "tool_call_with_id")).reply(fixture("gemini", "text"))
    provider = adapter(api)

    first = await provider.generate(request("gemini-3-pro-preview", tools=(WEATHER,)))
    (call,) = first.parts
    assert isinstance(call, ToolCall) and call.id == "fc-7x2k9q"

    results = ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),))
    await provider.generate(request("gemini-3-pro-preview", QUESTION, AssistantMessage(first.parts), results))

    assert api.body["contents"][1]["parts"][0]["functionCall"]["id"] == "fc-7x2k9q"
    assert api.body["contents"][2]["parts"][0]["functionResponse"]["id"] == "fc-7x2k9q"


async def test_gemini_3_gets_a_placeholder_signature_for_calls_made_elsewhere() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))
    call = ToolCall("toolu_01", "get_weather", {"city": "Paris"})
    history = (
        QUESTION,
        AssistantMessage((TextPart("Checking."), call), "anthropic"),
        ToolResultsMessage((ToolResult(call.id, call.name, "sunny"),)),
    )

    await adapter(api).generate(request("gemini-3-pro-preview", *history))

    text_part, call_part = api.body["contents"][1]["parts"]
    assert "thoughtSignature" not in text_part
    assert signature_of(call_part) == b"skip_thought_signature_validator"


async def test_thoughts_usage_and_signature_replay() -> None:
    api = MockAPI().reply(fixture("gemini", "thinking")).reply(fixture("gemini", "text"))
    provider = adapter(api)

    first = await provider.generate(
        request("gemini-2.5-pro", reasoning=ReasoningSettings(budget_tokens=2048))
    )

    assert api.body["generationConfig"]["thinkingConfig"] in (
        {"includeThoughts": True, "thinkingBudget": 2048},
        {"include_thoughts": True, "thinking_budget": 2048},
    )
    thought, text = first.parts
    assert isinstance(thought, ThinkingPart) and thought.provider == "google"
    assert thought.text.startswith("**Weighing the evidence**")
    assert text == TextPart("Paris is sunny, 24 °C.", fixture_signature("thinking", 1))
    # input = prompt (30) + tool-use prompt (5); output = candidates (8) + thoughts (250)
    assert first.usage == Usage.of(35, 258, reasoning=250)

    await provider.generate(
        request(
            "gemini-2.5-pro", QUESTION, AssistantMessage(first.parts, "google"), UserMessage.text("Thanks!")
        )
    )
    thought_part, text_part = api.body["contents"][1]["parts"]
    assert thought_part["thought"] is True and thought_part["text"] == thought.text
    assert text_part["text"] == "Paris is sunny, 24 °C."
    assert signature_of(text_part) == base64.b64decode(fixture_signature("thinking", 1))


def _thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    """The thinking config with camelCase keys, however the SDK spelled them."""
    config = body["generationConfig"].get("thinkingConfig", {})
    names = {
        "include_thoughts": "includeThoughts",
        "thinking_budget": "thinkingBudget",
        "thinking_level": "thinkingLevel",
    }
    return {names.get(key, key): value for key, value in config.items()}


@pytest.mark.parametrize(
    ("model", "settings", "expected"),
    [
        ("gemini-2.5-flash", None, {"includeThoughts": True}),
        ("gemini-2.5-flash", ReasoningSettings(enabled=False), {"thinkingBudget": 0}),
        (
            "gemini-2.5-flash-lite",
            ReasoningSettings(effort="low"),
            {"includeThoughts": True, "thinkingBudget": 2048},
        ),
        ("gemini-2.5-pro", ReasoningSettings(enabled=False), {"thinkingBudget": 128}),
        (
            "gemini-3-pro-preview",
            ReasoningSettings(effort="low"),
            {"includeThoughts": True, "thinkingLevel": "LOW"},
        ),
        ("gemini-3-pro-preview", ReasoningSettings(enabled=False), {"thinkingLevel": "LOW"}),
        (
            "gemini-3-pro-preview",
            ReasoningSettings(budget_tokens=4096),
            {"includeThoughts": True, "thinkingBudget": 4096},
        ),
    ],
)
async def test_reasoning_settings_map_to_thinking_config(
    model: str, settings: ReasoningSettings | None, expected: dict[str, Any]
) -> None:
    api = MockAPI().reply(fixture("gemini", "text"))

    await adapter(api).generate(request(model, reasoning=settings))

    assert _thinking_config(api.body) == expected


async def test_cached_content_is_already_inside_the_prompt_count() -> None:
    api = MockAPI().reply(fixture("gemini", "cached"))

    response = await adapter(api).generate(request(MODEL))

    assert response.usage == Usage.of(9000, 40, cached=8192)
    assert response.raw_usage is not None and response.raw_usage["cached_content_token_count"] == 8192


async def test_files_go_inline() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))
    pdf = b"%PDF-1.7"
    message = UserMessage((TextPart("Summarise."), FilePart("report.pdf", "application/pdf", pdf)))

    await adapter(api).generate(request(MODEL, message))

    text, blob = api.body["contents"][0]["parts"]
    assert text == {"text": "Summarise."}
    inline = blob.get("inlineData") or blob["inline_data"]
    assert inline.get("mimeType", inline.get("mime_type")) == "application/pdf"
    assert base64.urlsafe_b64decode(inline["data"].replace("+", "-").replace("/", "_")) == pdf


async def test_a_blocked_prompt_is_not_retried() -> None:
    api = MockAPI().reply(fixture("gemini", "blocked"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    assert caught.value.kind == "other" and not caught.value.retryable
    assert "content filter" in str(caught.value)


async def test_empty_output_is_retryable_and_carries_usage() -> None:
    api = MockAPI().reply(fixture("gemini", "empty"))

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    assert caught.value.kind == "empty_output" and caught.value.retryable
    assert caught.value.usage == Usage.of(20, 0)


@pytest.mark.parametrize("case", fixture("gemini", "errors"), ids=lambda case: case["name"])
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
    assert error.provider == "google"
    assert case["body"]["error"]["message"] in str(error)
    assert len(api.sent) == 1  # no SDK retry, even on 429/5xx


@pytest.mark.parametrize(("failure", "kind"), [("connect", "connection"), ("timeout", "timeout")])
async def test_transport_failures_are_retryable(failure: str, kind: str) -> None:
    api = MockAPI().fail(failure)

    with pytest.raises(ProviderError) as caught:
        await adapter(api).generate(request(MODEL))

    assert caught.value.kind == kind and caught.value.retryable
    assert len(api.sent) == 1


async def test_the_request_timeout_is_sent_per_call() -> None:
    api = MockAPI().reply(fixture("gemini", "text"))

    await adapter(api).generate(request(MODEL))

    assert api.sent[0].headers["x-server-timeout"] == "30"


async def test_an_injected_client_does_not_retry_either() -> None:
    from google import genai
    from google.genai import types

    api = MockAPI().reply(fixture("gemini", "errors")[7]["body"], 503)
    options = types.HttpOptions(
        httpx_async_client=api.client(), retry_options=types.HttpRetryOptions(attempts=5, initial_delay=0.0)
    )
    provider = GeminiProvider(genai.Client(api_key="AIza-test", http_options=options))

    with pytest.raises(ProviderError) as caught:
        await provider.generate(request(MODEL))

    assert caught.value.kind == "overloaded"
    assert len(api.sent) == 1
