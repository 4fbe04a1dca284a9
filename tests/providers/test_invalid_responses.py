"""A provider answering garbage: every adapter turns a 200 that is not a valid answer into a retryable
``ProviderError`` of kind ``invalid_response`` (never another exception), through its real SDK."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from expert_jobs.domain.errors import ProviderError
from expert_jobs.ports.provider import Provider
from expert_jobs.providers._common import MAX_CALL_TOKENS
from expert_jobs.providers.anthropic import AnthropicProvider
from expert_jobs.providers.deepseek import DeepSeekProvider
from expert_jobs.providers.gemini import GeminiProvider
from expert_jobs.providers.openai import OpenAIProvider
from tests.providers.kit import MockAPI, fixture, request

Make = Callable[[MockAPI], Provider]
ADAPTERS: dict[str, tuple[str, str, Make, tuple[str, str]]] = {
    # name: (fixture folder, model, adapter on the mock API, where the fixture keeps an input count)
    "anthropic": (
        "anthropic",
        "claude-haiku-4-5",
        lambda api: AnthropicProvider(api_key="k", http_client=api.client()),
        ("usage", "input_tokens"),
    ),
    "openai": (
        "openai",
        "gpt-5",
        lambda api: OpenAIProvider(api_key="k", http_client=api.client()),
        ("usage", "input_tokens"),
    ),
    "google": (
        "gemini",
        "gemini-2.5-flash",
        lambda api: GeminiProvider(api_key="k", http_client=api.client()),
        ("usageMetadata", "promptTokenCount"),
    ),
    "deepseek": (
        "deepseek",
        "deepseek-chat",
        lambda api: DeepSeekProvider(api_key="k", http_client=api.client()),
        ("usage", "prompt_tokens"),
    ),
}

RAW_BODIES = {
    "an HTML error page": (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
    "truncated JSON": (b'{"id": "x", "content": [{"type": "te', "application/json"),
    "an empty body": (b"", "application/json"),
    "a JSON array": (b"[1, 2, 3]", "application/json"),
    "a JSON string": (b'"OK"', "application/json"),
    "JSON null": (b"null", "application/json"),
    "an unrelated JSON object": (b'{"status": "ok", "uptime": 12}', "application/json"),
}

USAGE_VALUES = {
    "negative": -5,
    "absurd": MAX_CALL_TOKENS * 1000,
    "fractional": 12.5,
    "a string": "12",
    "a boolean": True,
}

WRONG_SHAPES: dict[str, list[tuple[str, Callable[[dict[str, Any]], None]]]] = {
    "anthropic": [
        ("content is a string", lambda body: body.update(content="Paris is sunny")),
        ("usage is missing", lambda body: body.pop("usage")),
        ("usage is a number", lambda body: body.update(usage=33)),
        (
            "a tool call's input is a string",
            lambda body: body.update(content=[{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]),
        ),
        ("a text block's text is null", lambda body: body["content"][0].update(text=None)),
    ],
    "openai": [
        ("output is an object", lambda body: body.update(output={"type": "message"})),
        ("output is missing", lambda body: body.pop("output")),
        ("usage is a list", lambda body: body.update(usage=[1, 2])),
    ],
    "google": [
        ("candidates is a string", lambda body: body.update(candidates="none")),
        ("a candidate is empty", lambda body: body.update(candidates=[{}])),
        (
            "a function call's args is a list",
            lambda body: body["candidates"][0]["content"].update(
                parts=[{"functionCall": {"name": "f", "args": [1]}}]
            ),
        ),
        ("parts is an object", lambda body: body["candidates"][0]["content"].update(parts={"text": "x"})),
        ("usage metadata is a string", lambda body: body.update(usageMetadata="lots")),
    ],
    "deepseek": [
        ("choices is an object", lambda body: body.update(choices={"0": {}})),
        ("the message is null", lambda body: body["choices"][0].update(message=None)),
        (
            "a tool call has no function",
            lambda body: body["choices"][0]["message"].update(tool_calls=[{"id": "c", "type": "function"}]),
        ),
    ],
}


async def expect_invalid(name: str, api: MockAPI) -> ProviderError:
    _, model, make, _ = ADAPTERS[name]
    with pytest.raises(ProviderError) as caught:
        await make(api).generate(request(model))
    error = caught.value
    assert (error.kind, error.retryable, error.provider) == ("invalid_response", True, name), error
    assert str(error).startswith(f"{name} returned an invalid response: ")
    assert len(api.sent) == 1  # the SDK did not retry on its own
    return error


@pytest.mark.parametrize("body", RAW_BODIES, ids=list(RAW_BODIES))
@pytest.mark.parametrize("name", ADAPTERS)
async def test_a_200_that_is_not_an_answer_is_an_invalid_response(name: str, body: str) -> None:
    content, content_type = RAW_BODIES[body]

    await expect_invalid(name, MockAPI().raw(content, content_type=content_type))


# google-genai validates usage itself, and the openai SDK's chat completions read a numeric string or
# a boolean as the number it stands for (pydantic's lax mode): a valid count reaches the adapter.
SDK_COERCED = {
    ("google", "a string"),
    ("google", "a boolean"),
    ("deepseek", "a string"),
    ("deepseek", "a boolean"),
}


@pytest.mark.parametrize(
    ("name", "value"),
    [(name, value) for name in ADAPTERS for value in USAGE_VALUES if (name, value) not in SDK_COERCED],
)
async def test_usage_figures_that_are_not_token_counts_are_an_invalid_response(name: str, value: str) -> None:
    folder, _, _, (section, field) = ADAPTERS[name]
    body = copy.deepcopy(fixture(folder, "text"))
    body[section][field] = USAGE_VALUES[value]

    error = await expect_invalid(name, MockAPI().reply(body))

    if name != "google":  # google-genai validates the figure itself (pydantic names the field)
        assert f"{USAGE_VALUES[value]!r}" in str(error)


@pytest.mark.parametrize(
    ("name", "shape"),
    [(name, shape) for name, shapes in WRONG_SHAPES.items() for shape, _ in shapes],
)
async def test_json_of_the_wrong_shape_is_an_invalid_response(name: str, shape: str) -> None:
    folder = ADAPTERS[name][0]
    body = copy.deepcopy(fixture(folder, "text"))
    dict(WRONG_SHAPES[name])[shape](body)

    await expect_invalid(name, MockAPI().reply(body))


@pytest.mark.parametrize("name", ADAPTERS)
async def test_the_largest_sane_usage_is_still_an_answer(name: str) -> None:
    folder, model, make, (section, field) = ADAPTERS[name]
    body = copy.deepcopy(fixture(folder, "text"))
    body[section][field] = MAX_CALL_TOKENS

    response = await make(MockAPI().reply(body)).generate(request(model))

    assert response.usage.input_tokens >= MAX_CALL_TOKENS
