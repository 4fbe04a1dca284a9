"""A whole job end to end through each adapter and its real SDK on a mock transport: a parallel
tool call (one ordinary tool, one interactive), the interactive pause and resume, and usage totals
that match the fixtures' sums."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from expert_jobs import FakeClock, JobStatus, Runtime, ToolResultsMessage, Usage
from expert_jobs.ports.provider import Provider
from expert_jobs.providers.anthropic import AnthropicProvider, anthropic_usage
from expert_jobs.providers.deepseek import DeepSeekProvider, deepseek_usage
from expert_jobs.providers.gemini import GeminiProvider, gemini_usage
from expert_jobs.providers.openai import OpenAIProvider, openai_usage
from tests.providers.kit import MockAPI, fixture

TIME_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


def get_weather(city: str) -> str:
    """Current weather in a city.

    Args:
        city: the city
    """
    return f"Sunny in {city}"


Case = tuple[str, str, str, Callable[[MockAPI], Provider], Callable[[Mapping[str, Any]], Usage], str]
CASES: list[Case] = [
    (
        "anthropic",
        "claude-haiku-4-5",
        "parallel_tool_use",
        lambda api: AnthropicProvider(api_key="k", http_client=api.client()),
        anthropic_usage,
        "usage",
    ),
    (
        "openai",
        "gpt-5",
        "parallel",
        lambda api: OpenAIProvider(api_key="k", http_client=api.client()),
        openai_usage,
        "usage",
    ),
    (
        "gemini",
        "gemini-2.5-flash",
        "parallel",
        lambda api: GeminiProvider(api_key="k", http_client=api.client()),
        lambda raw: gemini_usage({re.sub(r"(?<!^)(?=[A-Z])", "_", k).lower(): v for k, v in raw.items()}),
        "usageMetadata",
    ),
    (
        "deepseek",
        "deepseek-chat",
        "parallel",
        lambda api: DeepSeekProvider(api_key="k", http_client=api.client()),
        deepseek_usage,
        "usage",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
async def test_a_whole_job_with_a_parallel_call_and_an_interactive_pause(case: Case) -> None:
    name, model, parallel, make, usage_of, usage_key = case
    first, final = fixture(name, parallel), fixture(name, "text")
    api = MockAPI().reply(first).reply(final)
    runtime = Runtime(providers=make(api), clock=FakeClock())
    runtime.add_expert(
        "weather@1.0.0",
        "You report the weather.",
        tools=[get_weather],
        interactive_tools=[
            {"name": "get_time", "description": "Ask the user the time", "input_schema": TIME_SCHEMA}
        ],
    )

    job = await runtime.run("weather@1.0.0", "What is the weather in Paris?", model=model)
    assert job.status is JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT
    job = await runtime.continue_job(job.id, "It is noon.", interactive=True)
    job = await runtime.drive(job.id)

    assert job.status is JobStatus.COMPLETED, job.error
    assert job.total_steps == 2
    assert job.usage == usage_of(first[usage_key]) + usage_of(final[usage_key])
    assert job.usage.is_consistent()
    assert len(api.sent) == 2
    checkpoints, _ = await runtime.store.list_checkpoints(job.id)
    history = await runtime.store.load_history(job.id, checkpoints[-1].run_id)
    results = history[2]
    assert isinstance(results, ToolResultsMessage)
    assert [r.content for r in results.results] == ["Sunny in Paris", "It is noon."]
