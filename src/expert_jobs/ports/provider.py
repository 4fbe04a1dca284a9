"""The provider port: one async call from a provider-neutral request to a provider-neutral response.

Adapters (``expert_jobs.providers.*``) implement :class:`Provider` over an official SDK; the engine
never sees an SDK. Failures are raised as :class:`~expert_jobs.domain.errors.ProviderError` whose
``retryable`` and ``retry_after`` drive the engine's single retry layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from expert_jobs.domain.messages import AssistantPart, Message
from expert_jobs.domain.usage import Usage

__all__ = [
    "FinishReason",
    "GenerationRequest",
    "GenerationResponse",
    "Provider",
    "ProviderResolver",
    "ReasoningSettings",
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
class GenerationRequest:
    """Everything one model call needs, independent of the provider.

    ``temperature`` is the job's temperature; the adapter leaves it out for models that do not
    accept a custom one. ``messages`` is the run's history and must not be mutated by adapters.
    ``run_id`` and ``expert_key`` say who asks (for gateways, logs and scripted fakes); adapters
    need not send them anywhere.
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


@runtime_checkable
class ProviderResolver(Protocol):
    """Finds the provider for a model id on behalf of an application (whose keys it uses)."""

    def resolve(self, model: str, *, application_id: str | None = None) -> Provider:
        """The provider serving ``model``; raises ``ProviderKeyMissing`` when no key is configured."""
        ...
