"""OpenAI adapter: the Responses API through the official ``openai`` SDK, for every OpenAI model.

Why the Responses API for all of them (gpt-5 family, o-series, gpt-4.1, gpt-5-chat-latest): it is the
only OpenAI API that carries reasoning items (with ``encrypted_content``) across tool-call turns
statelessly (``store=False``), it takes PDFs and images inline, and one wire format means one code
path. gpt-4.1 and gpt-5-chat-latest work on it unchanged; Chat Completions would buy nothing but a
second OpenAI code path (the DeepSeek adapter already covers that wire format).

Mapping, in one pass over the history:

- ``instructions`` is the system instruction; ``store=False`` always (no server-side state).
- A user message becomes a ``user`` message of ``input_text``/``input_image``/``input_file`` parts;
  an assistant message its ``reasoning`` items (OpenAI's own, replayed with ``encrypted_content``,
  only to reasoning models), ``assistant`` text and ``function_call`` items (``call_id``); a
  tool-results message one ``function_call_output`` per result, in call order.
- Reasoning models get ``include=["reasoning.encrypted_content"]`` and ``reasoning.effort`` from
  :class:`ReasoningSettings`; their custom temperature is left out (they take only the default).
- ``max_output_tokens`` only when the request gives one.
- An output schema becomes ``text.format`` of type ``json_schema``; ``strict`` only when the schema
  meets strict mode's rules (:func:`strict_schema_ok`), else the schema guides and the engine validates.

Usage: ``input_tokens`` includes ``input_tokens_details.cached_tokens``; ``output_tokens`` includes
``output_tokens_details.reasoning_tokens``: both map one to one.

Streaming (:meth:`OpenAIProvider.stream`) reads the same call with ``stream=True``: text, reasoning
summary and function-call events become deltas, and the terminal event's full response object
(``response.completed`` / ``response.incomplete``) goes through the same mapping as :meth:`generate`.
Usage arrives only with that terminal event.

The module also holds what the DeepSeek adapter shares with this one (same SDK): creating the
client with retries off, classifying the SDK's errors (an error event in a stream included) and
reading a stream so that it is always closed.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any, ClassVar, Literal, TypeVar

from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
    UsageDelta,
)
from expert_jobs.domain.errors import ProviderError, ProviderErrorKind
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
    ReasoningSettings,
    StreamItem,
)
from expert_jobs.providers._common import (
    DEFAULT_TIMEOUT,
    IMAGE_MEDIA_TYPES,
    PDF_MEDIA_TYPE,
    AdapterBase,
    InvalidResponse,
    build_response,
    check_sdk_version,
    data_url,
    drain_stream,
    dump_arguments,
    dump_usage,
    error_from_status,
    expect_type,
    file_as_text,
    int_at,
    load_arguments,
    object_schema,
    parsed,
    result_text,
    sdk_import_error,
    unexpected_error,
    unsupported_file,
)

try:
    import httpx2
    import openai
    from openai.types import responses as rtypes
except ImportError as exc:  # only without the extra installed, or with an SDK too old for httpx2
    raise sdk_import_error("openai", "openai", exc) from exc
check_sdk_version("openai", "openai")

__all__ = [
    "OpenAIProvider",
    "openai_client",
    "openai_error",
    "openai_usage",
    "sdk_events",
    "stream_error",
    "strict_schema_ok",
]

_T = TypeVar("_T")

MODELS_WITHOUT_FUNCTION_TOOLS = frozenset({"gpt-5-chat-latest"})
"""Models the API refuses ``tools`` for ("tools is not supported in this model")."""

BILLING_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        "billing_hard_limit_reached",
        "billing_not_active",
    }
)
"""``error.code`` / ``error.type`` values of a 429 (or 403) that is out of credit, quota or spend limit:
retrying does not restore access, so they are ``billing`` and not retried."""

_INCOMPLETE_REASONS: Mapping[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}

_STREAM_ERROR_KINDS: Mapping[str, ProviderErrorKind] = {
    "rate_limit_exceeded": "rate_limit",
    "too_many_requests": "rate_limit",
    "rate_limit_error": "rate_limit",
    "server_is_overloaded": "overloaded",
    "overloaded_error": "overloaded",
    "invalid_api_key": "authentication",
    "authentication_error": "authentication",
    "model_not_found": "not_found",
    "invalid_request_error": "bad_request",
    "context_length_exceeded": "bad_request",
}
"""Error codes and types an error event inside a stream may carry (the HTTP status was already 200)."""


_TERMINAL_EVENTS = frozenset({"response.completed", "response.incomplete"})
_SCHEMA_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9_-]")


def openai_client(
    client: openai.AsyncOpenAI | None,
    *,
    api_key: str | None,
    base_url: str | None,
    http_client: httpx2.AsyncClient | None,
) -> tuple[openai.AsyncOpenAI, bool]:
    """The client to use (retries off) and whether the adapter created it (and so must close it)."""
    if client is None:
        created = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, http_client=http_client, max_retries=0
        )
        return created, True
    return (client if client.max_retries == 0 else client.with_options(max_retries=0)), False


def openai_error(provider: str, exc: Exception) -> ProviderError:
    """Classify what an ``openai`` SDK call raised (OpenAI's API or an OpenAI-compatible one such as
    DeepSeek's).

    An HTTP error whose code or type is one of :data:`BILLING_CODES` (``insufficient_quota``,
    ``credit_balance_exhausted``, a spend or usage limit) is billing (not retried); ``invalid_api_key``
    is authentication and ``model_not_found`` not found whatever the status. Anything else goes
    through :func:`~expert_jobs.providers._common.unexpected_error` (transport failures, a body that
    did not parse).
    """
    if not isinstance(exc, openai.APIStatusError):
        if type(exc) is openai.APIError:  # an error event inside a stream: the HTTP status was 200
            body = exc.body if isinstance(exc.body, Mapping) else {}
            return stream_error(provider, body.get("code"), body.get("type"), exc.message)
        return unexpected_error(provider, exc)
    body = exc.body if isinstance(exc.body, Mapping) else {}
    message = str(body.get("message") or exc.message)
    markers = {exc.code, exc.type}
    kind: ProviderErrorKind | None = None
    if markers & BILLING_CODES:
        kind = "billing"
    elif "invalid_api_key" in markers:
        kind = "authentication"
    elif "model_not_found" in markers:
        kind = "not_found"
    return error_from_status(provider, exc.status_code, message, kind=kind, headers=exc.response.headers)


def stream_error(provider: str, code: object, error_type: object, message: object) -> ProviderError:
    """Classify an error a stream reported after its ``200``: by its ``code`` or ``type`` where they
    say more (billing, rate limit, authentication, a bad request), else a retryable ``server`` error
    (a stream broken off by the provider is worth another attempt)."""
    markers = {str(code), str(error_type)}
    kind: ProviderErrorKind = "server"
    if markers & BILLING_CODES:
        kind = "billing"
    else:
        for marker in (str(code), str(error_type)):
            if marker in _STREAM_ERROR_KINDS:
                kind = _STREAM_ERROR_KINDS[marker]
                break
    label = next((str(m) for m in (code, error_type) if m), "error")
    return ProviderError(
        f"{provider} stream failed ({label}): {message or 'an error occurred during streaming'}",
        kind=kind,
        provider=provider,
    )


async def sdk_events(provider: str, stream: openai.AsyncStream[_T]) -> AsyncGenerator[_T, None]:
    """The events of an ``openai`` SDK stream, as they arrive.

    Whatever reading them raises (a cut connection, an idle timeout, an error event) is a
    :class:`ProviderError` (:func:`openai_error`). The HTTP response is closed when the iteration
    ends, fails or is cancelled, and when the generator is closed early: iterate it under
    ``contextlib.aclosing``.
    """
    iterator = stream.__aiter__()
    try:
        while True:
            try:
                event = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:
                raise openai_error(provider, exc) from exc
            yield event
    finally:
        await stream.close()


def strict_schema_ok(schema: Mapping[str, Any]) -> bool:
    """Whether OpenAI's strict structured outputs take ``schema`` as it is: every object schema in it
    (nested ones, array items, ``anyOf`` branches and ``$defs`` included) has ``additionalProperties:
    false`` and lists all its properties in ``required``."""
    if not isinstance(schema, Mapping):
        return True
    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, Mapping):
        if schema.get("additionalProperties") is not False:
            return False
        names = set(properties) if isinstance(properties, Mapping) else set()
        required = schema.get("required") or []
        if not isinstance(required, list) or names - set(required):
            return False
    children: list[Any] = []
    for key in ("properties", "$defs", "definitions"):
        value = schema.get(key)
        if isinstance(value, Mapping):
            children.extend(value.values())
    for key in ("items", "additionalProperties", "not"):
        value = schema.get(key)
        if isinstance(value, Mapping):
            children.append(value)
    for key in ("anyOf", "allOf", "oneOf", "prefixItems", "items"):
        value = schema.get(key)
        if isinstance(value, list):
            children.extend(value)
    return all(strict_schema_ok(child) for child in children)


def _text_format(schema: OutputSchema) -> dict[str, Any]:
    """The Responses API's ``text`` parameter asking for ``schema`` (a ``json_schema`` format)."""
    name = _SCHEMA_NAME_CHARACTERS.sub("_", schema.name)[:64] or "answer"
    body = dict(schema.json_schema)
    return {
        "format": {
            "type": "json_schema",
            "name": name,
            "schema": body,
            "strict": bool(schema.strict) and strict_schema_ok(body),
        }
    }


def openai_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalised usage from the Responses API's ``usage`` object (cached and reasoning included)."""
    return Usage.of(
        int_at(raw, "input_tokens"),
        int_at(raw, "output_tokens"),
        reasoning=int_at(raw, "output_tokens_details", "reasoning_tokens"),
        cached=int_at(raw, "input_tokens_details", "cached_tokens"),
    )


def _effort(model: str, reasoning: ReasoningSettings) -> str | None:
    """The ``reasoning.effort`` for ``model``: gpt-5 knows ``minimal``, the o-series starts at ``low``."""
    lowest = "minimal" if model.startswith("gpt-5") else "low"
    if not reasoning.enabled:
        return lowest
    if reasoning.effort is not None:
        return lowest if reasoning.effort == "minimal" else reasoning.effort
    if reasoning.budget_tokens is not None:
        budget = reasoning.budget_tokens
        return "low" if budget < 4096 else "medium" if budget < 16384 else "high"
    return None


class OpenAIProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.Provider` over OpenAI's Responses API.

    Pass an ``openai.AsyncOpenAI`` ``client`` of your own, or ``api_key`` / ``base_url`` /
    ``http_client`` (an ``httpx2.AsyncClient``) to have one created; SDK retries are off either way.
    ``reasoning_summary`` (``"auto"``, ``"concise"``, ``"detailed"``) asks reasoning models for
    readable summaries; it is off by default because OpenAI requires a verified organization for it.
    """

    name: ClassVar[str] = "openai"

    def __init__(
        self,
        client: openai.AsyncOpenAI | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        catalogue: Mapping[str, ModelInfo] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
        reasoning_summary: Literal["auto", "concise", "detailed"] | None = None,
    ) -> None:
        super().__init__(catalogue=catalogue, default_timeout=default_timeout)
        self._client, self._owns_client = openai_client(
            client, api_key=api_key, base_url=base_url, http_client=http_client
        )
        self._reasoning_summary = reasoning_summary

    @property
    def client(self) -> openai.AsyncOpenAI:
        """The SDK client every call goes through."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client if this adapter created it."""
        if self._owns_client:
            await self._client.close()

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """One ``responses.create`` call; every failure (a malformed answer too) is a ProviderError."""
        params = self._params(request)
        try:
            response: rtypes.Response = await self._client.responses.create(**params)
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(response))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """The same call as :meth:`generate`, streamed: deltas as the events arrive, then a
        :class:`UsageDelta` and the complete response built from the terminal event's response object.

        ``request.timeout`` bounds each read (an idle timeout), not the whole stream. An error event,
        a failed response, a cut connection or a stream that ends before its terminal event raises a
        :class:`ProviderError` (retryable unless the error says otherwise); nothing partial is returned.
        The HTTP response is closed however the iteration ends.
        """
        params = self._params(request)
        try:
            events: openai.AsyncStream[rtypes.ResponseStreamEvent] = await self._client.responses.create(
                **params, stream=True
            )
        except Exception as exc:
            raise openai_error(self.name, exc) from exc
        state = _StreamState(self.name, self._failed)
        async with aclosing(sdk_events(self.name, events)) as iterator:
            async for event in iterator:
                for delta in state.feed(event):
                    yield delta
                if state.final is not None:
                    await drain_stream(iterator)
                    break
        final = state.final
        if final is None:
            raise ProviderError(
                f"{self.name} stream ended before the response was complete",
                kind="connection",
                provider=self.name,
            )
        response = parsed(self.name, lambda: self._response(state.completed(final)))
        yield UsageDelta(response.usage)
        yield response

    def _params(self, request: GenerationRequest) -> dict[str, Any]:
        """The arguments of ``responses.create`` for ``request`` (the same for a streamed call)."""
        info = self.model_info(request.model)
        if request.tools and request.model in MODELS_WITHOUT_FUNCTION_TOOLS:
            raise self.error(
                f"model {request.model!r} does not support function tools; "
                f"this expert declares {len(request.tools)}",
                kind="bad_request",
                retryable=False,
            )
        temperature = self.temperature_for(request, info)
        reasoning = self._reasoning(request, info)
        return {
            "model": request.model,
            "input": self._input(request.model, request.messages, info.reasons),
            "instructions": request.system or openai.omit,
            "tools": [
                {
                    "type": "function",
                    "name": t.name,
                    "description": t.description,
                    "parameters": object_schema(t.input_schema),
                    "strict": False,
                }
                for t in request.tools
            ]
            or openai.omit,
            "store": False,
            "include": ["reasoning.encrypted_content"] if info.reasons else openai.omit,
            "reasoning": reasoning or openai.omit,
            "temperature": openai.omit if temperature is None else temperature,
            "max_output_tokens": request.max_output_tokens or openai.omit,
            "text": openai.omit if request.output_schema is None else _text_format(request.output_schema),
            "timeout": self.timeout_for(request),
        }

    def _reasoning(self, request: GenerationRequest, info: ModelInfo) -> dict[str, str] | None:
        if not info.reasons:
            return None
        reasoning: dict[str, str] = {}
        effort = None if request.reasoning is None else _effort(request.model, request.reasoning)
        if effort is not None:
            reasoning["effort"] = effort
        if self._reasoning_summary is not None:
            reasoning["summary"] = self._reasoning_summary
        return reasoning or None

    def _input(self, model: str, messages: Sequence[Message], replay_reasoning: bool) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        append = items.append
        for message in messages:
            if type(message) is UserMessage:
                append({"role": "user", "content": self._user_content(model, message.parts)})
            elif type(message) is AssistantMessage:
                for part in message.parts:
                    if type(part) is TextPart:
                        if part.text:
                            append({"role": "assistant", "content": part.text})
                    elif type(part) is ToolCall:
                        append(
                            {
                                "type": "function_call",
                                "call_id": part.id,
                                "name": part.name,
                                "arguments": dump_arguments(part.arguments),
                            }
                        )
                    elif replay_reasoning and (item := _reasoning_item(part)) is not None:
                        append(item)
            else:
                assert type(message) is ToolResultsMessage
                items.extend(
                    {"type": "function_call_output", "call_id": r.call_id, "output": result_text(r)}
                    for r in message.results
                )
        return items

    def _user_content(self, model: str, parts: Sequence[TextPart | FilePart]) -> str | list[dict[str, Any]]:
        if len(parts) == 1 and type(parts[0]) is TextPart:
            return parts[0].text
        content: list[dict[str, Any]] = []
        for part in parts:
            if type(part) is TextPart:
                content.append({"type": "input_text", "text": part.text})
                continue
            assert type(part) is FilePart
            if part.media_type in IMAGE_MEDIA_TYPES:
                content.append({"type": "input_image", "image_url": data_url(part), "detail": "auto"})
            elif part.media_type == PDF_MEDIA_TYPE:
                content.append({"type": "input_file", "filename": part.name, "file_data": data_url(part)})
            elif (text := file_as_text(part)) is not None:
                content.append({"type": "input_text", "text": text.text})
            else:
                raise unsupported_file(self.name, model, part)
        return content

    def _response(self, response: rtypes.Response) -> GenerationResponse:
        expect_type(response, rtypes.Response, "a response object")
        if response.status == "failed":
            raise self._failed(response)
        output = response.output
        if type(output) is not list:
            raise InvalidResponse(f"'output' is {type(output).__name__}, not a list of items")
        parts: list[AssistantPart] = []
        refused = False
        for item in output:
            if isinstance(item, rtypes.ResponseOutputMessage):
                for content in item.content:
                    if isinstance(content, rtypes.ResponseOutputText):
                        parts.append(TextPart(content.text))
                    else:
                        refused = True
                        parts.append(TextPart(content.refusal))
            elif isinstance(item, rtypes.ResponseFunctionToolCall):
                parts.append(
                    ToolCall(item.call_id, item.name, load_arguments(self.name, item.name, item.arguments))
                )
            elif isinstance(item, rtypes.ResponseReasoningItem):
                summary = [{"type": "summary_text", "text": s.text} for s in item.summary]
                parts.append(
                    ThinkingPart(
                        "\n\n".join(s.text for s in item.summary),
                        provider=self.name,
                        provider_data={
                            "id": item.id,
                            "summary": summary,
                            "encrypted_content": item.encrypted_content,
                        },
                    )
                )
        finish: FinishReason = "content_filter" if refused else "stop"
        if response.status == "incomplete":
            reason = response.incomplete_details.reason if response.incomplete_details else None
            finish = _INCOMPLETE_REASONS.get(reason or "", "other")
        raw = dump_usage(response.usage)
        return build_response(self.name, parts, finish, openai_usage(raw), raw, response.model)

    def _failed(self, response: rtypes.Response) -> ProviderError:
        """A response that came back with ``status: failed`` (an error the HTTP status did not carry)."""
        code = response.error.code if response.error else "server_error"
        message = response.error.message if response.error else "response failed"
        kind: ProviderErrorKind = "rate_limit" if code == "rate_limit_exceeded" else "server"
        raw = dump_usage(response.usage)
        return ProviderError(
            f"{self.name} response failed ({code}): {message}",
            kind=kind,
            provider=self.name,
            usage=openai_usage(raw) if raw else None,
        )


class _StreamState:
    """What a Responses stream has said so far: each function call's index among the response's tool
    calls, the reasoning summary part being streamed, the finished output items, the terminal
    event's response."""

    __slots__ = ("_calls", "_done", "_failed", "_provider", "_summary", "final")

    def __init__(self, provider: str, failed: Callable[[rtypes.Response], ProviderError]) -> None:
        self._provider = provider
        self._failed = failed
        self._calls: dict[int, int] = {}
        self._summary: tuple[int, int] | None = None
        self._done: dict[int, Any] = {}
        self.final: rtypes.Response | None = None

    def feed(self, event: Any) -> list[StreamDelta]:
        """The deltas ``event`` carries (usually one, often none); raises :class:`ProviderError` for
        an error event, a failed response or an event that makes no sense."""
        try:
            return self._deltas(event)
        except ProviderError:
            raise
        except Exception as exc:
            raise unexpected_error(self._provider, exc) from exc

    def _deltas(self, event: Any) -> list[StreamDelta]:
        kind = event.type
        if kind == "response.output_text.delta" or kind == "response.refusal.delta":
            text = _text(event.delta)
            return [TextDelta(text)] if text else []
        if kind == "response.reasoning_summary_text.delta":
            text = _text(event.delta)
            where = (event.output_index, event.summary_index)
            if self._summary is not None and self._summary[0] == where[0] and self._summary != where:
                text = "\n\n" + text  # the summary parts of one item are joined so in the final response
            self._summary = where
            return [ThinkingDelta(text)] if text else []
        if kind == "response.output_item.added":
            item = event.item
            if item.type != "function_call":
                return []
            index = self._calls[event.output_index] = len(self._calls)
            return [ToolCallStartDelta(index, _text(item.call_id), _text(item.name))]
        if kind == "response.function_call_arguments.delta":
            announced = self._calls.get(event.output_index)
            if announced is None:
                raise InvalidResponse(
                    f"arguments for output item {event.output_index}, not an announced function call"
                )
            text = _text(event.delta)
            return [ToolCallArgumentsDelta(announced, text)] if text else []
        if kind == "response.output_item.done":
            self._done[event.output_index] = event.item
        elif kind in _TERMINAL_EVENTS:
            self.final = event.response
        elif kind == "response.failed":
            raise self._failed(event.response)
        elif kind == "error":
            raise stream_error(
                self._provider, getattr(event, "code", None), None, getattr(event, "message", None)
            )
        return []

    def completed(self, response: rtypes.Response) -> rtypes.Response:
        """The terminal event's ``response``; when it came without output items (some gateways send
        ``output: []``), the items the stream finished with instead."""
        if response.output or not self._done:
            return response
        return response.model_copy(update={"output": [self._done[i] for i in sorted(self._done)]})


def _text(value: object) -> str:
    """A text field of an event, which must be a string."""
    if type(value) is not str:
        raise InvalidResponse(
            f"expected a string in a stream event, got {type(value).__name__}: {value!r:.200}"
        )
    return value


def _reasoning_item(part: AssistantPart) -> dict[str, Any] | None:
    """An OpenAI reasoning item to replay, or ``None`` (another provider's thinking, no encrypted content)."""
    if type(part) is not ThinkingPart or part.provider != OpenAIProvider.name or not part.provider_data:
        return None
    data = part.provider_data
    if not data.get("encrypted_content"):
        return None
    return {
        "type": "reasoning",
        "id": data["id"],
        "summary": list(data.get("summary") or ()),
        "encrypted_content": data["encrypted_content"],
    }
