"""Provider adapters: each turns a provider-neutral request into one call of an official SDK.

SDKs are imported only inside their adapter module, lazily, so ``import expert_jobs`` needs none.
The adapters are importable from here too; each is loaded (with its SDK) on first access:

- :class:`AnthropicProvider` (``expert_jobs.providers.anthropic``, extra ``anthropic``)
- :class:`OpenAIProvider` (``expert_jobs.providers.openai``, extra ``openai``)
- :class:`GeminiProvider` (``expert_jobs.providers.gemini``, extra ``google``)
- :class:`DeepSeekProvider` (``expert_jobs.providers.deepseek``, extra ``openai``)
- :class:`ProviderRegistry` (``expert_jobs.providers.registry``, no SDK): model id -> adapter.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from expert_jobs.providers.anthropic import AnthropicProvider
    from expert_jobs.providers.deepseek import DeepSeekProvider
    from expert_jobs.providers.gemini import GeminiProvider
    from expert_jobs.providers.openai import OpenAIProvider
    from expert_jobs.providers.registry import ProviderRegistry

__all__ = ["AnthropicProvider", "DeepSeekProvider", "GeminiProvider", "OpenAIProvider", "ProviderRegistry"]

_LAZY = {
    "AnthropicProvider": "expert_jobs.providers.anthropic",
    "DeepSeekProvider": "expert_jobs.providers.deepseek",
    "GeminiProvider": "expert_jobs.providers.gemini",
    "OpenAIProvider": "expert_jobs.providers.openai",
    "ProviderRegistry": "expert_jobs.providers.registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
