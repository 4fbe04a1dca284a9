"""The offline providers stream: the response ``generate`` returns, as deltas, then the response."""

from __future__ import annotations

import json
from typing import Any

import pytest

from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError, UsageError
from expert_jobs.domain.messages import TextPart, ThinkingPart, ToolCall
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, StreamingProvider, StreamItem
from expert_jobs.providers.scripted import (
    DEFAULT_STREAM_CHUNK_CHARS,
    Call,
    Fail,
    FunctionProvider,
    Reply,
    ScriptedProvider,
    ToolCalls,
    Turn,
    response_deltas,
)
from tests.providers.kit import request

ANSWER = "Two and three make five, as the calculator confirmed."
THOUGHT = "The user wants a sum; add them."


async def collect(provider: Any, req: GenerationRequest | None = None) -> list[StreamItem]:
    return [item async for item in provider.stream(req or request("m"))]


def split(items: list[StreamItem]) -> tuple[list[StreamDelta], GenerationResponse]:
    """The deltas and the response of a stream, checking the response comes once and last."""
    *deltas, last = items
    assert isinstance(last, GenerationResponse)
    assert not any(isinstance(d, GenerationResponse) for d in deltas)
    return deltas, last  # type: ignore[return-value]


def texts(deltas: list[StreamDelta], cls: type[TextDelta] | type[ThinkingDelta]) -> list[str]:
    return [d.text for d in deltas if isinstance(d, cls)]


async def test_a_reply_streams_thinking_then_text_then_usage_then_the_response() -> None:
    usage = Usage.of(40, 12, reasoning=4)
    provider = ScriptedProvider([Reply(ANSWER, usage=usage, thinking=THOUGHT)], stream_chunk_chars=10)
    assert isinstance(provider, StreamingProvider)

    deltas, response = split(await collect(provider))

    kinds = [d.kind for d in deltas]
    assert kinds == ["thinking"] * 4 + ["text"] * 6 + ["usage"]
    assert "".join(texts(deltas, ThinkingDelta)) == THOUGHT
    assert "".join(texts(deltas, TextDelta)) == ANSWER
    assert deltas[-1] == UsageDelta(usage)
    assert response.parts == (ThinkingPart(THOUGHT, signature="sig-0", provider="scripted"), TextPart(ANSWER))
    assert (response.finish_reason, response.usage) == ("stop", usage)


@pytest.mark.parametrize("size", [1, 3, 16, 1000])
async def test_text_is_cut_into_chunks_of_the_configured_size(size: int) -> None:
    provider = ScriptedProvider([Reply(ANSWER)], stream_chunk_chars=size)

    deltas, _ = split(await collect(provider))

    chunks = texts(deltas, TextDelta)
    assert "".join(chunks) == ANSWER
    assert all(len(chunk) == size for chunk in chunks[:-1])
    assert 0 < len(chunks[-1]) <= size
    assert len(chunks) == -(-len(ANSWER) // size)


async def test_the_default_chunk_size() -> None:
    deltas, _ = split(await collect(ScriptedProvider([Reply(ANSWER)])))

    assert [len(t) for t in texts(deltas, TextDelta)][:-1] == [DEFAULT_STREAM_CHUNK_CHARS] * (
        len(ANSWER) // DEFAULT_STREAM_CHUNK_CHARS
    )


async def test_tool_calls_stream_a_start_and_their_json_arguments_in_fragments() -> None:
    turn = ToolCalls.of(
        ("add", {"a": 2, "b": 3}),
        Call("search", {"query": "the weather in Paris", "limit": 5}, id="mine"),
        text="Let me look.",
    )
    provider = ScriptedProvider([turn], stream_chunk_chars=8)

    deltas, response = split(await collect(provider))

    assert deltas[:2] == [TextDelta("Let me l"), TextDelta("ook.")]
    starts = [d for d in deltas if isinstance(d, ToolCallStartDelta)]
    assert starts == [ToolCallStartDelta(0, "call_0_0", "add"), ToolCallStartDelta(1, "mine", "search")]
    calls = [p for p in response.parts if isinstance(p, ToolCall)]
    assert [(s.tool_call_id, s.name) for s in starts] == [(c.id, c.name) for c in calls]
    for index, call in enumerate(calls):
        fragments = [d.fragment for d in deltas if isinstance(d, ToolCallArgumentsDelta) and d.index == index]
        assert all(len(f) <= 8 for f in fragments)
        assert json.loads("".join(fragments)) == call.arguments
    # each call's fragments follow its start, before the next call starts
    second_start = deltas.index(starts[1])
    assert all(d.index == 0 for d in deltas[:second_start] if isinstance(d, ToolCallArgumentsDelta))
    assert isinstance(deltas[-1], UsageDelta) and response.finish_reason == "tool_calls"


async def test_the_streamed_response_is_what_generate_returns_turn_by_turn() -> None:
    script: list[Turn] = [
        ToolCalls.of(("add", {"a": 2, "b": 3}), thinking="add first"),
        Fail("rate_limit", retry_after=2.0),
        Reply("5", usage=Usage.of(7, 1)),
    ]
    streaming, plain = ScriptedProvider(script), ScriptedProvider(script)

    for _ in range(3):
        try:
            expected: GenerationResponse | ProviderError = await plain.generate(request("m"))
        except ProviderError as exc:
            expected = exc
        if isinstance(expected, ProviderError):
            with pytest.raises(ProviderError) as caught:
                await collect(streaming)
            assert (caught.value.kind, caught.value.retry_after) == (expected.kind, expected.retry_after)
        else:
            _, response = split(await collect(streaming))
            assert response == expected


async def test_a_scripted_failure_raises_before_any_delta_and_the_next_turn_follows() -> None:
    provider = ScriptedProvider([Fail("overloaded", "busy", retry_after=3.0), Reply("ok")])
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(request("m")):
            seen.append(item)

    assert seen == []
    error = caught.value
    assert (error.kind, error.retryable, error.retry_after, str(error)) == ("overloaded", True, 3.0, "busy")
    _, response = split(await collect(provider))
    assert response.parts == (TextPart("ok"),)


async def test_a_stream_that_breaks_mid_way() -> None:
    broken = Fail("connection", "connection reset", partial=Reply("The answer is", thinking="hmm"))
    provider = ScriptedProvider([broken, Reply("The answer is 5.")], stream_chunk_chars=5)
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(request("m")):
            seen.append(item)

    assert (caught.value.kind, caught.value.retryable) == ("connection", True)
    assert seen == [ThinkingDelta("hmm"), TextDelta("The a"), TextDelta("nswer"), TextDelta(" is")]
    _, response = split(await collect(provider))  # the retry plays the next turn
    assert response.parts == (TextPart("The answer is 5."),)


async def test_generate_fails_at_once_on_a_turn_that_breaks_mid_stream() -> None:
    provider = ScriptedProvider([Fail("server", partial=Reply("half")), Reply("whole")])

    with pytest.raises(ProviderError) as caught:
        await provider.generate(request("m"))

    assert caught.value.kind == "server"
    assert (await provider.generate(request("m"))).parts == (TextPart("whole"),)


async def test_a_partial_must_be_a_reply_or_tool_calls() -> None:
    with pytest.raises(UsageError, match="partial must be a Reply or ToolCalls"):
        Fail("server", partial=Fail("server"))  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [0, -1, 2.5, "8"])
def test_a_chunk_size_must_be_a_positive_whole_number(size: Any) -> None:
    with pytest.raises(UsageError, match="stream_chunk_chars"):
        ScriptedProvider([Reply("x")], stream_chunk_chars=size)
    with pytest.raises(UsageError, match="stream_chunk_chars"):
        FunctionProvider(
            lambda _: GenerationResponse((TextPart("x"),), "stop", Usage()), stream_chunk_chars=size
        )


async def test_stream_delay_sleeps_between_deltas_through_the_given_sleep() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    provider = ScriptedProvider(
        [Reply("abcdef", delay=1.5)], sleep=sleep, stream_chunk_chars=2, stream_delay=0.25
    )

    deltas, _ = split(await collect(provider))

    assert len(deltas) == 4  # three chunks and the usage
    assert sleeps == [1.5] + [0.25] * 4


async def test_requests_are_recorded_when_streaming_too() -> None:
    provider = ScriptedProvider([Reply("hi")])
    provider.record_requests = True

    await collect(provider, request("m"))

    assert [r.model for r in provider.requests] == ["m"]


def answer(_: GenerationRequest) -> GenerationResponse:
    parts = (
        ThinkingPart("think", signature="s", provider="fn"),
        TextPart(ANSWER),
        ToolCall("t1", "add", {"a": 1}),
    )
    return GenerationResponse(parts, "tool_calls", Usage.of(9, 3))


async def test_a_function_provider_streams_its_answer_then_returns_it() -> None:
    provider = FunctionProvider(answer, stream_chunk_chars=20)
    assert isinstance(provider, StreamingProvider)

    deltas, response = split(await collect(provider))

    assert response == await provider.generate(request("m"))
    assert list(deltas) == list(response_deltas(response, 20))
    assert deltas[0] == ThinkingDelta("think")
    assert "".join(texts(deltas, TextDelta)) == ANSWER
    assert deltas[-3:] == [
        ToolCallStartDelta(0, "t1", "add"),
        ToolCallArgumentsDelta(0, '{"a": 1}'),
        UsageDelta(Usage.of(9, 3)),
    ]


async def test_a_function_provider_checks_the_answer_before_streaming_anything() -> None:
    provider = FunctionProvider(lambda _: "garbage")  # type: ignore[arg-type, return-value]
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(request("m")):
            seen.append(item)

    assert seen == [] and caught.value.kind == "invalid_response"


async def test_a_function_returning_a_fail_fails_both_calls_and_breaks_the_stream_after_the_partial() -> None:
    async def flaky(_: GenerationRequest) -> Fail:
        return Fail("timeout", "stalled", partial=ToolCalls.of(("add", {"a": 1})))

    provider = FunctionProvider(flaky, stream_chunk_chars=100)
    with pytest.raises(ProviderError) as caught:
        await provider.generate(request("m"))
    assert caught.value.kind == "timeout"

    seen: list[StreamItem] = []
    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(request("m")):
            seen.append(item)
    assert caught.value.kind == "timeout"
    assert seen == [ToolCallStartDelta(0, "call_0_0", "add"), ToolCallArgumentsDelta(0, '{"a": 1}')]


def test_response_deltas_keeps_non_ascii_arguments_readable() -> None:
    response = GenerationResponse((ToolCall("c", "say", {"word": "été"}),), "tool_calls", Usage())

    deltas = response_deltas(response, usage=False)

    assert deltas == (ToolCallStartDelta(0, "c", "say"), ToolCallArgumentsDelta(0, '{"word": "été"}'))


async def test_arguments_json_cannot_hold_are_shown_not_a_crash() -> None:
    provider = ScriptedProvider([ToolCalls.of(("at", {"when": {1, 2}}))], stream_chunk_chars=100)

    deltas, response = split(await collect(provider))

    assert deltas[1] == ToolCallArgumentsDelta(0, '{"when": "{1, 2}"}')
    assert response == await ScriptedProvider([ToolCalls.of(("at", {"when": {1, 2}}))]).generate(request("m"))


async def test_a_function_answer_that_cannot_be_streamed_is_an_invalid_response() -> None:
    garbage = GenerationResponse((TextPart(42),), "stop", Usage.of(1, 1))  # type: ignore[arg-type]
    seen: list[StreamItem] = []

    with pytest.raises(ProviderError) as caught:
        async for item in FunctionProvider(lambda _: garbage).stream(request("m")):
            seen.append(item)

    assert seen == [] and (caught.value.kind, caught.value.retryable) == ("invalid_response", True)
