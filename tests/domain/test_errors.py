"""Error bodies with the spec's exact words, and errors that survive a process hop as data."""

from __future__ import annotations

import json
from typing import get_args

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
from expert_jobs.domain.errors import (
    JOB_ERROR_KINDS,
    JOB_ONLY_ERROR_KINDS,
    PROVIDER_ERROR_KINDS,
    JobError,
    MethodNotAllowed,
    ProviderErrorKind,
)
from expert_jobs.domain.wire import ErrorBody
from expert_jobs.providers.scripted import Fail


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


def test_provider_error_kinds_are_one_literal_type_and_a_typo_is_refused() -> None:
    assert get_args(ProviderErrorKind) == PROVIDER_ERROR_KINDS
    assert set(PROVIDER_ERROR_KINDS) > ProviderError.RETRYABLE_KINDS
    for kind in PROVIDER_ERROR_KINDS:
        assert ProviderError("x", kind=kind).kind == kind
    assert ProviderError("x", kind="conflict").retryable  # HTTP 409: the SDKs retry it too
    with pytest.raises(
        UsageError,
        match=r"unknown provider error kind 'overlaoded' \(did you mean 'overloaded'\?\); known kinds: ",
    ):
        ProviderError("x", kind="overlaoded")  # type: ignore[arg-type]


def test_a_scripted_failure_of_an_unknown_kind_is_refused_when_written() -> None:
    assert Fail("overloaded").kind == "overloaded"
    with pytest.raises(
        UsageError, match=r"unknown Fail kind 'overlaoded' \(did you mean 'overloaded'\?\)"
    ) as caught:
        Fail("overlaoded")  # type: ignore[arg-type]
    assert all(kind in str(caught.value) for kind in PROVIDER_ERROR_KINDS)


def test_job_error_kinds_are_the_provider_kinds_plus_the_jobs_own() -> None:
    assert (*PROVIDER_ERROR_KINDS, *JOB_ONLY_ERROR_KINDS) == JOB_ERROR_KINDS
    assert JOB_ONLY_ERROR_KINDS == ("max_steps", "job_timeout", "usage", "internal", "invalid_output")
    assert not set(JOB_ONLY_ERROR_KINDS) & set(PROVIDER_ERROR_KINDS)
    with pytest.raises(
        UsageError, match="unknown job error kind 'job_timout' \\(did you mean 'job_timeout'\\?\\)"
    ):
        JobError("job_timout", "x")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="must not repeat its fields: jobId"):
        JobError("internal", "x", details={"jobId": "a"})


def test_a_job_error_of_a_provider_failure_is_typed_and_keeps_its_json() -> None:
    failure = ProviderError("slow down", kind="rate_limit", status_code=429, provider="openai")
    error = JobError.from_provider(
        failure, "3 consecutive failed attempts: slow down", attempt=3, job_id="j1", step=4
    )
    assert (error.kind, error.retryable, error.status_code, error.provider, error.attempt) == (
        "rate_limit",
        True,
        429,
        "openai",
        3,
    )
    data = error.to_data()
    assert data == {
        "kind": "rate_limit",
        "message": "3 consecutive failed attempts: slow down",
        "retryable": True,
        "attempt": 3,
        "statusCode": 429,
        "provider": "openai",
        "jobId": "j1",
        "step": 4,
    }
    assert JobError.from_data(json.loads(json.dumps(data))) == error
    hash(error)  # a frozen value


@pytest.mark.parametrize(
    "error",
    [
        JobError("job_timeout", "over 10 s", job_id="j1", details={"limitSeconds": 10}),
        JobError("internal", "KeyError: 'x'", exception="KeyError", job_id="j1", step=2),
        JobError("usage", "Expert not found: x", exception="UnknownExpert"),
        JobError("max_steps", "step 3 reached maxSteps=3", job_id="j1"),
        JobError("authentication", "no key", provider="anthropic"),
    ],
)
def test_job_errors_round_trip_through_plain_data(error: JobError) -> None:
    data = json.loads(json.dumps(error.to_data()))
    assert (data["kind"], data["message"], data["retryable"]) == (error.kind, error.message, False)
    assert JobError.from_data(data) == error


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        # What the previous version stored, each as it wrote it.
        (
            {
                "kind": "rate_limit",
                "message": "m",
                "retryable": True,
                "statusCode": 429,
                "provider": "openai",
            },
            JobError("rate_limit", "m", True, status_code=429, provider="openai"),
        ),
        (
            {"kind": "job_timeout", "retryable": False, "jobId": "j1", "limitSeconds": 10, "message": "m"},
            JobError("job_timeout", "m", job_id="j1", details={"limitSeconds": 10}),
        ),
        (
            {
                "kind": "internal",
                "message": "m",
                "retryable": False,
                "exception": "KeyError",
                "jobId": "j1",
                "step": 2,
            },
            JobError("internal", "m", exception="KeyError", job_id="j1", step=2),
        ),
        ({"message": "step 3 reached maxSteps=3"}, JobError("max_steps", "step 3 reached maxSteps=3")),
        ({"kind": "UnknownExpert", "message": "m"}, JobError("usage", "m", exception="UnknownExpert")),
        (
            {"kind": "some_new_kind", "message": "m"},
            JobError("other", "m", details={"storedKind": "some_new_kind"}),
        ),
    ],
)
def test_job_errors_stored_by_earlier_versions_read(stored: dict[str, object], read: JobError) -> None:
    assert JobError.from_data(stored) == read
