"""What usage cost in money, from the maintained price table of the ``genai-prices`` package (the
``prices`` extra; see docs/providers.md, "Cost in money").

Pricing is lazy: nothing here runs in the step loop. A job's cost is worked out when it is read
(:func:`job_cost`, ``Runtime.cost``, the CLI), one price per checkpoint, each with the model that
checkpoint's generation ran on, so a follow-up on another model is priced at that model's rates and
tiered prices (above 200k input tokens, say) apply per request as the providers bill them.

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
from typing import Final

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import AssistantMessage
from expert_jobs.domain.models import MODELS
from expert_jobs.domain.usage import Usage

__all__ = ["Cost", "PricesUnavailable", "format_cost", "job_cost", "price_usage", "prices_available"]

_PROVIDER_IDS: Final = {
    "anthropic": "anthropic",
    "openai": "openai",
    "google": "google",
    "deepseek": "deepseek",
}
"""Our provider names (the model catalogue's, the adapters') to the price table's provider ids."""


class PricesUnavailable(ImportError):
    """The price table is not installed: ``pip install 'expert-jobs[prices]'`` (or ``genai-prices``)."""

    def __init__(self) -> None:
        super().__init__(
            "pricing needs the genai-prices package: pip install 'expert-jobs[prices]'", name="genai_prices"
        )


@cache
def _genai_prices() -> ModuleType:
    try:
        import genai_prices
    except ImportError as exc:  # pragma: no cover - the extra is installed in the tests
        raise PricesUnavailable() from exc
    return genai_prices


def prices_available() -> bool:
    """Whether the ``genai-prices`` package (the price table) can be imported."""
    try:
        _genai_prices()
    except PricesUnavailable:  # pragma: no cover - the extra is installed in the tests
        return False
    return True


def _provider_id(model: str, provider: str | None) -> str | None:
    """The price table's provider for ``model``: the one that served it if the table knows it, else
    the catalogue's, else none (the table then guesses from the model's name)."""
    if provider is not None and provider in _PROVIDER_IDS:
        return _PROVIDER_IDS[provider]
    info = MODELS.get(model)
    return None if info is None else _PROVIDER_IDS.get(info.provider)


def price_usage(
    usage: Usage, model: str, *, provider: str | None = None, at: float | None = None
) -> Cost | None:
    """What ``usage`` of one request to ``model`` cost, or ``None`` when the price table does not
    know the model (never 0 for an unknown model).

    The usage maps one to one onto the table's counters, so nothing is priced twice: input tokens
    (cached included) with the cached ones at the cache-read rate, output tokens (reasoning
    included) with the reasoning ones at the reasoning rate where the model has one (else at the
    output rate, as the providers bill them). Cache writes are inside ``input_tokens`` (``Usage``
    has no counter of their own) and so are priced at the input rate. ``provider`` is the provider
    that served it (``"anthropic"``, ``"openai"``, ``"google"``, ``"deepseek"``; others are
    looked up by the model's name); ``at`` the epoch time of the request (prices that changed over
    time), now if ``None``. An inconsistent usage (more cached than input tokens) is unknown too.
    Raises :class:`PricesUnavailable` without the ``prices`` extra.
    """
    prices = _genai_prices()
    counters = prices.Usage(
        input_tokens=usage.input_tokens,
        cache_read_tokens=usage.cached_input_tokens,
        output_tokens=usage.output_tokens,
        output_reasoning_tokens=usage.reasoning_tokens,
    )
    when = None if at is None else datetime.fromtimestamp(at, UTC)
    try:
        calculation = prices.calc_price(
            counters, model, provider_id=_provider_id(model, provider), genai_request_timestamp=when
        )
    except LookupError:  # a model (or provider) the table does not know
        return None
    except ValueError:  # counters the table refuses (more cached than input tokens, say)
        return None
    return Cost(calculation.total_price, "USD")


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
    return total
