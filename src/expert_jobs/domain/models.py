"""The model catalogue: every model id of the spec with what the engine must know about it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from expert_jobs.domain.errors import UnknownModel, UsageError

__all__ = [
    "DEFAULT_MODEL",
    "MODELS",
    "SPEC_MODEL_IDS",
    "ModelCatalogue",
    "ModelInfo",
    "ProviderName",
    "get_model",
]

ProviderName = Literal["anthropic", "google", "openai", "deepseek"]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the engine knows about one model id.

    ``accepts_temperature`` is False where the API only takes its default (the job still reports the
    temperature it was given). ``reasons`` says the model can produce reasoning/thinking.
    """

    id: str
    provider: str
    context_window: int
    max_output_tokens: int
    accepts_temperature: bool
    reasons: bool


def _m(id: str, provider: ProviderName, ctx: int, out: int, temp: bool, reasons: bool) -> ModelInfo:
    return ModelInfo(id, provider, ctx, out, temp, reasons)


# Anthropic: no custom temperature. The anthropic SDK 2.x sends API version 2026-10-21, which answers
# 400 to temperature/top_p/top_k (even at their defaults), and its messages.create() has no such
# parameters any more; the job still reports the temperature it was given.
_SPEC_MODELS: tuple[ModelInfo, ...] = (
    _m("claude-opus-4-5", "anthropic", 200_000, 64_000, False, True),
    _m("claude-opus-4-1", "anthropic", 200_000, 32_000, False, True),
    _m("claude-opus-4-20250514", "anthropic", 200_000, 32_000, False, True),
    _m("claude-sonnet-4-5", "anthropic", 200_000, 64_000, False, True),
    _m("claude-sonnet-4-20250514", "anthropic", 200_000, 64_000, False, True),
    _m("claude-3-7-sonnet-20250219", "anthropic", 200_000, 64_000, False, True),
    _m("claude-haiku-4-5", "anthropic", 200_000, 64_000, False, True),
    _m("claude-3-5-haiku-latest", "anthropic", 200_000, 8_192, False, False),
    _m("gemini-3-pro-preview", "google", 1_048_576, 65_536, True, True),
    _m("gemini-2.5-pro", "google", 1_048_576, 65_536, True, True),
    _m("gemini-2.5-flash", "google", 1_048_576, 65_536, True, True),
    _m("gemini-2.5-flash-lite", "google", 1_048_576, 65_536, True, True),
    _m("gpt-5", "openai", 400_000, 128_000, False, True),
    _m("gpt-5-mini", "openai", 400_000, 128_000, False, True),
    _m("gpt-5-nano", "openai", 400_000, 128_000, False, True),
    _m("gpt-5-chat-latest", "openai", 128_000, 16_384, True, False),
    _m("o4-mini", "openai", 200_000, 100_000, False, True),
    _m("o3", "openai", 200_000, 100_000, False, True),
    _m("o3-mini", "openai", 200_000, 100_000, False, True),
    _m("gpt-4.1", "openai", 1_047_576, 32_768, True, False),
    _m("deepseek-chat", "deepseek", 128_000, 8_192, True, False),
    _m("deepseek-reasoner", "deepseek", 128_000, 65_536, False, True),
)

SPEC_MODEL_IDS: tuple[str, ...] = tuple(m.id for m in _SPEC_MODELS)
"""The 22 model ids the spec accepts, in the spec's order."""

MODELS: Mapping[str, ModelInfo] = MappingProxyType({m.id: m for m in _SPEC_MODELS})
"""The spec's models, by id (read-only)."""

DEFAULT_MODEL = "claude-sonnet-4-5"


class ModelCatalogue(Mapping[str, ModelInfo]):
    """The spec's models plus any a runtime registers of its own (a gateway, a local model)."""

    def __init__(self, extra: Mapping[str, ModelInfo] | None = None) -> None:
        self._models: dict[str, ModelInfo] = dict(MODELS)
        for info in (extra or {}).values():
            self.register(info)

    def register(self, info: ModelInfo) -> None:
        """Add a model id of your own; the spec's ids cannot be redefined."""
        if info.id in MODELS and MODELS[info.id] != info:
            raise UsageError(f"model {info.id!r} is a spec model and cannot be redefined")
        self._models[info.id] = info

    def get_info(self, model_id: str) -> ModelInfo:
        """The info for ``model_id`` or :class:`UnknownModel` listing the known ids."""
        try:
            return self._models[model_id]
        except KeyError:
            raise UnknownModel(model_id, sorted(self._models)) from None

    def __getitem__(self, key: str) -> ModelInfo:
        return self._models[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)


def get_model(model_id: str) -> ModelInfo:
    """The spec model ``model_id`` or :class:`UnknownModel` listing the known ids."""
    try:
        return MODELS[model_id]
    except KeyError:
        raise UnknownModel(model_id, list(SPEC_MODEL_IDS)) from None
