"""OpenAI streaming (Responses API ``stream=True``) through the real ``openai`` SDK on a mock transport.

The SSE bodies in ``fixtures/openai/openai_stream_*.sse`` are served in small pieces, as a socket delivers
them; :class:`StreamAPI` also cuts a body off mid-way or stalls it, and records whether it was closed.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator
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
from expert_jobs.domain.messages import AssistantMessage, ThinkingPart, ToolCall
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, StreamingProvider, StreamItem
from expert_jobs.providers.openai import OpenAIProvider
from tests.providers.kit import FIXTURES, TIME, WEATHER, MockAPI, Sent, fixture, request


def sse_fixture(name: str) -> bytes:
    """The SSE body recorded in ``fixtures/<name>.sse``."""
    return (FIXTURES / name.split("_", 1)[0] / f"{name}.sse").read_bytes()


def sse(*events: dict[str, Any]) -> bytes:
    """An SSE body of these events, each named by its ``type`` as the Responses API names them."""
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def completed_response(body: bytes) -> dict[str, Any]:
    """The response object of the ``response.completed`` event in an SSE body."""
    for line in body.decode().splitlines():
        if line.startswith("data: ") and '"response.completed"' in line:
            return dict(json.loads(line[6:])["response"])
    raise AssertionError("no response.completed event")


class SSEBody(httpx2.AsyncByteStream):
    """A streamed body: ``content`` in ``piece``-byte pieces, then optionally a stall (until the
    reader gives up) or a transport failure; remembers whether the client closed it."""

    def __init__(
        self, content: bytes, *, piece: int = 97, fail: Exception | None = None, stall: bool = False
    ) -> None:
        self.content = content
        self.piece = piece
        self.fail = fail
        self.stall = stall
        self.stalled = asyncio.Event()
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.content), self.piece):
            yield self.content[start : start + self.piece]
        if self.stall:
            self.stalled.set()
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed = True


class StreamAPI(MockAPI):
    """A :class:`MockAPI` that answers with queued :class:`SSEBody` streams (``text/event-stream``)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: deque[SSEBody] = deque()
        self.timeouts: list[Any] = []

    def serve(self, body: SSEBody | bytes) -> StreamAPI:
        """Queue a streamed answer."""
        self.bodies.append(body if isinstance(body, SSEBody) else SSEBody(body))
        return self

    def handle(self, req: httpx2.Request) -> httpx2.Response:
        """Record the request (and its timeouts), answer with the next stream or queued reply."""
        self.timeouts.append(req.extensions.get("timeout"))
        if not self.bodies:
            return super().handle(req)
        self.sent.append(Sent(req.method, str(req.url), req.headers, json.loads(req.content)))
        return httpx2.Response(
            200, stream=self.bodies.popleft(), headers={"content-type": "text/event-stream"}
        )


def adapter(api: MockAPI, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(api_key="sk-test", http_client=api.client(), **options)


async def collect(provider: Any, req: GenerationRequest) -> list[StreamItem]:
    """Everything ``provider.stream(req)`` yields (the adapters' streams are async generators)."""
    async with aclosing(provider.stream(req)) as items:
        return [item async for item in items]


def split(items: list[StreamItem]) -> tuple[list[StreamItem], GenerationResponse]:
    """The deltas and the final response, checking the response is last and comes once."""
    *deltas, final = items
    assert isinstance(final, GenerationResponse)
    assert not any(isinstance(item, GenerationResponse) for item in deltas)
    return deltas, final


async def test_text_streams_as_text_deltas_and_ends_with_what_generate_returns() -> None:
    api = StreamAPI().serve(sse_fixture("openai_stream_text")).reply(fixture("openai", "text"))
    provider = adapter(api)
    assert isinstance(provider, StreamingProvider)

    deltas, final = split(await collect(provider, request("gpt-4.1")))
    expected = await provider.generate(request("gpt-4.1"))

    streamed_body, plain_body = api.sent[0].body, api.sent[1].body
    assert streamed_body == {**plain_body, "stream": True}
    assert deltas == [
        *(TextDelta(t) for t in ("Paris", " is", " sunny", ",", " 24", " °C", ".")),
        UsageDelta(Usage.of(36, 9)),
    ]
    assert final == expected
    assert final.usage == Usage.of(36, 9) and final.model == "gpt-4.1-2025-04-14"
    assert [s.url for s in api.sent] == ["https://api.openai.com/v1/responses"] * 2


async def test_reasoning_summaries_stream_as_thinking_and_the_reasoning_item_is_kept_whole() -> None:
    body = sse_fixture("openai_stream_reasoning")
    api = StreamAPI().serve(body).reply(completed_response(body))
    provider = adapter(api, reasoning_summary="auto")

    deltas, final = split(await collect(provider, request("o3")))
    expected = await provider.generate(request("o3"))

    assert final == expected
    thinking, _ = final.parts
    assert isinstance(thinking, ThinkingPart) and thinking.provider_data is not None
    assert str(thinking.provider_data["encrypted_content"]).startswith("gAAAAAB")
    assert len(thinking.provider_data["summary"]) == 2
    streamed_thinking = "".join(d.text for d in deltas if isinstance(d, ThinkingDelta))
    assert streamed_thinking == thinking.text  # the two summary parts joined as the final part joins them
    assert "".join(d.text for d in deltas if isinstance(d, TextDelta)) == "9.9 is greater than 9.11."
    assert deltas[-1] == UsageDelta(Usage.of(75, 1186, reasoning=1024, cached=64))
    assert final.usage == Usage.of(75, 1186, reasoning=1024, cached=64)


async def test_parallel_tool_calls_stream_their_start_and_argument_fragments_by_index() -> None:
    api = StreamAPI().serve(sse_fixture("openai_stream_parallel")).reply(fixture("openai", "parallel"))
    provider = adapter(api)

    deltas, final = split(await collect(provider, request("gpt-5", tools=(WEATHER, TIME))))
    expected = await provider.generate(request("gpt-5", tools=(WEATHER, TIME)))

    assert final == expected and final.finish_reason == "tool_calls"
    assert [d for d in deltas if isinstance(d, ToolCallStartDelta)] == [
        ToolCallStartDelta(0, "call_Ab12Cd34Ef56Gh78Ij90Kl12", "get_weather"),
        ToolCallStartDelta(1, "call_Mn34Op56Qr78St90Uv12Wx34", "get_time"),
    ]
    fragments = [d for d in deltas if isinstance(d, ToolCallArgumentsDelta)]
    assert [f.index for f in fragments] == [0, 0, 0, 1, 1]
    calls = [p for p in final.parts if isinstance(p, ToolCall)]
    for index, call in enumerate(calls):
        joined = "".join(f.fragment for f in fragments if f.index == index)
        assert json.loads(joined) == call.arguments
    # each start comes before its fragments
    assert deltas.index(ToolCallStartDelta(1, calls[1].id, "get_time")) < deltas.index(fragments[3])


async def test_a_streamed_response_replays_exactly_like_a_generated_one() -> None:
    body = sse_fixture("openai_stream_parallel")
    api = StreamAPI().serve(body).reply(completed_response(body))
    api.reply(fixture("openai", "text")).reply(fixture("openai", "text"))
    provider = adapter(api)
    _, streamed = split(await collect(provider, request("gpt-5", tools=(WEATHER, TIME))))
    generated = await provider.generate(request("gpt-5", tools=(WEATHER, TIME)))

    inputs = []
    for response in (streamed, generated):
        history = (*request("gpt-5").messages, AssistantMessage(response.parts, "openai"))
        await provider.generate(request("gpt-5", *history, tools=(WEATHER, TIME)))
        inputs.append(api.body["input"])

    assert inputs[0] == inputs[1]
    reasoning = completed_response(body)["output"][0]
    assert inputs[0][1] == {
        "type": "reasoning",
        "id": reasoning["id"],
        "summary": [],
        "encrypted_content": reasoning["encrypted_content"],
    }


async def test_an_error_event_mid_stream_is_a_retryable_provider_error_and_nothing_is_returned() -> None:
    body = SSEBody(sse_fixture("openai_stream_error"))
    api = StreamAPI().serve(body)
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async with aclosing(adapter(api).stream(request("gpt-4.1"))) as items:
            async for item in items:
                seen.append(item)

    error = caught.value
    assert (error.kind, error.retryable, error.provider) == ("server", True, "openai")
    assert "The server had an error" in str(error)
    assert seen == [TextDelta("Paris")]
    assert body.closed


def _error_event(**fields: Any) -> dict[str, Any]:
    return {"type": "error", "sequence_number": 3, **fields}


@pytest.mark.parametrize(
    ("event", "kind", "retryable"),
    [
        (  # the nested shape the live API sends
            _error_event(
                error={"type": "tokens", "code": "rate_limit_exceeded", "message": "Rate limit reached"}
            ),
            "rate_limit",
            True,
        ),
        (
            _error_event(
                error={
                    "type": "insufficient_quota",
                    "code": "credit_balance_exhausted",
                    "message": "No credits",
                }
            ),
            "billing",
            False,
        ),
        # the flat shape the API reference documents
        (_error_event(code="server_error", message="Something went wrong", param=None), "server", True),
        (_error_event(code="rate_limit_exceeded", message="Slow down", param=None), "rate_limit", True),
    ],
    ids=["nested-rate-limit", "nested-billing", "flat-server", "flat-rate-limit"],
)
async def test_error_events_are_classified_by_their_code(
    event: dict[str, Any], kind: str, retryable: bool
) -> None:
    created = {
        "type": "response.created",
        "sequence_number": 0,
        "response": {**fixture("openai", "text"), "output": []},
    }
    api = StreamAPI().serve(sse(created, event))

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-4.1"))

    assert (caught.value.kind, caught.value.retryable) == (kind, retryable)


async def test_a_failed_response_event_is_a_retryable_server_error() -> None:
    api = StreamAPI().serve(sse_fixture("openai_stream_failed"))

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-5"))

    assert caught.value.kind == "server" and caught.value.retryable
    assert "invalid content" in str(caught.value)


async def test_a_connection_cut_mid_body_is_a_retryable_connection_error() -> None:
    content = sse_fixture("openai_stream_text")
    cut = SSEBody(
        content[: len(content) // 2],
        fail=httpx2.RemoteProtocolError("peer closed connection without sending complete message body"),
    )
    api = StreamAPI().serve(cut)
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async with aclosing(adapter(api).stream(request("gpt-4.1"))) as items:
            async for item in items:
                seen.append(item)

    assert caught.value.kind == "connection" and caught.value.retryable
    assert seen and all(isinstance(item, TextDelta) for item in seen)
    assert cut.closed


async def test_a_body_that_ends_before_the_terminal_event_is_a_retryable_error() -> None:
    content = sse_fixture("openai_stream_text")
    ended = content[: content.index(b"event: response.completed")]
    api = StreamAPI().serve(ended)

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-4.1"))

    assert caught.value.kind == "connection" and caught.value.retryable
    assert "before the response was complete" in str(caught.value)


async def test_an_incomplete_response_ends_the_stream_as_generate_would_end() -> None:
    incomplete = fixture("openai", "incomplete")
    api = StreamAPI().serve(
        sse({"type": "response.incomplete", "sequence_number": 0, "response": incomplete})
    )

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-5"))

    assert caught.value.kind == "empty_output" and "length" in str(caught.value)
    assert caught.value.usage == Usage.of(64, 256, reasoning=256)


async def test_a_terminal_event_without_output_falls_back_to_the_items_streamed() -> None:
    content = sse_fixture("openai_stream_text")
    head, _, _ = content.partition(b"event: response.completed")
    completed = {**fixture("openai", "text"), "output": []}  # as some gateways send it
    api = StreamAPI().serve(
        head + sse({"type": "response.completed", "sequence_number": 99, "response": completed})
    )

    _, final = split(await collect(adapter(api), request("gpt-4.1")))

    assert [p.text for p in final.parts if not isinstance(p, ToolCall)] == ["Paris is sunny, 24 °C."]


async def test_an_http_error_before_the_stream_goes_through_the_usual_classification() -> None:
    api = StreamAPI().reply(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        429,
        {"retry-after-ms": "1500"},
    )

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-5"))

    assert caught.value.kind == "rate_limit" and caught.value.retry_after == 1.5
    assert api.sent[0].body["stream"] is True


async def test_the_request_timeout_bounds_each_read_of_the_stream() -> None:
    api = StreamAPI().serve(sse_fixture("openai_stream_text"))

    await collect(adapter(api), request("gpt-4.1"))  # the kit's requests carry timeout=30.0

    assert api.timeouts[0]["read"] == 30.0
    assert api.sent[0].headers["x-stainless-read-timeout"] == "30.0"


async def test_closing_the_iteration_early_closes_the_http_response() -> None:
    body = SSEBody(sse_fixture("openai_stream_text"))
    api = StreamAPI().serve(body)

    async with aclosing(adapter(api).stream(request("gpt-4.1"))) as items:
        async for item in items:
            assert item == TextDelta("Paris")
            break

    assert body.closed


async def test_cancelling_a_stalled_stream_closes_the_http_response() -> None:
    content = sse_fixture("openai_stream_text")
    body = SSEBody(content[: content.index(b"event: response.output_text.done")], stall=True)
    api = StreamAPI().serve(body)
    provider = adapter(api)
    seen: list[StreamItem] = []

    async def consume() -> None:
        async with aclosing(provider.stream(request("gpt-4.1"))) as items:
            async for item in items:
                seen.append(item)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(body.stalled.wait(), 5)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert body.closed
    assert "".join(d.text for d in seen if isinstance(d, TextDelta)) == "Paris is sunny, 24 °C."


async def test_tools_on_a_model_without_function_calling_fail_before_streaming() -> None:
    api = StreamAPI()

    with pytest.raises(ProviderError) as caught:
        await collect(adapter(api), request("gpt-5-chat-latest", tools=(WEATHER,)))

    assert caught.value.kind == "bad_request" and api.sent == []


async def test_events_the_adapter_does_not_know_are_ignored() -> None:
    content = sse_fixture("openai_stream_text")
    head, _, tail = content.partition(b"event: response.completed")
    novel = sse({"type": "response.brand_new_feature.delta", "sequence_number": 50, "delta": {"x": 1}})
    api = (
        StreamAPI().serve(head + novel + b"event: response.completed" + tail).reply(fixture("openai", "text"))
    )
    provider = adapter(api)

    _, final = split(await collect(provider, request("gpt-4.1")))

    assert final == await provider.generate(request("gpt-4.1"))


async def test_a_body_left_open_after_the_terminal_event_is_closed_and_the_answer_kept() -> None:
    body = SSEBody(sse_fixture("openai_stream_text"), stall=True)  # the server never ends the body
    api = StreamAPI().serve(body)

    _, final = split(await asyncio.wait_for(collect(adapter(api), request("gpt-4.1")), 5))

    assert final.parts[0].text == "Paris is sunny, 24 °C."  # type: ignore[union-attr]
    assert body.closed
