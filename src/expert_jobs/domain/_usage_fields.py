"""The pydantic shape of a usage object: its validation rules, serialization and JSON schema.

:class:`expert_jobs.domain.usage.Usage` is a plain value; pydantic models that hold one validate,
serialize and describe it through this model. The class is named ``Usage`` because pydantic titles
and references a model's JSON schema by its class name.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Usage(BaseModel):
    """Token counters of a call, a step, a run or a job.

    ``input_tokens`` counts every prompt token billed (cached included), ``cached_input_tokens`` is a
    part of it; ``output_tokens`` counts every generated token (reasoning included),
    ``reasoning_tokens`` is a part of it; ``total_tokens`` is input + output. Usages add up with ``+``.
    On the wire the fields are camelCase (``inputTokens``...).
    """

    model_config = ConfigDict(
        frozen=True, populate_by_name=True, extra="forbid", json_schema_serialization_defaults_required=True
    )

    input_tokens: int = Field(0, ge=0, alias="inputTokens")
    output_tokens: int = Field(0, ge=0, alias="outputTokens")
    reasoning_tokens: int = Field(0, ge=0, alias="reasoningTokens")
    total_tokens: int = Field(0, ge=0, alias="totalTokens")
    cached_input_tokens: int = Field(0, ge=0, alias="cachedInputTokens")


class UsageData(Usage):
    """The stores' usage object: the wire's five counters and ``cacheWriteTokens`` (Python only:
    input tokens written to the provider's prompt cache, a part of ``input_tokens``). Never part of
    an API schema."""

    cache_write_tokens: int = Field(0, ge=0, alias="cacheWriteTokens")
