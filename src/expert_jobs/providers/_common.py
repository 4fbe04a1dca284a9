"""What every provider adapter shares: per-model settings, error classification, output checks.

Nothing here imports an SDK. Adapters translate their SDK's exceptions into the few facts this module
needs (HTTP status, provider error code, headers, message) and get one
:class:`~expert_jobs.domain.errors.ProviderError` back, so every provider is classified by the same
table:

==========  ====================  ==========
status      kind                  retryable
==========  ====================  ==========
400, 413,   ``bad_request``       no
422
401, 403    ``authentication``    no
402         ``billing``           no
404         ``not_found``         no
408, 504    ``timeout``           yes
429         ``rate_limit``        yes
503, 529    ``overloaded``        yes
other 5xx   ``server``            yes
==========  ====================  ==========

Adapters refine the status with what the body says (a bad key reported as 400, OpenAI's
``insufficient_quota`` 429, Anthropic's "credit balance is too low" 400) by passing ``kind``.
"""

from __future__ import annotations

import base64
import json
import math
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import AssistantPart, FilePart, TextPart, ToolCall, ToolResult
from expert_jobs.domain.models import MODELS, ModelInfo
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import FinishReason, GenerationRequest, GenerationResponse

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUT",
    "EFFORT_BUDGETS",
    "IMAGE_MEDIA_TYPES",
    "PDF_MEDIA_TYPE",
    "PROVIDER_ENV_VARS",
    "AdapterBase",
    "build_response",
    "data_url",
    "dump_arguments",
    "error_from_status",
    "file_as_text",
    "int_at",
    "load_arguments",
    "missing_sdk",
    "object_schema",
    "parse_duration",
    "result_text",
    "retry_after_from_headers",
    "transport_error",
    "unsupported_file",
]

DEFAULT_TIMEOUT = 300.0
"""Seconds a generation may take when the request does not say (DESIGN.md's default)."""

DEFAULT_MAX_OUTPUT_TOKENS = 8192
"""Output cap sent where a provider requires one and the request gives none (capped by the model)."""

PROVIDER_ENV_VARS: Mapping[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY",),
    "google": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    "openai": ("OPENAI_API_KEY",),
    "deepseek": ("DEEPSEEK_API_KEY",),
}
"""The environment variables holding each built-in provider's key, in the order they are tried."""

IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Image types every built-in provider with vision accepts inline."""

PDF_MEDIA_TYPE = "application/pdf"

EFFORT_BUDGETS: Mapping[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
"""Thinking-token budgets standing in for an effort on budget-based APIs (Anthropic, Gemini 2.5)."""

_STATUS_KINDS: Mapping[int, str] = {
    400: "bad_request",
    401: "authentication",
    402: "billing",
    403: "authentication",
    404: "not_found",
    408: "timeout",
    413: "bad_request",
    422: "bad_request",
    429: "rate_limit",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}

_TIMEOUT_CLASS_NAMES = frozenset({"TimeoutException", "TimeoutError", "ServerTimeoutError"})
_CONNECTION_CLASS_NAMES = frozenset(
    {"TransportError", "NetworkError", "ConnectError", "ClientConnectionError", "ServerDisconnectedError"}
)


def missing_sdk(package: str, extra: str) -> ImportError:
    """The error raised when an adapter's SDK is not installed, naming the extra to install."""
    return ImportError(
        f"the {package!r} package is needed for this provider; install it with "
        f"pip install 'expert-jobs[{extra}]'"
    )


class AdapterBase:
    """Per-model settings every adapter resolves the same way.

    ``catalogue`` maps model ids to :class:`ModelInfo` (the spec's models by default). A model id the
    catalogue does not know is still served, with permissive defaults: temperature sent when given,
    no reasoning settings, :data:`DEFAULT_MAX_OUTPUT_TOKENS` where a cap is required.
    """

    name: ClassVar[str] = "custom"
    """The provider name, as in :attr:`ModelInfo.provider` and :attr:`ThinkingPart.provider`."""

    def __init__(
        self,
        *,
        catalogue: Mapping[str, ModelInfo] | None = None,
        default_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._catalogue: Mapping[str, ModelInfo] = MODELS if catalogue is None else catalogue
        self._default_timeout = default_timeout

    def model_info(self, model: str) -> ModelInfo:
        """What the catalogue says about ``model``, or permissive defaults for an unknown id."""
        info = self._catalogue.get(model)
        if info is None:
            return ModelInfo(model, self.name, 0, DEFAULT_MAX_OUTPUT_TOKENS, True, False)
        return info

    def timeout_for(self, request: GenerationRequest) -> float:
        """The request's timeout, else the adapter's default."""
        return self._default_timeout if request.timeout is None else request.timeout

    @staticmethod
    def temperature_for(request: GenerationRequest, info: ModelInfo) -> float | None:
        """The temperature to send: the request's, or ``None`` where the model takes only its default."""
        return request.temperature if info.accepts_temperature else None

    def error(self, message: str, *, kind: str, retryable: bool | None = None) -> ProviderError:
        """A :class:`ProviderError` of this provider raised before or after the call (not by the SDK)."""
        return ProviderError(f"{self.name}: {message}", kind=kind, retryable=retryable, provider=self.name)


def error_from_status(
    provider: str,
    status: int,
    message: str,
    *,
    kind: str | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    """Classify an HTTP error of ``provider`` by its status (see the module table).

    ``kind`` overrides the status's kind when the body says more. ``retry_after`` (from the body)
    wins over the headers' ``retry-after-ms`` / ``retry-after``; both apply only to retryable kinds.
    """
    if kind is None:
        kind = _STATUS_KINDS.get(status) or ("server" if status >= 500 else "other")
    error = ProviderError(
        f"{provider} returned HTTP {status} ({kind}): {message}",
        kind=kind,
        status_code=status,
        provider=provider,
    )
    if error.retryable:
        error.retry_after = retry_after if retry_after is not None else retry_after_from_headers(headers)
    return error


def transport_error(provider: str, exc: BaseException) -> ProviderError | None:
    """A retryable ``timeout`` or ``connection`` error for a transport failure, else ``None``.

    Recognises the exception by its class names, so httpx, httpx2, aiohttp and the SDKs' own
    ``APITimeoutError``/``APIConnectionError`` all work without importing any of them.
    """
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _TIMEOUT_CLASS_NAMES or "APITimeoutError" in names:
        kind = "timeout"
    elif names & _CONNECTION_CLASS_NAMES or "APIConnectionError" in names:
        kind = "connection"
    else:
        return None
    detail = str(exc) or type(exc).__name__
    return ProviderError(f"{provider} request failed ({kind}): {detail}", kind=kind, provider=provider)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return _non_negative(float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return _non_negative(float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _non_negative(when.timestamp() - time.time())


def parse_duration(value: object) -> float | None:
    """Seconds in a protobuf JSON duration such as ``"34s"`` or ``"0.5s"`` (Google's ``RetryInfo``)."""
    if not isinstance(value, str) or not value.endswith("s"):
        return None
    try:
        return _non_negative(float(value[:-1]))
    except ValueError:
        return None


def _non_negative(seconds: float) -> float | None:
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def object_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A tool's input schema as a JSON object schema (``type: object`` and ``properties`` present)."""
    result = dict(schema)
    result.setdefault("type", "object")
    if result["type"] == "object":
        result.setdefault("properties", {})
    return result


def dump_arguments(arguments: Mapping[str, Any]) -> str:
    """Tool-call arguments as the JSON text OpenAI-style APIs carry."""
    return json.dumps(arguments, ensure_ascii=False)


def load_arguments(provider: str, tool: str, text: str | None) -> dict[str, Any]:
    """Parse a tool call's JSON arguments; malformed JSON is a retryable generation failure."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ProviderError(
            f"{provider} returned malformed JSON arguments for tool {tool!r}: {exc}",
            kind="other",
            retryable=True,
            provider=provider,
        ) from None
    return value if isinstance(value, dict) else {"value": value}


def result_text(result: ToolResult) -> str:
    """A tool result as text for APIs without an error flag: failures are marked ``Error:``."""
    if result.is_error and not result.content.lower().startswith("error"):
        return f"Error: {result.content}"
    return result.content


def data_url(part: FilePart) -> str:
    """``data:<media type>;base64,<data>`` for a file part."""
    return f"data:{part.media_type};base64,{base64.b64encode(part.data).decode('ascii')}"


def file_as_text(part: FilePart) -> TextPart | None:
    """A ``text/*`` (or JSON) file as a text part naming the file; ``None`` for binary files."""
    if not (part.media_type.startswith("text/") or part.media_type == "application/json"):
        return None
    return TextPart(f"<file name={part.name!r}>\n{part.data.decode('utf-8', 'replace')}\n</file>")


def unsupported_file(provider: str, model: str, part: FilePart) -> ProviderError:
    """The non-retryable error for a file the model cannot take."""
    return ProviderError(
        f"{provider} model {model!r} does not accept files of type {part.media_type!r} ({part.name})",
        kind="bad_request",
        retryable=False,
        provider=provider,
    )


def int_at(data: Mapping[str, Any], *path: str) -> int:
    """The integer at ``path`` in nested usage data; 0 where absent or null."""
    value: Any = data
    for key in path:
        if not isinstance(value, Mapping):
            return 0
        value = value.get(key)
    return value if isinstance(value, int) else 0


def build_response(
    provider: str,
    parts: Sequence[AssistantPart],
    finish_reason: FinishReason,
    usage: Usage,
    raw_usage: Mapping[str, Any] | None,
    model: str | None,
) -> GenerationResponse:
    """The response, or a :class:`ProviderError` when the model produced no text and no tool call.

    An empty answer is ``empty_output`` (retryable) carrying the attempt's usage; one stopped by a
    content filter is ``other`` and not retried (the same prompt would be filtered again).
    """
    has_tool_calls = False
    has_text = False
    for part in parts:
        if type(part) is ToolCall:
            has_tool_calls = True
        elif type(part) is TextPart and part.text.strip():
            has_text = True
    if has_tool_calls:
        finish_reason = "tool_calls"
    elif not has_text:
        if finish_reason == "content_filter":
            raise ProviderError(
                f"{provider} returned no output: the response was blocked by a content filter",
                kind="other",
                retryable=False,
                provider=provider,
                usage=usage,
            )
        raise ProviderError(
            f"{provider} returned no text and no tool call (finish reason {finish_reason!r})",
            kind="empty_output",
            provider=provider,
            usage=usage,
        )
    return GenerationResponse(tuple(parts), finish_reason, usage, raw_usage, model, provider)
