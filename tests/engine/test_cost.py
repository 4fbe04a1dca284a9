"""A job's cost: cache writes at their own rate, ``job.cost`` in Python, and the final checkpoint
priced by default at a bounded cost (engine/pricing.py, the runner's ``_priced``).

Expected amounts come from genai-prices' own calculation or its rates, never hard-coded."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expert_jobs import (
    JobEvent,
    JobStatus,
    MemoryStore,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    TestProvider,
    Usage,
)
from expert_jobs.domain.cost import Cost
from expert_jobs.domain.job import STATE_FIELDS
from expert_jobs.engine.pricing import TierReached, price_usage, price_usage_sum
from expert_jobs.providers.anthropic import anthropic_usage
from expert_jobs.providers.scripted import Reply
from tests.engine.conftest import ASK_SCHEMA

PER_PROVIDER = [
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-opus-4-1", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gpt-5", "openai"),
    ("gpt-4o", "openai"),
    ("gemini-2.5-pro", "google"),
    ("gemini-2.5-flash", "google"),
    ("deepseek-chat", "deepseek"),
]
ANTHROPIC_CACHED = Path(__file__).parents[1] / "providers" / "fixtures" / "anthropic" / "cached.json"


def _table_price(usage: Usage, model: str, provider: str) -> Decimal:
    """genai-prices' own calculation of one request."""
    counters = genai_prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )
    total: Decimal = genai_prices.calc_price(counters, model, provider_id=provider).total_price
    return total


@st.composite
def _usages(draw: st.DrawFn) -> Usage:
    inputs = draw(st.integers(0, 400_000))
    cached = draw(st.integers(0, inputs))
    writes = draw(st.integers(0, inputs - cached))
    outputs = draw(st.integers(0, 60_000))
    return Usage.of(
        inputs, outputs, reasoning=draw(st.integers(0, outputs)), cached=cached, cache_write=writes
    )


@settings(max_examples=60, deadline=None)
@given(_usages(), st.sampled_from(PER_PROVIDER))
def test_a_price_is_the_tables_own_calculation(usage: Usage, served: tuple[str, str]) -> None:
    # Per-token rates below a tier, the table's calculation above it: the same amount either way.
    model, provider = served
    cost = price_usage(usage, model, provider=provider)
    assert cost is not None and cost.amount == _table_price(usage, model, provider)


@pytest.mark.parametrize(("model", "provider"), PER_PROVIDER)
def test_cache_writes_are_priced_at_the_cache_write_rate(model: str, provider: str) -> None:
    prices = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider).model_price
    written = price_usage(Usage.of(1_000, 0, cache_write=1_000), model, provider=provider)
    plain = price_usage(Usage.of(1_000, 0), model, provider=provider)
    assert written is not None and plain is not None
    rate = prices.cache_write_mtok if prices.cache_write_mtok is not None else prices.input_mtok
    rate = rate.base if isinstance(rate, genai_prices.types.TieredPrices) else rate
    assert written.amount == rate * 1_000 / Decimal(1_000_000)
    if provider == "anthropic":  # Anthropic bills cache writes above the input rate
        assert written.amount > plain.amount


def test_anthropics_cache_creation_tokens_are_cache_writes_inside_the_input() -> None:
    raw = json.loads(ANTHROPIC_CACHED.read_text())["usage"]
    usage = anthropic_usage(raw)
    assert usage.cache_write_tokens == raw["cache_creation_input_tokens"] == 1_200
    assert usage.cached_input_tokens == raw["cache_read_input_tokens"]
    assert usage.input_tokens == raw["input_tokens"] + 1_200 + raw["cache_read_input_tokens"]
    assert usage.is_consistent()
    assert "cacheWriteTokens" not in usage.to_wire()
    cost = price_usage(usage, "claude-haiku-4-5", provider="anthropic")
    assert cost is not None and cost.amount == _table_price(usage, "claude-haiku-4-5", "anthropic")


def test_a_sum_of_requests_is_priced_as_one_only_below_the_models_first_tier() -> None:
    below = Usage.of(150_000, 1_000, cached=50_000)
    assert price_usage_sum(below, "claude-sonnet-4-5") == price_usage(below, "claude-sonnet-4-5")
    # Two such requests: each below the 200k tier, their sum above it. Priced as one request, the
    # sum would pay the tier's rates: it must be priced request by request.
    with pytest.raises(TierReached):
        price_usage_sum(below + below, "claude-sonnet-4-5")
    # A model without tiers: any sum is the sum of its requests' prices.
    huge = Usage.of(3_000_000, 10_000)
    assert price_usage_sum(huge, "gpt-4o") == price_usage(huge, "gpt-4o")
    assert price_usage_sum(below, "my-own-model") is None


# ---------------------------------------------------------------------- jobs


class _Counting(MemoryStore):
    """A MemoryStore counting the reads of a job's checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.listed = 0

    async def list_checkpoints(self, job_id: str, **kwargs: Any) -> Any:
        self.listed += 1
        return await super().list_checkpoints(job_id, **kwargs)


def _runtime(usage: Usage, store: Any = None, **settings: Any) -> Runtime:
    runtime = Runtime(providers=TestProvider(usage=usage), store=store, settings=RuntimeSettings(**settings))
    runtime.add_expert("main@1.0.0", "You help.", tools=[_noop])
    runtime.add_expert(
        "ask@1.0.0", "You ask.", interactive_tools=[{"name": "ask", "input_schema": ASK_SCHEMA}]
    )
    return runtime


async def _noop(value: int = 0) -> str:
    """Do nothing."""
    return "ok"


async def test_the_final_checkpoint_is_priced_by_default_from_the_jobs_usage() -> None:
    assert RuntimeSettings().price_final_checkpoint is True
    store = _Counting()
    runtime = _runtime(Usage.of(2_000, 300, reasoning=50, cached=1_200, cache_write=400), store)
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await runtime.run("main@1.0.0", "q", model="claude-sonnet-4-5")
    # A job run in one go: priced from its usage, its checkpoints never read back.
    assert store.listed == 0
    checkpoints, _ = await store.list_checkpoints(job.id, take=1_000)
    assert job.total_steps == 2 and checkpoints[-1].kind == "stop"
    exact = await runtime.cost(job.id)  # each step priced on its own, cache writes at their rate
    assert exact is not None and exact.amount == 2 * _table_price(
        Usage.of(2_000, 300, reasoning=50, cached=1_200, cache_write=400), "claude-sonnet-4-5", "anthropic"
    )
    assert checkpoints[-1].cost == exact == job.cost
    assert job.cost.to_wire() == exact.to_wire()  # the same text, whichever way it was worked out
    assert [e.detail["cost"] for e in seen if e.kind == "checkpoint" and "cost" in (e.detail or {})] == [
        exact.to_wire()
    ]
    await runtime.close()


async def test_a_job_whose_input_may_reach_a_tier_is_priced_step_by_step() -> None:
    # Two steps of 150k input tokens: 300k in all, above claude-sonnet-4-5's 200k tier, but each
    # request is below it and pays the base rates.
    step = Usage.of(150_000, 100)
    store = _Counting()
    runtime = _runtime(step, store)
    job = await runtime.run("main@1.0.0", "q", model="claude-sonnet-4-5")
    assert job.total_steps == 2 and store.listed > 0
    assert job.cost is not None and job.cost.amount == 2 * _table_price(
        step, "claude-sonnet-4-5", "anthropic"
    )
    assert job.cost.amount < _table_price(step + step, "claude-sonnet-4-5", "anthropic")
    await runtime.close()


async def test_job_cost_in_python() -> None:
    runtime = _runtime(Usage.of(1_000, 100, cached=200))
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    assert job.status is JobStatus.COMPLETED and job.cost is not None
    assert job.cost == await runtime.cost(job.id)
    # Not on the wire, not stored with the job: a job read back gets it from its final checkpoint.
    assert "cost" not in job.to_wire() and "cost" not in STATE_FIELDS
    stored = await runtime.store.get(job.id)
    assert stored is not None and stored.cost is None
    assert (await runtime.get(job.id)).cost == job.cost

    # A follow-up: no cost while it has not ended, then the cost of both parts.
    queued = await runtime.continue_job(job.id, "more")
    assert queued.cost is None and (await runtime.get(job.id)).cost is None
    again = await runtime.drive(job.id)
    assert again.cost is not None and again.cost.amount > job.cost.amount
    assert again.cost == await runtime.cost(job.id) == (await runtime.get(job.id)).cost

    await runtime.close()

    # A model the table does not know (the scripted provider answers as "scripted"): unknown, never 0.
    scripted = Runtime(providers=ScriptedProvider([Reply("done", usage=Usage.of(10, 2))]))
    scripted.add_expert("main@1.0.0", "You help.")
    unknown = await scripted.run("main@1.0.0", "q")
    assert unknown.status is JobStatus.COMPLETED and unknown.cost is None
    assert (await scripted.get(unknown.id)).cost is None
    await scripted.close()


async def test_a_job_ended_without_a_runner_is_priced_too() -> None:
    runtime = _runtime(Usage.of(1_000, 100))
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    # Paused for a person after one step, then canceled: the cancel writes the final checkpoint.
    paused = await runtime.run("ask@1.0.0", "q", model="gpt-5-mini")
    assert paused.status is JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT and paused.cost is None
    canceled = await runtime.cancel(paused.id)
    assert canceled.status is JobStatus.CANCELED
    expected = Cost(_table_price(Usage.of(1_000, 100), "gpt-5-mini", "openai"))
    assert canceled.cost == expected == (await runtime.get(paused.id)).cost
    final = (await runtime.store.list_checkpoints(paused.id, take=1_000))[0][-1]
    assert final.kind == "stop" and final.cost == expected
    stops = [e.detail for e in seen if e.kind == "checkpoint" and e.detail and e.detail["kind"] == "stop"]
    assert stops == [{"checkpointId": final.id, "kind": "stop", "cost": expected.to_wire()}]
    # A queued job canceled before it ran cost nothing (a known model), not "unknown".
    queued = await runtime.submit("main@1.0.0", "q", model="gpt-5-mini")
    assert (await runtime.cancel(queued.id)).cost == Cost(Decimal(0))
    await runtime.close()


async def test_pricing_the_final_checkpoint_can_be_turned_off() -> None:
    store = _Counting()
    runtime = _runtime(Usage.of(1_000, 100), store, price_final_checkpoint=False)
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    checkpoints, _ = await store.list_checkpoints(job.id, take=1_000)
    assert job.cost is None and all(c.cost is None for c in checkpoints)
    assert await runtime.cost(job.id) is not None  # priced on demand all the same
    await runtime.close()
