"""Gemini streaming through the real ``google-genai`` SDK on a mock transport serving SSE bodies as
``:streamGenerateContent?alt=sse`` sends them."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

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
from expert_jobs.domain.messages import AssistantMessage, TextPart, ThinkingPart, ToolCall, UserMessage
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, StreamingProvider, StreamItem
from expert_jobs.providers.gemini import GeminiProvider
from tests.providers.kit import FIXTURES, TIME, WEATHER, MockAPI, Sent, fixture, request

MODEL = "gemini-2.5-flash"
QUESTION = UserMessage.text("What is the weather in Paris?")


def sse(name: str) -> bytes:
    """A recorded streaming body, ``fixtures/gemini/<name>.sse``."""
    return (FIXTURES / "gemini" / f"{name}.sse").read_bytes()


def events(*bodies: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(body).encode() + b"\r\n\r\n" for body in bodies)


class Body(httpx2.AsyncByteStream):
    """A response body sent piece by piece: bytes, then optionally a failure or a stall."""

    def __init__(self, *pieces: bytes, then: BaseException | None = None, stall: bool = False) -> None:
        self.pieces = pieces
        self.then = then
        self.stall = stall
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.then is not None:
            raise self.then
        if self.stall:
            await asyncio.Event().wait()

    async def aclose(self) -> None:
        self.closed = True


class StreamingAPI(MockAPI):
    """:class:`MockAPI` that can also answer with a :class:`Body` (served before queued replies)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: deque[Body] = deque()

    def body(self, body: Body) -> StreamingAPI:
        self.bodies.append(body)
        return self

    def handle(self, req: httpx2.Request) -> httpx2.Response:
        if not self.bodies:
            return super().handle(req)
        self.sent.append(Sent(req.method, str(req.url), req.headers, json.loads(req.content)))
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, headers=headers, stream=self.bodies.popleft())


def adapter(api: MockAPI) -> GeminiProvider:
    return GeminiProvider(api_key="AIza-test", http_client=api.client())


async def collect(provider: GeminiProvider, req: GenerationRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(req)]


def split(items: list[StreamItem]) -> tuple[list[StreamDelta], GenerationResponse]:
    *deltas, last = items
    assert isinstance(last, GenerationResponse)
    assert not any(isinstance(d, GenerationResponse) for d in deltas)
    return deltas, last  # type: ignore[return-value]


async def streamed_and_generated(
    stream_body: str, generate_body: str, req: GenerationRequest
) -> tuple[list[StreamDelta], GenerationResponse, GenerationResponse, MockAPI]:
    """The deltas and final response of streaming ``stream_body``, and generate()'s response to the
    equivalent ``generate_body``, for the same request."""
    api = (
        MockAPI()
        .raw(sse(stream_body), content_type="text/event-stream")
        .reply(fixture("gemini", generate_body))
    )
    provider = adapter(api)
    deltas, streamed = split(await collect(provider, req))
    generated = await provider.generate(req)
    return deltas, streamed, generated, api


async def test_text_streams_as_deltas_and_ends_with_what_generate_returns() -> None:
    req = request(MODEL, temperature=0.4, max_output_tokens=2048)
    deltas, streamed, generated, api = await streamed_and_generated("gemini_stream_text", "text", req)

    assert deltas == [
        TextDelta("Paris is"),
        UsageDelta(Usage.of(12, 0)),
        TextDelta(" sunny,"),
        TextDelta(" 24 °C."),
        UsageDelta(Usage.of(12, 9)),
    ]
    assert streamed == generated
    assert streamed.parts == (TextPart("Paris is sunny, 24 °C."),)
    assert (streamed.finish_reason, streamed.usage, streamed.model) == ("stop", Usage.of(12, 9), MODEL)
    assert streamed.raw_usage == generated.raw_usage
    stream_call, generate_call = api.sent
    assert stream_call.url.endswith(f"/models/{MODEL}:streamGenerateContent?alt=sse")
    assert stream_call.body == generate_call.body  # one request builder for both


async def test_a_stream_has_no_total_deadline_its_timeout_bounds_each_read() -> None:
    api = MockAPI().raw(sse("gemini_stream_text"), content_type="text/event-stream")

    await collect(adapter(api), request(MODEL))

    assert "x-server-timeout" not in api.sent[0].headers


async def test_thoughts_stream_as_thinking_and_the_signature_on_the_last_empty_part_is_kept() -> None:
    req = request("gemini-2.5-pro")
    deltas, streamed, generated, api = await streamed_and_generated("gemini_stream_thinking", "thinking", req)

    assert [d for d in deltas if not isinstance(d, UsageDelta)] == [
        ThinkingDelta("**Weighing the evidence**\n\n"),
        ThinkingDelta("The forecast and the station agree on sun."),
        TextDelta("Paris is sunny, "),
        TextDelta("24 °C."),
    ]
    assert [d.usage for d in deltas if isinstance(d, UsageDelta)] == [
        Usage.of(35, 250, reasoning=250),
        Usage.of(35, 258, reasoning=250),
    ]
    assert streamed == generated
    thought, text = streamed.parts
    assert isinstance(thought, ThinkingPart) and thought.provider == "google"
    assert isinstance(text, TextPart) and text.signature is not None

    # replayed exactly as a generate() answer is: the signature goes back on the text part
    follow_up = (QUESTION, AssistantMessage(streamed.parts, "google"), UserMessage.text("Thanks!"))
    api.raw(sse("gemini_stream_text"), content_type="text/event-stream")
    await collect(adapter(api), request("gemini-2.5-pro", *follow_up))
    thought_part, text_part = api.body["contents"][1]["parts"]
    assert thought_part["thought"] is True and thought_part["text"] == thought.text
    value = text_part.get("thoughtSignature") or text_part["thought_signature"]
    sent = base64.urlsafe_b64decode(value.replace("+", "-").replace("/", "_"))
    assert sent == base64.b64decode(text.signature)


async def test_parallel_function_calls_stream_a_start_and_their_arguments_each() -> None:
    earlier = (QUESTION, AssistantMessage((TextPart("Let me look."),), "google"), UserMessage.text("Go on."))
    req = request(MODEL, *earlier, tools=(WEATHER, TIME))
    deltas, streamed, generated, _ = await streamed_and_generated("gemini_stream_parallel", "parallel", req)

    assert deltas == [
        ToolCallStartDelta(0, "gemini_call_3_0", "get_weather"),
        ToolCallArgumentsDelta(0, '{"city": "Paris"}'),
        ToolCallStartDelta(1, "gemini_call_3_1", "get_time"),
        ToolCallArgumentsDelta(1, '{"city": "Paris"}'),
        UsageDelta(Usage.of(96, 154, reasoning=124)),
    ]
    assert streamed == generated
    weather, time = streamed.parts
    assert isinstance(weather, ToolCall) and isinstance(time, ToolCall)
    assert weather.signature is not None and time.signature is None
    assert streamed.finish_reason == "tool_calls"


async def test_an_error_event_mid_stream_is_classified_after_the_deltas_before_it() -> None:
    api = MockAPI().raw(sse("gemini_stream_error"), content_type="text/event-stream")
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in adapter(api).stream(request(MODEL)):
            seen.append(item)

    assert seen == [TextDelta("Paris is"), UsageDelta(Usage.of(12, 0))]
    error = caught.value
    assert (error.kind, error.retryable, error.status_code, error.provider) == (
        "overloaded",
        True,
        503,
        "google",
    )
    assert "The model is overloaded" in str(error)


async def test_a_cut_connection_is_a_retryable_connection_error_and_nothing_partial() -> None:
    first, _ = sse("gemini_stream_text").split(b"\r\n\r\n", 1)
    cut = httpx2.RemoteProtocolError("peer closed connection without sending complete message body")
    body = Body(first + b"\r\n\r\n", b'data: {"candidates":[{"content":{"parts":[{"te', then=cut)
    api = StreamingAPI().body(body)
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in adapter(api).stream(request(MODEL)):
            seen.append(item)

    assert (caught.value.kind, caught.value.retryable) == ("connection", True)
    assert not any(isinstance(item, GenerationResponse) for item in seen)
    assert seen[0] == TextDelta("Paris is")
    assert body.closed


async def test_a_stream_ending_without_a_finish_reason_was_cut() -> None:
    api = MockAPI().raw(sse("gemini_stream_truncated"), content_type="text/event-stream")
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in adapter(api).stream(request(MODEL)):
            seen.append(item)

    assert (caught.value.kind, caught.value.retryable) == ("connection", True)
    assert "no finish reason" in str(caught.value)
    assert [type(item) for item in seen] == [TextDelta, UsageDelta, TextDelta]


async def test_each_read_is_bounded_by_the_request_timeout() -> None:
    first, _ = sse("gemini_stream_text").split(b"\r\n\r\n", 1)
    body = Body(first + b"\r\n\r\n", stall=True)
    api = StreamingAPI().body(body)
    req = GenerationRequest(MODEL, "", (QUESTION,), timeout=0.05)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), req)

    assert (caught.value.kind, caught.value.retryable) == ("timeout", True)
    assert "no chunk within 0.05 s" in str(caught.value)
    assert body.closed


async def test_a_consumer_that_stops_early_or_is_cancelled_closes_the_http_stream_at_once() -> None:
    first_event = sse("gemini_stream_text").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    stopped = Body(first_event, stall=True)  # one event, then the model is slow
    cancelled = Body(first_event[:60], stall=True)  # not even one whole event
    api = StreamingAPI().body(stopped).body(cancelled)
    provider = adapter(api)
    gc.disable()  # the SDK leaves its response in a reference cycle: the collector must not be what closes it
    try:
        stream = provider.stream(request(MODEL))
        assert await anext(stream) == TextDelta("Paris is")
        await stream.aclose()  # what the engine does when it stops listening
        assert stopped.closed

        task = asyncio.create_task(collect(provider, request(MODEL)))
        await asyncio.sleep(0.05)
        task.cancel()  # a cancelled job
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled.closed
    finally:
        gc.enable()


@pytest.mark.parametrize("case", fixture("gemini", "errors"), ids=lambda case: case["name"])
async def test_an_error_status_before_the_stream_is_classified_as_for_generate(case: dict[str, Any]) -> None:
    api = MockAPI().reply(case["body"], case["status"], case.get("headers"))

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    expect = case["expect"]
    assert (caught.value.kind, caught.value.retryable, caught.value.status_code) == (
        expect["kind"],
        expect["retryable"],
        case["status"],
    )
    assert caught.value.retry_after == expect.get("retry_after")
    assert len(api.sent) == 1  # no SDK retry


@pytest.mark.parametrize(("failure", "kind"), [("connect", "connection"), ("timeout", "timeout")])
async def test_transport_failures_before_the_stream_are_retryable(failure: str, kind: str) -> None:
    api = MockAPI().fail(failure)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert caught.value.kind == kind and caught.value.retryable


async def test_a_blocked_prompt_fails_the_stream_as_it_fails_generate() -> None:
    api = MockAPI().raw(events(fixture("gemini", "blocked")), content_type="text/event-stream")

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert caught.value.kind == "other" and not caught.value.retryable
    assert "content filter" in str(caught.value)


async def test_an_empty_streamed_answer_is_empty_output_with_its_usage() -> None:
    api = MockAPI().raw(events(fixture("gemini", "empty")), content_type="text/event-stream")

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert caught.value.kind == "empty_output" and caught.value.usage == Usage.of(20, 0)


async def test_a_chunk_that_is_not_json_is_an_invalid_response() -> None:
    body = sse("gemini_stream_text").split(b"\r\n\r\n", 1)[0] + b"\r\n\r\ndata: {not json\r\n\r\n"
    api = MockAPI().raw(body, content_type="text/event-stream")

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert (caught.value.kind, caught.value.retryable) == ("invalid_response", True)


async def test_absurd_usage_in_a_chunk_is_an_invalid_response() -> None:
    chunk = {
        "candidates": [{"content": {"parts": [{"text": "hi"}], "role": "model"}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 10**12},
    }
    api = MockAPI().raw(events(chunk), content_type="text/event-stream")

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request(MODEL))

    assert caught.value.kind == "invalid_response"


def test_the_adapter_is_a_streaming_provider() -> None:
    assert isinstance(adapter(MockAPI()), StreamingProvider)
