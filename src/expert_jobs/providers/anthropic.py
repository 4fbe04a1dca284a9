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
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, cast

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
from expert_jobs.ports.provider import FinishReason, GenerationRequest, GenerationResponse, ToolDeclaration
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
    dump_usage,
    error_from_status,
    expect_type,
    file_as_text,
    int_at,
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

__all__ = ["AnthropicProvider", "anthropic_usage"]

_MIN_THINKING_BUDGET = 1024

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
    input_tokens = int_at(raw, "input_tokens") + cache_read + int_at(raw, "cache_creation_input_tokens")
    output_tokens = int_at(raw, "output_tokens")
    reasoning = min(int_at(raw, "output_tokens_details", "thinking_tokens"), output_tokens)
    return Usage.of(input_tokens, output_tokens, reasoning=reasoning, cached=cache_read)


class AnthropicProvider(AdapterBase):
    """:class:`~expert_jobs.ports.provider.Provider` over Anthropic's Messages API.

    Pass an ``anthropic.AsyncAnthropic`` ``client`` of your own, or ``api_key`` / ``base_url`` /
    ``http_client`` (an ``httpx2.AsyncClient``, e.g. on a mock transport) to have one created. The
    SDK's own retries are switched off either way: the engine's ``maxRetries`` is the only retry layer.
    ``prompt_caching`` (on by default) sends a top-level ``cache_control`` breakpoint so each step of a
    job reads the history the previous step wrote to Anthropic's prompt cache.
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
    ) -> None:
        super().__init__(catalogue=catalogue, default_timeout=default_timeout)
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

    @property
    def client(self) -> anthropic.AsyncAnthropic:
        """The SDK client every call goes through."""
        return self._client

    async def aclose(self) -> None:
        """Close the SDK client if this adapter created it."""
        if self._owns_client:
            await self._client.close()

    async def generate(self, request: GenerationRequest) -> GenerationResponse:
        """One ``messages.create`` call; every failure (a malformed answer too) is a ProviderError."""
        info = self.model_info(request.model)
        max_tokens, thinking = self._limits(request, info)
        try:
            message = await self._client.messages.create(
                model=request.model,
                max_tokens=max_tokens,
                messages=cast(Any, self._messages(request.model, request.messages)),
                system=request.system or anthropic.omit,
                tools=cast(Any, self._tools(request.tools)) or anthropic.omit,
                thinking=cast(Any, thinking) if thinking else anthropic.omit,
                cache_control=self._cache_control,
                timeout=self.timeout_for(request),
            )
        except anthropic.APIStatusError as exc:
            raise self._classify(exc) from exc
        except Exception as exc:
            raise unexpected_error(self.name, exc) from exc
        return parsed(self.name, lambda: self._response(message))

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

    def _response(self, message: anthropic.types.Message) -> GenerationResponse:
        expect_type(message, anthropic.types.Message, "a message object")
        content = message.content
        if type(content) is not list:
            raise InvalidResponse(f"'content' is {type(content).__name__}, not a list of blocks")
        parts: list[AssistantPart] = []
        for block in content:
            if isinstance(block, anthropic.types.TextBlock):
                parts.append(TextPart(block.text))
            elif isinstance(block, anthropic.types.ToolUseBlock):
                parts.append(ToolCall(block.id, block.name, block.input))
            elif isinstance(block, anthropic.types.ThinkingBlock):
                parts.append(ThinkingPart(block.thinking, signature=block.signature, provider=self.name))
            elif isinstance(block, anthropic.types.RedactedThinkingBlock):
                parts.append(ThinkingPart("", redacted_data=block.data, provider=self.name))
        if message.usage is None:
            raise InvalidResponse("the answer has no 'usage'")
        raw = dump_usage(message.usage)
        finish = _FINISH_REASONS.get(message.stop_reason or "", "other")
        return build_response(self.name, parts, finish, anthropic_usage(raw), raw, message.model)

    def _classify(self, exc: anthropic.APIStatusError) -> ProviderError:
        """Classify by status, refined by the body's ``error`` object (read from the body itself, so
        SDK releases without ``api_message``, ``type`` or ``error_code`` attributes work alike)."""
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
        return error_from_status(self.name, exc.status_code, message, kind=kind, headers=exc.response.headers)


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
