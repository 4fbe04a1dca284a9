"""docs/providers.md's model table says what the catalogue says."""

from __future__ import annotations

from pathlib import Path

from expert_jobs.domain.models import MODELS, SPEC_MODEL_IDS

DOC = Path(__file__).parents[2] / "docs" / "providers.md"
PROVIDERS = {"Anthropic": "anthropic", "Google": "google", "OpenAI": "openai", "DeepSeek": "deepseek"}


def test_the_model_table_matches_the_catalogue() -> None:
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0].startswith("`") and cells[1] in PROVIDERS:
            rows.append(cells)

    assert [row[0].strip("`") for row in rows] == list(SPEC_MODEL_IDS)
    for model, provider, context, output, temperature, reasons, *_ in rows:
        info = MODELS[model.strip("`")]
        assert PROVIDERS[provider] == info.provider, model
        assert int(context.replace(",", "")) == info.context_window, model
        assert int(output.replace(",", "")) == info.max_output_tokens, model
        assert (temperature == "yes") == info.accepts_temperature, model
        assert (reasons == "yes") == info.reasons, model
