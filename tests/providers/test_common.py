"""The SDK-free helpers every adapter shares."""

from __future__ import annotations

import email.utils
import time

import httpx2
import pytest

from expert_jobs.domain.errors import ProviderError
from expert_jobs.domain.messages import FilePart, TextPart, ToolCall, ToolResult
from expert_jobs.domain.usage import Usage
from expert_jobs.providers._common import (
    AdapterBase,
    build_response,
    error_from_status,
    file_as_text,
    load_arguments,
    object_schema,
    parse_duration,
    result_text,
    retry_after_from_headers,
    transport_error,
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
        (409, "other", False),
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
