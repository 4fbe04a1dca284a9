"""The offline providers answer garbage like the real adapters: a ``ProviderError`` of kind
``invalid_response``, retried by the engine, never a crash."""

from __future__ import annotations

from typing import Any

import pytest

from expert_jobs import FakeClock, JobStatus, Runtime, RuntimeSettings, TextPart, Usage
from expert_jobs.domain.errors import ProviderError
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse
from expert_jobs.providers._common import MAX_CALL_TOKENS
from expert_jobs.providers.scripted import Fail, FunctionProvider, Reply, ScriptedProvider, ToolCalls
from tests.providers.kit import request

ABSURD = Usage.of(MAX_CALL_TOKENS + 1, 5)


def error_data(error: Any) -> dict[str, Any]:
    """A job's or checkpoint's error as plain data (camelCase keys), whether it is kept as a
    ``JobError`` or as that data."""
    assert error is not None
    return dict(error.to_data()) if hasattr(error, "to_data") else dict(error)


def good(_: GenerationRequest) -> GenerationResponse:
    return GenerationResponse((TextPart("fine"),), "stop", Usage.of(3, 2))


@pytest.mark.parametrize(
    "answer",
    [
        "just a string",
        None,
        {"parts": [{"text": "hi"}], "usage": {"inputTokens": 1}},
        GenerationResponse("hi", "stop", Usage.of(1, 1)),  # type: ignore[arg-type]
        GenerationResponse((TextPart("hi"), {"text": "x"}), "stop", Usage.of(1, 1)),  # type: ignore[arg-type]
        GenerationResponse((TextPart("hi"),), "stop", {"inputTokens": 1}),  # type: ignore[arg-type]
        GenerationResponse((TextPart("hi"),), "stop", ABSURD),
    ],
    ids=["str", "None", "dict", "str parts", "dict part", "dict usage", "absurd usage"],
)
async def test_a_function_returning_garbage_is_an_invalid_response(answer: Any) -> None:
    async def later(_: GenerationRequest) -> Any:
        return answer

    for fn in (lambda _: answer, later):
        with pytest.raises(ProviderError) as caught:
            await FunctionProvider(fn).generate(request("m"))
        assert (caught.value.kind, caught.value.retryable) == ("invalid_response", True)


async def test_a_function_returning_a_response_gets_it_back_sync_or_async() -> None:
    async def later(req: GenerationRequest) -> GenerationResponse:
        return good(req)

    assert (await FunctionProvider(good).generate(request("m"))).usage == Usage.of(3, 2)
    assert (await FunctionProvider(later).generate(request("m"))).usage == Usage.of(3, 2)


async def test_a_scripted_turn_with_absurd_usage_is_an_invalid_response_attempt() -> None:
    provider = ScriptedProvider(
        [
            Reply("too big", usage=ABSURD),
            ToolCalls.of("f", usage=Usage.of(0, 0, cached=MAX_CALL_TOKENS * 3)),
            Reply("odd", usage={"inputTokens": 1}),  # type: ignore[arg-type]
            Fail("server", usage=ABSURD),
            Reply("ok", usage=Usage.of(MAX_CALL_TOKENS, MAX_CALL_TOKENS)),
        ]
    )

    for _ in range(4):
        with pytest.raises(ProviderError) as caught:
            await provider.generate(request("m"))
        assert (caught.value.kind, caught.value.retryable, caught.value.usage) == (
            "invalid_response",
            True,
            None,
        )
    response = await provider.generate(request("m"))
    assert response.parts == (TextPart("ok"),)


async def test_a_job_on_a_function_answering_garbage_fails_after_its_retries() -> None:
    calls = 0

    def garbage(_: GenerationRequest) -> Any:
        nonlocal calls
        calls += 1
        return "<html>502 Bad Gateway</html>"

    clock = FakeClock()
    runtime = Runtime(
        providers=FunctionProvider(garbage), clock=clock, settings=RuntimeSettings(backoff_base=0.0)
    )
    runtime.add_expert("plain", "You answer.")

    job = await runtime.run("plain", "hello?", max_retries=2)

    assert job.status is JobStatus.FAILED
    assert job.error is not None and error_data(job.error)["kind"] == "invalid_response"
    assert "3 consecutive failed attempts exhausted maxRetries=2" in error_data(job.error)["message"]
    assert calls == 3
    assert job.usage == Usage()
    checkpoints, _ = await runtime.store.list_checkpoints(job.id)
    assert checkpoints and checkpoints[-1].kind == "stop"
