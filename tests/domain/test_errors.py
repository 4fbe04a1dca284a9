"""Error bodies with the spec's exact words, and errors that survive a process hop as data."""

from __future__ import annotations

import json

import pytest

from expert_jobs import (
    BadRequest,
    CannotContinue,
    Conflict,
    ExpertJobsError,
    IllegalTransition,
    JobNotFound,
    NotFound,
    ProviderError,
    ProviderKeyMissing,
    ServiceError,
    StaleJobVersion,
    Unauthorized,
    UnknownExpert,
    UsageError,
    ValidationFailed,
)
from expert_jobs.domain.errors import MethodNotAllowed
from expert_jobs.domain.wire import ErrorBody


@pytest.mark.parametrize(
    ("error", "body"),
    [
        (
            BadRequest("Query or files are required"),
            {"code": 400, "error": "Bad Request", "reason": "Query or files are required"},
        ),
        (Unauthorized(), {"code": 401, "error": "Unauthorized", "reason": "Failed to authenticate"}),
        (
            NotFound("Expert job not found"),
            {"code": 404, "error": "Not Found", "reason": "Expert job not found"},
        ),
        (MethodNotAllowed("GET only"), {"code": 405, "error": "Method Not Allowed", "reason": "GET only"}),
        (
            Conflict("job x: cannot start from status 'completed'"),
            {"code": 409, "error": "Conflict", "reason": "job x: cannot start from status 'completed'"},
        ),
        (
            ValidationFailed("body.maxSteps: must be a whole number"),
            {"code": 422, "error": "Validation Failed", "reason": "body.maxSteps: must be a whole number"},
        ),
        (
            ValidationFailed([{"path": "body.maxSteps"}]),
            {"code": 422, "error": "Validation Failed", "reason": [{"path": "body.maxSteps"}]},
        ),
    ],
)
def test_error_bodies_use_the_spec_words(error: ServiceError, body: dict[str, object]) -> None:
    assert error.body() == body
    assert ErrorBody.model_validate(body).model_dump() == body
    assert json.loads(json.dumps(error.body())) == body


def test_service_errors_have_distinct_codes() -> None:
    kinds: list[type[ServiceError]] = [
        BadRequest,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        Conflict,
        ValidationFailed,
    ]
    assert [k.code for k in kinds] == [400, 401, 404, 405, 409, 422]
    assert all(issubclass(k, ServiceError) for k in kinds)


def test_the_tree_sorts_errors_by_who_must_act() -> None:
    for kind in (UsageError, IllegalTransition, ProviderError, ServiceError, StaleJobVersion):
        assert issubclass(kind, ExpertJobsError)
    for usage_kind in (UnknownExpert, JobNotFound, CannotContinue):
        assert issubclass(usage_kind, UsageError)
    assert issubclass(ProviderKeyMissing, ProviderError)
    assert not issubclass(IllegalTransition, ServiceError)


def test_errors_turn_into_plain_data() -> None:
    assert IllegalTransition("abc", "queued", "complete", ["start"]).to_data() == {
        "kind": "IllegalTransition",
        "message": "job abc: cannot complete from status 'queued'; allowed from there: start",
    }
    failure = ProviderError(
        "slow down", kind="rate_limit", retry_after=2.0, status_code=429, provider="openai"
    )
    assert failure.retryable
    assert json.loads(json.dumps(failure.to_data())) == {
        "kind": "rate_limit",
        "message": "slow down",
        "retryable": True,
        "statusCode": 429,
        "provider": "openai",
    }
    assert not ProviderError("no", kind="authentication").retryable


def test_provider_key_missing_uses_the_spec_reason() -> None:
    missing = ProviderKeyMissing("anthropic", ("ANTHROPIC_API_KEY",))
    assert str(missing).startswith("Provider API key not found")
    assert "ANTHROPIC_API_KEY" in str(missing)
    assert not missing.retryable


def test_not_found_messages() -> None:
    assert str(UnknownExpert("writer@9.9.9")) == "Expert not found: writer@9.9.9"
    assert str(JobNotFound("abc")) == "Expert job not found: abc"
