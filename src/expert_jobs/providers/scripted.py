"""Offline providers for tests, experiments and the bundled example: no keys, no network.

- :class:`ScriptedProvider` plays a script of turns per run (text, tool calls, thinking, errors by
  kind, delays, usage per turn); a mapping of scripts picks one per expert key.
- :class:`FunctionProvider` answers with a function of the request (the one-function fake).
- :class:`TestProvider` calls every declared tool once with schema-valid arguments, then answers.

Like the real adapters, they answer garbage with a ``ProviderError`` of kind ``invalid_response``
rather than hand it to the engine: a scripted turn whose usage is not a :class:`Usage` or is above
``MAX_CALL_TOKENS`` (checked once, when the script is built), a function's return value that is not a
``GenerationResponse`` of assistant parts and sane usage (checked on every call).
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expert_jobs.domain.errors import ProviderError, ProviderErrorKind, check_provider_error_kind
from expert_jobs.domain.messages import AssistantMessage, AssistantPart, TextPart, ThinkingPart, ToolCall
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse
from expert_jobs.providers._common import check_response, check_usage

__all__ = [
    "Call",
    "Fail",
    "FunctionProvider",
    "Reply",
    "ScriptExhausted",
    "ScriptedProvider",
    "TestProvider",
    "ToolCalls",
    "Turn",
    "example_arguments",
]

DEFAULT_TURN_USAGE = Usage.of(100, 20)


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call inside a :class:`ToolCalls` turn (``id`` is generated when omitted)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """A final text answer (optionally with thinking before it)."""

    text: str
    usage: Usage = DEFAULT_TURN_USAGE
    thinking: str | None = None
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """A response asking for tool calls (optionally with text and thinking)."""

    calls: tuple[Call, ...]
    text: str | None = None
    usage: Usage = DEFAULT_TURN_USAGE
    thinking: str | None = None
    delay: float = 0.0

    @classmethod
    def of(cls, *calls: Call | tuple[str, Mapping[str, Any]] | str, **options: Any) -> ToolCalls:
        """``ToolCalls.of(("search", {"q": "x"}), "now")``: calls from tuples, names or :class:`Call`."""
        built = tuple(
            c if isinstance(c, Call) else Call(c) if isinstance(c, str) else Call(c[0], c[1]) for c in calls
        )
        return cls(built, **options)


@dataclass(frozen=True, slots=True)
class Fail:
    """A failed attempt: raises ``ProviderError`` of ``kind`` (retryable per kind unless told).

    ``kind`` is a :data:`~expert_jobs.domain.errors.ProviderErrorKind`; any other (a typo such as
    ``"overlaoded"``) raises :class:`~expert_jobs.domain.errors.UsageError` naming the known kinds.
    """

    kind: ProviderErrorKind = "server"
    message: str = "scripted failure"
    retry_after: float | None = None
    usage: Usage | None = None
    retryable: bool | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        check_provider_error_kind(self.kind, "Fail kind")


Turn = Reply | ToolCalls | Fail


def _checked(turn: Turn) -> Turn:
    """``turn``, or a ``Fail`` of kind ``invalid_response`` when its usage is garbage (see module doc)."""
    usage = turn.usage
    if usage is None:
        return turn
    if type(usage) is not Usage:
        message = f"scripted returned an invalid response: usage must be a Usage, got {type(usage).__name__}"
        return Fail("invalid_response", message, delay=turn.delay)
    try:
        check_usage("scripted", usage)
    except ProviderError as exc:
        return Fail("invalid_response", str(exc), delay=turn.delay)
    return turn


class ScriptExhausted(ProviderError):
    """A run asked for more turns than its script has."""

    def __init__(self, run_id: str | None, length: int) -> None:
        super().__init__(
            f"scripted provider: run {run_id} asked for turn {length + 1} of a {length}-turn script",
            kind="bad_request",
            retryable=False,
            provider="scripted",
        )


def _response(turn: Reply | ToolCalls, position: int) -> GenerationResponse:
    parts: list[AssistantPart] = []
    if turn.thinking:
        parts.append(ThinkingPart(turn.thinking, signature=f"sig-{position}", provider="scripted"))
    if isinstance(turn, Reply):
        parts.append(TextPart(turn.text))
        finish: Any = "stop"
    else:
        if turn.text:
            parts.append(TextPart(turn.text))
        for index, call in enumerate(turn.calls):
            parts.append(ToolCall(call.id or f"call_{position}_{index}", call.name, dict(call.arguments)))
        finish = "tool_calls"
    raw = {"script_turn": position}
    return GenerationResponse(tuple(parts), finish, turn.usage, raw, "scripted", "scripted")


class ScriptedProvider:
    """Plays a script of turns, separately for every run (keyed by ``request.run_id``).

    ``script`` is one list of turns for every run, or a mapping from expert key to turns (a
    ``"*"`` entry serves experts not listed). Each successful turn is one generation; ``Fail``
    turns are failed attempts before the next one. ``sleep`` serves turn delays (default real).
    """

    def __init__(
        self,
        script: Sequence[Turn] | Mapping[str, Sequence[Turn]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        scripts = script if isinstance(script, Mapping) else {"*": script}
        self._scripts: dict[str, tuple[tuple[Turn, GenerationResponse | None], ...]] = {
            key: tuple(
                (t, None if isinstance(t, Fail) else _response(t, i))
                for i, t in enumerate(_checked(turn) for turn in turns)
            )
            for key, turns in scripts.items()
        }
        self._cursor: dict[str | None, int] = {}
        self._sleep = sleep
        self.requests: list[GenerationRequest] = []
        """The requests seen, with a snapshot of their messages, when ``record_requests`` is set."""
        self.record_requests = False

    def _script_for(self, expert_key: str | None) -> tuple[tuple[Turn, GenerationResponse | None], ...]:
        script = self._scripts.get(expert_key or "*")
        if script is None:
            script = self._scripts.get("*")
        if script is None:
            raise ProviderError(
                f"scripted provider has no script for expert {expert_key!r}",
                kind="bad_request",
                retryable=False,
                provider="scripted",
            )
        return script

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """Play the run's next turn."""
        if self.record_requests:
            # The engine passes the run's live history; keep what this call saw.
            self.requests.append(dataclasses.replace(request, messages=tuple(request.messages)))
        script = self._script_for(request.expert_key)
        run_id = request.run_id
        position = self._cursor.get(run_id)
        if position is None:
            # A run restored from a checkpoint resumes after the turns it already played.
            position = sum(1 for m in request.messages if type(m) is AssistantMessage)
            position = _skip_played(script, position)
        if position >= len(script):
            raise ScriptExhausted(run_id, len(script))
        turn, response = script[position]
        self._cursor[run_id] = position + 1
        if turn.delay:
            await self._sleep(turn.delay)
        if response is None:
            assert isinstance(turn, Fail)
            raise ProviderError(
                turn.message,
                kind=turn.kind,
                retryable=turn.retryable,
                retry_after=turn.retry_after,
                provider="scripted",
                usage=turn.usage,
            )
        if position + 1 >= len(script):
            self._cursor.pop(run_id, None)
            self._cursor[run_id] = len(script)
        return response

    def forget(self, run_id: str) -> None:
        """Drop a run's position (a long-lived provider serving many runs may call it)."""
        self._cursor.pop(run_id, None)


def _skip_played(script: Sequence[tuple[Turn, GenerationResponse | None]], successes: int) -> int:
    """The index of the turn after ``successes`` successful turns (failures before them skipped)."""
    seen = 0
    for index, (_, response) in enumerate(script):
        if seen == successes:
            return index
        if response is not None:
            seen += 1
    return len(script)


class FunctionProvider:
    """A provider whose answer is ``fn(request)`` (sync or async) — the one-function fake.

    A return value that is not a :class:`GenerationResponse` of assistant parts with a sane
    :class:`Usage` is a ``ProviderError`` of kind ``invalid_response`` (retryable), not a crash.
    """

    def __init__(
        self, fn: Callable[[GenerationRequest], GenerationResponse | Awaitable[GenerationResponse]]
    ) -> None:
        self._fn = fn

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """Return what the function returns, once checked."""
        result: object = self._fn(request)
        if type(result) is not GenerationResponse and inspect.isawaitable(result):
            result = await result
        return check_response("function", result)


def example_arguments(schema: Mapping[str, Any]) -> Any:
    """A small value that satisfies a JSON schema (required properties, enums, bounds)."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_arguments(options[0])
    if schema.get("allOf"):
        return example_arguments(schema["allOf"][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_arguments(props.get(name, {})) for name in schema.get("required", [])}
    if kind == "array":
        count = schema.get("minItems", 0)
        return [example_arguments(schema.get("items", {})) for _ in range(count)]
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return False
    return None


class TestProvider:
    """Calls every declared tool once (in parallel, schema-valid arguments), then answers with
    a JSON summary of the results — like the test models other frameworks ship."""

    __test__ = False  # not a pytest test class

    def __init__(self, *, final_text: str | None = None, usage: Usage = DEFAULT_TURN_USAGE) -> None:
        self._final_text = final_text
        self._usage = usage

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """First turn: call the tools; afterwards: answer."""
        answered = any(type(m) is AssistantMessage for m in request.messages)
        if request.tools and not answered:
            calls = tuple(
                ToolCall(f"test_{i}", t.name, example_arguments(t.input_schema))
                for i, t in enumerate(request.tools)
            )
            return GenerationResponse(calls, "tool_calls", self._usage, None, request.model, "test")
        results: dict[str, str] = {}
        for message in request.messages:
            for result in getattr(message, "results", ()):
                results[result.name] = result.content
        text = self._final_text if self._final_text is not None else json.dumps(results, sort_keys=True)
        return GenerationResponse(
            (TextPart(text or "done"),), "stop", self._usage, None, request.model, "test"
        )
