"""Offline providers for tests, experiments and the bundled example: no keys, no network.

- :class:`ScriptedProvider` plays a script of turns per run (text, tool calls, thinking, errors by
  kind, delays, usage per turn); a mapping of scripts picks one per expert key.
- :class:`FunctionProvider` answers with a function of the request (the one-function fake).
- :class:`TestProvider` calls every declared tool once with schema-valid arguments, then answers.

``ScriptedProvider``, ``FunctionProvider`` and ``TestProvider`` also stream (each is a
:class:`~expert_jobs.ports.provider.StreamingProvider`): ``stream(request)`` yields the response
``generate(request)`` would return as deltas (:func:`response_deltas`: text and thinking in chunks
of ``stream_chunk_chars`` characters, each tool call as a start and its JSON arguments in chunks,
then the usage), and then that same response. A :class:`Fail` with ``partial=`` streams the partial
response's deltas before it raises: a stream broken mid-way.

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
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError, ProviderErrorKind, UsageError, check_provider_error_kind
from expert_jobs.domain.messages import AssistantMessage, AssistantPart, TextPart, ThinkingPart, ToolCall
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse, StreamItem
from expert_jobs.providers._common import check_response, check_usage, invalid_response

__all__ = [
    "DEFAULT_STREAM_CHUNK_CHARS",
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
    "response_deltas",
]

DEFAULT_TURN_USAGE = Usage.of(100, 20)

DEFAULT_STREAM_CHUNK_CHARS = 16
"""Characters per text, thinking or tool-argument delta when the offline providers stream."""


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

    ``partial`` makes a stream that breaks mid-way: ``stream()`` first yields the deltas of that
    reply or tool-call turn (its text, thinking and calls, not its usage), then raises; ``generate()``
    raises at once, as for any ``Fail``. ``Fail("connection", partial=Reply("The answer is"))`` is a
    connection dropped after the first words.
    """

    kind: ProviderErrorKind = "server"
    message: str = "scripted failure"
    retry_after: float | None = None
    usage: Usage | None = None
    retryable: bool | None = None
    delay: float = 0.0
    partial: Reply | ToolCalls | None = None

    def __post_init__(self) -> None:
        check_provider_error_kind(self.kind, "Fail kind")
        if self.partial is not None and type(self.partial) not in (Reply, ToolCalls):
            raise UsageError(
                f"Fail partial must be a Reply or ToolCalls turn, got {type(self.partial).__name__}"
            )

    def error(self) -> ProviderError:
        """The :class:`ProviderError` this failure raises."""
        return ProviderError(
            self.message,
            kind=self.kind,
            retryable=self.retryable,
            retry_after=self.retry_after,
            provider="scripted",
            usage=self.usage,
        )


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


def _chunks(text: str, size: int) -> list[str]:
    return [text] if len(text) <= size else [text[i : i + size] for i in range(0, len(text), size)]


def _check_chunk_chars(chunk_chars: object) -> int:
    if type(chunk_chars) is not int or chunk_chars < 1:
        raise UsageError(f"stream_chunk_chars must be a whole number of at least 1, got {chunk_chars!r}")
    return chunk_chars


def response_deltas(
    response: GenerationResponse, chunk_chars: int = DEFAULT_STREAM_CHUNK_CHARS, *, usage: bool = True
) -> tuple[StreamDelta, ...]:
    """The deltas a stream of ``response`` yields before the response itself, in its parts' order.

    Thinking and text become :class:`ThinkingDelta` / :class:`TextDelta` values of ``chunk_chars``
    characters (the last one shorter; an empty text none); a tool call becomes a
    :class:`ToolCallStartDelta` and its arguments' JSON in :class:`ToolCallArgumentsDelta` fragments
    of ``chunk_chars`` characters; last comes one :class:`UsageDelta` (unless ``usage=False``).
    """
    _check_chunk_chars(chunk_chars)
    deltas: list[StreamDelta] = []
    calls = 0
    for part in response.parts:
        if type(part) is TextPart:
            if part.text:
                deltas.extend(TextDelta(chunk) for chunk in _chunks(part.text, chunk_chars))
        elif type(part) is ThinkingPart:
            if part.text:
                deltas.extend(ThinkingDelta(chunk) for chunk in _chunks(part.text, chunk_chars))
        elif type(part) is ToolCall:
            deltas.append(ToolCallStartDelta(calls, part.id, part.name))
            # Display only: a value JSON cannot hold is shown as its str(), never a crash.
            arguments = json.dumps(part.arguments, ensure_ascii=False, default=str)
            deltas.extend(ToolCallArgumentsDelta(calls, chunk) for chunk in _chunks(arguments, chunk_chars))
            calls += 1
    if usage:
        deltas.append(UsageDelta(response.usage))
    return tuple(deltas)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One turn of a script, ready to play: its response (``None`` for a failure) and the deltas a
    stream of it yields (a failure's: those of its ``partial``)."""

    turn: Turn
    response: GenerationResponse | None
    deltas: tuple[StreamDelta, ...]


def _entry(turn: Turn, position: int, chunk_chars: int) -> _Entry:
    if isinstance(turn, Fail):
        partial = turn.partial
        deltas = (
            () if partial is None else response_deltas(_response(partial, position), chunk_chars, usage=False)
        )
        return _Entry(turn, None, deltas)
    response = _response(turn, position)
    return _Entry(turn, response, response_deltas(response, chunk_chars))


class ScriptedProvider:
    """Plays a script of turns, separately for every run (keyed by ``request.run_id``).

    ``script`` is one list of turns for every run, or a mapping from expert key to turns (a
    ``"*"`` entry serves experts not listed). Each successful turn is one generation; ``Fail``
    turns are failed attempts before the next one. ``sleep`` serves turn delays (default real).

    :meth:`stream` plays the same turn as :meth:`generate` would, as deltas of
    ``stream_chunk_chars`` characters (see :func:`response_deltas`, computed once when the script
    is built), ``stream_delay`` seconds apart (served by ``sleep``; 0, the default, never sleeps).
    """

    def __init__(
        self,
        script: Sequence[Turn] | Mapping[str, Sequence[Turn]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        stream_chunk_chars: int = DEFAULT_STREAM_CHUNK_CHARS,
        stream_delay: float = 0.0,
    ) -> None:
        _check_chunk_chars(stream_chunk_chars)
        scripts = script if isinstance(script, Mapping) else {"*": script}
        self._scripts: dict[str, tuple[_Entry, ...]] = {
            key: tuple(
                _entry(t, i, stream_chunk_chars) for i, t in enumerate(_checked(turn) for turn in turns)
            )
            for key, turns in scripts.items()
        }
        self._cursor: dict[str | None, int] = {}
        self._sleep = sleep
        self._stream_delay = stream_delay
        self.requests: list[GenerationRequest] = []
        """The requests seen, with a snapshot of their messages, when ``record_requests`` is set."""
        self.record_requests = False

    def _take(self, request: GenerationRequest) -> _Entry:
        """The run's next turn, taken (its delay is the caller's to serve)."""
        if self.record_requests:
            # The engine passes the run's live history; keep what this call saw.
            self.requests.append(dataclasses.replace(request, messages=tuple(request.messages)))
        script = self._scripts.get(request.expert_key or "*")
        if script is None:
            script = self._scripts.get("*")
        if script is None:
            raise ProviderError(
                f"scripted provider has no script for expert {request.expert_key!r}",
                kind="bad_request",
                retryable=False,
                provider="scripted",
            )
        run_id = request.run_id
        position = self._cursor.get(run_id)
        if position is None:
            # A run restored from a checkpoint resumes after the turns it already played.
            position = sum(1 for m in request.messages if type(m) is AssistantMessage)
            position = _skip_played(script, position)
        if position >= len(script):
            raise ScriptExhausted(run_id, len(script))
        entry = script[position]
        self._cursor[run_id] = position + 1
        return entry

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """Play the run's next turn (after its delay)."""
        entry = self._take(request)
        if entry.turn.delay:
            await self._sleep(entry.turn.delay)
        if entry.response is None:
            assert isinstance(entry.turn, Fail)
            raise entry.turn.error()
        return entry.response

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """Play the run's next turn as deltas, then its response (a ``Fail`` raises, after the
        deltas of its ``partial`` if it has one)."""
        entry = self._take(request)
        if entry.turn.delay:
            await self._sleep(entry.turn.delay)
        delay = self._stream_delay
        for delta in entry.deltas:
            if delay:
                await self._sleep(delay)
            yield delta
        if entry.response is None:
            assert isinstance(entry.turn, Fail)
            raise entry.turn.error()
        yield entry.response

    def forget(self, run_id: str) -> None:
        """Drop a run's position (a long-lived provider serving many runs may call it)."""
        self._cursor.pop(run_id, None)


def _skip_played(script: Sequence[_Entry], successes: int) -> int:
    """The index of the turn after ``successes`` successful turns (failures before them skipped)."""
    seen = 0
    for index, entry in enumerate(script):
        if seen == successes:
            return index
        if entry.response is not None:
            seen += 1
    return len(script)


class FunctionProvider:
    """A provider whose answer is ``fn(request)`` (sync or async) — the one-function fake.

    A return value that is not a :class:`GenerationResponse` of assistant parts with a sane
    :class:`Usage` is a ``ProviderError`` of kind ``invalid_response`` (retryable), not a crash. The
    function may also return a :class:`Fail` to fail the call (a stream yields the deltas of its
    ``partial`` first). :meth:`stream` streams the answer as :func:`response_deltas` of
    ``stream_chunk_chars`` characters, then the answer.
    """

    def __init__(
        self,
        fn: Callable[[GenerationRequest], GenerationResponse | Fail | Awaitable[GenerationResponse | Fail]],
        *,
        stream_chunk_chars: int = DEFAULT_STREAM_CHUNK_CHARS,
    ) -> None:
        self._fn = fn
        self._chunk_chars = _check_chunk_chars(stream_chunk_chars)

    async def _answer(self, request: GenerationRequest) -> GenerationResponse | Fail:
        result: object = self._fn(request)
        if type(result) is not GenerationResponse and inspect.isawaitable(result):
            result = await result
        if type(result) is Fail:
            return result
        return check_response("function", result)

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """Return what the function returns, once checked."""
        result = await self._answer(request)
        if type(result) is Fail:
            raise result.error()
        assert type(result) is GenerationResponse
        return result

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """Stream what the function returns: its deltas, then the response itself."""
        result = await self._answer(request)
        if type(result) is Fail:
            if result.partial is not None:
                partial = _response(result.partial, 0)
                for delta in response_deltas(partial, self._chunk_chars, usage=False):
                    yield delta
            raise result.error()
        assert type(result) is GenerationResponse
        try:
            deltas = response_deltas(result, self._chunk_chars)
        except (TypeError, ValueError) as exc:  # a part whose text is not a string
            raise invalid_response("function", f"cannot stream the answer: {exc}") from exc
        for delta in deltas:
            yield delta
        yield result


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
    a JSON summary of the results — like the test models other frameworks ship. For an expert with
    an output schema the answer is a small value of that schema instead.

    :meth:`stream` yields the same response as :func:`response_deltas` of ``stream_chunk_chars``
    characters, then the response, as :class:`ScriptedProvider` does."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        *,
        final_text: str | None = None,
        usage: Usage = DEFAULT_TURN_USAGE,
        stream_chunk_chars: int = DEFAULT_STREAM_CHUNK_CHARS,
    ) -> None:
        self._final_text = final_text
        self._usage = usage
        self._chunk_chars = _check_chunk_chars(stream_chunk_chars)

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """What :meth:`generate` answers, as deltas and then the response itself."""
        response = await self.generate(request)
        for delta in response_deltas(response, self._chunk_chars):
            yield delta
        yield response

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
        if self._final_text is not None:
            text = self._final_text
        elif request.output_schema is not None:  # an answer of the shape asked for
            text = json.dumps(example_arguments(request.output_schema.json_schema))
        else:
            text = json.dumps(results, sort_keys=True)
        return GenerationResponse(
            (TextPart(text or "done"),), "stop", self._usage, None, request.model, "test"
        )
