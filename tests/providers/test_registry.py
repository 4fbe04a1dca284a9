"""The provider registry: routing, keys, client caching, custom adapters."""

from __future__ import annotations

import pytest

from expert_jobs.domain.errors import ProviderKeyMissing, UnknownModel, UsageError
from expert_jobs.domain.messages import TextPart
from expert_jobs.domain.models import MODELS, SPEC_MODEL_IDS, ModelCatalogue, ModelInfo
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, Provider, ProviderResolver
from expert_jobs.providers.anthropic import AnthropicProvider
from expert_jobs.providers.deepseek import DeepSeekProvider
from expert_jobs.providers.gemini import GeminiProvider
from expert_jobs.providers.openai import OpenAIProvider
from expert_jobs.providers.registry import ProviderConfig, ProviderRegistry
from tests.providers.kit import MockAPI, fixture, request

ALL_KEYS = {
    "ANTHROPIC_API_KEY": "sk-ant",
    "GEMINI_API_KEY": "AIza",
    "OPENAI_API_KEY": "sk-oai",
    "DEEPSEEK_API_KEY": "sk-ds",
}
ADAPTERS = {
    "anthropic": AnthropicProvider,
    "google": GeminiProvider,
    "openai": OpenAIProvider,
    "deepseek": DeepSeekProvider,
}


class Echo:
    """A provider of our own."""

    def __init__(self, label: str = "echo") -> None:
        self.label = label

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        return GenerationResponse(
            (TextPart(self.label),), "stop", Usage.of(1, 1), None, request.model, "custom"
        )


def test_the_registry_is_a_provider_resolver() -> None:
    assert isinstance(ProviderRegistry(environ={}), ProviderResolver)


@pytest.mark.parametrize("model", SPEC_MODEL_IDS)
def test_every_spec_model_routes_to_its_adapter(model: str) -> None:
    registry = ProviderRegistry(environ=ALL_KEYS)

    provider = registry.resolve(model)

    assert type(provider) is ADAPTERS[MODELS[model].provider]
    assert isinstance(provider, Provider)


async def test_adapters_are_cached_per_provider_key_and_base_url() -> None:
    keys = {"app-a": "sk-ant-a", "app-b": "sk-ant-b"}
    registry = ProviderRegistry(key_for=lambda provider, app: keys.get(app or ""), environ=ALL_KEYS)

    a1 = registry.resolve("claude-haiku-4-5", application_id="app-a")
    a2 = registry.resolve("claude-opus-4-1", application_id="app-a")
    b = registry.resolve("claude-haiku-4-5", application_id="app-b")
    runtime = registry.resolve("claude-haiku-4-5")

    assert a1 is a2
    assert a1 is not b and b is not runtime
    assert isinstance(a1, AnthropicProvider) and a1.client.api_key == "sk-ant-a"
    assert isinstance(runtime, AnthropicProvider) and runtime.client.api_key == "sk-ant"
    await registry.aclose()
    assert a1.client.is_closed()


def test_key_for_wins_and_none_falls_back_to_the_environment() -> None:
    seen: list[tuple[str, str | None]] = []

    def key_for(provider: str, application_id: str | None) -> str | None:
        seen.append((provider, application_id))
        return "sk-app" if application_id == "app-1" else None

    registry = ProviderRegistry(key_for=key_for, environ={"OPENAI_API_KEY": "sk-env"})

    assert registry.api_key("openai", "app-1") == "sk-app"
    assert registry.api_key("openai", "app-2") == "sk-env"
    assert seen == [("openai", "app-1"), ("openai", "app-2")]


def test_google_api_key_is_the_second_choice_for_gemini() -> None:
    assert ProviderRegistry(environ={"GOOGLE_API_KEY": "g2"}).api_key("google") == "g2"
    both = {"GOOGLE_API_KEY": "g2", "GEMINI_API_KEY": "g1"}
    assert ProviderRegistry(environ=both).api_key("google") == "g1"


def test_a_missing_key_is_a_typed_error_naming_the_variables() -> None:
    registry = ProviderRegistry(environ={"OPENAI_API_KEY": ""})

    with pytest.raises(ProviderKeyMissing) as caught:
        registry.resolve("gemini-2.5-pro", application_id="app-1")
    assert caught.value.provider == "google" and not caught.value.retryable
    assert str(caught.value) == "Provider API key not found for google (set GEMINI_API_KEY or GOOGLE_API_KEY)"

    with pytest.raises(ProviderKeyMissing):
        registry.check_key("gpt-5")


def test_check_key_passes_with_a_key_and_rejects_unknown_models() -> None:
    registry = ProviderRegistry(environ={"DEEPSEEK_API_KEY": "sk-ds"})

    registry.check_key("deepseek-reasoner", "app-1")
    with pytest.raises(UnknownModel):
        registry.check_key("gpt-9")
    with pytest.raises(UnknownModel):
        registry.resolve("gpt-9")


def test_the_environment_is_read_at_resolve_time(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ProviderRegistry()
    monkeypatch.delenv("DEEPSEEK_API_KEY", raising=False)
    with pytest.raises(ProviderKeyMissing):
        registry.check_key("deepseek-chat")

    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-ds")
    assert isinstance(registry.resolve("deepseek-chat"), DeepSeekProvider)


def test_base_urls_per_provider() -> None:
    registry = ProviderRegistry(
        environ=ALL_KEYS,
        base_urls={"openai": "https://proxy.example/v1", "anthropic": "https://claude.example"},
    )

    openai_adapter = registry.resolve("gpt-5")
    anthropic_adapter = registry.resolve("claude-haiku-4-5")
    deepseek_adapter = registry.resolve("deepseek-chat")

    assert isinstance(openai_adapter, OpenAIProvider)
    assert str(openai_adapter.client.base_url) == "https://proxy.example/v1/"
    assert isinstance(anthropic_adapter, AnthropicProvider)
    assert str(anthropic_adapter.client.base_url) == "https://claude.example"
    assert isinstance(deepseek_adapter, DeepSeekProvider)
    assert str(deepseek_adapter.client.base_url) == "https://api.deepseek.com"


async def test_a_custom_model_id_served_by_a_provider_instance() -> None:
    registry = ProviderRegistry(environ={})
    info = ModelInfo("acme-local-7b", "acme", 32_000, 4_096, True, False)
    echo = Echo()

    registry.register("acme-local-7b", echo, info)

    assert registry.resolve("acme-local-7b") is echo
    assert registry.catalogue.get_info("acme-local-7b") == info
    registry.check_key("acme-local-7b")  # no key needed
    response = await registry.resolve("acme-local-7b").generate(request("acme-local-7b"))
    assert response.parts == (TextPart("echo"),)


def test_a_factory_is_called_per_resolve_with_the_application() -> None:
    registry = ProviderRegistry(environ={})
    calls: list[str | None] = []

    def factory(application_id: str | None) -> Provider:
        calls.append(application_id)
        return Echo(f"for {application_id}")

    registry.register("gpt-5", factory)  # a spec id needs no info

    first = registry.resolve("gpt-5", application_id="app-1")
    assert isinstance(first, Echo) and first.label == "for app-1"
    registry.resolve("gpt-5")
    assert calls == ["app-1", None]


def test_register_refuses_an_unknown_id_without_info_and_a_mismatched_info() -> None:
    registry = ProviderRegistry(environ={})

    with pytest.raises(UsageError, match="not in the catalogue"):
        registry.register("mystery", Echo())
    with pytest.raises(UsageError, match=r"info\.id"):
        registry.register("mystery", Echo(), ModelInfo("other", "acme", 1, 1, True, False))
    with pytest.raises(UsageError, match="spec model"):
        registry.register("gpt-5", Echo(), ModelInfo("gpt-5", "acme", 1, 1, True, False))
    with pytest.raises(UsageError, match="neither"):
        registry.register("gpt-5", 42)  # type: ignore[arg-type]


async def test_set_factory_replaces_a_builtin_adapter() -> None:
    api = MockAPI().reply(fixture("anthropic", "text"))
    seen: list[ProviderConfig] = []

    def factory(config: ProviderConfig) -> Provider:
        seen.append(config)
        return AnthropicProvider(api_key=config.api_key, http_client=api.client(), catalogue=config.catalogue)

    registry = ProviderRegistry(environ=ALL_KEYS, default_timeout=12.0)
    registry.set_factory("anthropic", factory)
    provider = registry.resolve("claude-haiku-4-5")

    response = await provider.generate(request("claude-haiku-4-5"))

    assert response.provider == "anthropic"
    assert seen == [ProviderConfig("anthropic", "sk-ant", None, registry.catalogue, 12.0)]


def test_a_provider_name_of_your_own() -> None:
    catalogue = ModelCatalogue()
    catalogue.register(ModelInfo("acme-large", "acme", 64_000, 8_192, True, False))
    registry = ProviderRegistry(catalogue=catalogue, environ={"ACME_KEY": "k-acme"})

    with pytest.raises(UsageError, match="no adapter for provider 'acme'"):
        registry.resolve("acme-large")

    made: list[str] = []
    registry.set_factory("acme", lambda config: made.append(config.api_key) or Echo(), env_vars=("ACME_KEY",))
    assert isinstance(registry.resolve("acme-large"), Echo)
    assert registry.resolve("acme-large") is registry.resolve("acme-large")
    assert made == ["k-acme"]

    keyless = ProviderRegistry(catalogue=catalogue, environ={})
    keyless.set_factory("acme", lambda config: Echo(), env_vars=("ACME_KEY",))
    with pytest.raises(ProviderKeyMissing, match="set ACME_KEY"):
        keyless.check_key("acme-large")
