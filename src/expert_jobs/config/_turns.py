"""Scripted turns in the configuration file (``[[provider.script]]``, ``[[provider.scripts."key"]]``
or a script file) and their conversion to the scripted provider's turns."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from expert_jobs.config._base import ConfigModel
from expert_jobs.domain.errors import ProviderErrorKind
from expert_jobs.domain.usage import Usage
from expert_jobs.providers.scripted import Call, Fail, Reply, ToolCalls, Turn

__all__ = ["CallConfig", "FailureKind", "TurnConfig", "UsageConfig"]

FailureKind = ProviderErrorKind
"""The kinds of provider failure a scripted turn can play: every provider error kind (see
:data:`~expert_jobs.domain.errors.ProviderErrorKind` for which are retryable)."""


class UsageConfig(ConfigModel):
    """Tokens a scripted turn reports (``totalTokens`` is derived)."""

    input_tokens: int = Field(0, ge=0)
    output_tokens: int = Field(0, ge=0)
    reasoning_tokens: int = Field(0, ge=0)
    cached_input_tokens: int = Field(0, ge=0)

    def to_usage(self) -> Usage:
        """The engine's :class:`Usage`."""
        return Usage.of(
            self.input_tokens,
            self.output_tokens,
            reasoning=self.reasoning_tokens,
            cached=self.cached_input_tokens,
        )


class CallConfig(ConfigModel):
    """One tool call of a scripted turn: the tool (or delegate, or interactive tool) and its arguments."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class TurnConfig(ConfigModel):
    """One scripted model response: a final ``text``, ``toolCalls`` (with optional ``text``), or a
    failed attempt (``fail`` = the failure kind). ``usage``, ``thinking`` and ``delay`` (seconds)
    are optional."""

    text: str | None = None
    tool_calls: tuple[CallConfig, ...] | None = None
    thinking: str | None = None
    delay: float = Field(0.0, ge=0)
    usage: UsageConfig | None = None
    fail: FailureKind | None = None
    message: str = "scripted failure"
    retry_after: float | None = Field(None, ge=0)
    retryable: bool | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> TurnConfig:
        if self.fail is not None:
            if self.text is not None or self.tool_calls is not None or self.thinking is not None:
                raise ValueError("a 'fail' turn takes no text, toolCalls or thinking")
        elif self.tool_calls is not None:
            if not self.tool_calls:
                raise ValueError("toolCalls must list at least one call")
        elif self.text is None:
            raise ValueError("a turn needs 'text', 'toolCalls' or 'fail'")
        return self

    def to_turn(self) -> Turn:
        """The scripted provider's :class:`Reply`, :class:`ToolCalls` or :class:`Fail`."""
        if self.fail is not None:
            return Fail(
                self.fail,
                self.message,
                retry_after=self.retry_after,
                usage=self.usage.to_usage() if self.usage else None,
                retryable=self.retryable,
                delay=self.delay,
            )
        options: dict[str, Any] = {"thinking": self.thinking, "delay": self.delay}
        if self.usage is not None:
            options["usage"] = self.usage.to_usage()
        if self.tool_calls is not None:
            calls = tuple(Call(c.name, dict(c.arguments), c.id) for c in self.tool_calls)
            return ToolCalls(calls, text=self.text, **options)
        assert self.text is not None
        return Reply(self.text, **options)
