"""The Anthropic adapter's stream() through the real ``anthropic`` SDK, on recorded SSE bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import (
    AssistantMessage,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
)
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import (
    GenerationRequest,
    GenerationResponse,
    ReasoningSettings,
    StreamingProvider,
)
from expert_jobs.providers.anthropic import AnthropicProvider
from tests.providers.kit import FIXTURES, TIME, WEATHER, MockAPI, fixture, request

MODEL = "claude-haiku-4-5"
SSE = "text/event-stream"


def sse(name: str) -> bytes:
    """A recorded stream body, ``fixtures/anthropic/anthropic_stream_<name>.sse``."""
    return (FIXTURES / "anthropic" / f"anthropic_stream_{name}.sse").read_bytes()


def stream_fixture(name: str) -> Any:
    """The non-streaming body equivalent to a recorded stream
    (``fixtures/anthropic/anthropic_stream_<name>.json``)."""
    return fixture("anthropic", f"anthropic_stream_{name}")


def adapter(api: MockAPI) -> AnthropicProvider:
    return AnthropicProvider(api_key="sk-ant-test", http_client=api.client())


async def collect(
    provider: AnthropicProvider, req: GenerationRequest
) -> tuple[list[StreamDelta], GenerationResponse]:
    """Every delta of a stream, and its final response (checked to come once, last)."""
    items = [item async for item in provider.stream(req)]
    *deltas, final = items
    assert isinstance(final, GenerationResponse)
    assert not any(isinstance(item, GenerationResponse) for item in deltas)
    return deltas, final  # type: ignore[return-value]


async def stream_and_generate(
    name: str, body: Any, req: GenerationRequest
) -> tuple[list[StreamDelta], GenerationResponse, GenerationResponse, MockAPI]:
    """Stream the recorded body, then generate() on its non-streaming equivalent."""
    api = MockAPI().raw(sse(name), content_type=SSE).reply(body)
    provider = adapter(api)
    deltas, streamed = await collect(provider, req)
    generated = await provider.generate(req)
    return deltas, streamed, generated, api


async def test_text_streams_deltas_then_the_response_generate_returns() -> None:
    deltas, streamed, generated, api = await stream_and_generate(
        "text", fixture("anthropic", "text"), request(MODEL)
    )

    assert isinstance(adapter(MockAPI()), StreamingProvider)
    assert deltas == [
        UsageDelta(Usage.of(21, 1)),
        TextDelta("Paris is"),
        TextDelta(" sunny,"),
        TextDelta(" 24 °C."),
        UsageDelta(Usage.of(21, 12)),
    ]
    assert streamed == generated
    assert streamed.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert streamed.finish_reason == "stop" and streamed.model == "claude-haiku-4-5-20251001"
    # The same request, asked for as a stream.
    streamed_body, generated_body = api.sent[0].body, api.sent[1].body
    assert streamed_body.pop("stream") is True
    assert streamed_body == generated_body
    assert api.sent[0].headers["x-stainless-retry-count"] == "0"


async def test_thinking_signature_redacted_thinking_and_a_tool_call_stream_and_replay() -> None:
    reasoning = ReasoningSettings(budget_tokens=4000)
    req = request("claude-opus-4-1", tools=(WEATHER,), reasoning=reasoning)
    deltas, streamed, generated, api = await stream_and_generate(
        "thinking", fixture("anthropic", "thinking"), req
    )

    assert [d for d in deltas if not isinstance(d, UsageDelta)] == [
        ThinkingDelta("The user wants Paris weather."),
        ThinkingDelta(" I should call get_weather with city=Paris."),
        ToolCallStartDelta(0, "toolu_01CbB3Zu9kX4oB6yRy2dPxnW", "get_weather"),
        ToolCallArgumentsDelta(0, '{"city": "Pa'),
        ToolCallArgumentsDelta(0, 'ris"}'),
    ]
    assert streamed == generated
    thinking, redacted, call = streamed.parts
    assert isinstance(thinking, ThinkingPart) and thinking.signature is not None
    assert thinking.signature.startswith("EqQBCgIYAhIM")
    assert isinstance(redacted, ThinkingPart) and redacted.redacted_data is not None
    assert call == ToolCall("toolu_01CbB3Zu9kX4oB6yRy2dPxnW", "get_weather", {"city": "Paris"})
    assert streamed.usage == Usage.of(410, 620, reasoning=480)
    assert api.sent[0].body["thinking"] == {"type": "enabled", "budget_tokens": 4000}

    # The streamed parts replay exactly as the non-streaming path replays them.
    api.raw(sse("text"), content_type=SSE)
    history = (
        req.messages[0],
        AssistantMessage(streamed.parts, "anthropic"),
        ToolResultsMessage((ToolResult(call.id, "get_weather", "sunny"),)),
    )
    await collect(adapter(api), request("claude-opus-4-1", *history, tools=(WEATHER,), reasoning=reasoning))
    assert api.body["messages"][1]["content"] == [
        {"type": "thinking", "thinking": thinking.text, "signature": thinking.signature},
        {"type": "redacted_thinking", "data": redacted.redacted_data},
        {"type": "tool_use", "id": call.id, "name": "get_weather", "input": {"city": "Paris"}},
    ]


async def test_thinking_then_text_on_a_large_max_tokens_call() -> None:
    # A call generate() would make non-streaming although it may run long: 60,000 tokens of output.
    req = request(
        "claude-sonnet-4-5", reasoning=ReasoningSettings(budget_tokens=50_000), max_output_tokens=60_000
    )
    deltas, streamed, generated, api = await stream_and_generate(
        "thinking_text", stream_fixture("thinking_text"), req
    )

    assert api.sent[0].body["max_tokens"] == 60_000
    assert api.sent[0].body["thinking"] == {"type": "enabled", "budget_tokens": 50_000}
    assert api.sent[0].body["stream"] is True
    assert [d for d in deltas if not isinstance(d, UsageDelta)] == [
        ThinkingDelta("Two plus two"),
        ThinkingDelta(" is four."),
        TextDelta("2 + 2"),
        TextDelta(" = 4."),
    ]
    assert streamed == generated
    thinking, text = streamed.parts
    assert isinstance(thinking, ThinkingPart) and thinking.text == "Two plus two is four."
    assert thinking.signature is not None and thinking.signature.startswith("ErUBCkYIBxgC")
    assert text == TextPart("2 + 2 = 4.")
    assert deltas[-1] == UsageDelta(Usage.of(38, 41, reasoning=30))


async def test_parallel_tool_calls_are_indexed_by_their_position_among_the_calls() -> None:
    deltas, streamed, generated, _ = await stream_and_generate(
        "parallel_tools", stream_fixture("parallel_tools"), request(MODEL, tools=(WEATHER, TIME))
    )

    # Content blocks 1 and 2 (after a text block) are tool calls 0 and 1.
    starts = [d for d in deltas if isinstance(d, ToolCallStartDelta)]
    assert starts == [
        ToolCallStartDelta(0, "toolu_01HrF1kp3XwGNs2aMCJtCPez", "get_weather"),
        ToolCallStartDelta(1, "toolu_01SzC8NaAa7X7sMtmPqnJ3RR", "get_time"),
    ]
    fragments = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert [f.index for f in fragments] == [0, 0, 1, 1]
    assert "".join(f.fragment for f in fragments if f.index == 0) == '{"city": "Paris"}'
    assert "".join(f.fragment for f in fragments if f.index == 1) == '{"city": "Paris"}'
    assert TextDelta("Checking both.") in deltas
    assert streamed == generated
    assert streamed.finish_reason == "tool_calls"
    assert [p.name for p in streamed.parts if isinstance(p, ToolCall)] == ["get_weather", "get_time"]


async def test_usage_streams_with_cache_reads_and_writes_and_ends_exact() -> None:
    deltas, streamed, generated, _ = await stream_and_generate(
        "cached", fixture("anthropic", "cached"), request(MODEL)
    )

    usages = [d.usage for d in deltas if isinstance(d, UsageDelta)]
    assert len(usages) == 2  # message_start, message_delta
    first, last = usages
    # message_start: input 50 + 8,000 read + 1,200 written, and a first output count.
    assert (first.input_tokens, first.cached_input_tokens, first.output_tokens) == (9250, 8000, 1)
    assert (last.input_tokens, last.cached_input_tokens, last.output_tokens) == (9250, 8000, 120)
    assert streamed == generated
    assert streamed.usage == last
    assert streamed.raw_usage == fixture("anthropic", "cached")["usage"]


async def test_an_error_event_mid_stream_is_a_retryable_error_and_nothing_is_returned() -> None:
    api = MockAPI().raw(sse("overloaded"), content_type=SSE)
    seen: list[object] = []

    with pytest.raises(ProviderError) as caught:
        async for item in adapter(api).stream(request(MODEL)):
            seen.append(item)

    error = caught.value
    assert (error.kind, error.retryable, error.provider) == ("overloaded", True, "anthropic")
    assert error.status_code is None  # the HTTP status was 200
    assert "Overloaded" in str(error) and "overloaded_error" in str(error)
    assert isinstance(error.__cause__, anthropic.APIStatusError)
    assert TextDelta("Paris is") in seen
    assert not any(isinstance(item, GenerationResponse) for item in seen)


async def test_an_error_event_of_an_unknown_type_is_a_retryable_server_error() -> None:
    body = sse("overloaded").replace(b'"type":"overloaded_error"', b'"type":"stream_reset_error"')
    api = MockAPI().raw(body, content_type=SSE)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert (caught.value.kind, caught.value.retryable) == ("server", True)


@pytest.mark.parametrize("case", fixture("anthropic", "errors"), ids=lambda case: case["name"])
async def test_an_http_error_before_the_stream_is_classified_as_generate_classifies_it(
    case: dict[str, Any],
) -> None:
    api = MockAPI().reply(case["body"], case["status"], case.get("headers"))
    api.reply(case["body"], case["status"], case.get("headers"))
    provider = adapter(api)

    with pytest.raises(ProviderError) as streamed:
        await collect(provider, request(MODEL))
    with pytest.raises(ProviderError) as generated:
        await provider.generate(request(MODEL))

    expect = case["expect"]
    error = streamed.value
    assert (error.kind, error.retryable, error.status_code) == (
        expect["kind"],
        expect["retryable"],
        case["status"],
    )
    assert error.retry_after == expect.get("retry_after")
    assert str(error) == str(generated.value)
    assert len(api.sent) == 2  # the SDK did not retry


class Body(httpx2.AsyncByteStream):
    """A response body served in chunks, then failing, ending or stalling; it records being closed."""

    def __init__(self, chunks: list[bytes], then: BaseException | None = None, stall: bool = False) -> None:
        self.chunks = chunks
        self.then = then
        self.stall = stall
        self.closed = False
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.sent += 1
            yield chunk
            await asyncio.sleep(0)
        if self.then is not None:
            raise self.then
        if self.stall:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


def events_of(name: str) -> list[bytes]:
    """A recorded stream body cut into its events (one chunk each)."""
    return [event + b"\n\n" for event in sse(name).split(b"\n\n") if event.strip()]


def serving(body: Body, seen: list[httpx2.Request] | None = None) -> AnthropicProvider:
    def handle(req: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(req)
        return httpx2.Response(200, headers={"content-type": SSE}, stream=body)

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handle))
    return AnthropicProvider(api_key="sk-ant-test", http_client=client)


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (
            httpx2.RemoteProtocolError("peer closed connection without sending complete message body"),
            "connection",
        ),
        (httpx2.ReadError("connection reset by peer"), "connection"),
        (httpx2.ReadTimeout("read timed out"), "timeout"),
    ],
    ids=["cut", "reset", "idle-timeout"],
)
async def test_a_connection_cut_mid_body_is_retryable_and_nothing_is_returned(
    failure: Exception, kind: str
) -> None:
    body = Body(events_of("text")[:4], then=failure)
    seen: list[object] = []

    with pytest.raises(ProviderError) as caught:
        async for item in serving(body).stream(request(MODEL)):
            seen.append(item)

    assert (caught.value.kind, caught.value.retryable) == (kind, True)
    assert TextDelta("Paris is") in seen
    assert not any(isinstance(item, GenerationResponse) for item in seen)
    assert body.closed


async def test_a_body_that_ends_before_message_stop_is_a_retryable_connection_error() -> None:
    body = Body(events_of("text")[:-1])  # everything but message_stop, then a clean end

    with pytest.raises(ProviderError) as caught:
        await collect(serving(body), request(MODEL))

    assert (caught.value.kind, caught.value.retryable) == ("connection", True)
    assert "message_stop" in str(caught.value)


async def test_the_request_timeout_bounds_each_read_of_the_stream() -> None:
    seen: list[httpx2.Request] = []

    await collect(serving(Body(events_of("text")), seen), request(MODEL))

    # kit.request() asks for 30 s: the wait for every chunk, not the whole stream.
    assert seen[0].extensions["timeout"]["read"] == 30.0


async def test_cancelling_the_task_mid_stream_closes_the_http_response() -> None:
    body = Body(events_of("text")[:4], stall=True)
    provider = serving(body)
    first = asyncio.Event()

    async def consume() -> None:
        async for item in provider.stream(request(MODEL)):
            if isinstance(item, TextDelta):
                first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 5)
    await asyncio.sleep(0.01)  # the stream is now waiting for the next chunk
    assert not body.closed
    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert body.closed


async def test_a_stream_left_early_closes_the_http_response() -> None:
    body = Body(events_of("text"))
    stream = serving(body).stream(request(MODEL))

    async for item in stream:
        if isinstance(item, TextDelta):
            break
    await stream.aclose()  # type: ignore[attr-defined]

    assert body.closed
    assert body.sent < len(body.chunks)


async def test_a_body_that_stays_open_after_message_stop_does_not_hold_the_answer() -> None:
    body = Body(events_of("text"), stall=True)

    deltas, response = await asyncio.wait_for(collect(serving(body), request(MODEL)), 5)

    assert response.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert TextDelta(" 24 °C.") in deltas
    assert body.closed


async def test_a_request_that_cannot_be_sent_fails_before_any_call() -> None:
    api = MockAPI()
    req = request("claude-opus-4-1", reasoning=ReasoningSettings(budget_tokens=4000), max_output_tokens=800)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), req)

    assert caught.value.kind == "bad_request" and not caught.value.retryable
    assert api.sent == []


async def test_garbage_usage_in_a_stream_is_a_retryable_invalid_response() -> None:
    body = sse("text").replace(b'"usage":{"output_tokens":12}', b'"usage":{"output_tokens":-12}')
    api = MockAPI().raw(body, content_type=SSE)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert (caught.value.kind, caught.value.retryable) == ("invalid_response", True)
    assert "output_tokens" in str(caught.value)


async def test_an_empty_streamed_answer_is_empty_output_with_its_usage() -> None:
    empty = fixture("anthropic", "empty")
    body = (
        b"".join(chunk for chunk in events_of("text") if b"content_block" not in chunk)
        .replace(b'"output_tokens":12', b'"output_tokens":3')
        .replace(b'"input_tokens":21', b'"input_tokens":30')
    )

    api = MockAPI().raw(body, content_type=SSE).reply(empty)
    provider = adapter(api)
    with pytest.raises(ProviderError) as streamed:
        await collect(provider, request(MODEL))
    with pytest.raises(ProviderError) as generated:
        await provider.generate(request(MODEL))

    assert streamed.value.kind == "empty_output" and streamed.value.retryable
    assert streamed.value.usage == generated.value.usage == Usage.of(30, 3)


def test_a_call_over_the_non_streaming_max_tokens_asks_to_be_streamed() -> None:
    from expert_jobs.ports.provider import ReasoningSettings
    from expert_jobs.providers.anthropic import NON_STREAMING_MAX_TOKENS

    provider = adapter(MockAPI())
    assert not provider.should_stream(request(MODEL, max_output_tokens=4096))
    assert not provider.should_stream(request(MODEL, max_output_tokens=NON_STREAMING_MAX_TOKENS))
    assert provider.should_stream(request(MODEL, max_output_tokens=NON_STREAMING_MAX_TOKENS + 1))
    thinking = ReasoningSettings(budget_tokens=30_000)
    assert provider.should_stream(request(MODEL, reasoning=thinking, temperature=None))
    # A budget that cannot fit is generate()'s error to raise, not a reason to stream.
    cramped = request(MODEL, max_output_tokens=1000, reasoning=ReasoningSettings(budget_tokens=2000))
    with pytest.raises(ProviderError, match="budget"):
        provider._call(cramped)
    assert not provider.should_stream(cramped)
