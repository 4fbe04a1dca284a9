"""Pieces of a model response as it streams: typed deltas, provider-neutral.

A provider's stream (:meth:`~expert_jobs.ports.provider.StreamingProvider.stream`) yields these
in the order the model produced them, then the complete
:class:`~expert_jobs.ports.provider.GenerationResponse`. Deltas are what a person watching sees;
they are never written to a job's history (the complete response is).

``index`` on the tool-call deltas is the call's position among the tool calls of this response
(0, 1, ...), so that the argument fragments of parallel calls can be told apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from expert_jobs.domain.usage import Usage

__all__ = [
    "StreamDelta",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallArgumentsDelta",
    "ToolCallStartDelta",
    "UsageDelta",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More of the answer's text."""

    text: str
    kind: Literal["text"] = "text"

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for event streams."""
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class ThinkingDelta:
    """More of the model's visible reasoning (thinking) text."""

    text: str
    kind: Literal["thinking"] = "thinking"

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for event streams."""
        return {"type": "thinking", "text": self.text}


@dataclass(frozen=True, slots=True)
class ToolCallStartDelta:
    """The model began a tool call: its position, id and tool name (arguments follow)."""

    index: int
    tool_call_id: str
    name: str
    kind: Literal["toolCallStart"] = "toolCallStart"

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for event streams."""
        return {
            "type": "toolCallStart",
            "index": self.index,
            "toolCallId": self.tool_call_id,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class ToolCallArgumentsDelta:
    """A fragment of a tool call's JSON arguments (the fragments of one call concatenate to it)."""

    index: int
    fragment: str
    kind: Literal["toolCallArguments"] = "toolCallArguments"

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for event streams."""
        return {"type": "toolCallArguments", "index": self.index, "fragment": self.fragment}


@dataclass(frozen=True, slots=True)
class UsageDelta:
    """Usage known so far (cumulative for this response, in the normalised meaning of
    :class:`~expert_jobs.domain.usage.Usage`); the final response's usage is the exact figure."""

    usage: Usage
    kind: Literal["usage"] = "usage"

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for event streams."""
        return {"type": "usage", "usage": self.usage.to_wire()}


StreamDelta = TextDelta | ThinkingDelta | ToolCallStartDelta | ToolCallArgumentsDelta | UsageDelta
"""One piece of a streaming response."""
