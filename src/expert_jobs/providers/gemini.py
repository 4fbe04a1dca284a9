"""Google Gemini adapter: ``generate_content`` through the official ``google-genai`` SDK.

Mapping, in one pass over the history:

- ``system_instruction`` is the system instruction; contents alternate ``user`` and ``model``
  (consecutive contents of one role are merged).
- A user message becomes text and ``inline_data`` parts (images, PDFs, audio, video); an assistant
  message a ``model`` content of its parts in order: Gemini's own thought parts, text and
  ``function_call`` parts, each with its ``thought_signature`` sent back unchanged; a tool-results
  message one ``user`` content of ``function_response`` parts in call order (``{"output": ...}`` or
  ``{"error": ...}``), matched to the calls by name and order.
- Tool-call ids: Gemini usually gives none. The adapter then makes one from the call's place in the
  conversation, ``gemini_call_<turn>_<n>`` (turn = number of messages before the response, n = the
  call's index in it): unique within a run and the same on every replay. Synthetic ids are never sent
  to the API; ids Gemini did give are sent back on the call and its response.
- Gemini 3 requires a thought signature on the first function call of each model turn; a turn that
  has none (it came from another provider) gets Google's documented placeholder signature.
- ``thinking_config`` from :class:`ReasoningSettings`: a budget for Gemini 2.5 (``0`` disables thinking
  on Flash/Flash-Lite), a thinking level for Gemini 3; thought summaries are asked for.
- SDK retries are off per request (``HttpRetryOptions(attempts=1)``), the timeout is per request.
- Structured output (``request.output_schema``): ``response_mime_type="application/json"`` and
  ``response_json_schema`` (every supported ``google-genai`` release has it). Gemini 2.5 refuses a
  response schema together with function declarations (HTTP 400 "Function calling with a response
  mime type: 'application/json' is unsupported"); Gemini 3 takes both. So the schema is sent on a
  call without tools, or with tools to Gemini 3; otherwise the system instruction asks for the JSON
  (:data:`SCHEMA_INSTRUCTION`) and the engine checks the answer like any other.

Streaming (:meth:`GeminiProvider.stream`) is ``aio.models.generate_content_stream`` with the same
request. Text parts become ``TextDelta``, thought parts ``ThinkingDelta``, each function call (Gemini
sends whole calls) a ``ToolCallStartDelta`` and one ``ToolCallArgumentsDelta`` with its JSON, a
changed ``usage_metadata`` a ``UsageDelta``. The chunks are accumulated into one
``GenerateContentResponse`` (consecutive text fragments of one kind joined into one part, carrying
the signature Gemini sent on any of them, often on a last empty part) that goes through the same
mapping as :meth:`GeminiProvider.generate`, usage from the last chunk's ``usage_metadata``.

Usage: ``prompt_token_count`` includes ``cached_content_token_count``; ``candidates_token_count``
EXCLUDES ``thoughts_token_count``. So input = prompt + ``tool_use_prompt_token_count``, cached =
cached content, output = candidates + thoughts, reasoning = thoughts.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import suppress
from contextvars import ContextVar
from typing import Any, ClassVar

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
    StreamItem,
)
from expert_jobs.providers._common import (
    DEFAULT_TIMEOUT,
    EFFORT_BUDGETS,
    AdapterBase,
    InvalidResponse,
    build_response,
    check_sdk_version,
    dump_usage,
    error_from_status,
    expect_type,
    file_as_text,
    int_at,
    object_schema,
    parse_duration,
    parsed,
    sdk_import_error,
    unexpected_error,
)

try:
    import httpx2
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types
except ImportError as exc:  # only without the extra installed, or with an SDK too old for httpx2
    raise sdk_import_error("google-genai", "google", exc) from exc
check_sdk_version("google-genai", "google")

__all__ = ["RETRY_STATUSES", "SCHEMA_INSTRUCTION", "SYNTHETIC_ID_PREFIX", "GeminiProvider", "gemini_usage"]

SYNTHETIC_ID_PREFIX = "gemini_call_"
"""Prefix of the tool-call ids this adapter makes up when Gemini gives none."""

_PLACEHOLDER_SIGNATURE = b"skip_thought_signature_validator"
"""Google's documented stand-in for a function call whose thought signature is unknown (Gemini 3)."""

_NO_RETRY = types.HttpRetryOptions(attempts=1)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""The HTTP statuses ``google-genai`` itself retries (its ``_RETRY_HTTP_STATUS_CODES``); the engine
retries the same ones (unless the body says billing or authentication)."""

SCHEMA_INSTRUCTION = (
    "When you give your final answer (a reply without tool calls), reply with only a JSON value that "
    "matches this JSON schema ({name}), without prose or code fences:\n{schema}"
)
"""Appended to the system instruction when the model cannot take a response schema with tools."""

_FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
)

_LEVELS: Mapping[str, types.ThinkingLevel] = {
    "minimal": types.ThinkingLevel.LOW,
    "low": types.ThinkingLevel.LOW,
    "medium": types.ThinkingLevel.HIGH,
    "high": types.ThinkingLevel.HIGH,
}


def gemini_usage(raw: Mapping[str, Any]) -> Usage:
    """Normalised usage from ``usage_metadata`` (see the module docstring for what includes what)."""
    thoughts = int_at(raw, "thoughts_token_count")
    return Usage.of(
        int_at(raw, "prompt_token_count") + int_at(raw, "tool_use_prompt_token_count"),
        int_at(raw, "candidates_token_count") + thoughts,
        reasoning=thoughts,
        cached=int_at(raw, "cached_content_token_count"),
    )


def _signature(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


def _signature_text(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode("ascii")


_OPENED_RESPONSES: ContextVar[list[httpx2.Response] | None] = ContextVar(
    "expert_jobs_gemini_opened_responses", default=None
)
"""Where the response hook notes the HTTP responses a stream opens (set only while it reads)."""


async def _note_response(response: httpx2.Response) -> None:
    """``httpx2`` response hook: note the response if a stream is reading (else do nothing)."""
    opened = _OPENED_RESPONSES.get()
    if opened is not None:
        opened.append(response)


def _note_stream_responses(client: genai.Client) -> None:
    """Hook :func:`_note_response` into the ``httpx2`` client the SDK sends with, where it has one.

    ``google-genai`` keeps a stream's HTTP response in a reference cycle: closing its iterator early
    leaves the connection open (and Gemini generating) until the garbage collector runs. With the
    response noted, :meth:`GeminiProvider.stream` closes it at once. The SDK's client is reached
    through a private attribute; without it (another SDK release, aiohttp) streams still work and
    are released by the collector.
    """
    http = getattr(getattr(client, "_api_client", None), "_async_httpx_client", None)
    if not isinstance(http, httpx2.AsyncClient):
        return
    hooks = http.event_hooks
    responses = hooks.get("response", [])
    if _note_response not in responses:
        http.event_hooks = {**hooks, "response": [*responses, _note_response]}


async def _close_stream(chunks: object, opened: Sequence[httpx2.Response]) -> None:
    """Close the SDK's chunk iterator and the HTTP responses the stream opened.

    A failure while closing is dropped: the stream is over and the error that ended it, if any,
    is the one to report.
    """
    close = getattr(chunks, "aclose", None)  # an async generator, typed by the SDK as an iterator
    with suppress(Exception):
        if close is not None:
            await close()
    for response in opened:
        with suppress(Exception):
            await response.aclose()


class GeminiProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.Provider` over the Gemini API's ``generate_content``, and
    :class:`~expert_jobs.ports.provider.StreamingProvider` over ``generate_content_stream``.

    Pass a ``google.genai.Client`` of your own, or ``api_key`` / ``base_url`` / ``http_client`` (an
    ``httpx2.AsyncClient``, e.g. on a mock transport) to have one created. The adapter adds a
    response hook to the SDK's ``httpx2`` client (a no-op outside its streams) so that a stream
    closed early releases its connection at once.
    """

    name: ClassVar[str] = "google"

    def __init__(
        self,
        client: genai.Client | None = None,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        catalogue: Mapping[str, ModelInfo] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(catalogue=catalogue, default_timeout=default_timeout)
        self._owns_client = client is None
        if client is None:
            options = types.HttpOptions(
                base_url=base_url, httpx_async_client=http_client, retry_options=_NO_RETRY
            )
            client = genai.Client(api_key=api_key, http_options=options)
        self._client = client
        _note_stream_responses(client)

    @property
    def client(self) -> genai.Client:
        """The SDK client every call goes through."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client's async transport if this adapter created it."""
        if self._owns_client:
            await self._client.aio.aclose()

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """One ``aio.models.generate_content`` call; every failure (a malformed answer too) is a
        :class:`ProviderError`."""
        config = self._config(request, timeout=self.timeout_for(request))
        contents = self._contents(request.model, request.messages)
        try:
            response = await self._client.aio.models.generate_content(
                model=request.model, contents=contents, config=config
            )
        except Exception as exc:
            raise self._failure(exc) from exc
        return parsed(self.name, lambda: self._response(response, turn=len(request.messages)))

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[StreamItem, None]:
        """The same call as :meth:`generate`, streamed (``aio.models.generate_content_stream``):
        deltas as the chunks arrive, then the complete response.

        ``request.timeout`` bounds the wait for each chunk (the first one included, so the
        connection too), not the whole stream: no total deadline is sent to the SDK or the server.
        An error before or during the stream (an error event, a cut connection, a stream that ends
        without a finish reason, an idle timeout) raises a :class:`ProviderError`, retryable unless
        the error says otherwise; nothing partial is returned. The HTTP stream is closed however the
        iteration ends (finished, failed, cancelled or closed early).
        """
        config = self._config(request, timeout=None)
        contents = self._contents(request.model, request.messages)
        idle = self.timeout_for(request)
        state = _StreamState(self, turn=len(request.messages))
        try:
            chunks = await self._client.aio.models.generate_content_stream(
                model=request.model, contents=contents, config=config
            )
        except Exception as exc:
            raise self._failure(exc) from exc
        opened: list[httpx2.Response] = []
        try:
            while True:
                # Requests sent while reading (the first, and any continuation) are noted in `opened`.
                noting = _OPENED_RESPONSES.set(opened)
                try:
                    async with asyncio.timeout(idle):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    raise ProviderError(
                        f"{self.name} stream timed out: no chunk within {idle:g} s",
                        kind="timeout",
                        provider=self.name,
                    ) from exc
                except Exception as exc:
                    raise self._failure(exc) from exc
                finally:
                    _OPENED_RESPONSES.reset(noting)
                for delta in state.feed(chunk):
                    yield delta
        finally:
            await _close_stream(chunks, opened)
        yield state.response()

    def _failure(self, exc: Exception) -> ProviderError:
        """The :class:`ProviderError` for whatever the SDK raised."""
        if isinstance(exc, genai_errors.APIError):
            return self._classify(exc)
        return unexpected_error(self.name, exc)

    def _config(self, request: GenerationRequest, *, timeout: float | None) -> types.GenerateContentConfig:
        """The request's config, for :meth:`generate` and :meth:`stream` alike; ``timeout`` (seconds)
        is the SDK's per-request deadline, ``None`` for none."""
        info = self.model_info(request.model)
        tools = self._tools(request)
        system = request.system
        mime_type: str | None = None
        json_schema: dict[str, Any] | None = None
        if request.output_schema is not None:
            if tools is None or _takes_schema_with_tools(request.model):
                mime_type, json_schema = "application/json", dict(request.output_schema.json_schema)
            else:
                system = _with_schema_instruction(system, request.output_schema)
        return types.GenerateContentConfig(
            system_instruction=system or None,
            temperature=self.temperature_for(request, info),
            max_output_tokens=request.max_output_tokens,
            tools=tools,
            thinking_config=self._thinking(request, info),
            response_mime_type=mime_type,
            response_json_schema=json_schema,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            http_options=types.HttpOptions(
                timeout=None if timeout is None else round(timeout * 1000), retry_options=_NO_RETRY
            ),
        )

    @staticmethod
    def _tools(request: GenerationRequest) -> types.ToolListUnion | None:
        if not request.tools:
            return None
        declarations = [
            types.FunctionDeclaration(
                name=t.name, description=t.description, parameters_json_schema=object_schema(t.input_schema)
            )
            for t in request.tools
        ]
        return [types.Tool(function_declarations=declarations)]

    @staticmethod
    def _thinking(request: GenerationRequest, info: ModelInfo) -> types.ThinkingConfig | None:
        if not info.reasons:
            return None
        reasoning = request.reasoning
        gemini3 = request.model.startswith("gemini-3")
        if reasoning is None:
            return types.ThinkingConfig(include_thoughts=True)
        if not reasoning.enabled:
            if gemini3:  # Gemini 3 always thinks; its lowest level is the closest
                return types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)
            # 2.5 Pro cannot turn thinking off; 128 tokens is its smallest budget
            return types.ThinkingConfig(thinking_budget=128 if "-pro" in request.model else 0)
        if gemini3 and reasoning.effort is not None:
            return types.ThinkingConfig(include_thoughts=True, thinking_level=_LEVELS[reasoning.effort])
        budget = reasoning.budget_tokens
        if budget is None and reasoning.effort is not None:
            budget = EFFORT_BUDGETS[reasoning.effort]
        return types.ThinkingConfig(include_thoughts=True, thinking_budget=budget)

    def _contents(self, model: str, messages: Sequence[Message]) -> list[types.Content]:
        contents: list[types.Content] = []
        placeholder = _PLACEHOLDER_SIGNATURE if model.startswith("gemini-3") else None
        for message in messages:
            role = "user"
            if type(message) is UserMessage:
                parts = [
                    self._user_part(part) for part in message.parts if type(part) is not TextPart or part.text
                ]
            elif type(message) is AssistantMessage:
                role = "model"
                parts = self._model_parts(message.parts, placeholder)
            else:
                assert type(message) is ToolResultsMessage
                parts = [
                    types.Part(
                        function_response=types.FunctionResponse(
                            id=None if r.call_id.startswith(SYNTHETIC_ID_PREFIX) else r.call_id,
                            name=r.name,
                            response={"error": r.content} if r.is_error else {"output": r.content},
                        )
                    )
                    for r in message.results
                ]
            if not parts:
                continue
            if contents and contents[-1].role == role:
                contents[-1].parts = [*(contents[-1].parts or ()), *parts]
            else:
                contents.append(types.Content(role=role, parts=parts))
        return contents

    @staticmethod
    def _user_part(part: TextPart | FilePart) -> types.Part:
        if type(part) is TextPart:
            return types.Part(text=part.text)
        assert type(part) is FilePart
        text = file_as_text(part)
        if text is not None:
            return types.Part(text=text.text)
        return types.Part(inline_data=types.Blob(mime_type=part.media_type, data=part.data))

    def _model_parts(self, parts: Sequence[AssistantPart], placeholder: bytes | None) -> list[types.Part]:
        result: list[types.Part] = []
        first_call: types.Part | None = None
        signed = False
        for part in parts:
            if type(part) is TextPart:
                if part.text or part.signature:
                    result.append(types.Part(text=part.text, thought_signature=_signature(part.signature)))
                    signed = signed or part.signature is not None
            elif type(part) is ToolCall:
                call = types.FunctionCall(
                    id=None if part.id.startswith(SYNTHETIC_ID_PREFIX) else part.id,
                    name=part.name,
                    args=dict(part.arguments),
                )
                result.append(types.Part(function_call=call, thought_signature=_signature(part.signature)))
                signed = signed or part.signature is not None
                first_call = first_call or result[-1]
            elif type(part) is ThinkingPart and part.provider == self.name:
                result.append(
                    types.Part(text=part.text, thought=True, thought_signature=_signature(part.signature))
                )
                signed = signed or part.signature is not None
        if first_call is not None and not signed and placeholder is not None:
            first_call.thought_signature = placeholder
        return result

    def _response(self, response: types.GenerateContentResponse, *, turn: int) -> GenerationResponse:
        expect_type(response, types.GenerateContentResponse, "a GenerateContentResponse")
        raw = dump_usage(response.usage_metadata, mode="json")
        usage = gemini_usage(raw)
        parts: list[AssistantPart] = []
        finish: FinishReason = "other"
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None:
            feedback = response.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                finish = "content_filter"
            elif response.usage_metadata is None and feedback is None:
                # Every answer of the API has usage metadata (a blocked prompt: prompt feedback too);
                # one with none of candidates, feedback and usage is some other JSON object.
                raise InvalidResponse("no candidates, no prompt feedback and no usage metadata")
        else:
            if candidate.content is None and candidate.finish_reason is None:
                raise InvalidResponse(f"a candidate has neither content nor a finish reason: {candidate!r}")
            finish = _finish_reason(candidate.finish_reason)
            calls = 0
            for part in (candidate.content.parts if candidate.content else None) or ():
                signature = _signature_text(part.thought_signature)
                if part.function_call is not None:
                    call = part.function_call
                    call_id = _call_id(call, turn, calls)
                    calls += 1
                    parts.append(ToolCall(call_id, call.name or "", call.args or {}, signature))
                elif part.thought:
                    parts.append(ThinkingPart(part.text or "", signature=signature, provider=self.name))
                elif part.text is not None:
                    parts.append(TextPart(part.text, signature))
        return build_response(self.name, parts, finish, usage, raw, response.model_version)

    def _classify(self, exc: genai_errors.APIError) -> ProviderError:
        """Classify by HTTP status, refined by the body's ``status`` and ``details``.

        ``details`` holds Google's standard error details: ``ErrorInfo.reason`` (``API_KEY_*`` is
        authentication, ``BILLING_DISABLED`` billing), ``QuotaFailure.violations`` (a ``RESOURCE_EXHAUSTED``
        429 over a per-day quota is billing: it lifts tomorrow, not within the job's retries; a
        per-minute one is a rate limit) and ``RetryInfo.retryDelay`` (the ``retry_after``). A quota
        whose limit is 0 (the model is not in the key's tier: "limit: 0" in the message) is billing
        too. As ``google-genai`` does, only :data:`RETRY_STATUSES` are retried (not 409, 501, ...) and
        no ``x-should-retry`` header is consulted.
        """
        body = exc.details if isinstance(exc.details, Mapping) else {}
        error = body.get("error", body)
        details = error.get("details") if isinstance(error, Mapping) else None
        reasons: set[str] = set()
        daily_quota = False
        retry_delay: float | None = None
        for detail in details if isinstance(details, list) else ():
            if not isinstance(detail, Mapping):
                continue
            if isinstance(detail.get("reason"), str):
                reasons.add(detail["reason"])
            violations = detail.get("violations")
            for violation in violations if isinstance(violations, list) else ():
                if isinstance(violation, Mapping) and _is_daily_quota(violation):
                    daily_quota = True
            retry_delay = retry_delay if retry_delay is not None else parse_duration(detail.get("retryDelay"))
        message = exc.message if isinstance(exc.message, str) and exc.message else str(exc)
        lowered = message.lower()
        kind: ProviderErrorKind | None = None
        if any(reason.startswith("API_KEY_") for reason in reasons):
            kind = "authentication"
        elif "BILLING_DISABLED" in reasons or (
            exc.status == "FAILED_PRECONDITION" and "billing" in lowered
        ) or (exc.status == "RESOURCE_EXHAUSTED" and (daily_quota or "limit: 0," in lowered)):
            kind = "billing"
        headers = exc.response.headers if isinstance(exc.response, httpx2.Response) else None
        code = exc.code if isinstance(exc.code, int) else 0
        return error_from_status(
            self.name,
            code,
            message,
            kind=kind,
            retry_after=retry_delay,
            headers=headers,
            should_retry_header=False,
            retry_statuses=RETRY_STATUSES,
        )


def _call_id(call: types.FunctionCall, turn: int, index: int) -> str:
    """The call's id: Gemini's, else the synthetic ``gemini_call_<turn>_<index>``."""
    return call.id or f"{SYNTHETIC_ID_PREFIX}{turn}_{index}"


def _takes_schema_with_tools(model: str) -> bool:
    """Whether ``model`` accepts a response schema in a call that declares functions (Gemini 3)."""
    return model.startswith("gemini-3")


def _with_schema_instruction(system: str, schema: OutputSchema) -> str:
    """The system instruction with :data:`SCHEMA_INSTRUCTION` for ``schema`` after it."""
    text = json.dumps(schema.json_schema, ensure_ascii=False, sort_keys=True)
    instruction = SCHEMA_INSTRUCTION.format(name=schema.name, schema=text)
    return f"{system}\n\n{instruction}" if system else instruction


class _StreamState:
    """What a stream has delivered so far: the deltas of each chunk, and the chunks joined into one
    ``GenerateContentResponse`` for :meth:`GeminiProvider._response`."""

    def __init__(self, provider: GeminiProvider, *, turn: int) -> None:
        self._provider = provider
        self._turn = turn
        self._parts: list[types.Part] = []
        self._calls = 0
        self._finish: types.FinishReason | None = None
        self._usage: types.GenerateContentResponseUsageMetadata | None = None
        self._reported: Usage | None = None
        self._feedback: types.GenerateContentResponsePromptFeedback | None = None
        self._model: str | None = None

    def feed(self, chunk: types.GenerateContentResponse) -> list[StreamDelta]:
        """Take one chunk in; the deltas it brings. A malformed chunk is ``invalid_response``."""
        try:
            return self._feed(chunk)
        except Exception as exc:
            raise unexpected_error(self._provider.name, exc) from exc

    def _feed(self, chunk: types.GenerateContentResponse) -> list[StreamDelta]:
        expect_type(chunk, types.GenerateContentResponse, "a GenerateContentResponse chunk")
        deltas: list[StreamDelta] = []
        self._model = chunk.model_version or self._model
        if chunk.prompt_feedback is not None:
            self._feedback = chunk.prompt_feedback
        candidate = chunk.candidates[0] if chunk.candidates else None
        if candidate is not None:
            if candidate.finish_reason is not None:
                self._finish = candidate.finish_reason
            for part in (candidate.content.parts if candidate.content else None) or ():
                self._add(part, deltas)
        if chunk.usage_metadata is not None:
            self._usage = chunk.usage_metadata
            usage = gemini_usage(dump_usage(chunk.usage_metadata, mode="json"))
            if usage != self._reported:
                self._reported = usage
                deltas.append(UsageDelta(usage))
        return deltas

    def _add(self, part: types.Part, deltas: list[StreamDelta]) -> None:
        call = part.function_call
        if call is not None:
            index = self._calls
            self._calls += 1
            deltas.append(ToolCallStartDelta(index, _call_id(call, self._turn, index), call.name or ""))
            deltas.append(ToolCallArgumentsDelta(index, json.dumps(call.args or {}, ensure_ascii=False)))
            self._parts.append(part)
            return
        text = part.text
        if text is None:
            self._parts.append(part)  # not text, not a call: kept, and ignored as generate() ignores it
            return
        if text:
            deltas.append(ThinkingDelta(text) if part.thought else TextDelta(text))
        elif not part.thought_signature:
            return  # an empty part carrying nothing (Gemini often ends a stream with one)
        last = self._parts[-1] if self._parts else None
        if (
            last is not None
            and last.function_call is None
            and last.text is not None
            and bool(last.thought) == bool(part.thought)
            and not (last.thought_signature and part.thought_signature)
        ):
            self._parts[-1] = types.Part(
                text=last.text + text,
                thought=last.thought or part.thought,
                thought_signature=last.thought_signature or part.thought_signature,
            )
        else:
            self._parts.append(
                types.Part(text=text, thought=part.thought, thought_signature=part.thought_signature)
            )

    def response(self) -> GenerationResponse:
        """The complete response, mapped as :meth:`GeminiProvider.generate` maps one; a stream that
        ended before its finish reason (and without prompt feedback) was cut: ``connection``."""
        provider = self._provider
        if self._finish is None and self._feedback is None:
            raise ProviderError(
                f"{provider.name} stream ended before the response was complete (no finish reason)",
                kind="connection",
                provider=provider.name,
            )
        candidates = None
        if self._finish is not None or self._parts:
            content = types.Content(role="model", parts=self._parts) if self._parts else None
            candidates = [types.Candidate(content=content, finish_reason=self._finish, index=0)]
        whole = types.GenerateContentResponse(
            candidates=candidates,
            usage_metadata=self._usage,
            prompt_feedback=self._feedback,
            model_version=self._model,
        )
        return parsed(provider.name, lambda: provider._response(whole, turn=self._turn))


def _is_daily_quota(violation: Mapping[str, Any]) -> bool:
    """Whether a ``QuotaFailure`` violation is over a per-day quota (``...PerDay...`` quota id, or a
    ``..._per_day`` metric), as opposed to a per-minute rate limit."""
    quota_id = violation.get("quotaId")
    metric = violation.get("quotaMetric")
    return (isinstance(quota_id, str) and "PerDay" in quota_id) or (
        isinstance(metric, str) and "per_day" in metric
    )


def _finish_reason(reason: types.FinishReason | None) -> FinishReason:
    if reason is None:
        return "other"
    name = reason.value if isinstance(reason, types.FinishReason) else str(reason)
    if name == "STOP":
        return "stop"
    if name == "MAX_TOKENS":
        return "length"
    return "content_filter" if name in _FILTERED else "other"
