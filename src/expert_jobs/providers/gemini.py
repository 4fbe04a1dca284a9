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

Usage: ``prompt_token_count`` includes ``cached_content_token_count``; ``candidates_token_count``
EXCLUDES ``thoughts_token_count``. So input = prompt + ``tool_use_prompt_token_count``, cached =
cached content, output = candidates + thoughts, reasoning = thoughts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

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
from expert_jobs.ports.provider import FinishReason, GenerationRequest, GenerationResponse
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

__all__ = ["RETRY_STATUSES", "SYNTHETIC_ID_PREFIX", "GeminiProvider", "gemini_usage"]

SYNTHETIC_ID_PREFIX = "gemini_call_"
"""Prefix of the tool-call ids this adapter makes up when Gemini gives none."""

_PLACEHOLDER_SIGNATURE = b"skip_thought_signature_validator"
"""Google's documented stand-in for a function call whose thought signature is unknown (Gemini 3)."""

_NO_RETRY = types.HttpRetryOptions(attempts=1)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""The HTTP statuses ``google-genai`` itself retries (its ``_RETRY_HTTP_STATUS_CODES``); the engine
retries the same ones (unless the body says billing or authentication)."""

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


class GeminiProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.Provider` over the Gemini API's ``generate_content``.

    Pass a ``google.genai.Client`` of your own, or ``api_key`` / ``base_url`` / ``http_client`` (an
    ``httpx2.AsyncClient``, e.g. on a mock transport) to have one created.
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
        info = self.model_info(request.model)
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=self.temperature_for(request, info),
            max_output_tokens=request.max_output_tokens,
            tools=self._tools(request),
            thinking_config=self._thinking(request, info),
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            http_options=types.HttpOptions(
                timeout=round(self.timeout_for(request) * 1000), retry_options=_NO_RETRY
            ),
        )
        contents = self._contents(request.model, request.messages)
        try:
            response = await self._client.aio.models.generate_content(
                model=request.model, contents=contents, config=config
            )
        except genai_errors.APIError as exc:
            raise self._classify(exc) from exc
        except Exception as exc:
            raise unexpected_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(response, turn=len(request.messages)))

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
                    call_id = call.id or f"{SYNTHETIC_ID_PREFIX}{turn}_{calls}"
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
