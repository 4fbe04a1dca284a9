"""Provider-neutral conversation messages.

A run's history is a list of messages: :class:`UserMessage`, :class:`AssistantMessage` and
:class:`ToolResultsMessage`. Every tool call of an assistant message gets exactly one
:class:`ToolResult` in the tool-results message that follows it, in the order of the calls.
All message types are frozen slotted dataclasses: cheap to build on the hot path and safe to
share between checkpoints. :func:`message_to_data` / :func:`message_from_data` turn them into
JSON-ready data for durable checkpoints (the stores' format, snake_case keys: it never changes, so
every row ever written stays readable); :func:`message_to_wire` renders them for the API (the same
data with camelCase keys, like the rest of a checkpoint).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AssistantMessage",
    "AssistantPart",
    "FilePart",
    "Message",
    "TextPart",
    "ThinkingPart",
    "ToolCall",
    "ToolResult",
    "ToolResultsMessage",
    "UserMessage",
    "UserPart",
    "message_from_data",
    "message_to_data",
    "message_to_wire",
    "text_of",
    "tool_call_to_wire",
    "tool_result_to_wire",
]


@dataclass(frozen=True, slots=True)
class TextPart:
    """Plain text. ``signature`` carries an opaque provider token attached to it (Gemini)."""

    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class FilePart:
    """A binary file given to the model (an image or a PDF); text files are sent as text."""

    name: str
    media_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ThinkingPart:
    """Reasoning the model produced, kept so it can be replayed exactly as its provider requires.

    ``signature``: Anthropic's thinking signature or Gemini's thought signature. ``redacted_data``:
    Anthropic's redacted thinking. ``provider_data``: anything else a provider needs back verbatim
    (OpenAI's reasoning item id and encrypted content). ``provider`` names who produced it; a part
    is only replayed to the same provider.
    """

    text: str
    signature: str | None = None
    redacted_data: str | None = None
    provider: str | None = None
    provider_data: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``signature``: an opaque token to send back with it (Gemini)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    signature: str | None = None


UserPart = TextPart | FilePart
AssistantPart = TextPart | ThinkingPart | ToolCall


@dataclass(frozen=True, slots=True)
class UserMessage:
    """What the user (or a parent expert) says: a query and its files."""

    parts: tuple[UserPart, ...]

    @classmethod
    def text(cls, text: str) -> UserMessage:
        """A user message of one text part."""
        return cls((TextPart(text),))


@dataclass(frozen=True, slots=True, init=False)
class AssistantMessage:
    """One model response: text, thinking and tool calls, in the order the model produced them."""

    parts: tuple[AssistantPart, ...]
    provider: str | None = None
    model: str | None = None
    tool_calls: tuple[ToolCall, ...] = field(init=False, repr=False, compare=False)

    def __init__(
        self, parts: tuple[AssistantPart, ...], provider: str | None = None, model: str | None = None
    ) -> None:
        _set_assistant_parts(self, parts)
        _set_assistant_provider(self, provider)
        _set_assistant_model(self, model)
        # A response of tool calls only (the common step) shares its parts tuple: one object less
        # per step for the garbage collector to walk, and no list of calls to build.
        shared = type(parts) is tuple
        if shared:
            for part in parts:
                if type(part) is not ToolCall:
                    shared = False
                    break
        _set_assistant_tool_calls(self, parts if shared else tuple([p for p in parts if type(p) is ToolCall]))

    @property
    def text(self) -> str:
        """The concatenated text parts (not the thinking)."""
        return "".join(p.text for p in self.parts if type(p) is TextPart)


@dataclass(frozen=True, slots=True, init=False)
class ToolResult:
    """The result of one tool call, as text for the model. ``is_error`` marks a failure."""

    call_id: str
    name: str
    content: str
    is_error: bool = False

    def __init__(self, call_id: str, name: str, content: str, is_error: bool = False) -> None:
        _set_result_call_id(self, call_id)
        _set_result_name(self, name)
        _set_result_content(self, content)
        _set_result_is_error(self, is_error)


@dataclass(frozen=True, slots=True, init=False)
class ToolResultsMessage:
    """The results of every tool call of the preceding assistant message, in call order."""

    results: tuple[ToolResult, ...]

    def __init__(self, results: tuple[ToolResult, ...]) -> None:
        _set_results(self, results)


# The hot-path messages are built several times a step. Their ``__init__`` sets each slot through
# its descriptor: half the cost of the ``object.__setattr__`` calls a frozen dataclass generates,
# with the same result (the instances stay frozen: assigning raises ``FrozenInstanceError``).
def _slot_setter(cls: type, name: str) -> Any:
    return cls.__dict__[name].__set__


_set_assistant_parts = _slot_setter(AssistantMessage, "parts")
_set_assistant_provider = _slot_setter(AssistantMessage, "provider")
_set_assistant_model = _slot_setter(AssistantMessage, "model")
_set_assistant_tool_calls = _slot_setter(AssistantMessage, "tool_calls")
_set_result_call_id = _slot_setter(ToolResult, "call_id")
_set_result_name = _slot_setter(ToolResult, "name")
_set_result_content = _slot_setter(ToolResult, "content")
_set_result_is_error = _slot_setter(ToolResult, "is_error")
_set_results = _slot_setter(ToolResultsMessage, "results")


Message = UserMessage | AssistantMessage | ToolResultsMessage


def text_of(message: Message) -> str:
    """The plain text of a message (tool results joined by newlines)."""
    if type(message) is AssistantMessage:
        return message.text
    if type(message) is UserMessage:
        return "".join(p.text for p in message.parts if type(p) is TextPart)
    assert type(message) is ToolResultsMessage
    return "\n".join(r.content for r in message.results)


def _part_to_data(part: UserPart | AssistantPart) -> dict[str, Any]:
    if type(part) is TextPart:
        data: dict[str, Any] = {"type": "text", "text": part.text}
        if part.signature is not None:
            data["signature"] = part.signature
        return data
    if type(part) is ToolCall:
        data = {"type": "tool_call", "id": part.id, "name": part.name, "arguments": dict(part.arguments)}
        if part.signature is not None:
            data["signature"] = part.signature
        return data
    if type(part) is ThinkingPart:
        data = {"type": "thinking", "text": part.text}
        for key in ("signature", "redacted_data", "provider"):
            value = getattr(part, key)
            if value is not None:
                data[key] = value
        if part.provider_data is not None:
            data["provider_data"] = dict(part.provider_data)
        return data
    assert type(part) is FilePart
    return {
        "type": "file",
        "name": part.name,
        "media_type": part.media_type,
        "data": base64.b64encode(part.data).decode("ascii"),
    }


def _part_from_data(data: Mapping[str, Any]) -> UserPart | AssistantPart:
    kind = data["type"]
    if kind == "text":
        return TextPart(data["text"], data.get("signature"))
    if kind == "tool_call":
        return ToolCall(data["id"], data["name"], data["arguments"], data.get("signature"))
    if kind == "thinking":
        return ThinkingPart(
            data["text"],
            data.get("signature"),
            data.get("redacted_data"),
            data.get("provider"),
            data.get("provider_data"),
        )
    if kind == "file":
        return FilePart(data["name"], data["media_type"], base64.b64decode(data["data"]))
    raise ValueError(f"unknown message part type {kind!r}")


def message_to_data(message: Message) -> dict[str, Any]:
    """JSON-ready data for ``message`` (the inverse of :func:`message_from_data`)."""
    if type(message) is ToolResultsMessage:
        return {
            "role": "tool",
            "results": [
                {"call_id": r.call_id, "name": r.name, "content": r.content, "is_error": r.is_error}
                for r in message.results
            ],
        }
    if type(message) is AssistantMessage:
        data: dict[str, Any] = {"role": "assistant", "parts": [_part_to_data(p) for p in message.parts]}
        if message.provider is not None:
            data["provider"] = message.provider
        if message.model is not None:
            data["model"] = message.model
        return data
    assert type(message) is UserMessage
    return {"role": "user", "parts": [_part_to_data(p) for p in message.parts]}


def message_from_data(data: Mapping[str, Any]) -> Message:
    """Rebuild a message from :func:`message_to_data`'s output."""
    role = data["role"]
    if role == "tool":
        return ToolResultsMessage(
            tuple(ToolResult(r["call_id"], r["name"], r["content"], r["is_error"]) for r in data["results"])
        )
    parts = tuple(_part_from_data(p) for p in data["parts"])
    if role == "assistant":
        return AssistantMessage(parts, data.get("provider"), data.get("model"))  # type: ignore[arg-type]
    if role == "user":
        return UserMessage(parts)  # type: ignore[arg-type]
    raise ValueError(f"unknown message role {role!r}")


_WIRE_KEYS = {"media_type": "mediaType", "redacted_data": "redactedData", "provider_data": "providerData"}
"""The storage form's snake_case part keys and their names on the wire."""


def _parts_to_wire(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored parts (:func:`_part_to_data`) with their keys as the API spells them."""
    return [{_WIRE_KEYS.get(key, key): value for key, value in part.items()} for part in parts]


def tool_call_to_wire(call: ToolCall) -> dict[str, Any]:
    """A pending tool call as the API shows it: ``{"id", "name", "arguments", "signature"}``."""
    return {"id": call.id, "name": call.name, "arguments": dict(call.arguments), "signature": call.signature}


def tool_result_to_wire(result: ToolResult) -> dict[str, Any]:
    """A tool result as the API shows it: ``{"callId", "name", "content", "isError"}``."""
    return {
        "callId": result.call_id,
        "name": result.name,
        "content": result.content,
        "isError": result.is_error,
    }


def message_to_wire(message: Message) -> dict[str, Any]:
    """The API's form of ``message`` (a checkpoint's ``newMessages``): :func:`message_to_data`'s
    content with camelCase keys (``callId``, ``isError``, ``mediaType``, ``redactedData``,
    ``providerData``). Values are kept as they are: roles, part types (``tool_call``), the model's
    arguments and a provider's opaque data."""
    if type(message) is ToolResultsMessage:
        return {"role": "tool", "results": [tool_result_to_wire(r) for r in message.results]}
    data = message_to_data(message)
    data["parts"] = _parts_to_wire(data["parts"])
    return data
