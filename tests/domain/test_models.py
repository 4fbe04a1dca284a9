"""The model catalogue: the spec's 22 ids in order, each with its provider and limits."""

from __future__ import annotations

import pytest

from expert_jobs import MODELS, ModelCatalogue, ModelInfo, UnknownModel, UsageError
from expert_jobs.domain.models import DEFAULT_MODEL, SPEC_MODEL_IDS, get_model

# The spec's enum, in its order.
SPEC_IDS = [
    "claude-opus-4-5",
    "claude-opus-4-1",
    "claude-opus-4-20250514",
    "claude-sonnet-4-5",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-haiku-4-5",
    "claude-3-5-haiku-latest",
    "gemini-3-pro-preview",
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5-chat-latest",
    "o4-mini",
    "o3",
    "o3-mini",
    "gpt-4.1",
    "deepseek-chat",
    "deepseek-reasoner",
]


def provider_by_prefix(model_id: str) -> str:
    if model_id.startswith("claude-"):
        return "anthropic"
    if model_id.startswith("gemini-"):
        return "google"
    if model_id.startswith("deepseek-"):
        return "deepseek"
    assert model_id.startswith(("gpt-", "o3", "o4")), model_id
    return "openai"


def test_the_catalogue_holds_the_spec_ids_in_order() -> None:
    assert list(SPEC_MODEL_IDS) == SPEC_IDS
    assert list(MODELS) == SPEC_IDS
    assert len(MODELS) == 22


@pytest.mark.parametrize("model_id", SPEC_IDS)
def test_each_model_has_its_provider_and_sane_limits(model_id: str) -> None:
    info = MODELS[model_id]
    assert info.id == model_id
    assert info.provider == provider_by_prefix(model_id)
    assert 0 < info.max_output_tokens <= info.context_window
    assert isinstance(info.accepts_temperature, bool)
    assert isinstance(info.reasons, bool)
    assert get_model(model_id) is info


def test_the_default_model_is_in_the_catalogue() -> None:
    assert DEFAULT_MODEL == "claude-sonnet-4-5"
    assert DEFAULT_MODEL in MODELS


def test_the_catalogue_is_read_only() -> None:
    with pytest.raises(TypeError):
        MODELS["mine"] = MODELS["gpt-5"]  # type: ignore[index]


def test_unknown_ids_are_rejected_listing_the_known_ones() -> None:
    with pytest.raises(UnknownModel) as caught:
        get_model("gpt-6")
    assert caught.value.model == "gpt-6"
    assert caught.value.known == SPEC_IDS
    assert str(caught.value) == f"unknown model 'gpt-6'; known models: {', '.join(SPEC_IDS)}"
    assert isinstance(caught.value, UsageError)


def test_a_runtime_catalogue_adds_models_of_its_own() -> None:
    local = ModelInfo("local-llama", "openai", 8_192, 2_048, True, False)
    catalogue = ModelCatalogue({"local-llama": local})
    assert catalogue.get_info("local-llama") is local
    assert list(catalogue) == [*SPEC_IDS, "local-llama"]
    assert len(catalogue) == 23
    assert "local-llama" not in MODELS
    with pytest.raises(UnknownModel) as caught:
        catalogue.get_info("nope")
    assert caught.value.known == sorted([*SPEC_IDS, "local-llama"])


def test_spec_models_cannot_be_redefined() -> None:
    catalogue = ModelCatalogue()
    catalogue.register(MODELS["gpt-5"])  # the same info is fine
    with pytest.raises(UsageError, match="'gpt-5' is a spec model"):
        catalogue.register(ModelInfo("gpt-5", "openai", 1, 1, True, False))
