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
409         ``conflict``          yes
429         ``rate_limit``        yes
503, 529    ``overloaded``        yes
other 5xx   ``server``            yes
==========  ====================  ==========

Adapters refine the status with what the body says (a bad key reported as 400, a quota or spend
limit reported as 429) by passing ``kind``. The ``x-should-retry`` header the Stainless-built SDKs
(``anthropic``, ``openai``) obey overrides the table's retryability, except for ``billing``.

A response that is not a valid answer (a 200 whose body is not JSON, JSON of the wrong shape, usage
figures that are negative, not whole numbers or above :data:`MAX_CALL_TOKENS`) is a retryable
``invalid_response``: :func:`unexpected_error` turns whatever an SDK or a parser raised into it, and
:func:`int_at` checks each usage figure as it is read.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.metadata
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Literal

from expert_jobs.domain.errors import ProviderError, ProviderErrorKind
from expert_jobs.domain.messages import AssistantPart, FilePart, TextPart, ThinkingPart, ToolCall, ToolResult
from expert_jobs.domain.models import MODELS, ModelInfo
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import FinishReason, GenerationRequest, GenerationResponse

__all__ = [
    "DEFAULT_MAX_OUTPUT_TOKENS",
    "DEFAULT_TIMEOUT",
    "EFFORT_BUDGETS",
    "IMAGE_MEDIA_TYPES",
    "MAX_CALL_TOKENS",
    "MIN_SDK_VERSIONS",
    "PDF_MEDIA_TYPE",
    "PROVIDER_ENV_VARS",
    "STREAM_DRAIN_SECONDS",
    "AdapterBase",
    "InvalidResponse",
    "build_response",
    "check_response",
    "check_sdk_version",
    "check_usage",
    "data_url",
    "drain_stream",
    "dump_arguments",
    "dump_usage",
    "error_from_status",
    "expect_type",
    "file_as_text",
    "int_at",
    "invalid_response",
    "load_arguments",
    "missing_sdk",
    "object_schema",
    "parse_duration",
    "parsed",
    "result_text",
    "retry_after_from_headers",
    "sdk_import_error",
    "transport_error",
    "unexpected_error",
    "unsupported_file",
]

DEFAULT_TIMEOUT = 300.0
"""Seconds a generation may take when the request does not say (as ``generation_timeout``)."""

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

MAX_CALL_TOKENS = 1_000_000_000
"""The most tokens one usage figure of one call may report; above it the response is ``invalid_response``.

A billion tokens is a thousand times the largest context window: a figure beyond it is garbage (a
proxy's placeholder, an overflow), and counting it would wreck the job's usage and its budget.
"""

MIN_SDK_VERSIONS: Mapping[str, str] = {"anthropic": "1.0", "openai": "3.0", "google-genai": "3.4"}
"""The oldest release of each SDK the adapters work with (the extras' lower bounds in pyproject.toml).

``anthropic`` 1.0 and ``openai`` 3.0 are the first on ``httpx2``, the HTTP client the adapters take;
``google-genai`` 3.0 moved to ``httpx2`` but imports cleanly under ``-W error`` only from 3.4 (3.0-3.3
have an invalid escape sequence in ``types.py``).
"""

_STATUS_KINDS: Mapping[int, ProviderErrorKind] = {
    400: "bad_request",
    401: "authentication",
    402: "billing",
    403: "authentication",
    404: "not_found",
    408: "timeout",
    409: "conflict",
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
_MALFORMED = (ValueError, TypeError, AttributeError, LookupError)
"""What parsing a malformed body raises: ``json.JSONDecodeError`` and ``pydantic.ValidationError``
are ``ValueError``; a field of the wrong type or missing ends in the others."""


def missing_sdk(package: str, extra: str) -> ImportError:
    """The error raised when an adapter's SDK is not installed, naming the extra to install."""
    return ImportError(
        f"the {package!r} package is needed for this provider and is not installed; install it with "
        f"pip install 'expert-jobs[{extra}]'"
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string (``"2.17.0rc1"`` -> ``(2, 17, 0)``)."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def _installed_version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _too_old(package: str, extra: str, found: str, needed: str) -> ImportError:
    return ImportError(
        f"the {package!r} package is too old for this provider: found version {found}, need >= {needed}; "
        f"upgrade it with pip install --upgrade 'expert-jobs[{extra}]'"
    )


def check_sdk_version(package: str, extra: str) -> None:
    """Raise ``ImportError`` when the installed ``package`` is older than :data:`MIN_SDK_VERSIONS` says.

    Called by an adapter module once its SDK imported; a package without distribution metadata (a
    vendored copy) is taken as it is.
    """
    needed = MIN_SDK_VERSIONS[package]
    found = _installed_version(package)
    if found is not None and _version_tuple(found) < _version_tuple(needed):
        raise _too_old(package, extra, found, needed)


def sdk_import_error(package: str, extra: str, exc: ImportError) -> ImportError:
    """The error for an adapter whose SDK (or its HTTP client) failed to import.

    Says which of three it is: the SDK is not installed, it is installed but older than the adapters
    need (found version V, need >= W: such a release lacks ``httpx2``), or it is recent enough but its
    import failed all the same (the cause is named).
    """
    found = _installed_version(package)
    if found is None:
        return missing_sdk(package, extra)
    needed = MIN_SDK_VERSIONS[package]
    if _version_tuple(found) < _version_tuple(needed):
        return _too_old(package, extra, found, needed)
    return ImportError(
        f"the {package!r} package (version {found}) is installed but could not be imported: {exc}; "
        f"reinstall it with pip install --force-reinstall 'expert-jobs[{extra}]'"
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

    def error(self, message: str, *, kind: ProviderErrorKind, retryable: bool | None = None) -> ProviderError:
        """A :class:`ProviderError` of this provider raised before or after the call (not by the SDK)."""
        return ProviderError(f"{self.name}: {message}", kind=kind, retryable=retryable, provider=self.name)


def error_from_status(
    provider: str,
    status: int,
    message: str,
    *,
    kind: ProviderErrorKind | None = None,
    retry_after: float | None = None,
    headers: Mapping[str, str] | None = None,
    should_retry_header: bool = True,
    retry_statuses: Collection[int] | None = None,
) -> ProviderError:
    """Classify an HTTP error of ``provider`` by its status (see the module table).

    ``kind`` overrides the status's kind when the body says more. ``retry_after`` (from the body)
    wins over the headers' ``retry-after-ms`` / ``retry-after``; both apply only to retryable kinds.
    With ``should_retry_header`` (the SDKs that honour it), ``x-should-retry: true`` / ``false`` makes
    the error retryable or not whatever its status, as those SDKs do; a ``billing`` error stays final.
    ``retry_statuses`` replaces the table's retryability for a kind taken from the status with "the
    status is one of these" (the statuses the provider's own SDK retries).
    """
    retryable: bool | None = None
    if kind is None:
        kind = _STATUS_KINDS.get(status) or ("server" if status >= 500 else "other")
        if retry_statuses is not None:
            retryable = status in retry_statuses
    if should_retry_header and headers and kind != "billing":
        verdict = headers.get("x-should-retry")
        if verdict == "true":
            retryable = True
        elif verdict == "false":
            retryable = False
    error = ProviderError(
        f"{provider} returned HTTP {status} ({kind}): {message}",
        kind=kind,
        retryable=retryable,
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
    kind: ProviderErrorKind
    if names & _TIMEOUT_CLASS_NAMES or "APITimeoutError" in names:
        kind = "timeout"
    elif names & _CONNECTION_CLASS_NAMES or "APIConnectionError" in names:
        kind = "connection"
    else:
        return None
    detail = str(exc) or type(exc).__name__
    return ProviderError(f"{provider} request failed ({kind}): {detail}", kind=kind, provider=provider)


class InvalidResponse(ValueError):
    """A provider's answer that parsed but makes no sense (raised while reading it, see :func:`int_at`).

    :func:`unexpected_error` turns it, like any other parsing failure, into ``invalid_response``.
    """


def expect_type(value: object, cls: type, what: str) -> None:
    """Raise :class:`InvalidResponse` unless ``value`` is a ``cls`` (an SDK's answer object).

    A body an SDK could not read as JSON of the expected type comes back as a string, a list or
    ``None``; the error shows the start of it (an HTML error page says more than its type).
    """
    if not isinstance(value, cls):
        shown = repr(value)
        shown = shown if len(shown) <= 200 else shown[:200] + "..."
        raise InvalidResponse(f"expected {what}, got {type(value).__name__}: {shown}")


def invalid_response(provider: str, detail: str, *, usage: Usage | None = None) -> ProviderError:
    """The retryable ``invalid_response`` error: the provider answered something that is not a response."""
    return ProviderError(
        f"{provider} returned an invalid response: {detail}",
        kind="invalid_response",
        provider=provider,
        usage=usage,
    )


def parsed(provider: str, parse: Callable[[], GenerationResponse]) -> GenerationResponse:
    """``parse()``, the adapter's reading of an answer: whatever else than a :class:`ProviderError`
    it raises means the provider answered something that is not a valid response
    (:func:`unexpected_error`), never a crashed run."""
    try:
        return parse()
    except ProviderError:
        raise
    except Exception as exc:
        raise unexpected_error(provider, exc) from exc


def unexpected_error(provider: str, exc: Exception) -> ProviderError:
    """A :class:`ProviderError` for any exception an SDK call or the parsing of its answer raised.

    Transport failures are ``timeout`` / ``connection`` (see :func:`transport_error`); a body that did
    not parse or had the wrong shape (``ValueError`` such as ``json.JSONDecodeError`` and pydantic's
    ``ValidationError``, ``TypeError``, ``AttributeError``, ``LookupError``, an SDK's
    ``APIResponseValidationError``) is a retryable ``invalid_response``; anything else is a
    non-retryable ``other`` naming the exception. Adapters call it last, so no exception but
    :class:`ProviderError` ever leaves ``generate`` (``asyncio.CancelledError`` is not an
    ``Exception`` and passes through untouched).
    """
    if isinstance(exc, ProviderError):
        return exc
    transport = transport_error(provider, exc)
    if transport is not None:
        return transport
    if isinstance(exc, InvalidResponse):
        return invalid_response(provider, str(exc))
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, _MALFORMED) or type(exc).__name__ == "APIResponseValidationError":
        return invalid_response(provider, detail)
    return ProviderError(f"{provider} SDK call failed: {detail}", kind="other", provider=provider)


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


def dump_usage(usage: Any, *, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
    """An SDK's usage model as plain data (``{}`` for ``None``), values as the provider sent them.

    The Stainless-built SDKs (``anthropic``, ``openai``) build answers without validating them, so a
    count may be a string or a boolean: ``mode="python"`` keeps it so (``"json"`` would turn ``True``
    into 1) for :func:`int_at` to refuse, and pydantic's serializer warnings about it are silenced.
    ``google-genai`` validates its models and has enums in them: it takes ``mode="json"``.
    """
    if usage is None:
        return {}
    data: dict[str, Any] = usage.model_dump(mode=mode, exclude_none=True, warnings=False)
    return data


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
    """The token count at ``path`` in nested usage data; 0 where absent or null.

    A count that is there but is not a whole number (a string, a float, a boolean), is negative or is
    above :data:`MAX_CALL_TOKENS` raises :class:`InvalidResponse` naming the field; so does a level
    of the path that is not an object.
    """
    value: Any = data
    for key in path:
        if value is None:
            return 0
        if not isinstance(value, Mapping):
            raise InvalidResponse(f"usage field {'.'.join(path)!r}: {value!r} is not an object")
        value = value.get(key)
    if value is None:
        return 0
    if type(value) is not int or not 0 <= value <= MAX_CALL_TOKENS:
        raise InvalidResponse(
            f"usage field {'.'.join(path)!r} is {value!r}, not a whole number from 0 to {MAX_CALL_TOKENS:,}"
        )
    return value


_PART_TYPES = frozenset({TextPart, ThinkingPart, ToolCall})


def check_usage(provider: str, usage: Usage) -> None:
    """Raise ``invalid_response`` when a counter of ``usage`` is above :data:`MAX_CALL_TOKENS`.

    A :class:`Usage` is already made of non-negative whole numbers, so this is five comparisons.
    """
    bound = MAX_CALL_TOKENS
    if (
        usage.input_tokens > bound
        or usage.output_tokens > bound
        or usage.reasoning_tokens > bound
        or usage.cached_input_tokens > bound
        or usage.total_tokens > 2 * bound
    ):
        raise invalid_response(provider, f"a usage figure is above {bound:,} tokens: {usage!r}")


def check_response(provider: str, response: object) -> GenerationResponse:
    """``response`` when it is a :class:`GenerationResponse` the engine can use, else ``invalid_response``.

    For providers that hand over a response object of their own making (``FunctionProvider``): it
    must be a ``GenerationResponse`` whose ``parts`` is a tuple or list of assistant parts and whose
    ``usage`` is a :class:`Usage` within :func:`check_usage`'s bound.
    """
    if type(response) is not GenerationResponse:
        raise invalid_response(provider, f"expected a GenerationResponse, got {type(response).__name__}")
    parts: object = response.parts
    if type(parts) is not tuple and type(parts) is not list:
        raise invalid_response(provider, f"parts must be a tuple of parts, got {type(parts).__name__}")
    for part in parts:
        if type(part) not in _PART_TYPES:
            raise invalid_response(provider, f"not an assistant part: {part!r}")
    usage = response.usage
    if type(usage) is not Usage:
        raise invalid_response(provider, f"usage must be a Usage, got {type(usage).__name__}")
    check_usage(provider, usage)
    return response


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
    content filter is ``other`` and not retried (the same prompt would be filtered again). A part of
    the wrong type (text that is not a string, a tool call without a string id and name or whose
    arguments are not an object) raises :class:`InvalidResponse`.
    """
    has_tool_calls = False
    has_text = False
    for part in parts:
        if type(part) is ToolCall:
            if type(part.id) is not str or type(part.name) is not str or type(part.arguments) is not dict:
                raise InvalidResponse(f"a tool call is malformed: {part!r}")
            has_tool_calls = True
        elif type(part) is TextPart:
            if part.text.strip():
                has_text = True
        elif type(part) is ThinkingPart:
            if type(part.text) is not str:
                raise InvalidResponse(f"a thinking part is malformed: {part!r}")
        else:
            raise InvalidResponse(f"not a response part: {part!r}")
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


STREAM_DRAIN_SECONDS = 0.5
"""How long a stream whose answer is complete may take to reach its end (so that its connection is
reused); a stream still open then is closed."""


async def drain_stream(events: AsyncIterator[object]) -> None:
    """Read what follows a stream's terminal event (normally only the end of the body) within
    :data:`STREAM_DRAIN_SECONDS`, so the connection can be reused. The answer is complete, so a
    failure here (the time, the connection failing after the answer) changes nothing."""
    try:
        async with asyncio.timeout(STREAM_DRAIN_SECONDS):
            async for _ in events:
                pass
    except Exception:
        pass
