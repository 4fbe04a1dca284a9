"""The provider port: one async call from a provider-neutral request to a provider-neutral response.

Adapters (``expert_jobs.providers.*``) implement :class:`Provider` over an official SDK; the engine
never sees an SDK. Failures are raised as :class:`~expert_jobs.domain.errors.ProviderError` whose
``retryable`` and ``retry_after`` drive the engine's single retry layer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from expert_jobs.domain.deltas import StreamDelta
from expert_jobs.domain.messages import AssistantPart, Message
from expert_jobs.domain.usage import Usage

__all__ = [
    "FinishReason",
    "GenerationRequest",
    "GenerationResponse",
    "OutputSchema",
    "Provider",
    "ProviderResolver",
    "ReasoningSettings",
    "StreamItem",
    "StreamingProvider",
    "ToolDeclaration",
]

FinishReason = Literal["stop", "tool_calls", "length", "content_filter", "other"]


@dataclass(frozen=True, slots=True)
class ToolDeclaration:
    """A tool the model may call: its name, description and JSON schema of its input object."""

    name: str
    description: str
    input_schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ReasoningSettings:
    """How much the model should reason. Adapters map this to each provider's own setting.

    ``effort`` (``minimal``/``low``/``medium``/``high``) for effort-based APIs (OpenAI, Gemini 3);
    ``budget_tokens`` for budget-based ones (Anthropic thinking, Gemini 2.5). ``None`` leaves the
    provider's default; ``enabled=False`` asks for no reasoning where the model allows it.
    """

    enabled: bool = True
    effort: Literal["minimal", "low", "medium", "high"] | None = None
    budget_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class OutputSchema:
    """The shape the final answer must have: a JSON schema (an object schema) and a name for it.

    Adapters ask the provider for it in its native mode (structured outputs, a JSON-schema
    response format, JSON mode) and return the answer as a text part holding the JSON; the engine
    validates it. ``strict`` asks providers that support it to enforce the schema exactly.
    """

    name: str
    json_schema: Mapping[str, Any]
    strict: bool = True


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything one model call needs, independent of the provider.

    ``temperature`` is the job's temperature; the adapter leaves it out for models that do not
    accept a custom one. ``messages`` is the run's history and must not be mutated by adapters.
    ``run_id`` and ``expert_key`` say who asks (for gateways, logs and scripted fakes); adapters
    need not send them anywhere. ``output_schema``, when set, is the shape the answer (a response
    without tool calls) must have; the model may still call tools first.
    """

    model: str
    system: str
    messages: Sequence[Message]
    tools: Sequence[ToolDeclaration] = ()
    temperature: float | None = None
    max_output_tokens: int | None = None
    reasoning: ReasoningSettings | None = None
    timeout: float | None = None
    run_id: str | None = None
    expert_key: str | None = None
    output_schema: OutputSchema | None = None


@dataclass(frozen=True, slots=True)
class GenerationResponse:
    """One model response: parts in order, why it stopped, normalised usage and the raw usage."""

    parts: tuple[AssistantPart, ...]
    finish_reason: FinishReason
    usage: Usage
    raw_usage: Mapping[str, Any] | None = None
    model: str | None = None
    provider: str | None = None


@runtime_checkable
class Provider(Protocol):
    """A model provider: one async call per generation."""

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """Run one generation or raise :class:`~expert_jobs.domain.errors.ProviderError`."""
        ...


StreamItem = StreamDelta | GenerationResponse
"""What a stream yields: deltas, then exactly one :class:`GenerationResponse`, last."""


@runtime_checkable
class StreamingProvider(Provider, Protocol):
    """A provider that can also stream a generation.

    :meth:`stream` yields :data:`~expert_jobs.domain.deltas.StreamDelta` values as they arrive and
    ends with the same complete :class:`GenerationResponse` that :meth:`generate` would return for
    the request (parts, finish reason, exact usage). A failure before or during the stream raises
    :class:`~expert_jobs.domain.errors.ProviderError` (a stream broken mid-way is retryable).
    ``request.timeout``, when streaming, bounds the wait for each next chunk (an idle timeout).
    """

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one generation: deltas, then the complete response."""
        ...


@runtime_checkable
class ProviderResolver(Protocol):
    """Finds the provider for a model id on behalf of an application (whose keys it uses)."""

    def resolve(self, model: str, *, application_id: str | None = None) -> Provider:
        """The provider serving ``model``; raises ``ProviderKeyMissing`` when no key is configured."""
        ...
