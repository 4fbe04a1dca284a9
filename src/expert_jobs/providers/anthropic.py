"""Anthropic adapter: the Messages API through the official ``anthropic`` SDK (2.x).

Mapping, in one pass over the history:

- ``system`` is the request's system instruction (left out when empty).
- A user message becomes ``text``/``image``/``document`` blocks; an assistant message its ``thinking``
  / ``redacted_thinking`` blocks (Anthropic's own, with their signatures, in order), ``text`` and
  ``tool_use`` blocks; a tool-results message ONE user message of ``tool_result`` blocks in call order,
  ``is_error`` set on failures. Consecutive messages of one role are merged.
- ``cache_control: {"type": "ephemeral"}`` (top level) caches the prompt up to the last block, so
  every step of a job re-reads the history from the cache (``prompt_caching=False`` turns it off).
- ``max_tokens`` is always sent: the request's cap, else the model's maximum capped at
  ``default_max_tokens`` (plus the thinking budget when thinking is on).
- Thinking: ``ReasoningSettings(budget_tokens=...)`` (or an effort, mapped to a budget) enables
  ``{"type": "enabled", "budget_tokens": n}``; ``enabled=False`` sends ``{"type": "disabled"}``.
- Temperature is never sent: the SDK 2.x speaks API version ``2026-10-21``, which rejects
  ``temperature``/``top_p``/``top_k`` (even at their defaults) and whose SDK no longer has them.

Usage: Anthropic's ``input_tokens`` excludes cache reads and writes, so input = ``input_tokens`` +
``cache_read_input_tokens`` + ``cache_creation_input_tokens``; cached = ``cache_read_input_tokens``;
output = ``output_tokens`` (thinking included); reasoning = ``output_tokens_details.thinking_tokens``.

Errors: the body's ``error.type`` refines the HTTP status; a spend or credit limit is ``billing`` (not
retried) whether the API says so with ``error.details.error_code`` (``enforced_spend_limit_reached``,
a 429 the SDK raises as ``EnforcedSpendLimitReachedError``, a ``RateLimitError``) or only in the
message (older API versions and SDKs without that class). Works with SDK 1.0 and later.

Streaming (:meth:`AnthropicProvider.stream`): the same request through ``messages.stream``, the SDK's
own stream, which also accumulates the final message; that message goes through the same mapping as
:meth:`~AnthropicProvider.generate`. ``message_start`` carries the input figures (cache reads and
writes included) and a first output count, each ``message_delta`` the cumulative output count (newer
API versions repeat the input figures there): a :class:`UsageDelta` follows each, and the final
response's usage is the last message's, exact. ``request.timeout`` bounds each read (an idle
timeout). An ``error`` event (``overloaded_error`` ...) is classified like an HTTP error of its type
(an unknown type is a retryable ``server`` error); a cut connection, or a body that ends before
``message_stop``, is a retryable ``connection`` error. The HTTP response is closed however the
iteration ends (finished, failed, cancelled or abandoned).

Structured output (``request.output_schema``): ``output_config: {format: {type: json_schema,
schema}}`` (native, constrained decoding; the schema made strict by the SDK's ``transform_schema``)
on the models that have it (Claude 4.5 and later); elsewhere, or for a schema with ``strict=False``
or one ``transform_schema`` cannot take, a forced output tool named after the schema, offered next to
the expert's tools (``tool_choice`` ``tool`` alone, ``any`` beside other tools, ``auto`` plus a line
of system instruction when thinking is on, which the API requires). Either way the answer is one
``TextPart`` of JSON with finish reason ``stop``. ``output_config`` is in every SDK from 1.0 on, so
the model alone decides (see :func:`structured_output_mode`); the adapter option
``structured_output`` forces one mode.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError, ProviderErrorKind, UsageError
from expert_jobs.domain.messages import (
    AssistantMessage,
    AssistantPart,
    FilePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.models import ModelInfo
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import (
    FinishReason,
    GenerationRequest,
    GenerationResponse,
    OutputSchema,
    StreamItem,
    ToolDeclaration,
)
from expert_jobs.providers._common import (
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_TIMEOUT,
    EFFORT_BUDGETS,
    IMAGE_MEDIA_TYPES,
    PDF_MEDIA_TYPE,
    AdapterBase,
    InvalidResponse,
    build_response,
    check_sdk_version,
    drain_stream,
    dump_usage,
    error_from_status,
    expect_type,
    file_as_text,
    int_at,
    invalid_response,
    object_schema,
    parsed,
    sdk_import_error,
    unexpected_error,
    unsupported_file,
)

try:
    import anthropic
    import httpx2
except ImportError as exc:  # only without the extra installed, or with an SDK too old for httpx2
    raise sdk_import_error("anthropic", "anthropic", exc) from exc
check_sdk_version("anthropic", "anthropic")

__all__ = [
    "NON_STREAMING_MAX_TOKENS",
    "AnthropicProvider",
    "StructuredOutputMode",
    "anthropic_usage",
    "structured_output_mode",
]

NON_STREAMING_MAX_TOKENS = 21_333
"""The largest ``max_tokens`` the API answers without streaming within the SDK's ten-minute bound
(it expects an hour per 128,000 tokens); a larger call is streamed (``should_stream``)."""

_MIN_THINKING_BUDGET = 1024

StructuredOutputMode = Literal["auto", "native", "tool"]
"""How an output schema is asked for: ``native`` (``output_config.format``), ``tool`` (a forced output
tool) or ``auto`` (native where the model has it, see :func:`structured_output_mode`)."""

_WITHOUT_STRUCTURED_OUTPUTS = (
    "claude-instant",
    "claude-2",
    "claude-3",
    "claude-opus-4-0",
    "claude-opus-4-1",
    "claude-opus-4-2025",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
)
"""Model id prefixes of the Claude models without structured outputs (``output_config.format`` and
strict tools): everything before Claude 4.5. Opus 4.1 had them only in the
``structured-outputs-2025-11-13`` beta, which the adapter does not use. Every later model has them,
so an unknown id is taken to."""

_TOOL_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_TOOL_NAME = 64

_OUTPUT_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool: its input is the answer. Call it once, when you "
    "have the answer, instead of answering in text."
)


_FINISH_REASONS: Mapping[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}

_ERROR_TYPES: Mapping[str, ProviderErrorKind] = {
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "authentication_error": "authentication",
    "permission_error": "authentication",
    "billing_error": "billing",
    "not_found_error": "not_found",
    "conflict_error": "conflict",
    "rate_limit_error": "rate_limit",
    "api_error": "server",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
}

_BILLING_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
        "linked_organization_billing_unavailable",
    }
)
"""``error.details.error_code`` values of a limit that waiting minutes does not lift (SDK 2.x names)."""

_BILLING_PHRASES = ("credit balance", "spend limit", "api usage limits")
"""How the messages of those limits read where the body has no code: "Your credit balance is too low",
"This request would exceed your account's monthly spend limit", "You have reached your specified
API usage limits"."""


def anthropic_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalised usage from the Messages API's ``usage`` object (see the module docstring)."""
    cache_read = int_at(raw, "cache_read_input_tokens")
    cache_write = int_at(raw, "cache_creation_input_tokens")
    input_tokens = int_at(raw, "input_tokens") + cache_read + cache_write
    output_tokens = int_at(raw, "output_tokens")
    reasoning = min(int_at(raw, "output_tokens_details", "thinking_tokens"), output_tokens)
    return Usage.of(
        input_tokens, output_tokens, reasoning=reasoning, cached=cache_read, cache_write=cache_write
    )


def structured_output_mode(model: str, schema: OutputSchema) -> Literal["native", "tool"]:
    """How ``auto`` asks ``model`` for ``schema``: ``native`` on the models with structured outputs
    (every Claude id but those before Claude 4.5) when the schema is ``strict``, else ``tool``."""
    if schema.strict and _has_structured_outputs(model):
        return "native"
    return "tool"


def _has_structured_outputs(model: str) -> bool:
    return not model.startswith(_WITHOUT_STRUCTURED_OUTPUTS)


def _strict_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """``schema`` in the form strict mode takes (every object closed, unsupported keywords moved into
    descriptions), by the SDK's own ``transform_schema``; ``None`` when it cannot take the schema."""
    try:
        return anthropic.transform_schema(object_schema(schema))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def _tool_name(name: str, taken: set[str]) -> str:
    """A tool name for the output schema ``name`` (Anthropic's ``^[a-zA-Z0-9_-]{1,64}$``), unlike
    the expert's own tools' names."""
    base = _TOOL_NAME_CHARACTERS.sub("_", name)[:_MAX_TOOL_NAME] or "final_answer"
    candidate, number = base, 2
    while candidate in taken:
        suffix = f"_{number}"
        candidate = base[: _MAX_TOOL_NAME - len(suffix)] + suffix
        number += 1
    return candidate


@dataclass(frozen=True, slots=True)
class _Call:
    """One request's arguments for ``messages.create`` / ``messages.stream``, and the name of the
    output tool whose call is the answer (tool mode)."""

    params: dict[str, Any]
    output_tool: str | None


class AnthropicProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.StreamingProvider` over Anthropic's Messages API.

    Pass an ``anthropic.AsyncAnthropic`` ``client`` of your own, or ``api_key`` / ``base_url`` /
    ``http_client`` (an ``httpx2.AsyncClient``, e.g. on a mock transport) to have one created. The
    SDK's own retries are switched off either way: the engine's ``maxRetries`` is the only retry layer.
    ``prompt_caching`` (on by default) sends a top-level ``cache_control`` breakpoint so each step of a
    job reads the history the previous step wrote to Anthropic's prompt cache. ``structured_output``
    (``auto`` by default) says how an output schema is asked for (:data:`StructuredOutputMode`).
    """

    name: ClassVar[str] = "anthropic"

    def __init__(
        self,
        client: anthropic.AsyncAnthropic | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        catalogue: Mapping[str, ModelInfo] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        default_max_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS,
        prompt_caching: bool = True,
        structured_output: StructuredOutputMode = "auto",
    ) -> None:
        super().__init__(catalogue=catalogue, default_timeout=default_timeout)
        if structured_output not in get_args(StructuredOutputMode):
            raise UsageError(
                f"structured_output must be one of {', '.join(get_args(StructuredOutputMode))}, "
                f"not {structured_output!r}"
            )
        self._owns_client = client is None
        if client is None:
            client = anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, http_client=http_client, max_retries=0
            )
        elif client.max_retries != 0:
            client = client.with_options(max_retries=0)
        self._client = client
        self._default_max_tokens = default_max_tokens
        self._cache_control: Any = {"type": "ephemeral"} if prompt_caching else anthropic.omit
        self._structured_output: StructuredOutputMode = structured_output

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client every call goes through."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client if this adapter created it."""
        if self._owns_client:
            await self._client.close()

    def should_stream(self, request: GenerationRequest) -> bool:
        """Whether ``request`` should be streamed even when nobody watches: its ``max_tokens`` is
        above what the API serves without streaming within ten minutes (the SDK's rule: an hour per
        128,000 tokens), e.g. thinking with a large budget. The engine asks this before each call."""
        try:
            max_tokens, _ = self._limits(request, self.model_info(request.model))
        except ProviderError:
            return False  # generate() raises the same error
        return max_tokens > NON_STREAMING_MAX_TOKENS

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """One ``messages.create`` call; every failure (a malformed answer too) is a ProviderError."""
        call = self._call(request)
        try:
            message = await self._client.messages.create(**call.params)
        except anthropic.APIStatusError as exc:
            raise self._classify(exc) from exc
        except Exception as exc:
            raise unexpected_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(message, call.output_tool))

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """The call :meth:`generate` makes, streamed (``messages.stream``): deltas as the events
        arrive, then the complete response, mapped from the final message as :meth:`generate` maps
        its answer.

        ``request.timeout`` bounds each read (an idle timeout), not the whole stream. An ``error``
        event, a cut connection or a body that ends before ``message_stop`` raises a
        :class:`ProviderError` (retryable unless the error's type says otherwise); nothing partial is
        returned. The HTTP response is closed however the iteration ends, cancellation included.
        """
        call = self._call(request)
        reader = _StreamReader(call.output_tool)
        opened = False
        try:
            async with self._client.messages.stream(**call.params) as events:
                opened = True
                async for event in events:
                    for delta in reader.feed(event, events):
                        yield delta
                    if reader.final is not None:
                        break
                if reader.final is not None:
                    await drain_stream(events)
        except anthropic.APIStatusError as exc:
            raise self._classify(exc) from exc
        except Exception as exc:
            error = unexpected_error(self.name, exc)
            if opened and not error.retryable and error.kind == "other":
                # The SDK could not make sense of the events (their order, say): a broken stream.
                error = invalid_response(self.name, f"{type(exc).__name__}: {exc}")
            raise error from exc
        final = reader.final
        if final is None:
            raise ProviderError(
                f"{self.name} stream ended before message_stop: the answer is incomplete",
                kind="connection",
                provider=self.name,
            )
        yield parsed(self.name, lambda: self._response(final, call.output_tool))

    def _call(self, request: GenerationRequest) -> _Call:
        """The SDK arguments for ``request`` (the same for a streamed call); raises a ProviderError
        for what cannot be sent (a thinking budget that cannot fit, a file the model cannot take)."""
        info = self.model_info(request.model)
        max_tokens, thinking = self._limits(request, info)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": max_tokens,
            "messages": self._messages(request.model, request.messages),
            "system": request.system or anthropic.omit,
            "tools": self._tools(request.tools) or anthropic.omit,
            "thinking": thinking if thinking else anthropic.omit,
            "cache_control": self._cache_control,
            "timeout": self.timeout_for(request),
        }
        output_tool = None
        if request.output_schema is not None:
            thinks = thinking is not None and thinking["type"] == "enabled"
            output_tool = self._ask_for_output(params, request.model, request.output_schema, thinks)
        return _Call(params, output_tool)

    def _ask_for_output(
        self, params: dict[str, Any], model: str, schema: OutputSchema, thinks: bool
    ) -> str | None:
        """Add to ``params`` what asks for ``schema`` (see the module docstring); the output tool's
        name in tool mode, ``None`` in native mode."""
        mode = self._structured_output
        if mode == "auto":
            mode = structured_output_mode(model, schema)
        strict = _strict_schema(schema.json_schema)
        if mode == "native" and (strict is not None or self._structured_output == "native"):
            json_schema = strict if strict is not None else object_schema(schema.json_schema)
            params["output_config"] = {"format": {"type": "json_schema", "schema": json_schema}}
            return None
        tools: list[dict[str, Any]] = params["tools"] if isinstance(params["tools"], list) else []
        name = _tool_name(schema.name, {tool["name"] for tool in tools})
        tool: dict[str, Any] = {"name": name, "description": _OUTPUT_TOOL_DESCRIPTION}
        if strict is not None and schema.strict and _has_structured_outputs(model):
            tool["input_schema"] = strict
            tool["strict"] = True
        else:
            tool["input_schema"] = object_schema(schema.json_schema)
        if thinks:
            # The API refuses a forced tool choice while thinking: ask in words instead.
            note = f"Give your final answer by calling the {name} tool."
            system = params["system"] if isinstance(params["system"], str) else ""
            params["system"] = f"{system}\n\n{note}" if system else note
        elif tools:
            params["tool_choice"] = {"type": "any"}
        else:
            params["tool_choice"] = {"type": "tool", "name": name}
        params["tools"] = [*tools, tool]
        return name

    @staticmethod
    def _tools(tools: Sequence[ToolDeclaration]) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "description": t.description, "input_schema": object_schema(t.input_schema)}
            for t in tools
        ]

    def _limits(self, request: GenerationRequest, info: ModelInfo) -> tuple[int, dict[str, Any] | None]:
        """``max_tokens`` and the ``thinking`` setting (``None``: leave the model's default)."""
        reasoning = request.reasoning
        if reasoning is None or not info.reasons or not reasoning.enabled:
            max_tokens = request.max_output_tokens or min(info.max_output_tokens, self._default_max_tokens)
            disabled = reasoning is not None and info.reasons
            return max_tokens, {"type": "disabled"} if disabled else None
        budget = reasoning.budget_tokens or EFFORT_BUDGETS[reasoning.effort or "medium"]
        max_tokens = request.max_output_tokens or min(
            info.max_output_tokens, budget + self._default_max_tokens
        )
        budget = min(budget, max_tokens - 1)
        if budget < _MIN_THINKING_BUDGET:
            raise self.error(
                f"thinking needs a budget of at least {_MIN_THINKING_BUDGET} tokens below "
                f"max_tokens={max_tokens} (model {request.model!r})",
                kind="bad_request",
                retryable=False,
            )
        return max_tokens, {"type": "enabled", "budget_tokens": budget}

    def _messages(self, model: str, messages: Sequence[Message]) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = []
        for message in messages:
            role = "user"
            if type(message) is UserMessage:
                content = [self._user_block(model, part) for part in message.parts if _non_empty(part)]
            elif type(message) is AssistantMessage:
                role = "assistant"
                content = [block for part in message.parts if (block := _assistant_block(part)) is not None]
            else:
                assert type(message) is ToolResultsMessage
                content = [
                    {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content, "is_error": True}
                    if r.is_error
                    else {"type": "tool_result", "tool_use_id": r.call_id, "content": r.content}
                    for r in message.results
                ]
            if not content:
                continue
            if result and result[-1]["role"] == role:
                result[-1]["content"].extend(content)
            else:
                result.append({"role": role, "content": content})
        return result

    def _user_block(self, model: str, part: TextPart | FilePart) -> dict[str, Any]:
        if type(part) is TextPart:
            return {"type": "text", "text": part.text}
        assert type(part) is FilePart
        source = {
            "type": "base64",
            "media_type": part.media_type,
            "data": base64.b64encode(part.data).decode(),
        }
        if part.media_type in IMAGE_MEDIA_TYPES:
            return {"type": "image", "source": source}
        if part.media_type == PDF_MEDIA_TYPE:
            return {"type": "document", "source": source, "title": part.name}
        text = file_as_text(part)
        if text is None:
            raise unsupported_file(self.name, model, part)
        return {"type": "text", "text": text.text}

    def _response(self, message: anthropic.types.Message, output_tool: str | None) -> GenerationResponse:
        """The response for a complete message (``messages.create``'s, or a stream's final one).

        In tool mode the first call of ``output_tool`` is the answer: one ``TextPart`` of its input as
        JSON in its place, the message's other text left out, and ``stop`` for its ``tool_use``.
        """
        expect_type(message, anthropic.types.Message, "a message object")
        content = message.content
        if type(content) is not list:
            raise InvalidResponse(f"'content' is {type(content).__name__}, not a list of blocks")
        answered = output_tool is not None and any(
            isinstance(block, anthropic.types.ToolUseBlock) and block.name == output_tool for block in content
        )
        answer: TextPart | None = None
        parts: list[AssistantPart] = []
        for block in content:
            if isinstance(block, anthropic.types.TextBlock):
                if not answered:
                    parts.append(TextPart(block.text))
            elif isinstance(block, anthropic.types.ToolUseBlock):
                if block.name != output_tool:
                    parts.append(ToolCall(block.id, block.name, block.input))
                elif answer is None:
                    answer = _answer(block.input)
                    parts.append(answer)
            elif isinstance(block, anthropic.types.ThinkingBlock):
                parts.append(ThinkingPart(block.thinking, signature=block.signature, provider=self.name))
            elif isinstance(block, anthropic.types.RedactedThinkingBlock):
                parts.append(ThinkingPart("", redacted_data=block.data, provider=self.name))
        if message.usage is None:
            raise InvalidResponse("the answer has no 'usage'")
        raw = dump_usage(message.usage)
        finish = _FINISH_REASONS.get(message.stop_reason or "", "other")
        if answered and finish == "tool_calls":
            finish = "stop"
        return build_response(self.name, parts, finish, anthropic_usage(raw), raw, message.model)

    def _classify(self, exc: anthropic.APIStatusError) -> ProviderError:
        """Classify by status, refined by the body's ``error`` object (read from the body itself, so
        SDK releases without ``api_message``, ``type`` or ``error_code`` attributes work alike).

        An ``error`` event inside a stream reaches here with the stream's own status (200): it is
        classified by its type alone, an unknown type as a retryable ``server`` error.
        """
        body = exc.body if isinstance(exc.body, Mapping) else {}
        error = body.get("error")
        error = error if isinstance(error, Mapping) else {}
        details = error.get("details")
        code = details.get("error_code") if isinstance(details, Mapping) else None
        text = error.get("message")
        message = text if isinstance(text, str) and text else exc.message
        error_type = error.get("type")
        kind = _ERROR_TYPES.get(error_type) if isinstance(error_type, str) else None
        lowered = message.lower()
        if code in _BILLING_CODES or (
            kind in ("bad_request", "rate_limit", None) and any(p in lowered for p in _BILLING_PHRASES)
        ):
            kind = "billing"
        if exc.status_code < 400:
            label = error_type if isinstance(error_type, str) and error_type else "error"
            return ProviderError(
                f"{self.name} stream failed ({label}): {message}",
                kind=kind or "server",
                provider=self.name,
            )
        return error_from_status(self.name, exc.status_code, message, kind=kind, headers=exc.response.headers)


class _StreamReader:
    """Turns the SDK's stream events into deltas, and keeps the final message at ``message_stop``.

    A tool call's delta ``index`` is its position among the response's tool calls (the content block
    index counts text and thinking blocks too); the output tool's call (tool mode) streams as text.
    """

    def __init__(self, output_tool: str | None) -> None:
        self._output_tool = output_tool
        self._positions: dict[int, int] = {}
        self._answer_block: int | None = None
        self.final: anthropic.types.Message | None = None

    def feed(self, event: object, stream: Any) -> list[StreamDelta]:
        """The deltas ``event`` brings (``stream`` is the SDK stream, whose snapshot holds the usage
        and the message so far)."""
        types = anthropic.types
        if isinstance(event, types.RawContentBlockDeltaEvent):
            delta = event.delta
            if isinstance(delta, types.TextDelta):
                return [TextDelta(delta.text)] if delta.text else []
            if isinstance(delta, types.ThinkingDelta):
                return [ThinkingDelta(delta.thinking)] if delta.thinking else []
            if isinstance(delta, types.InputJSONDelta) and delta.partial_json:
                if event.index == self._answer_block:
                    return [TextDelta(delta.partial_json)]
                position = self._positions.get(event.index)
                if position is not None:
                    return [ToolCallArgumentsDelta(position, delta.partial_json)]
            return []
        if isinstance(event, types.RawContentBlockStartEvent):
            block = event.content_block
            if isinstance(block, types.ToolUseBlock):
                if block.name == self._output_tool:
                    if self._answer_block is None:
                        self._answer_block = event.index
                    return []
                position = self._positions[event.index] = len(self._positions)
                return [ToolCallStartDelta(position, block.id, block.name)]
            if isinstance(block, types.TextBlock) and block.text:
                return [TextDelta(block.text)]
            if isinstance(block, types.ThinkingBlock) and block.thinking:
                return [ThinkingDelta(block.thinking)]
            return []
        if isinstance(event, types.RawMessageStartEvent | types.RawMessageDeltaEvent):
            snapshot: anthropic.types.Message = stream.current_message_snapshot
            return [UsageDelta(anthropic_usage(dump_usage(snapshot.usage)))]
        if isinstance(event, types.RawMessageStopEvent):
            self.final = stream.current_message_snapshot
        return []


def _answer(arguments: object) -> TextPart:
    """The output tool's input as the answer's JSON text."""
    if not isinstance(arguments, dict):
        raise InvalidResponse(f"the output tool's input is {type(arguments).__name__}, not an object")
    return TextPart(json.dumps(arguments, ensure_ascii=False))


def _non_empty(part: TextPart | FilePart) -> bool:
    """Whether a user part carries anything (Anthropic rejects empty text blocks)."""
    return type(part) is not TextPart or bool(part.text)


def _assistant_block(part: AssistantPart) -> dict[str, Any] | None:
    """The block replaying ``part``; ``None`` for what Anthropic must not or cannot get back."""
    if type(part) is TextPart:
        return {"type": "text", "text": part.text} if part.text else None
    if type(part) is ToolCall:
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": dict(part.arguments)}
    assert type(part) is ThinkingPart
    if part.provider != AnthropicProvider.name:
        return None
    if part.redacted_data is not None:
        return {"type": "redacted_thinking", "data": part.redacted_data}
    if part.signature is None:
        return None
    return {"type": "thinking", "thinking": part.text, "signature": part.signature}
