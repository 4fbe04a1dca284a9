"""Token usage with one meaning for every provider (see docs/providers.md, "Usage").

:class:`Usage` is a small immutable value, not a pydantic model: it is summed several times a
step, and a plain slotted object is built in a fifth of the time, read without pydantic's
attribute hook, and is one object (not two) for the garbage collector. Pydantic models take it as
a field all the same (validated from camelCase or snake_case, serialized like a model, the same
JSON schema named ``Usage``), and :meth:`Usage.from_wire` validates data at the edges.

``cache_write_tokens`` is a sixth counter kept on the Python side only: the prompt tokens written
to a provider's prompt cache (Anthropic bills them above the input rate), a part of
``input_tokens`` like the cached ones. The spec's usage object has five fields, so the wire form
(:meth:`Usage.to_wire`, the pydantic schema) leaves it out; the stores keep it with
:meth:`Usage.to_data` / :meth:`Usage.from_data`, which read rows written before it existed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from expert_jobs.domain._usage_fields import Usage as _UsageFields
from expert_jobs.domain._usage_fields import UsageData as _UsageData

__all__ = ["ZERO_USAGE", "Usage"]

_FIELDS: Final = (
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
)


class Usage:
    # The meanings are the wire model's docstring (the API schema's description), written once.
    __doc__ = f"""{_UsageFields.__doc__}
    ``cache_write_tokens`` (Python only, not on the wire) counts the input tokens written to the
    provider's prompt cache, another part of ``input_tokens``: priced at the cache-write rate.
    Immutable and hashable; equal when every counter is. A counter that is not a non-negative whole
    number is a ``pydantic.ValidationError`` naming the field (pydantic's lax rules: ``3.0`` is 3).
    """

    __slots__ = _FIELDS

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int

    def __init__(
        self,
        *,
        input_tokens: int = 0,
        output_tokens: int = 0,
        reasoning_tokens: int = 0,
        total_tokens: int = 0,
        cached_input_tokens: int = 0,
        cache_write_tokens: int = 0,
    ) -> None:
        counters = (
            input_tokens,
            output_tokens,
            reasoning_tokens,
            total_tokens,
            cached_input_tokens,
            cache_write_tokens,
        )
        for value in counters:
            if type(value) is not int or value < 0:
                # Not a plain non-negative int: let the model say which field and why (or convert
                # a lax value such as 3.0, as pydantic does).
                fields = _UsageData.model_validate(dict(zip(_FIELDS, counters, strict=True)))
                counters = tuple(getattr(fields, name) for name in _FIELDS)
                break
        _fill(self, *counters)

    @classmethod
    def of(
        cls,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        reasoning: int = 0,
        cached: int = 0,
        cache_write: int = 0,
    ) -> Usage:
        """A usage whose total is derived: ``Usage.of(100, 20, reasoning=5, cached=40)``."""
        return cls(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            reasoning_tokens=reasoning,
            total_tokens=input_tokens + output_tokens,
            cached_input_tokens=cached,
            cache_write_tokens=cache_write,
        )

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Usage:
        """Validate a usage object (camelCase as on the wire, or snake_case; missing counters are
        0). Raises ``pydantic.ValidationError`` for unknown keys (``cacheWriteTokens`` included:
        it is not a wire field) and bad counters."""
        return _from_fields(_UsageFields.model_validate(data))

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Usage:
        """Read what :meth:`to_data` wrote (also rows written before ``cacheWriteTokens`` existed):
        :meth:`from_wire`'s rules, plus the optional ``cacheWriteTokens`` counter."""
        return _from_fields(_UsageData.model_validate(data))

    def to_data(self) -> dict[str, Any]:
        """The stores' form: :meth:`to_wire`, plus ``cacheWriteTokens`` when it is not 0 (so rows
        without cache writes are as before)."""
        data = self.to_wire()
        if self.cache_write_tokens:
            data["cacheWriteTokens"] = self.cache_write_tokens
        return data

    def to_wire(self) -> dict[str, Any]:
        """The camelCase wire object: the spec's five counters (never ``cache_write_tokens``)."""
        return {
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "reasoningTokens": self.reasoning_tokens,
            "totalTokens": self.total_tokens,
            "cachedInputTokens": self.cached_input_tokens,
        }

    def __add__(self, other: object) -> Usage:
        if type(other) is not Usage:
            return NotImplemented
        # Sums of valid usages are valid: no validation (this runs several times a step).
        # The setters inline (what _fill does): a frame less per sum.
        total = _new(Usage)
        _set_input(total, self.input_tokens + other.input_tokens)
        _set_output(total, self.output_tokens + other.output_tokens)
        _set_reasoning(total, self.reasoning_tokens + other.reasoning_tokens)
        _set_total(total, self.total_tokens + other.total_tokens)
        _set_cached(total, self.cached_input_tokens + other.cached_input_tokens)
        _set_cache_write(total, self.cache_write_tokens + other.cache_write_tokens)
        return total

    def _counters(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.input_tokens,
            self.output_tokens,
            self.reasoning_tokens,
            self.total_tokens,
            self.cached_input_tokens,
            self.cache_write_tokens,
        )

    def __eq__(self, other: object) -> bool:
        if type(other) is not Usage:
            return NotImplemented
        return self._counters() == other._counters()

    def __hash__(self) -> int:
        return hash(self._counters())

    def __repr__(self) -> str:
        return "Usage(" + ", ".join(f"{name}={getattr(self, name)}" for name in _FIELDS) + ")"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Usage is immutable: cannot set {name!r} (add usages with +)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Usage is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, tuple[int, ...]]:
        return _of_counters, self._counters()

    def invariant_violations(self) -> list[str]:
        """What breaks the one meaning of usage (empty when consistent)."""
        problems = []
        writes = self.cache_write_tokens
        if self.cached_input_tokens + writes > self.input_tokens:
            counted = f" + cacheWriteTokens {writes}" if writes else ""
            problems.append(
                f"cachedInputTokens {self.cached_input_tokens}{counted} > inputTokens {self.input_tokens}"
            )
        if self.reasoning_tokens > self.output_tokens:
            problems.append(f"reasoningTokens {self.reasoning_tokens} > outputTokens {self.output_tokens}")
        if self.total_tokens != self.input_tokens + self.output_tokens:
            problems.append(
                f"totalTokens {self.total_tokens} != inputTokens + outputTokens "
                f"({self.input_tokens + self.output_tokens})"
            )
        return problems

    def is_consistent(self) -> bool:
        """Whether cached + cache writes <= input, reasoning <= output and total == input + output."""
        return (
            self.cached_input_tokens + self.cache_write_tokens <= self.input_tokens
            and self.reasoning_tokens <= self.output_tokens
            and self.total_tokens == self.input_tokens + self.output_tokens
        )

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """As a field of a pydantic model: a ``Usage`` instance as is, or a usage object validated
        like :meth:`from_wire`; serialized like the model it mirrors (camelCase by alias)."""
        fields = handler.generate_schema(_UsageFields)
        return core_schema.no_info_wrap_validator_function(
            _validate,
            core_schema.no_info_after_validator_function(_from_fields, fields),
            serialization=core_schema.wrap_serializer_function_ser_schema(_serialize, schema=fields),
        )


_new = object.__new__
_SETTERS = tuple(Usage.__dict__[name].__set__ for name in _FIELDS)
_set_input, _set_output, _set_reasoning, _set_total, _set_cached, _set_cache_write = _SETTERS


def _fill(
    usage: Usage, input_: int, output: int, reasoning: int, total: int, cached: int, cache_write: int
) -> None:
    _set_input(usage, input_)
    _set_output(usage, output)
    _set_reasoning(usage, reasoning)
    _set_total(usage, total)
    _set_cached(usage, cached)
    _set_cache_write(usage, cache_write)


def _of_counters(
    input_: int, output: int, reasoning: int, total: int, cached: int, cache_write: int = 0
) -> Usage:
    """A usage of counters already known to be valid (``cache_write`` defaults to 0 for pickles
    made before it existed)."""
    usage = _new(Usage)
    _fill(usage, input_, output, reasoning, total, cached, cache_write)
    return usage


def _from_fields(fields: _UsageFields) -> Usage:
    # A wire model has no cache-write counter: 0.
    return _of_counters(*(getattr(fields, name, 0) for name in _FIELDS))


def _validate(value: Any, validate_data: core_schema.ValidatorFunctionWrapHandler) -> Usage:
    return value if type(value) is Usage else validate_data(value)


def _serialize(usage: Usage, serialize: core_schema.SerializerFunctionWrapHandler) -> Any:
    fields = _UsageFields.model_construct(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        total_tokens=usage.total_tokens,
        cached_input_tokens=usage.cached_input_tokens,
    )
    return serialize(fields)


ZERO_USAGE = Usage()
"""The usage of nothing; the start of every sum."""
