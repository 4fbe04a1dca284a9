"""A model the price table does not know is looked up once per table (engine/pricing.py): every job
end of a runtime on such a model (a test or local model) prices it, and a failed lookup walks the
table's providers and models."""

from __future__ import annotations

from typing import Any

import pytest
from genai_prices import data_snapshot

from expert_jobs.domain.usage import Usage
from expert_jobs.engine import pricing
from expert_jobs.engine.pricing import price_usage, price_usage_sum

USAGE = Usage.of(100, 20)


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The model names the price table is asked to find, from here on."""
    asked: list[str] = []
    real = data_snapshot.DataSnapshot.find_provider_model

    def counting(self: Any, model_ref: str, *args: Any) -> Any:
        asked.append(model_ref)
        return real(self, model_ref, *args)

    monkeypatch.setattr(data_snapshot.DataSnapshot, "find_provider_model", counting)
    return asked


def test_an_unknown_model_is_looked_up_once_and_stays_unknown(lookups: list[str]) -> None:
    name = "unknown-model-looked-up-once"
    for _ in range(3):
        assert price_usage_sum(USAGE, name, provider="scripted") is None
        assert price_usage(USAGE, name, provider="scripted") is None
    assert lookups == [name]
    # Another provider is another question to the table.
    assert price_usage(USAGE, name, provider="openai") is None
    assert lookups == [name, name]


def test_a_known_model_is_priced_every_time(lookups: list[str]) -> None:
    first = price_usage_sum(USAGE, "gpt-5", provider="openai")
    assert first is not None and first.amount > 0
    assert price_usage_sum(USAGE, "gpt-5", provider="openai") == first
    assert lookups == ["gpt-5", "gpt-5"]


def test_another_price_table_is_asked_again(lookups: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    name = "unknown-model-of-one-table"
    assert price_usage_sum(USAGE, name) is None
    assert price_usage_sum(USAGE, name) is None
    assert lookups == [name]
    # A table set later (``UpdatePrices``, a custom snapshot) may know the model: asked again.
    current = data_snapshot.get_snapshot()
    fresh = data_snapshot.DataSnapshot(providers=current.providers, from_auto_update=False)
    monkeypatch.setattr(data_snapshot, "_custom_snapshot", fresh)
    assert price_usage_sum(USAGE, name) is None
    assert lookups == [name, name]
    assert pricing._unknown_in[0] is fresh
