"""What usage cost in money, from the maintained price table of the ``genai-prices`` package (the
``prices`` extra; see docs/providers.md, "Cost in money").

Nothing here runs in the step loop. A job's cost is worked out at its end (one price of the job's
usage for a job one runner ran from its start: see ``JobRunner``) or when it is read
(:func:`job_cost`, ``Runtime.cost``, the CLI), one price per checkpoint, each with the model that
checkpoint's generation ran on, so a follow-up on another model is priced at that model's rates and
tiered prices (above 200k input tokens, say) apply per request as the providers bill them.

A price is quick (a few µs): the table's per-token rates of a model at a time are read once (by
asking the table the price of one token of each kind) and kept; a usage is then priced with five
multiplications, which is what the table's own calculation gives whenever no tier applies. Usage
that reaches a model's tier is priced by the table's own calculation (``genai_prices.calc_price``).

Only the table bundled with the installed ``genai-prices`` is read: this module never starts its
``UpdatePrices`` background fetch, so pricing never touches the network. (An application that
starts ``genai_prices.UpdatePrices`` itself gets the fetched table here too: that is its choice.)

``genai-prices`` is imported on first use, never by ``import expert_jobs``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from types import ModuleType
from typing import Any, Final, NamedTuple

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import AssistantMessage
from expert_jobs.domain.models import DEFAULT_MODEL, MODELS
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

__all__ = [
    "PRICED_STATUSES",
    "Cost",
    "PricesUnavailable",
    "TierReached",
    "format_cost",
    "job_cost",
    "load_prices",
    "price_usage",
    "price_usage_sum",
    "prices_available",
]

_PROVIDER_IDS: Final = {
    "anthropic": "anthropic",
    "openai": "openai",
    "google": "google",
    "deepseek": "deepseek",
}
"""Our provider names (the model catalogue's, the adapters') to the price table's provider ids."""

_S = JobStatus
PRICED_STATUSES: Final = frozenset({_S.COMPLETED, _S.FAILED, _S.EXCEEDED_MAX_STEPS, _S.CANCELED, _S.EXPIRED})
"""Where a job ends (until someone continues it): the statuses whose final checkpoint carries the
job's cost (``RuntimeSettings.price_final_checkpoint``), and whose ``Job.cost`` ``Runtime.get`` fills."""

_ZERO: Final = Decimal(0)
_ONE: Final = Decimal(1)
_RATES_KEPT: Final = 256
"""At most this many models' rates are kept (a table has a few hundred models; more is a sign of
many table refreshes, and the cache starts over)."""


class PricesUnavailable(ImportError):
    """The price table is not installed: ``pip install 'expert-jobs[prices]'`` (or ``genai-prices``)."""

    def __init__(self) -> None:
        super().__init__(
            "pricing needs the genai-prices package: pip install 'expert-jobs[prices]'", name="genai_prices"
        )


@cache
def _installed() -> ModuleType | None:
    # Cached either way: a runtime that prices every job's end must not retry a failed import each time.
    try:
        import genai_prices
    except ImportError:  # pragma: no cover - the extra is installed in the tests
        return None
    return genai_prices


def _genai_prices() -> ModuleType:
    prices = _installed()
    if prices is None:  # pragma: no cover - the extra is installed in the tests
        raise PricesUnavailable()
    return prices


def prices_available() -> bool:
    """Whether the ``genai-prices`` package (the price table) can be imported."""
    return _installed() is not None


def load_prices() -> bool:
    """Import the price table and read it once (≈ 0.25 s, once per process), so that the first job
    end priced does not pay it on the event loop; run it in a thread. Returns whether the table is
    there."""
    prices = _installed()
    if prices is None:
        return False
    _known(DEFAULT_MODEL, _provider_id(DEFAULT_MODEL, None), prices)
    return True


def _provider_id(model: str, provider: str | None) -> str | None:
    """The price table's provider for ``model``: the one that served it if the table knows it, else
    the catalogue's, else none (the table then guesses from the model's name)."""
    if provider is not None and provider in _PROVIDER_IDS:
        return _PROVIDER_IDS[provider]
    info = MODELS.get(model)
    return None if info is None else _PROVIDER_IDS.get(info.provider)


class _Rates(NamedTuple):
    """A model's prices per token at one time, as the table's own calculation applies them to
    requests of at most ``linear_up_to`` input tokens (above it, a tier's prices apply)."""

    input: Decimal
    cache_read: Decimal
    cache_write: Decimal
    output: Decimal
    reasoning: Decimal
    linear_up_to: float


_rates: dict[int, tuple[Any, _Rates | None]] = {}
"""``id(model price) -> (the model price, its rates)``: the model price is kept with its id, so the
id is never another object's; ``None`` rates for a model price that is not linear (a fee per
request, an unexpected shape): such usage is priced by the table's calculation."""


_unknown: set[tuple[str, str | None]] = set()
"""``(model, provider id)`` pairs the price table does not know: a lookup that fails walks the
table's providers and models (≈ 2 µs, at every job end for a model it does not price, e.g. a test
or local model), so the answer is kept, for as long as the table is the same one."""
_unknown_in: list[Any] = [None]
"""The table (``DataSnapshot``) :data:`_unknown` holds for: another one (``UpdatePrices``, a
custom snapshot) may know those models, and the set starts over."""


def _known(model: str, provider_id: str | None, prices: ModuleType) -> bool:
    """Whether the table may know ``model`` (``False``: a lookup already failed on this table)."""
    snapshot = prices.data_snapshot.get_snapshot()
    if _unknown_in[0] is not snapshot:
        _unknown.clear()
        _unknown_in[0] = snapshot
        return True
    return (model, provider_id) not in _unknown


def _rates_of(model_price: Any, prices: ModuleType) -> _Rates | None:
    """Ask ``model_price`` (a ``genai_prices.types.ModelPrice``) the price of one token of each kind."""
    try:

        def one(**counters: int) -> Decimal:
            total: Decimal = model_price.calc_price(prices.Usage(**counters))["total_price"]
            return total

        if one() != _ZERO:
            return None
        tiers = [
            tier.start
            for value in vars(model_price).values()
            if isinstance(value, prices.types.TieredPrices)
            for tier in value.tiers
        ]
        return _Rates(
            input=one(input_tokens=1),
            cache_read=one(input_tokens=1, cache_read_tokens=1),
            cache_write=one(input_tokens=1, cache_write_tokens=1),
            output=one(output_tokens=1),
            reasoning=one(output_tokens=1, output_reasoning_tokens=1),
            linear_up_to=min(tiers, default=float("inf")),
        )
    except Exception:  # pragma: no cover - a table shape this module does not know: the slow way
        return None


def _priceable(usage: Usage) -> bool:
    """Whether the table takes these counters (it refuses more cached or cache-written than input
    tokens)."""
    return usage.cached_input_tokens + usage.cache_write_tokens <= usage.input_tokens


def _quick_price(
    usage: Usage, model: str, provider_id: str | None, when: datetime, prices: ModuleType
) -> Cost | None:
    """``usage``'s price from the model's per-token rates; ``None`` when they do not apply (the
    caller then asks the table's calculation). ``LookupError`` for a model the table does not know."""
    snapshot = prices.data_snapshot.get_snapshot()
    try:
        _, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        if _unknown_in[0] is snapshot and len(_unknown) < _RATES_KEPT:
            _unknown.add((model, provider_id))
        raise
    model_price = info.get_prices(when)
    entry = _rates.get(id(model_price))
    if entry is None or entry[0] is not model_price:
        if len(_rates) >= _RATES_KEPT:
            _rates.clear()
        entry = _rates[id(model_price)] = (model_price, _rates_of(model_price, prices))
    rates = entry[1]
    inputs = usage.input_tokens
    reasoning = usage.reasoning_tokens
    if rates is None or inputs > rates.linear_up_to or reasoning > usage.output_tokens:
        return None
    cached = usage.cached_input_tokens
    writes = usage.cache_write_tokens
    amount = (
        (inputs - cached - writes) * rates.input
        + cached * rates.cache_read
        + writes * rates.cache_write
        + (usage.output_tokens - reasoning) * rates.output
        + reasoning * rates.reasoning
    )
    return Cost(_tidy(amount), "USD")


def _tidy(amount: Decimal) -> Decimal:
    """``amount`` without trailing zeros (``0.0003``, not ``0.000300``; a whole amount without an
    exponent), so one cost reads the same whichever way it was worked out."""
    amount = amount.normalize()
    return amount.quantize(_ONE) if amount == amount.to_integral_value() else amount


def _priceable_by(
    prices: ModuleType, usage: Usage, model: str, provider: str | None, at: float | None
) -> tuple[str | None, datetime] | None:
    """The table's provider id for ``model`` and the time to price at, or ``None`` when ``usage``
    cannot be priced (inconsistent counters, a model the table does not know)."""
    if not _priceable(usage):
        return None
    provider_id = _provider_id(model, provider)
    if not _known(model, provider_id, prices):
        return None
    return provider_id, datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)


def price_usage(
    usage: Usage, model: str, *, provider: str | None = None, at: float | None = None
) -> Cost | None:
    """What ``usage`` of one request to ``model`` cost, or ``None`` when the price table does not
    know the model (never 0 for an unknown model).

    The usage maps one to one onto the table's counters, so nothing is priced twice: input tokens
    (cached and cache writes included) with the cached ones at the cache-read rate and the cache
    writes at the cache-write rate (the input rate for a model without one), output tokens
    (reasoning included) with the reasoning ones at the reasoning rate where the model has one
    (else at the output rate, as the providers bill them). ``provider`` is the provider that served
    it (``"anthropic"``, ``"openai"``, ``"google"``, ``"deepseek"``; others are looked up by the
    model's name); ``at`` the epoch time of the request (prices that changed over time), now if
    ``None``. An inconsistent usage (more cached than input tokens) is unknown too. Raises
    :class:`PricesUnavailable` without the ``prices`` extra.
    """
    prices = _genai_prices()
    found = _priceable_by(prices, usage, model, provider, at)
    if found is None:
        return None
    provider_id, when = found
    try:
        quick = _quick_price(usage, model, provider_id, when, prices)
        if quick is not None:
            return quick
        counters = prices.Usage(
            input_tokens=usage.input_tokens,
            cache_read_tokens=usage.cached_input_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            output_reasoning_tokens=usage.reasoning_tokens,
        )
        calculation = prices.calc_price(
            counters, model, provider_id=provider_id, genai_request_timestamp=when
        )
    except LookupError:  # a model (or provider) the table does not know
        return None
    except ValueError:  # counters the table refuses
        return None
    return Cost(_tidy(calculation.total_price), "USD")


class TierReached(Exception):
    """:func:`price_usage_sum` cannot price a sum of requests' usage as one: a request may have
    reached a tier of the model's prices (or its prices are not per token). Price each request."""

    def __init__(self, model: str) -> None:
        super().__init__(f"the usage of requests to {model} must be priced request by request")
        self.model = model


def price_usage_sum(
    usage: Usage, model: str, *, provider: str | None = None, at: float | None = None
) -> Cost | None:
    """What several requests to ``model`` whose usages add up to ``usage`` cost, priced as one
    (``at``, ``provider`` and ``None`` for an unknown model as in :func:`price_usage`): the model's
    per-token rates times the summed counters, which is the sum of the requests' prices as long as
    none of them reached a tier. Raises :class:`TierReached` when the summed input tokens are above
    the model's first tier (one request might be) or its prices are not per token, and
    :class:`PricesUnavailable` without the ``prices`` extra."""
    prices = _genai_prices()
    found = _priceable_by(prices, usage, model, provider, at)
    if found is None:
        return None
    provider_id, when = found
    try:
        cost = _quick_price(usage, model, provider_id, when, prices)
    except LookupError:
        return None
    if cost is None:
        raise TierReached(model)
    return cost


def job_cost(job: Job, checkpoints: Iterable[Checkpoint]) -> Cost | None:
    """What ``job`` cost: the sum of its checkpoints' ``step_usage``, each priced with the model its
    step ran on (the latest assistant message of that run, which records the model; the job's model
    before any). ``None`` ("unknown") when any of those models is unknown to the price table.
    ``checkpoints`` are all of the job's (``store.list_checkpoints``), in ``seq`` order."""
    total = Cost(Decimal(0), "USD")
    models: dict[str, tuple[str, str | None]] = {}
    priced = False
    for checkpoint in checkpoints:
        for message in reversed(checkpoint.new_messages):
            if isinstance(message, AssistantMessage) and message.model is not None:
                models[checkpoint.run_id] = (message.model, message.provider)
                break
        usage = checkpoint.step_usage
        if not (usage.input_tokens or usage.output_tokens):
            continue
        model, provider = models.get(checkpoint.run_id, (job.model, None))
        cost = price_usage(usage, model, provider=provider, at=checkpoint.created_at)
        if cost is None:
            return None
        total = total + cost
        priced = True
    if not priced and price_usage(Usage(), job.model) is None:
        return None
    return Cost(_tidy(total.amount), total.currency)
