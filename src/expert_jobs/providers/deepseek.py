"""DeepSeek adapter: Chat Completions through the ``openai`` SDK at DeepSeek's OpenAI-compatible URL.

Mapping, in one pass over the history:

- The system instruction is the first ``system`` message; a user message one ``user`` message of
  text (DeepSeek's chat models take no images or PDFs: such a file is a non-retryable error).
- An assistant message is one ``assistant`` message with ``content`` and ``tool_calls``; for
  ``deepseek-reasoner`` it also carries ``reasoning_content``. DeepSeek's thinking-mode guide: the
  reasoning of a turn that called tools MUST be sent back in every later request (a 400 otherwise),
  and reasoning of other turns is ignored when sent. So every assistant message sent to a reasoning
  model carries its DeepSeek reasoning (``""`` when it has none, e.g. produced by another model).
- A tool-results message is one ``tool`` message per result, in call order.
- ``temperature`` only for ``deepseek-chat`` (thinking mode ignores it); ``max_tokens`` only when the
  request gives one; an effort in :class:`ReasoningSettings` becomes ``reasoning_effort``.

- An output schema turns on JSON mode (``response_format: {"type": "json_object"}``) and adds the
  schema to the system message (DeepSeek has no schema-constrained mode and requires the word
  "json" in the prompt); the engine validates the answer against the schema.

Usage: ``prompt_tokens`` includes ``prompt_cache_hit_tokens`` (cached); ``completion_tokens`` includes
``completion_tokens_details.reasoning_tokens``: both map one to one.

Streaming (:meth:`DeepSeekProvider.stream`) makes the same call with ``stream=True`` and
``stream_options.include_usage``: content, ``reasoning_content`` and tool-call fragments are
accumulated into the same answer :meth:`DeepSeekProvider.generate` reads from a completion, and mapped
the same way. Usage comes once, on the stream's last chunk (with or without a choice on it).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    AssistantPart,
    FilePart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.models import ModelInfo
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import (
    FinishReason,
    GenerationRequest,
    GenerationResponse,
    OutputSchema,
    StreamItem,
)
from expert_jobs.providers._common import (
    DEFAULT_TIMEOUT,
    AdapterBase,
    InvalidResponse,
    build_response,
    dump_arguments,
    dump_usage,
    expect_type,
    file_as_text,
    int_at,
    load_arguments,
    object_schema,
    parsed,
    result_text,
    sdk_import_error,
    unexpected_error,
    unsupported_file,
)
from expert_jobs.providers.openai import openai_client, openai_error, sdk_events

try:
    import httpx2
    import openai
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
except ImportError as exc:  # only without the extra installed (openai.py checks the version)
    raise sdk_import_error("openai", "openai", exc) from exc

__all__ = ["DEEPSEEK_BASE_URL", "DeepSeekProvider", "deepseek_usage", "json_mode_instruction"]

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
"""DeepSeek's OpenAI-compatible endpoint."""

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


def json_mode_instruction(schema: OutputSchema) -> str:
    """What the system message says when JSON mode is on: answer with one JSON object matching
    ``schema`` (the schema itself follows). It contains the word "json", as DeepSeek requires."""
    text = json.dumps(dict(schema.json_schema), ensure_ascii=False, sort_keys=True)
    return (
        f"Give your final answer in json: one JSON object, and nothing else (no prose, no code fence), "
        f"that matches this JSON schema (named {schema.name!r}):\n{text}"
    )


@dataclass(slots=True)
class _Answer:
    """What one chat answer carries, read from a completion or accumulated from stream chunks."""

    reasoning: str = ""
    content: str = ""
    calls: list[_Call] = field(default_factory=list)
    finish_reason: str | None = None
    raw_usage: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    has_choice: bool = False


@dataclass(slots=True)
class _Call:
    """One tool call of an answer: id, name and JSON arguments (fragments joined when streamed)."""

    id: Any
    name: Any
    arguments: str = ""


def deepseek_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalised usage from DeepSeek's ``usage`` object (cached and reasoning are already included)."""
    cached = int_at(raw, "prompt_cache_hit_tokens") or int_at(raw, "prompt_tokens_details", "cached_tokens")
    return Usage.of(
        int_at(raw, "prompt_tokens"),
        int_at(raw, "completion_tokens"),
        reasoning=int_at(raw, "completion_tokens_details", "reasoning_tokens"),
        cached=cached,
    )


class DeepSeekProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.Provider` over DeepSeek's Chat Completions API.

    Pass an ``openai.AsyncOpenAI`` ``client`` pointed at DeepSeek, or ``api_key`` / ``base_url``
    (default :data:`DEEPSEEK_BASE_URL`) / ``http_client`` to have one created; SDK retries are off.
    """

    name: ClassVar[str] = "deepseek"

    def __init__(
        self,
        client: openai.AsyncOpenAI | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        catalogue: Mapping[str, ModelInfo] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(catalogue=catalogue, default_timeout=default_timeout)
        self._client, self._owns_client = openai_client(
            client, api_key=api_key, base_url=base_url or DEEPSEEK_BASE_URL, http_client=http_client
        )

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client every call goes through."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client if this adapter created it."""
        if self._owns_client:
            await self._client.close()

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """One ``chat.completions.create`` call; every failure (a malformed answer too) is a ProviderError."""
        params = self._params(request)
        try:
            completion: ChatCompletion = await self._client.chat.completions.create(**params)
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(_completion_answer(completion)))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """The same call as :meth:`generate`, streamed: text, reasoning and tool-call deltas as the
        chunks arrive, a :class:`UsageDelta` when the usage chunk does, then the complete response.

        ``request.timeout`` bounds each read (an idle timeout), not the whole stream. An error in the
        stream or a cut connection raises a retryable :class:`ProviderError` (unless the error says
        otherwise); nothing partial is returned. The HTTP response is closed however the iteration ends.
        """
        params = self._params(request)
        try:
            chunks: openai.AsyncStream[ChatCompletionChunk] = await self._client.chat.completions.create(
                **params, stream=True, stream_options={"include_usage": True}
            )
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        answer = _Answer()
        async with aclosing(sdk_events(self.name, chunks)) as iterator:
            async for chunk in iterator:
                for delta in self._feed(answer, chunk):
                    yield delta
        if answer.finish_reason is None:  # the body ended (or [DONE] came) before the answer did
            raise ProviderError(
                f"{self.name} stream ended before the answer was complete (no finish reason)",
                kind="connection",
                provider=self.name,
                usage=deepseek_usage(answer.raw_usage) if answer.raw_usage else None,
            )
        yield parsed(self.name, lambda: self._response(answer))

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The arguments of ``chat.completions.create`` for ``request`` (the same for a streamed call)."""
        info = self.model_info(request.model)
        temperature = self.temperature_for(request, info)
        effort = request.reasoning.effort if info.reasons and request.reasoning is not None else None
        schema = request.output_schema
        return {
            "model": request.model,
            "messages": self._messages(request, info.reasons),
            "tools": self._tools(request) or openai.omit,
            "temperature": openai.omit if temperature is None else temperature,
            "max_tokens": request.max_output_tokens or openai.omit,
            "reasoning_effort": effort or openai.omit,
            "response_format": openai.omit if schema is None else {"type": "json_object"},
            "timeout": self.timeout_for(request),
        }

    def _feed(self, answer: _Answer, chunk: ChatCompletionChunk) -> list[StreamDelta]:
        """Add ``chunk`` to ``answer``; the deltas it carries. A chunk that makes no sense raises
        ``invalid_response``."""
        try:
            return _chunk_deltas(answer, chunk)
        except ProviderError:
            raise
        except Exception as exc:
            raise unexpected_error(self.name, exc) from exc

    @staticmethod
    def _tools(request: GenerationRequest) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": object_schema(t.input_schema),
                },
            }
            for t in request.tools
        ]

    def _messages(self, request: GenerationRequest, replay_reasoning: bool) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        append = messages.append
        system = request.system
        if request.output_schema is not None:
            instruction = json_mode_instruction(request.output_schema)
            system = f"{system}\n\n{instruction}" if system else instruction
        if system:
            append({"role": "system", "content": system})
        for message in request.messages:
            if type(message) is UserMessage:
                append({"role": "user", "content": self._user_text(request.model, message.parts)})
            elif type(message) is AssistantMessage:
                append(self._assistant(message.parts, replay_reasoning))
            else:
                assert type(message) is ToolResultsMessage
                messages.extend(
                    {"role": "tool", "tool_call_id": r.call_id, "content": result_text(r)}
                    for r in message.results
                )
        return messages

    def _user_text(self, model: str, parts: Sequence[TextPart | FilePart]) -> str:
        texts: list[str] = []
        for part in parts:
            if type(part) is TextPart:
                texts.append(part.text)
                continue
            assert type(part) is FilePart
            text = file_as_text(part)
            if text is None:
                raise unsupported_file(self.name, model, part)
            texts.append(text.text)
        return "\n\n".join(texts)

    def _assistant(self, parts: Sequence[AssistantPart], replay_reasoning: bool) -> dict[str, Any]:
        texts: list[str] = []
        reasoning: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in parts:
            if type(part) is TextPart:
                texts.append(part.text)
            elif type(part) is ToolCall:
                calls.append(
                    {
                        "id": part.id,
                        "type": "function",
                        "function": {"name": part.name, "arguments": dump_arguments(part.arguments)},
                    }
                )
            elif type(part) is ThinkingPart and part.provider == self.name:
                reasoning.append(part.text)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
        if calls:
            message["tool_calls"] = calls
        if replay_reasoning:
            message["reasoning_content"] = "".join(reasoning)
        return message

    def _response(self, answer: _Answer) -> GenerationResponse:
        """The response for an answer, streamed or not: the one mapping both paths share."""
        usage = deepseek_usage(answer.raw_usage)
        if not answer.has_choice:
            raise ProviderError(
                f"{self.name} returned no choices", kind="empty_output", provider=self.name, usage=usage
            )
        if answer.finish_reason == "insufficient_system_resource":
            raise ProviderError(
                f"{self.name} interrupted the generation: insufficient system resource",
                kind="overloaded",
                provider=self.name,
                usage=usage,
            )
        parts: list[AssistantPart] = []
        if answer.reasoning:
            parts.append(ThinkingPart(answer.reasoning, provider=self.name))
        if answer.content:
            parts.append(TextPart(answer.content))
        for call in answer.calls:
            parts.append(ToolCall(call.id, call.name, load_arguments(self.name, call.name, call.arguments)))
        finish = _FINISH_REASONS.get(answer.finish_reason or "", "other")
        return build_response(self.name, parts, finish, usage, answer.raw_usage, answer.model)


def _completion_answer(completion: ChatCompletion) -> _Answer:
    """What a (non-streamed) chat completion carries."""
    expect_type(completion, ChatCompletion, "a chat completion object")
    answer = _Answer(raw_usage=dump_usage(completion.usage), model=completion.model)
    choices = completion.choices
    if type(choices) is not list:
        raise InvalidResponse(f"'choices' is {type(choices).__name__}, not a list")
    if not choices:
        return answer
    choice = choices[0]
    message = choice.message
    answer.has_choice = True
    answer.finish_reason = choice.finish_reason
    reasoning = getattr(message, "reasoning_content", None)
    if isinstance(reasoning, str):
        answer.reasoning = reasoning
    answer.content = message.content or ""
    answer.calls = [
        _Call(call.id, call.function.name, call.function.arguments or "")
        for call in message.tool_calls or ()
        if call.type == "function"
    ]
    return answer


def _chunk_deltas(answer: _Answer, chunk: ChatCompletionChunk) -> list[StreamDelta]:
    """Add a stream chunk to ``answer``: its model, usage (on the last chunk) and first choice's delta.

    A tool call's first fragment carries its id and name (a :class:`ToolCallStartDelta`); the later
    ones, found by their ``index``, only pieces of the arguments.
    """
    expect_type(chunk, ChatCompletionChunk, "a chat completion chunk")
    deltas: list[StreamDelta] = []
    if chunk.model:
        answer.model = chunk.model
    choices = chunk.choices
    if type(choices) is not list:
        raise InvalidResponse(f"'choices' is {type(choices).__name__}, not a list")
    if choices:
        choice = choices[0]
        answer.has_choice = True
        if choice.finish_reason is not None:
            answer.finish_reason = choice.finish_reason
        delta = choice.delta
        reasoning = getattr(delta, "reasoning_content", None)
        if isinstance(reasoning, str) and reasoning:
            answer.reasoning += reasoning
            deltas.append(ThinkingDelta(reasoning))
        if delta.content:
            answer.content += delta.content
            deltas.append(TextDelta(delta.content))
        for fragment in delta.tool_calls or ():
            deltas.extend(_tool_call_deltas(answer, fragment))
    if chunk.usage is not None:
        answer.raw_usage = dump_usage(chunk.usage)
        deltas.append(UsageDelta(deepseek_usage(answer.raw_usage)))
    return deltas


def _tool_call_deltas(answer: _Answer, fragment: Any) -> list[StreamDelta]:
    """One fragment of a streamed tool call: the call's start (with its id), and/or arguments."""
    index = fragment.index
    calls = answer.calls
    deltas: list[StreamDelta] = []
    if type(index) is not int or not 0 <= index <= len(calls):
        raise InvalidResponse(f"tool call fragment with index {index!r} after {len(calls)} calls")
    function = fragment.function
    if index == len(calls):
        if not fragment.id or function is None or not function.name:
            raise InvalidResponse(f"tool call {index} starts without an id and a name")
        calls.append(_Call(fragment.id, function.name))
        deltas.append(ToolCallStartDelta(index, fragment.id, function.name))
    arguments = function.arguments if function is not None else None
    if arguments:
        calls[index].arguments += arguments
        deltas.append(ToolCallArgumentsDelta(index, arguments))
    return deltas
