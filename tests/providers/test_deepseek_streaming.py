"""DeepSeek streaming (Chat Completions ``stream=True``) through the real ``openai`` SDK on a mock transport.

The SSE bodies in ``fixtures/deepseek_stream_*.sse`` are DeepSeek's: ``data:`` lines of chunks, ``:
keep-alive`` comments while the reasoner thinks, usage on the last chunk, then ``data: [DONE]``.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import aclosing
from typing import Any

import httpx2
import pytest

from expert_jobs.domain.deltas import (
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import (
    AssistantMessage,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
)
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import StreamingProvider, StreamItem
from expert_jobs.providers.deepseek import DeepSeekProvider
from tests.providers.kit import TIME, WEATHER, MockAPI, fixture, request
from tests.providers.test_openai_streaming import SSEBody, StreamAPI, collect, split, sse_fixture


def adapter(api: MockAPI) -> DeepSeekProvider:
    return DeepSeekProvider(api_key="sk-ds-test", http_client=api.client())


def chunks(*deltas: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> bytes:
    """A DeepSeek SSE body: one chunk per delta, the last with ``finish`` and ``usage``, then [DONE]."""
    lines = []
    for n, delta in enumerate(deltas):
        last = n == len(deltas) - 1
        chunk = {
            "id": "930c60df-bf64-41c9-a88e-3ec75f81e00e",
            "object": "chat.completion.chunk",
            "created": 1705651092,
            "model": "deepseek-chat",
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish if last else None}
            ],
            "usage": usage if last else None,
        }
        lines.append(f"data: {json.dumps(chunk)}\n\n")
    return ("".join(lines) + "data: [DONE]\n\n").encode()


USAGE = {"prompt_tokens": 16, "completion_tokens": 10, "total_tokens": 26, "prompt_cache_hit_tokens": 0}


async def test_text_streams_as_text_deltas_with_usage_from_the_finishing_chunk() -> None:
    api = StreamAPI().serve(sse_fixture("deepseek_stream_text")).reply(fixture("deepseek", "text"))
    provider = adapter(api)
    assert isinstance(provider, StreamingProvider)

    deltas, final = split(await collect(provider, request("deepseek-chat", temperature=0.5)))
    expected = await provider.generate(request("deepseek-chat", temperature=0.5))

    streamed_body, plain_body = api.sent[0].body, api.sent[1].body
    assert streamed_body == {**plain_body, "stream": True, "stream_options": {"include_usage": True}}
    assert api.sent[0].url == "https://api.deepseek.com/chat/completions"
    assert deltas == [
        *(TextDelta(t) for t in ("Paris", " is", " sunny", ",", " 24", " °C", ".")),
        UsageDelta(Usage.of(16, 10)),
    ]
    assert final == expected and final.usage == Usage.of(16, 10)


async def test_reasoning_streams_as_thinking_and_is_replayed_as_the_generated_one_is() -> None:
    api = StreamAPI().serve(sse_fixture("deepseek_stream_reasoning")).reply(fixture("deepseek", "reasoning"))
    provider = adapter(api)

    deltas, final = split(await collect(provider, request("deepseek-reasoner")))
    expected = await provider.generate(request("deepseek-reasoner"))

    assert final == expected
    thinking, _ = final.parts
    assert isinstance(thinking, ThinkingPart) and thinking.provider == "deepseek"
    assert "".join(d.text for d in deltas if isinstance(d, ThinkingDelta)) == thinking.text
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "9.9 is greater than 9.11."
    # the include_usage form: a last chunk with no choices carries the usage
    assert deltas[-1] == UsageDelta(Usage.of(24, 500, reasoning=420))
    assert [type(d) for d in deltas].count(UsageDelta) == 1

    api.reply(fixture("deepseek", "text")).reply(fixture("deepseek", "text"))
    replayed = []
    for response in (final, expected):
        history = (*request("deepseek-reasoner").messages, AssistantMessage(response.parts, "deepseek"))
        await provider.generate(request("deepseek-reasoner", *history))
        replayed.append(api.body["messages"])
    assert replayed[0] == replayed[1]
    assert replayed[0][-1]["reasoning_content"] == thinking.text


async def test_parallel_tool_calls_stream_by_index_and_end_as_generate_ends() -> None:
    api = StreamAPI().serve(sse_fixture("deepseek_stream_parallel")).reply(fixture("deepseek", "parallel"))
    provider = adapter(api)

    deltas, final = split(await collect(provider, request("deepseek-chat", tools=(WEATHER, TIME))))
    expected = await provider.generate(request("deepseek-chat", tools=(WEATHER, TIME)))

    assert final == expected and final.finish_reason == "tool_calls"
    weather, time = (p for p in final.parts if isinstance(p, ToolCall))
    assert [d for d in deltas if isinstance(d, ToolCallStartDelta)] == [
        ToolCallStartDelta(0, weather.id, "get_weather"),
        ToolCallStartDelta(1, time.id, "get_time"),
    ]
    fragments = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert [f.index for f in fragments] == [0, 0, 0, 1, 1, 1]
    for index, call in enumerate((weather, time)):
        assert json.loads("".join(f.fragment for f in fragments if f.index == index)) == call.arguments
    assert deltas[-1] == UsageDelta(Usage.of(220, 48))

    results = ToolResultsMessage(
        (ToolResult(weather.id, "get_weather", "sunny"), ToolResult(time.id, "get_time", "9:00"))
    )
    api.reply(fixture("deepseek", "text"))
    history = (*request("deepseek-chat").messages, AssistantMessage(final.parts, "deepseek"), results)
    await provider.generate(request("deepseek-chat", *history, tools=(WEATHER, TIME)))
    assert [c["function"]["arguments"] for c in api.body["messages"][2]["tool_calls"]] == [
        '{"city": "Paris"}'
    ] * 2


async def test_an_error_mid_stream_is_a_retryable_provider_error_and_nothing_is_returned() -> None:
    body = SSEBody(sse_fixture("deepseek_stream_error"))
    api = StreamAPI().serve(body)
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async with aclosing(adapter(api).stream(request("deepseek-chat"))) as items:
            async for item in items:
                seen.append(item)

    error = caught.value
    assert (error.kind, error.retryable, error.provider) == ("server", True, "deepseek")
    assert "Service is too busy" in str(error)
    assert seen == [TextDelta("Paris")]
    assert body.closed


async def test_a_connection_cut_mid_body_is_a_retryable_connection_error() -> None:
    content = sse_fixture("deepseek_stream_parallel")
    cut = SSEBody(content[: len(content) // 2], fail=httpx2.ReadError("connection reset by peer"))
    api = StreamAPI().serve(cut)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("deepseek-chat", tools=(WEATHER,)))

    assert caught.value.kind == "connection" and caught.value.retryable
    assert cut.closed


async def test_a_body_that_ends_before_the_finish_reason_is_a_retryable_error() -> None:
    body = chunks({"role": "assistant", "content": ""}, {"content": "Paris is"})

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(StreamAPI().serve(body)), request("deepseek-chat"))

    assert caught.value.kind == "connection" and caught.value.retryable
    assert "before the answer was complete" in str(caught.value)


async def test_insufficient_system_resource_in_a_stream_is_overloaded_with_its_usage() -> None:
    body = chunks({"content": "Paris"}, {"content": ""}, finish="insufficient_system_resource", usage=USAGE)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(StreamAPI().serve(body)), request("deepseek-chat"))

    assert caught.value.kind == "overloaded" and caught.value.retryable
    assert caught.value.usage == Usage.of(16, 10)


async def test_a_tool_call_fragment_for_an_unannounced_call_is_an_invalid_response() -> None:
    body = chunks(
        {"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}, finish="tool_calls", usage=USAGE
    )

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(StreamAPI().serve(body)), request("deepseek-chat", tools=(WEATHER,)))

    assert caught.value.kind == "invalid_response" and caught.value.retryable


async def test_malformed_streamed_arguments_fail_as_generate_fails_on_them() -> None:
    start = {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"ci'},
    }
    body = chunks({"tool_calls": [start]}, {"content": ""}, finish="tool_calls", usage=USAGE)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(StreamAPI().serve(body)), request("deepseek-chat", tools=(WEATHER,)))

    assert "malformed JSON arguments" in str(caught.value) and caught.value.retryable


async def test_the_request_timeout_bounds_each_read_of_the_stream() -> None:
    api = StreamAPI().serve(sse_fixture("deepseek_stream_text"))

    await collect(adapter(api), request("deepseek-chat"))

    assert api.timeouts[0]["read"] == 30.0


async def test_cancelling_a_stalled_stream_closes_the_http_response() -> None:
    content = sse_fixture("deepseek_stream_reasoning")
    body = SSEBody(content[: content.index(b"9.9 is")], stall=True)  # stalls while it reasons
    provider = adapter(StreamAPI().serve(body))

    async def consume() -> None:
        async with aclosing(provider.stream(request("deepseek-reasoner"))) as items:
            async for _ in items:
                pass

    task = asyncio.create_task(consume())
    await asyncio.wait_for(body.stalled.wait(), 5)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert body.closed


async def test_closing_the_iteration_early_closes_the_http_response() -> None:
    body = SSEBody(sse_fixture("deepseek_stream_text"))

    async with aclosing(adapter(StreamAPI().serve(body)).stream(request("deepseek-chat"))) as items:
        async for _ in items:
            break

    assert body.closed
