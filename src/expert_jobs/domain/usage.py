"""Token usage with one meaning for every provider (see DESIGN.md, "Usage")."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ZERO_USAGE", "Usage"]


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

    @classmethod
    def of(
        cls, input_tokens: int = 0, output_tokens: int = 0, *, reasoning: int = 0, cached: int = 0
    ) -> Usage:
        """A usage whose total is derived: ``Usage.of(100, 20, reasoning=5, cached=40)``."""
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
            total_tokens=input_tokens + output_tokens,
            cached_input_tokens=cached,
        )

    def __add__(self, other: object) -> Usage:
        if not isinstance(other, Usage):
            return NotImplemented
        # Sums of valid usages are valid: skip validation (this runs several times a step).
        total = _new_usage(Usage)
        _set(
            total,
            "__dict__",
            {
                "input_tokens": self.input_tokens + other.input_tokens,
                "output_tokens": self.output_tokens + other.output_tokens,
                "reasoning_tokens": self.reasoning_tokens + other.reasoning_tokens,
                "total_tokens": self.total_tokens + other.total_tokens,
                "cached_input_tokens": self.cached_input_tokens + other.cached_input_tokens,
            },
        )
        _set(total, "__pydantic_fields_set__", _SUM_FIELDS_SET)
        _set(total, "__pydantic_extra__", None)
        _set(total, "__pydantic_private__", None)
        return total

    def invariant_violations(self) -> list[str]:
        """What breaks the one meaning of usage (empty when consistent)."""
        problems = []
        if self.cached_input_tokens > self.input_tokens:
            problems.append(f"cachedInputTokens {self.cached_input_tokens} > inputTokens {self.input_tokens}")
        if self.reasoning_tokens > self.output_tokens:
            problems.append(f"reasoningTokens {self.reasoning_tokens} > outputTokens {self.output_tokens}")
        if self.total_tokens != self.input_tokens + self.output_tokens:
            problems.append(
                f"totalTokens {self.total_tokens} != inputTokens + outputTokens "
                f"({self.input_tokens + self.output_tokens})"
            )
        return problems

    def is_consistent(self) -> bool:
        """Whether cached <= input, reasoning <= output and total == input + output."""
        return (
            self.cached_input_tokens <= self.input_tokens
            and self.reasoning_tokens <= self.output_tokens
            and self.total_tokens == self.input_tokens + self.output_tokens
        )

    def to_wire(self) -> dict[str, Any]:
        """The camelCase wire object."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "reasoningTokens": self.reasoning_tokens,
            "totalTokens": self.total_tokens,
            "cachedInputTokens": self.cached_input_tokens,
        }


_new_usage = object.__new__
_set = object.__setattr__
_ALL_FIELDS = frozenset(Usage.model_fields)
# One fields-set shared by every sum: a set per sum would be one more object for the garbage
# collector to walk per step. Nothing mutates it in place: Usage is frozen, and pydantic copies
# the set before ``model_copy(update=...)`` adds to it.
_SUM_FIELDS_SET = set(_ALL_FIELDS)

ZERO_USAGE = Usage()
"""The usage of nothing; the start of every sum."""
