"""The provider registry: model id -> adapter, with per-application keys and cached SDK clients.

:class:`ProviderRegistry` implements :class:`~expert_jobs.ports.provider.ProviderResolver`:

1. A model id registered with :meth:`ProviderRegistry.register` resolves to that provider (an instance,
   or a factory called with the application id): a gateway, a proxy, a local model, a test double.
2. Any other id is looked up in the catalogue; its ``provider`` names the adapter factory (built-in:
   ``anthropic``, ``google``, ``openai``, ``deepseek``; more with :meth:`ProviderRegistry.set_factory`).
3. The key comes from ``key_for(provider, application_id)`` when given, else from the environment
   (``ANTHROPIC_API_KEY``, ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY``, ``OPENAI_API_KEY``,
   ``DEEPSEEK_API_KEY``); none is :class:`~expert_jobs.domain.errors.ProviderKeyMissing`.
4. One adapter (so one SDK client) is made per (provider, key, base URL) and reused.

Importing this module imports no SDK: each built-in adapter module is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from expert_jobs.domain.errors import ProviderKeyMissing, UsageError
from expert_jobs.domain.models import ModelCatalogue, ModelInfo
from expert_jobs.ports.provider import Provider
from expert_jobs.providers._common import DEFAULT_TIMEOUT, PROVIDER_ENV_VARS

__all__ = [
    "BUILTIN_FACTORIES",
    "AdapterFactory",
    "KeyLookup",
    "ModelProviderFactory",
    "ProviderConfig",
    "ProviderRegistry",
]


class KeyLookup(Protocol):
    """Finds an application's key for a provider; ``None`` falls back to the environment."""

    def __call__(self, provider: str, application_id: str | None, /) -> str | None:
        """The key of ``application_id`` (``None``: the runtime's own) for ``provider``, if any."""
        ...


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """What an adapter factory is given to build the adapter of one (provider, key, base URL)."""

    provider: str
    api_key: str
    base_url: str | None
    catalogue: Mapping[str, ModelInfo]
    timeout: float


AdapterFactory = Callable[[ProviderConfig], Provider]
"""Builds the adapter of a provider name from its config (key, base URL, catalogue, timeout)."""

ModelProviderFactory = Callable[[str | None], Provider]
"""Builds the provider of one registered model id for an application id (``None``: the runtime)."""


def _anthropic(config: ProviderConfig) -> Provider:
    from expert_jobs.providers.anthropic import AnthropicProvider

    return AnthropicProvider(
        api_key=config.api_key,
        base_url=config.base_url,
        catalogue=config.catalogue,
        default_timeout=config.timeout,
    )


def _gemini(config: ProviderConfig) -> Provider:
    from expert_jobs.providers.gemini import GeminiProvider

    return GeminiProvider(
        api_key=config.api_key,
        base_url=config.base_url,
        catalogue=config.catalogue,
        default_timeout=config.timeout,
    )


def _openai(config: ProviderConfig) -> Provider:
    from expert_jobs.providers.openai import OpenAIProvider

    return OpenAIProvider(
        api_key=config.api_key,
        base_url=config.base_url,
        catalogue=config.catalogue,
        default_timeout=config.timeout,
    )


def _deepseek(config: ProviderConfig) -> Provider:
    from expert_jobs.providers.deepseek import DeepSeekProvider

    return DeepSeekProvider(
        api_key=config.api_key,
        base_url=config.base_url,
        catalogue=config.catalogue,
        default_timeout=config.timeout,
    )


BUILTIN_FACTORIES: Mapping[str, AdapterFactory] = {
    "anthropic": _anthropic,
    "google": _gemini,
    "openai": _openai,
    "deepseek": _deepseek,
}
"""The built-in adapter of each catalogue provider name."""


class ProviderRegistry:
    """Resolves a model id to its provider for an application (see the module docstring).

    - ``catalogue``: the models known (the spec's 22 by default); shared with the adapters.
    - ``key_for``: per-application key lookup; the environment is the fallback (``environ``, default
      ``os.environ``, read at every resolve).
    - ``base_urls``: an optional base URL per provider name (a proxy, a regional endpoint).
    - ``factories``: adapter factories by provider name, over the built-in ones.
    - ``default_timeout``: the adapters' timeout when a request gives none.
    """

    def __init__(
        self,
        *,
        catalogue: ModelCatalogue | None = None,
        key_for: KeyLookup | None = None,
        base_urls: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        factories: Mapping[str, AdapterFactory] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.catalogue = ModelCatalogue() if catalogue is None else catalogue
        self._key_for = key_for
        self._base_urls = dict(base_urls or {})
        self._environ = environ
        self._factories: dict[str, AdapterFactory] = {**BUILTIN_FACTORIES, **(factories or {})}
        self._env_vars: dict[str, tuple[str, ...]] = dict(PROVIDER_ENV_VARS)
        self._default_timeout = default_timeout
        self._instances: dict[str, Provider] = {}
        self._model_factories: dict[str, ModelProviderFactory] = {}
        self._adapters: dict[tuple[str, str, str | None], Provider] = {}

    def register(
        self,
        model_id: str,
        provider: Provider | ModelProviderFactory,
        info: ModelInfo | None = None,
    ) -> None:
        """Serve ``model_id`` with ``provider``: an instance, or a factory ``(application_id) -> Provider``.

        ``info`` adds a model id of your own to the catalogue (its ``id`` must be ``model_id``); a spec
        id needs none. A factory is called on every resolve, so it should cache what is costly.
        """
        if info is not None:
            if info.id != model_id:
                raise UsageError(f"register({model_id!r}): info.id is {info.id!r}")
            self.catalogue.register(info)
        elif model_id not in self.catalogue:
            raise UsageError(
                f"model {model_id!r} is not in the catalogue; "
                f"pass info=ModelInfo({model_id!r}, ...) to add it"
            )
        self._instances.pop(model_id, None)
        self._model_factories.pop(model_id, None)
        if isinstance(provider, Provider) and not isinstance(provider, type):
            self._instances[model_id] = provider
        elif callable(provider):
            self._model_factories[model_id] = provider
        else:
            raise UsageError(f"register({model_id!r}): {provider!r} is neither a Provider nor a factory")

    def set_factory(self, provider: str, factory: AdapterFactory, *, env_vars: tuple[str, ...] = ()) -> None:
        """Build the adapters of catalogue provider name ``provider`` with ``factory``.

        Replaces a built-in one (e.g. to inject an SDK client with a proxy) or adds a provider name of
        your own whose keys live in ``env_vars``. Adapters already built for it are dropped.
        """
        self._factories[provider] = factory
        if env_vars:
            self._env_vars[provider] = env_vars
        self._adapters = {key: adapter for key, adapter in self._adapters.items() if key[0] != provider}

    def resolve(self, model: str, *, application_id: str | None = None) -> Provider:
        """The provider serving ``model`` with ``application_id``'s key.

        Raises :class:`~expert_jobs.domain.errors.UnknownModel` for an id not in the catalogue and
        :class:`~expert_jobs.domain.errors.ProviderKeyMissing` when no key is configured.
        """
        instance = self._instances.get(model)
        if instance is not None:
            return instance
        factory = self._model_factories.get(model)
        if factory is not None:
            return factory(application_id)
        name = self.catalogue.get_info(model).provider
        make = self._factories.get(name)
        if make is None:
            raise UsageError(
                f"no adapter for provider {name!r} (model {model!r}); "
                "add one with ProviderRegistry.set_factory or register the model id"
            )
        key = self.api_key(name, application_id)
        base_url = self._base_urls.get(name)
        adapter = self._adapters.get((name, key, base_url))
        if adapter is None:
            config = ProviderConfig(name, key, base_url, self.catalogue, self._default_timeout)
            adapter = self._adapters[name, key, base_url] = make(config)
        return adapter

    def api_key(self, provider: str, application_id: str | None = None) -> str:
        """``provider``'s key for ``application_id``: from ``key_for``, else from the environment."""
        key = self._key_for(provider, application_id) if self._key_for is not None else None
        env_vars = self._env_vars.get(provider, ())
        if not key:
            environ = os.environ if self._environ is None else self._environ
            key = next((value for var in env_vars if (value := environ.get(var))), None)
        if not key:
            raise ProviderKeyMissing(provider, env_vars)
        return key

    def check_key(self, model: str, application_id: str | None = None) -> None:
        """Raise now what :meth:`resolve` would raise later for a missing key or an unknown model.

        The service calls it when a job starts, to answer 400 "Provider API key not found" at once.
        Registered model ids need no key.
        """
        if model in self._instances or model in self._model_factories:
            return
        self.api_key(self.catalogue.get_info(model).provider, application_id)

    async def aclose(self) -> None:
        """Close the SDK clients of the adapters this registry built, and forget them."""
        adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            close = getattr(adapter, "aclose", None)
            if close is not None:
                await close()
