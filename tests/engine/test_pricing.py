"""Cost in money (engine/pricing.py): usage priced with genai-prices' bundled table, offline.

Expected amounts are worked out from the table's own rates (read from genai-prices here), never
hard-coded: the table changes with each release of the package."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import genai_prices
import pytest
from genai_prices.types import TieredPrices

from expert_jobs import (
    Checkpoint,
    Job,
    JobEvent,
    JobStatus,
    MemoryStore,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    SQLiteStore,
    TestProvider,
)
from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.errors import JobNotFound
from expert_jobs.domain.messages import AssistantMessage, TextPart, UserMessage
from expert_jobs.domain.models import MODELS
from expert_jobs.domain.usage import ZERO_USAGE, Usage
from expert_jobs.engine import pricing
from expert_jobs.engine.pricing import job_cost, price_usage, prices_available
from expert_jobs.providers.scripted import Reply
from expert_jobs.stores._rows import checkpoint_json, dumps

MILLION = Decimal(1_000_000)
PER_PROVIDER = [
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gpt-5", "openai"),
    ("o3", "openai"),
    ("gemini-2.5-flash", "google"),
    ("gemini-2.5-pro", "google"),
    ("deepseek-reasoner", "deepseek"),
    ("deepseek-chat", "deepseek"),
]


def _rate(price: Any) -> Decimal:
    """A per-million rate of the table below any tier (our usages stay far under 200k tokens)."""
    if price is None:
        return Decimal(0)
    return price.base if isinstance(price, TieredPrices) else Decimal(price)


def _rates(model: str, provider: str) -> Any:
    """The table's prices for ``model`` now, as genai-prices resolves them."""
    return genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider).model_price


def _expected(usage: Usage, model: str, provider: str) -> Decimal:
    """The bill by hand: every token once, at its own rate."""
    rates = _rates(model, provider)
    output = _rate(rates.output_mtok)
    reasoning = _rate(rates.output_reasoning_mtok) if rates.output_reasoning_mtok is not None else output
    cache_read = (
        _rate(rates.cache_read_mtok) if rates.cache_read_mtok is not None else _rate(rates.input_mtok)
    )
    return (
        (usage.input_tokens - usage.cached_input_tokens) * _rate(rates.input_mtok)
        + usage.cached_input_tokens * cache_read
        + (usage.output_tokens - usage.reasoning_tokens) * output
        + usage.reasoning_tokens * reasoning
    ) / MILLION


def test_the_price_table_is_installed() -> None:
    assert prices_available()


@pytest.mark.parametrize(("model", "provider"), PER_PROVIDER)
def test_each_providers_models_are_priced_with_cached_and_reasoning_rates(model: str, provider: str) -> None:
    usage = Usage.of(12_000, 3_000, reasoning=1_200, cached=8_000)
    cost = price_usage(usage, model, provider=provider)
    assert cost is not None
    assert cost.currency == "USD"
    assert cost.amount == _expected(usage, model, provider)
    # The catalogue knows each model's provider: the same price without naming it.
    assert price_usage(usage, model) == cost


@pytest.mark.parametrize(("model", "provider"), PER_PROVIDER)
def test_cached_tokens_are_not_priced_twice(model: str, provider: str) -> None:
    rates = _rates(model, provider)
    # 100k tokens: under every tier (a tenth of the per-million rates).
    all_cached = price_usage(Usage.of(100_000, 0, cached=100_000), model)
    none_cached = price_usage(Usage.of(100_000, 0), model)
    assert all_cached is not None and none_cached is not None
    assert none_cached.amount == _rate(rates.input_mtok) / 10
    assert all_cached.amount == _rate(rates.cache_read_mtok) / 10
    assert all_cached.amount < none_cached.amount


@pytest.mark.parametrize(("model", "provider"), PER_PROVIDER)
def test_reasoning_tokens_are_output_tokens_priced_once(model: str, provider: str) -> None:
    rates = _rates(model, provider)
    reasoning = price_usage(Usage.of(0, 100_000, reasoning=100_000), model)
    assert reasoning is not None
    expected = rates.output_reasoning_mtok if rates.output_reasoning_mtok is not None else rates.output_mtok
    assert reasoning.amount == _rate(expected) / 10


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_of_the_catalogue_is_in_the_table(model: str) -> None:
    cost = price_usage(Usage.of(1_000, 100, reasoning=10, cached=500), model)
    assert cost is not None
    assert cost.amount > 0


def test_an_unknown_model_is_unknown_never_zero() -> None:
    assert price_usage(Usage.of(100, 20), "my-own-model") is None
    assert price_usage(Usage.of(100, 20), "my-own-model", provider="openai") is None
    assert price_usage(Usage.of(100, 20), "scripted", provider="scripted") is None
    assert price_usage(ZERO_USAGE, "my-own-model") is None


def test_an_inconsistent_usage_is_unknown_not_an_exception() -> None:
    broken = Usage(input_tokens=10, cached_input_tokens=20, output_tokens=5, total_tokens=15)
    assert price_usage(broken, "gpt-5") is None


def test_the_served_provider_wins_over_the_catalogues() -> None:
    # An unknown provider name (a custom adapter) falls back to the catalogue's provider.
    assert price_usage(Usage.of(100, 20), "gpt-5", provider="my-proxy") == price_usage(
        Usage.of(100, 20), "gpt-5", provider="openai"
    )


def test_the_request_time_picks_the_tables_prices(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[datetime] = []
    real = genai_prices.types.ModelInfo.get_prices

    def spy(self: Any, request_timestamp: datetime, *args: Any) -> Any:
        seen.append(request_timestamp)
        return real(self, request_timestamp, *args)

    monkeypatch.setattr(genai_prices.types.ModelInfo, "get_prices", spy)
    price_usage(Usage.of(1, 1), "gpt-5", at=1_750_000_000.0)
    assert seen == [datetime.fromtimestamp(1_750_000_000.0, UTC)]


def test_format_cost() -> None:
    assert format_cost(None) == "unknown"
    assert format_cost(Cost(Decimal("0.0049200"))) == "$0.0049"
    assert format_cost(Cost(Decimal("12.5"))) == "$12.5000"
    assert format_cost(Cost(Decimal("0.0000123"))) == "$0.00001"
    assert format_cost(Cost(Decimal(0))) == "$0.0000"
    assert format_cost(Cost(Decimal("1.5"), "EUR")) == "1.5000 EUR"
    assert Cost(Decimal(1)) + Cost(Decimal(2)) == Cost(Decimal(3))
    with pytest.raises(ValueError, match="EUR"):
        Cost(Decimal(1)) + Cost(Decimal(1), "EUR")
    assert Cost.from_wire(Cost(Decimal("0.25")).to_wire()) == Cost(Decimal("0.25"))


# ---------------------------------------------------------------------- a job's cost


def _job(model: str = "gpt-5") -> Job:
    now = time.time()
    return Job(
        id="j" * 24,
        organization_id="o" * 24,
        application_id="a" * 24,
        expert_key="main@1.0.0",
        expert={},
        model=model,
        temperature=0.0,
        max_steps=10,
        max_retries=0,
        created_at=now,
        query="q",
    )


def _checkpoint(seq: int, usage: Usage, *messages: Any, run_id: str = "root") -> Checkpoint:
    return Checkpoint(
        id=f"c{seq}",
        job_id="j" * 24,
        run_id=run_id,
        seq=seq,
        step=seq,
        kind="step",
        status=JobStatus.PROCESSING,
        run_state="running",
        expert_key="main@1.0.0",
        created_at=time.time(),
        new_messages=tuple(messages),
        message_count=seq,
        usage=usage,
        run_usage=usage,
        step_usage=usage,
        total_steps=seq,
        total_duration_ms=0,
    )


def _said(model: str, provider: str | None) -> AssistantMessage:
    return AssistantMessage((TextPart("hi"),), provider, model)


def test_a_job_with_two_models_prices_each_step_with_its_own() -> None:
    first, second = Usage.of(5_000, 300, cached=1_000), Usage.of(7_000, 900, reasoning=400, cached=4_000)
    checkpoints = [
        _checkpoint(1, first, UserMessage("q"), _said("gpt-5", "openai")),
        # A follow-up on another model: its step's assistant message records the model.
        _checkpoint(2, second, UserMessage("more"), _said("claude-sonnet-4-5", "anthropic")),
    ]
    cost = job_cost(_job("claude-sonnet-4-5"), checkpoints)
    assert cost is not None
    assert cost.amount == _expected(first, "gpt-5", "openai") + _expected(
        second, "claude-sonnet-4-5", "anthropic"
    )
    # Not the job's summed usage at one model's rates.
    assert cost != price_usage(first + second, "claude-sonnet-4-5")


def test_a_step_without_a_message_keeps_its_runs_model_and_starts_at_the_jobs() -> None:
    retried = Usage.of(100, 0)
    checkpoints = [
        _checkpoint(1, retried),  # failed attempts before any answer: the job's model
        _checkpoint(2, Usage.of(200, 10), _said("gpt-5", "openai")),
        _checkpoint(3, retried),  # later failed attempts: the run's model so far
    ]
    cost = job_cost(_job("o3"), checkpoints)
    assert cost is not None
    assert cost.amount == (
        _expected(retried, "o3", "openai")
        + _expected(Usage.of(200, 10), "gpt-5", "openai")
        + _expected(retried, "gpt-5", "openai")
    )


def test_any_unknown_model_makes_the_job_unknown() -> None:
    checkpoints = [
        _checkpoint(1, Usage.of(100, 10), _said("gpt-5", "openai")),
        _checkpoint(2, Usage.of(100, 10), _said("my-own-model", "custom")),
    ]
    assert job_cost(_job(), checkpoints) is None


def test_a_job_without_usage_costs_nothing_if_its_model_is_known() -> None:
    assert job_cost(_job("gpt-5"), []) == Cost(Decimal(0))
    assert job_cost(_job("my-own-model"), []) is None


async def test_runtime_cost_of_a_job_run_on_a_known_model() -> None:
    runtime = Runtime(providers=TestProvider(usage=Usage.of(1_000, 200, cached=300)))
    runtime.add_expert("main@1.0.0", "You help.")
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=1_000)
    steps = [c for c in checkpoints if c.step_usage != ZERO_USAGE]
    assert steps
    cost = await runtime.cost(job.id)
    assert cost == Cost(sum((_expected(c.step_usage, "gpt-5-mini", "openai") for c in steps), Decimal(0)))
    await runtime.close()


async def test_runtime_cost_is_unknown_for_a_scripted_model_and_refuses_an_unknown_job() -> None:
    runtime = Runtime(providers=ScriptedProvider([Reply("done", usage=Usage.of(10, 2))]))
    runtime.add_expert("main@1.0.0", "You help.")
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is JobStatus.COMPLETED
    assert await runtime.cost(job.id) is None
    with pytest.raises(JobNotFound):
        await runtime.cost("x" * 24)
    await runtime.close()


def test_importing_expert_jobs_does_not_import_the_price_table() -> None:
    code = "import sys, expert_jobs; print('genai_prices' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_pricing_never_touches_the_network() -> None:
    # A process where any connection attempt fails loudly: pricing still works, from the bundled
    # table, and no background update was started.
    code = """
import socket
def refuse(*args, **kwargs):
    raise AssertionError("pricing tried the network")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
import threading
from expert_jobs.domain.usage import Usage
from expert_jobs.engine.pricing import price_usage
before = threading.active_count()
cost = price_usage(Usage.of(1000, 100, cached=10), "claude-sonnet-4-5")
assert cost is not None and cost.amount > 0
assert threading.active_count() == before  # no background price update started
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------- the final checkpoint's cost


def _priced_runtime(store: Any = None, *, on: bool = True) -> Runtime:
    runtime = Runtime(
        providers=TestProvider(usage=Usage.of(2_000, 300, reasoning=50, cached=1_200)),
        store=store,
        settings=RuntimeSettings(price_final_checkpoint=on),
    )
    runtime.add_expert("main@1.0.0", "You help.")
    return runtime


async def test_the_final_checkpoint_carries_the_jobs_cost() -> None:
    runtime = _priced_runtime()
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=1_000)
    final = checkpoints[-1]
    assert final.kind == "stop"
    assert final.cost is not None
    assert final.cost == await runtime.cost(job.id)
    assert all(c.cost is None for c in checkpoints[:-1])
    # The API's checkpoint object stays the spec's: no cost on the wire.
    assert "cost" not in final.to_wire()

    # A follow-up on another model: its final checkpoint has the cost of both parts.
    await runtime.continue_job(job.id, "more", model="claude-opus-4-1")
    await runtime.drive(job.id)
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=1_000)
    again = checkpoints[-1]
    assert again.kind == "stop" and again.seq > final.seq
    assert again.cost is not None and again.cost == await runtime.cost(job.id)
    assert again.cost.amount > final.cost.amount
    await runtime.close()


async def test_no_cost_on_the_final_checkpoint_when_turned_off_or_for_an_unknown_model() -> None:
    runtime = _priced_runtime(on=False)
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=1_000)
    assert all(c.cost is None for c in checkpoints)
    assert await runtime.cost(job.id) is not None  # priced on demand all the same
    await runtime.close()

    scripted = Runtime(
        providers=ScriptedProvider([Reply("done")]), settings=RuntimeSettings(price_final_checkpoint=True)
    )
    scripted.add_expert("main@1.0.0", "You help.")
    job = await scripted.run("main@1.0.0", "q")
    checkpoints, _ = await scripted.store.list_checkpoints(job.id, take=1_000)
    assert checkpoints[-1].kind == "stop" and checkpoints[-1].cost is None
    await scripted.close()


async def test_the_final_checkpoints_cost_is_kept_by_a_store(tmp_path: Any) -> None:
    store = SQLiteStore(tmp_path / "jobs.db")
    runtime = _priced_runtime(store)
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    expected = await runtime.cost(job.id)
    await runtime.close()
    reopened = SQLiteStore(tmp_path / "jobs.db")
    checkpoints, _ = await reopened.list_checkpoints(job.id, take=1_000)
    assert checkpoints[-1].cost == expected is not None
    assert all(c.cost is None for c in checkpoints[:-1])
    await reopened.close()


def test_a_checkpoints_cost_round_trips_and_is_absent_from_rows_without_one() -> None:
    plain = _checkpoint(1, Usage.of(10, 2), _said("gpt-5", "openai"))
    assert "cost" not in plain.to_data()
    assert checkpoint_json(plain) == dumps(plain.to_data())
    costed = plain._replace(cost=Cost(Decimal("0.0123")))
    assert costed.to_data()["cost"] == {"amount": "0.0123", "currency": "USD"}
    assert checkpoint_json(costed) == dumps(costed.to_data())
    assert Checkpoint.from_data(costed.to_data()) == costed
    assert Checkpoint.from_data(plain.to_data()) == plain
    assert "cost" not in costed.to_wire()


async def test_a_failure_to_price_the_final_checkpoint_never_fails_the_job(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    fire = True

    class Flaky(MemoryStore):
        async def list_checkpoints(self, job_id: str, **kwargs: Any) -> Any:
            if fire:
                raise OSError("disk on fire")
            return await super().list_checkpoints(job_id, **kwargs)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("price table on fire")

    # A job run in one go is priced from its usage; a follow-up reads its checkpoints back.
    runtime = _priced_runtime(Flaky())
    with monkeypatch.context() as patch:
        patch.setattr(pricing, "price_usage_sum", broken)
        job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    assert job.status is JobStatus.COMPLETED and job.cost is None
    await runtime.continue_job(job.id, "more")
    job = await runtime.drive(job.id)
    assert job.status is JobStatus.COMPLETED and job.cost is None
    fire = False
    finals = [c for c in (await runtime.store.list_checkpoints(job.id, take=1_000))[0] if c.kind == "stop"]
    assert len(finals) == 2 and all(c.cost is None for c in finals)
    assert caplog.text.count("could not price its final checkpoint") == 2
    await runtime.close()


async def test_the_final_checkpoint_event_carries_the_jobs_cost() -> None:
    runtime = _priced_runtime()
    seen: list[JobEvent] = []
    runtime.events.subscribe(seen.append)
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    events = [e for e in seen if e.kind == "checkpoint"]
    assert events[-1].detail is not None and events[-1].detail["kind"] == "stop"
    cost = await runtime.cost(job.id)
    assert cost is not None
    assert events[-1].detail["cost"] == cost.to_wire() == {"amount": str(cost.amount), "currency": "USD"}
    assert all("cost" not in (e.detail or {}) for e in events[:-1])
    await runtime.close()

    # An unknown model: the cost is there and unknown (None), never 0.
    scripted = Runtime(
        providers=ScriptedProvider([Reply("done")]), settings=RuntimeSettings(price_final_checkpoint=True)
    )
    scripted.add_expert("main@1.0.0", "You help.")
    seen.clear()
    scripted.events.subscribe(seen.append)
    await scripted.run("main@1.0.0", "q")
    final = [e for e in seen if e.kind == "checkpoint"][-1]
    assert final.detail is not None and "cost" in final.detail and final.detail["cost"] is None
    await scripted.close()

    # Not asked for: no cost in the events.
    off = _priced_runtime(on=False)
    seen.clear()
    off.events.subscribe(seen.append)
    await off.run("main@1.0.0", "q", model="gpt-5-mini")
    assert seen and all("cost" not in (e.detail or {}) for e in seen)
    await off.close()


async def test_a_follow_up_or_a_branch_does_not_repeat_the_earlier_cost() -> None:
    runtime = _priced_runtime()
    job = await runtime.run("main@1.0.0", "q", model="gpt-5-mini")
    final = (await runtime.store.list_checkpoints(job.id, take=1_000))[0][-1]
    assert final.cost is not None
    branch = await runtime.branch_from(job.id, final.id)
    (start,) = (await runtime.store.list_checkpoints(branch.id, take=1_000))[0]
    assert start.cost is None
    await runtime.continue_job(job.id, "more")
    checkpoints, _ = await runtime.store.list_checkpoints(job.id, take=1_000)
    assert checkpoints[-1].kind == "resume" and checkpoints[-1].cost is None
    await runtime.close()
