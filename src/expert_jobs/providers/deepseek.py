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

Usage: ``prompt_tokens`` includes ``prompt_cache_hit_tokens`` (cached); ``completion_tokens`` includes
``completion_tokens_details.reasoning_tokens``: both map one to one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

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
from expert_jobs.ports.provider import FinishReason, GenerationRequest, GenerationResponse
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
    unsupported_file,
)
from expert_jobs.providers.openai import openai_client, openai_error

try:
    import httpx2
    import openai
    from openai.types.chat import ChatCompletion
except ImportError as exc:  # only without the extra installed (openai.py checks the version)
    raise sdk_import_error("openai", "openai", exc) from exc

__all__ = ["DEEPSEEK_BASE_URL", "DeepSeekProvider", "deepseek_usage"]

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
"""DeepSeek's OpenAI-compatible endpoint."""

_FINISH_REASONS: Mapping[str, FinishReason] = {
    "stop": "stop",
    "tool_calls": "tool_calls",
    "length": "length",
    "content_filter": "content_filter",
}


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
        info = self.model_info(request.model)
        temperature = self.temperature_for(request, info)
        effort = request.reasoning.effort if info.reasons and request.reasoning is not None else None
        try:
            completion = await self._client.chat.completions.create(
                model=request.model,
                messages=cast(Any, self._messages(request, info.reasons)),
                tools=cast(Any, self._tools(request)) or openai.omit,
                temperature=openai.omit if temperature is None else temperature,
                max_tokens=request.max_output_tokens or openai.omit,
                reasoning_effort=effort or openai.omit,
                timeout=self.timeout_for(request),
            )
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(completion))

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
        if request.system:
            append({"role": "system", "content": request.system})
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

    def _response(self, completion: ChatCompletion) -> GenerationResponse:
        expect_type(completion, ChatCompletion, "a chat completion object")
        raw = dump_usage(completion.usage)
        usage = deepseek_usage(raw)
        choices = completion.choices
        if type(choices) is not list:
            raise InvalidResponse(f"'choices' is {type(choices).__name__}, not a list")
        if not choices:
            raise ProviderError(
                f"{self.name} returned no choices", kind="empty_output", provider=self.name, usage=usage
            )
        choice = choices[0]
        if choice.finish_reason == "insufficient_system_resource":  # type: ignore[comparison-overlap]
            raise ProviderError(
                f"{self.name} interrupted the generation: insufficient system resource",
                kind="overloaded",
                provider=self.name,
                usage=usage,
            )
        message = choice.message
        parts: list[AssistantPart] = []
        reasoning = getattr(message, "reasoning_content", None)
        if isinstance(reasoning, str) and reasoning:
            parts.append(ThinkingPart(reasoning, provider=self.name))
        if message.content:
            parts.append(TextPart(message.content))
        for call in message.tool_calls or ():
            if call.type == "function":
                name = call.function.name
                parts.append(
                    ToolCall(call.id, name, load_arguments(self.name, name, call.function.arguments))
                )
        finish = _FINISH_REASONS.get(choice.finish_reason, "other")
        return build_response(self.name, parts, finish, usage, raw, completion.model)
