"""The SDK-free helpers every adapter shares."""

from __future__ import annotations

import email.utils
import importlib.metadata
import json
import time

import httpx2
import pydantic
import pytest

from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import FilePart, TextPart, ThinkingPart, ToolCall, ToolResult
from expert_jobs.domain.usage import Usage
from expert_jobs.ports.provider import GenerationResponse
from expert_jobs.providers import _common
from expert_jobs.providers._common import (
    MAX_CALL_TOKENS,
    AdapterBase,
    InvalidResponse,
    build_response,
    check_response,
    check_sdk_version,
    error_from_status,
    file_as_text,
    int_at,
    load_arguments,
    object_schema,
    parse_duration,
    result_text,
    retry_after_from_headers,
    sdk_import_error,
    transport_error,
    unexpected_error,
)
from tests.providers.kit import request


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (400, "bad_request", False),
        (401, "authentication", False),
        (402, "billing", False),
        (403, "authentication", False),
        (404, "not_found", False),
        (408, "timeout", True),
        (409, "conflict", True),
        (413, "bad_request", False),
        (422, "bad_request", False),
        (429, "rate_limit", True),
        (500, "server", True),
        (502, "server", True),
        (503, "overloaded", True),
        (504, "timeout", True),
        (529, "overloaded", True),
    ],
)
def test_status_table(status: int, kind: str, retryable: bool) -> None:
    error = error_from_status("acme", status, "nope", headers={"retry-after": "3"})

    assert (error.kind, error.retryable, error.status_code, error.provider) == (
        kind,
        retryable,
        status,
        "acme",
    )
    assert error.retry_after == (3.0 if retryable else None)
    assert str(error) == f"acme returned HTTP {status} ({kind}): nope"


def test_a_kind_from_the_body_wins_and_a_body_retry_after_beats_headers() -> None:
    billing = error_from_status("acme", 429, "quota", kind="billing", headers={"retry-after": "3"})
    assert (billing.kind, billing.retryable, billing.retry_after) == ("billing", False, None)

    limited = error_from_status("acme", 429, "slow down", retry_after=34.0, headers={"retry-after": "3"})
    assert limited.retry_after == 34.0


def test_retry_after_headers() -> None:
    assert retry_after_from_headers(None) is None
    assert retry_after_from_headers({}) is None
    assert retry_after_from_headers({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_from_headers({"retry-after-ms": "soon", "retry-after": "9"}) == 9.0
    assert retry_after_from_headers({"retry-after": "-4"}) == 0.0
    assert retry_after_from_headers({"retry-after": "tomorrow-ish"}) is None
    assert retry_after_from_headers({"retry-after": "inf"}) is None
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    seconds = retry_after_from_headers({"retry-after": in_a_minute})
    assert seconds is not None and 55 <= seconds <= 61
    assert retry_after_from_headers(httpx2.Headers({"Retry-After": "7"})) == 7.0


def test_protobuf_durations() -> None:
    assert parse_duration("34s") == 34.0
    assert parse_duration("0.5s") == 0.5
    assert parse_duration("34") is None
    assert parse_duration(34) is None
    assert parse_duration("xs") is None


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx2.ConnectError("refused"), "connection"),
        (httpx2.ReadError("reset"), "connection"),
        (httpx2.ReadTimeout("slow"), "timeout"),
        (httpx2.PoolTimeout("pool"), "timeout"),
        (TimeoutError(), "timeout"),
    ],
)
def test_transport_errors_are_recognised_by_class(exc: Exception, kind: str) -> None:
    error = transport_error("acme", exc)

    assert error is not None and error.kind == kind and error.retryable


def test_other_exceptions_are_not_transport_errors() -> None:
    assert transport_error("acme", ValueError("bug")) is None


def test_build_response_sets_tool_calls_finish_and_refuses_empty_output() -> None:
    usage = Usage.of(10, 2)
    call = ToolCall("c1", "f", {})

    response = build_response("acme", [TextPart(""), call], "stop", usage, {"a": 1}, "m")
    assert response.finish_reason == "tool_calls"
    assert response.parts == (TextPart(""), call)

    with pytest.raises(ProviderError) as empty:
        build_response("acme", [TextPart("  \n")], "length", usage, None, "m")
    assert empty.value.kind == "empty_output" and empty.value.retryable and empty.value.usage == usage

    with pytest.raises(ProviderError) as filtered:
        build_response("acme", [], "content_filter", usage, None, "m")
    assert filtered.value.kind == "other" and not filtered.value.retryable


def test_load_arguments() -> None:
    assert load_arguments("acme", "f", "") == {}
    assert load_arguments("acme", "f", None) == {}
    assert load_arguments("acme", "f", '{"a": [1]}') == {"a": [1]}
    assert load_arguments("acme", "f", "[1, 2]") == {"value": [1, 2]}
    with pytest.raises(ProviderError) as caught:
        load_arguments("acme", "f", '{"a": ')
    assert caught.value.retryable and "'f'" in str(caught.value)


def test_object_schema_and_result_text() -> None:
    assert object_schema({}) == {"type": "object", "properties": {}}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert object_schema(schema) == schema and object_schema(schema) is not schema

    assert result_text(ToolResult("c", "f", "ok")) == "ok"
    assert result_text(ToolResult("c", "f", "boom", True)) == "Error: boom"
    assert result_text(ToolResult("c", "f", "Error: boom", True)) == "Error: boom"


def test_text_files_become_text_and_binary_files_do_not() -> None:
    text = file_as_text(FilePart("data.json", "application/json", b'{"a": 1}'))
    assert text is not None and text.text == "<file name='data.json'>\n{\"a\": 1}\n</file>"
    assert file_as_text(FilePart("a.png", "image/png", b"\x89PNG")) is None


def test_unknown_models_get_permissive_defaults() -> None:
    base = AdapterBase(default_timeout=12.0)

    info = base.model_info("my-finetune")
    assert (info.accepts_temperature, info.reasons, info.max_output_tokens) == (True, False, 8192)
    assert base.model_info("gpt-5").accepts_temperature is False
    assert base.temperature_for(request("gpt-5", temperature=0.5), base.model_info("gpt-5")) is None
    assert base.temperature_for(request("gpt-4.1", temperature=0.5), base.model_info("gpt-4.1")) == 0.5
    assert base.timeout_for(request("gpt-5")) == 30.0
    no_timeout = request("gpt-5")
    assert base.timeout_for(type(no_timeout)(no_timeout.model, "", ())) == 12.0


@pytest.mark.parametrize(
    ("status", "header", "kind", "retryable"),
    [
        (400, "true", "bad_request", True),
        (500, "false", "server", False),
        (429, "false", "rate_limit", False),
        (409, "false", "conflict", False),
        (402, "true", "billing", False),  # out of credit stays final whatever the header says
        (503, "maybe", "overloaded", True),
    ],
)
def test_x_should_retry_overrides_the_status_as_the_stainless_sdks_do(
    status: int, header: str, kind: str, retryable: bool
) -> None:
    error = error_from_status("acme", status, "nope", headers={"x-should-retry": header})

    assert (error.kind, error.retryable) == (kind, retryable)


def test_x_should_retry_is_ignored_where_the_sdk_ignores_it_and_retry_statuses_decide() -> None:
    headers = {"x-should-retry": "true"}
    statuses = frozenset({429, 500, 503})

    not_found = error_from_status("g", 404, "no", headers=headers, should_retry_header=False)
    assert not not_found.retryable
    conflict = error_from_status("g", 409, "no", should_retry_header=False, retry_statuses=statuses)
    assert (conflict.kind, conflict.retryable) == ("conflict", False)
    unimplemented = error_from_status("g", 501, "no", should_retry_header=False, retry_statuses=statuses)
    assert (unimplemented.kind, unimplemented.retryable) == ("server", False)
    limited = error_from_status("g", 429, "slow", retry_after=2.0, retry_statuses=statuses)
    assert (limited.kind, limited.retryable, limited.retry_after) == ("rate_limit", True, 2.0)
    quota = error_from_status("g", 429, "daily", kind="billing", retry_statuses=statuses)
    assert (quota.kind, quota.retryable) == ("billing", False)


@pytest.mark.parametrize(
    ("data", "path", "expected"),
    [
        ({"a": 5}, ("a",), 5),
        ({}, ("a",), 0),
        ({"a": None}, ("a",), 0),
        ({"a": {"b": 7}}, ("a", "b"), 7),
        ({"a": None}, ("a", "b"), 0),
        ({"a": MAX_CALL_TOKENS}, ("a",), MAX_CALL_TOKENS),
    ],
)
def test_int_at_reads_token_counts(data: dict[str, object], path: tuple[str, ...], expected: int) -> None:
    assert int_at(data, *path) == expected


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"a": -1}, ("a",)),
        ({"a": MAX_CALL_TOKENS + 1}, ("a",)),
        ({"a": 10**30}, ("a",)),
        ({"a": 3.5}, ("a",)),
        ({"a": 3.0}, ("a",)),
        ({"a": "12"}, ("a",)),
        ({"a": True}, ("a",)),
        ({"a": [1]}, ("a",)),
        ({"a": "x"}, ("a", "b")),
        ({"a": {"b": -3}}, ("a", "b")),
    ],
)
def test_int_at_refuses_figures_that_are_not_sane_token_counts(
    data: dict[str, object], path: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidResponse) as caught:
        int_at(data, *path)

    assert repr(".".join(path)) in str(caught.value)


@pytest.mark.parametrize(
    ("exc", "kind", "retryable"),
    [
        (json.JSONDecodeError("Expecting value", "<html>", 0), "invalid_response", True),
        (pydantic.TypeAdapter(int).validate_python, "invalid_response", True),  # a ValidationError
        (AttributeError("'str' object has no attribute 'content'"), "invalid_response", True),
        (TypeError("'NoneType' object is not iterable"), "invalid_response", True),
        (KeyError("candidates"), "invalid_response", True),
        (InvalidResponse("usage field 'x' is -1"), "invalid_response", True),
        (httpx2.ConnectError("refused"), "connection", True),
        (httpx2.ReadTimeout("slow"), "timeout", True),
        (RuntimeError("Cannot send a request, as the client has been closed."), "other", False),
    ],
)
def test_unexpected_errors_become_provider_errors(exc: object, kind: str, retryable: bool) -> None:
    if callable(exc):  # build the pydantic ValidationError by failing a validation
        with pytest.raises(pydantic.ValidationError) as failed:
            exc("not a number")
        exc = failed.value
    assert isinstance(exc, Exception)

    error = unexpected_error("acme", exc)

    assert (error.kind, error.retryable, error.provider) == (kind, retryable, "acme")
    assert str(error).startswith("acme ")
    assert unexpected_error("acme", error) is error


def test_an_sdk_response_validation_error_is_an_invalid_response() -> None:
    class APIResponseValidationError(Exception):
        pass

    error = unexpected_error("acme", APIResponseValidationError("Data returned by API invalid"))

    assert (error.kind, error.retryable) == ("invalid_response", True)


def test_build_response_refuses_malformed_parts() -> None:
    usage = Usage.of(1, 1)
    malformed: list[object] = [
        ToolCall("c1", "f", "not an object"),  # type: ignore[arg-type]
        ToolCall(None, "f", {}),  # type: ignore[arg-type]
        ToolCall("c1", 7, {}),  # type: ignore[arg-type]
        ThinkingPart(None),  # type: ignore[arg-type]
        "just a string",
    ]
    for part in malformed:
        with pytest.raises(InvalidResponse):
            build_response("acme", [part], "stop", usage, None, "m")  # type: ignore[list-item]
    with pytest.raises(
        AttributeError
    ):  # text that is not a string (the adapters turn it into invalid_response)
        build_response("acme", [TextPart(None)], "stop", usage, None, "m")  # type: ignore[arg-type]


def _response(usage: object = None, parts: object = (TextPart("hi"),)) -> GenerationResponse:
    return GenerationResponse(parts, "stop", Usage.of(3, 4) if usage is None else usage)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "detail"),
    [
        ("hello", "expected a GenerationResponse, got str"),
        (None, "expected a GenerationResponse, got NoneType"),
        ({"parts": []}, "expected a GenerationResponse, got dict"),
        (_response(parts="hi"), "parts must be a tuple of parts, got str"),
        (_response(parts=("hi",)), "not an assistant part: 'hi'"),
        (_response(usage={"inputTokens": 3}), "usage must be a Usage, got dict"),
        (_response(usage=Usage.of(MAX_CALL_TOKENS + 1, 0)), "above 1,000,000,000 tokens"),
        (_response(usage=Usage.of(0, 0, cached=MAX_CALL_TOKENS * 5)), "above 1,000,000,000 tokens"),
    ],
)
def test_check_response_refuses_what_the_engine_cannot_use(value: object, detail: str) -> None:
    with pytest.raises(ProviderError) as caught:
        check_response("fn", value)

    assert (caught.value.kind, caught.value.retryable, caught.value.provider) == (
        "invalid_response",
        True,
        "fn",
    )
    assert detail in str(caught.value)


def test_check_response_passes_a_good_response_through() -> None:
    response = _response(usage=Usage.of(MAX_CALL_TOKENS, MAX_CALL_TOKENS))
    assert check_response("fn", response) is response
    listed = _response(parts=[TextPart("a"), ToolCall("c", "f", {})])
    assert check_response("fn", listed) is listed


@pytest.mark.parametrize(
    ("found", "needed", "old"),
    [
        ("0.70.0", "1.0", True),
        ("1.0.0", "1.0", False),
        ("0.9.9", "1.0", True),
        ("3.10", "3.4", False),
        ("3.4.0rc1", "3.4", False),
        ("2.17.0", "1.0", False),
        ("weird", "1.0", True),
    ],
)
def test_sdk_version_comparison(found: str, needed: str, old: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "version", lambda name: found)
    monkeypatch.setitem(_common.MIN_SDK_VERSIONS, "acme-sdk", needed)  # type: ignore[index]

    if old:
        with pytest.raises(ImportError, match=f"found version {found}, need >= {needed}"):
            check_sdk_version("acme-sdk", "acme")
    else:
        check_sdk_version("acme-sdk", "acme")


def test_an_sdk_without_metadata_is_taken_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)

    check_sdk_version("anthropic", "anthropic")
    error = sdk_import_error("anthropic", "anthropic", ImportError("No module named 'anthropic'"))
    assert "is not installed; install it with pip install 'expert-jobs[anthropic]'" in str(error)
