"""Wire models: the spec's bodies by alias, their limits, 422 reasons and the response schema."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from expert_jobs import ExpertJob, Job, JobStatus, StartJobRequest, Usage
from expert_jobs.domain.job import iso_utc
from expert_jobs.domain.models import SPEC_MODEL_IDS
from expert_jobs.domain.wire import (
    ContinueJobRequest,
    ErrorBody,
    ExpertJobResponse,
    ListJobsQuery,
    ListJobsResponse,
    ResumeFromRequest,
    UpdateStatusRequest,
    validation_reason,
)
from expert_jobs.testing import expert_keys, ids, invalid_start_requests, start_requests, statuses, usages

from .factories import make_job

SPEC_REQUIRED = [
    "type",
    "id",
    "organizationId",
    "createdAt",
    "updatedAt",
    "status",
    "runtimeVersion",
    "expertKey",
    "files",
    "expert",
    "model",
    "temperature",
    "maxSteps",
    "maxRetries",
    "currentStep",
    "totalSteps",
    "totalDuration",
    "usage",
    "applicationId",
]
SPEC_OPTIONAL = ["query", "interactiveToolCallResult"]
USAGE_FIELDS = ["inputTokens", "outputTokens", "reasoningTokens", "totalTokens", "cachedInputTokens"]
ISO_UTC = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
APP = "test12345678901234567890"


def reason_for(model: type[Any], data: Any, location: str = "body") -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return validation_reason(caught.value, location)


# --- the start request --------------------------------------------------------------------


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    """What a valid body means, computed without the library: numbers parsed, files as a list."""
    out = dict(body)
    if "temperature" in out:
        out["temperature"] = float(str(out["temperature"]))
    for name in ("maxSteps", "maxRetries"):
        if name in out:
            out[name] = int(float(str(out[name])))
    if isinstance(out.get("files"), str):
        out["files"] = [out["files"]]
    return out


@given(start_requests(require_input=False))
def test_start_requests_round_trip_by_alias(body: dict[str, Any]) -> None:
    request = StartJobRequest.model_validate(body)
    dumped = request.model_dump(by_alias=True, exclude_none=True)
    assert dumped == normalised(body)
    assert StartJobRequest.model_validate(dumped) == request
    assert type(dumped.get("maxSteps", 0)) is int
    assert type(dumped.get("temperature", 0.0)) is float


@given(start_requests())
def test_kit_start_requests_carry_a_query_or_files_by_default(body: dict[str, Any]) -> None:
    assert body.get("query") or body.get("files")


@given(start_requests(expert_key="writer@1.0.0", files=False))
def test_kit_start_requests_take_a_fixed_key_and_can_leave_files_out(body: dict[str, Any]) -> None:
    assert body["expertKey"] == "writer@1.0.0"
    assert "files" not in body
    assert body["query"]


@given(invalid_start_requests())
def test_each_out_of_range_field_is_rejected_with_a_reason_naming_it(
    case: tuple[dict[str, Any], str],
) -> None:
    body, field = case
    with pytest.raises(ValidationError) as caught:
        StartJobRequest.model_validate(body)
    assert {error["loc"][0] for error in caught.value.errors()} == {field}
    reason = validation_reason(caught.value)
    assert reason.startswith(f"body.{field}")
    assert all(part.startswith(f"body.{field}") for part in reason.split("; body."))


@pytest.mark.parametrize("field", ["temperature", "maxSteps", "maxRetries", "query", "files", "model"])
def test_the_kit_can_narrow_invalid_requests_to_one_field(field: str) -> None:
    @given(invalid_start_requests(fields=(field,)))
    def check(case: tuple[dict[str, Any], str]) -> None:
        assert case[1] == field
        assert f"body.{field}" in reason_for(StartJobRequest, case[0])

    check()


def test_invalid_start_requests_refuse_unknown_fields() -> None:
    with pytest.raises(ValueError, match="fields must be among"):
        invalid_start_requests(fields=("nope",))


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", 0, 0.0),
        ("temperature", 1, 1.0),
        ("temperature", 0.5, 0.5),
        ("temperature", "0", 0.0),
        ("temperature", "1", 1.0),
        ("temperature", "0.25", 0.25),
        ("temperature", "1e-1", 0.1),
        ("maxSteps", 1, 1),
        ("maxSteps", "1", 1),
        ("maxSteps", "250", 250),
        ("maxSteps", 7.0, 7),
        ("maxSteps", "7.0", 7),
        ("maxRetries", 0, 0),
        ("maxRetries", "0", 0),
        ("maxRetries", "5", 5),
        ("maxRetries", 3.0, 3),
    ],
)
def test_numbers_come_as_numbers_or_numeric_strings(field: str, value: Any, expected: Any) -> None:
    request = StartJobRequest.model_validate({"expertKey": "writer", field: value})
    got = request.model_dump(by_alias=True)[field]
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize("field", ["temperature", "maxSteps", "maxRetries"])
@pytest.mark.parametrize(
    "value",
    [
        *(True, False, math.nan, math.inf, -math.inf, "nan", "NaN", "inf", "", " ", "abc", "true", [1], {}),
        *("1_000", "0x10", "1e999", "1 0", "+-1", "١٢"),
    ],
)
def test_numbers_refuse_booleans_nan_infinity_and_words(field: str, value: Any) -> None:
    assert reason_for(StartJobRequest, {"expertKey": "writer", field: value}).startswith(f"body.{field}: ")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", -0.01, "greater than or equal to 0"),
        ("temperature", "1.01", "less than or equal to 1"),
        ("temperature", 2, "less than or equal to 1"),
        ("maxSteps", 0, "greater than or equal to 1"),
        ("maxSteps", "0", "greater than or equal to 1"),
        ("maxSteps", 1.5, "must be a whole number"),
        ("maxSteps", "2.5", "must be a whole number"),
        ("maxRetries", -1, "greater than or equal to 0"),
        ("maxRetries", "-1", "greater than or equal to 0"),
        ("maxRetries", 0.5, "must be a whole number"),
        ("maxSteps", True, "must be a number, not a boolean"),
        ("temperature", math.nan, "must be a finite number"),
        ("temperature", "1e999", "must be a finite number"),
        ("temperature", "nan", "must be a number, got 'nan'"),
        ("maxSteps", "1_000", "must be a number, got '1_000'"),
        ("temperature", "abc", "must be a number, got 'abc'"),
    ],
)
def test_out_of_range_numbers_say_why(field: str, value: Any, message: str) -> None:
    reason = reason_for(StartJobRequest, {"expertKey": "writer", field: value})
    assert reason.startswith(f"body.{field}: ")
    assert message in reason


def test_files_take_one_string_or_a_list() -> None:
    one = StartJobRequest.model_validate({"expertKey": "writer", "files": "a.txt"})
    many = StartJobRequest.model_validate({"expertKey": "writer", "files": ["a.txt", "b/c.md"]})
    none = StartJobRequest.model_validate({"expertKey": "writer", "files": []})
    assert (one.files, many.files, none.files) == (["a.txt"], ["a.txt", "b/c.md"], [])
    assert reason_for(StartJobRequest, {"expertKey": "w", "files": ["a", 3]}).startswith("body.files[1]: ")
    assert reason_for(StartJobRequest, {"expertKey": "w", "files": {"a": 1}}).startswith("body.files: ")


def test_query_and_each_file_are_at_most_20480_characters() -> None:
    at_limit = "x" * 20_480
    request = StartJobRequest.model_validate({"expertKey": "w", "query": at_limit, "files": [at_limit]})
    assert request.query == at_limit
    assert request.files == [at_limit]
    assert reason_for(StartJobRequest, {"expertKey": "w", "query": at_limit + "x"}).startswith("body.query: ")
    over = {"expertKey": "w", "files": ["ok", at_limit + "x"]}
    assert reason_for(StartJobRequest, over).startswith("body.files[1]: ")
    assert "at most 20480 characters" in reason_for(
        StartJobRequest, {"expertKey": "w", "files": at_limit + "x"}
    )


def test_expert_key_is_required_valid_and_at_most_511_characters() -> None:
    assert StartJobRequest.model_validate({"expertKey": "a" * 511}).expert_key == "a" * 511
    assert reason_for(StartJobRequest, {"expertKey": "a" * 512}).startswith("body.expertKey: ")
    assert reason_for(StartJobRequest, {}) == "body.expertKey: Field required"
    assert "invalid expert key 'Writer'" in reason_for(StartJobRequest, {"expertKey": "Writer"})
    assert reason_for(StartJobRequest, {"expertKey": "writer\n"}).startswith("body.expertKey: ")


def test_model_must_be_a_spec_id_unless_the_runtime_registered_it() -> None:
    reason = reason_for(StartJobRequest, {"expertKey": "w", "model": "gpt-6"})
    assert reason.startswith("body.model: unknown model 'gpt-6'; expected one of: claude-opus-4-5, ")
    request = StartJobRequest.model_validate(
        {"expertKey": "w", "model": "local"}, context={"extra_models": {"local"}}
    )
    assert request.model == "local"


def test_requests_take_snake_case_names_and_ignore_unknown_fields() -> None:
    request = StartJobRequest.model_validate({"expert_key": "w", "max_steps": "3", "somethingElse": 1})
    assert (request.expert_key, request.max_steps) == ("w", 3)


def test_several_bad_fields_are_all_named() -> None:
    reason = reason_for(StartJobRequest, {"expertKey": "w", "maxSteps": 0, "temperature": 3, "model": "x"})
    assert re.findall(r"(?:^|; )(body\.\w+): ", reason) == [
        "body.temperature",
        "body.maxSteps",
        "body.model",
    ]


def test_continue_and_resume_from_requests() -> None:
    answer = ContinueJobRequest.model_validate(
        {"query": "yes", "interactiveToolCallResult": True, "toolCallId": "call_1", "maxSteps": "4"}
    )
    assert (answer.interactive_tool_call_result, answer.tool_call_id, answer.max_steps) == (True, "call_1", 4)
    branch = ResumeFromRequest.model_validate({"checkpointId": APP, "query": "again"})
    assert branch.checkpoint_id == APP
    assert reason_for(ResumeFromRequest, {"checkpointId": "short"}).startswith("body.checkpointId: ")
    assert reason_for(ContinueJobRequest, {"toolCallId": "x" * 257}).startswith("body.toolCallId: ")


# --- status update and list query -----------------------------------------------------------


@given(statuses())
def test_status_update_takes_every_wire_status(status: JobStatus) -> None:
    assert UpdateStatusRequest.model_validate({"status": status.value}).status is status


@pytest.mark.parametrize("value", ["QUEUED", "cancelled", "", None, 1])
def test_status_update_refuses_other_words(value: Any) -> None:
    assert reason_for(UpdateStatusRequest, {"status": value}).startswith("body.status: ")


def test_list_query_defaults() -> None:
    query = ListJobsQuery.model_validate({"applicationId": APP})
    assert (query.take, query.skip, query.filter, query.sort, query.order) == (100, 0, None, None, None)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"take": "1"}, {"take": 1}),
        ({"take": "100"}, {"take": 100}),
        ({"skip": "0"}, {"skip": 0}),
        ({"skip": "100000"}, {"skip": 100_000}),
        ({"filter": "w"}, {"filter": "w"}),
        ({"filter": "w" * 256}, {"filter": "w" * 256}),
        ({"sort": "createdAt", "order": "asc"}, {"sort": "createdAt", "order": "asc"}),
        ({"sort": "updatedAt", "order": "desc"}, {"sort": "updatedAt", "order": "desc"}),
    ],
)
def test_list_query_accepts_its_ranges(params: dict[str, str], expected: dict[str, Any]) -> None:
    query = ListJobsQuery.model_validate({"applicationId": APP, **params})
    dumped = query.model_dump(by_alias=True)
    assert {k: dumped[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"take": "0"}, "take"),
        ({"take": "101"}, "take"),
        ({"take": "ten"}, "take"),
        ({"take": "1.5"}, "take"),
        ({"skip": "-1"}, "skip"),
        ({"filter": ""}, "filter"),
        ({"filter": "w" * 257}, "filter"),
        ({"sort": "status"}, "sort"),
        ({"order": "up"}, "order"),
        ({"applicationId": "short"}, "applicationId"),
        ({"applicationId": "TEST12345678901234567890"}, "applicationId"),
    ],
)
def test_list_query_rejects_out_of_range_values(params: dict[str, str], field: str) -> None:
    reason = reason_for(ListJobsQuery, {"applicationId": APP, **params}, "query")
    assert reason.startswith(f"query.{field}: ")


def test_list_query_needs_an_application_id() -> None:
    assert reason_for(ListJobsQuery, {}, "query") == "query.applicationId: Field required"


# --- the expertJob object -------------------------------------------------------------------


def test_expert_job_schema_requires_exactly_the_spec_fields() -> None:
    modes: list[Literal["validation", "serialization"]] = ["validation", "serialization"]
    for mode in modes:
        schema = ExpertJob.model_json_schema(by_alias=True, mode=mode)
        assert schema["required"] == SPEC_REQUIRED, mode
        assert set(schema["properties"]) == set(SPEC_REQUIRED) | set(SPEC_OPTIONAL)
    schema = ExpertJob.model_json_schema(by_alias=True, mode="serialization")
    assert schema["$defs"]["Usage"]["required"] == USAGE_FIELDS
    props = schema["properties"]
    assert props["type"]["const"] == "expertJob"
    assert props["runtimeVersion"]["const"] == "v1.0"
    assert props["model"]["enum"] == list(SPEC_MODEL_IDS)
    assert schema["$defs"]["JobStatus"]["enum"] == [s.value for s in JobStatus]


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    created = draw(st.floats(0, 4e9, allow_nan=False))
    return make_job(
        status=draw(statuses()),
        id=draw(ids()),
        organization_id=draw(ids()),
        application_id=draw(ids()),
        expert_key=draw(expert_keys()),
        model=draw(st.sampled_from(SPEC_MODEL_IDS)),
        temperature=draw(st.floats(0, 1) | st.sampled_from([0, 1])),
        max_steps=draw(st.integers(1, 10**6)),
        max_retries=draw(st.integers(0, 100)),
        created_at=created,
        updated_at=created + draw(st.floats(0, 1e6)),
        query=draw(st.none() | st.text(max_size=50)),
        files=tuple(draw(st.lists(st.text(max_size=20), max_size=3))),
        current_step=draw(st.integers(0, 1000)),
        total_steps=draw(st.integers(0, 1000)),
        total_duration_ms=draw(st.integers(0, 10**9)),
        usage=draw(usages()),
        interactive_tool_call_result=draw(st.none() | st.booleans()),
    )


@given(jobs())
def test_job_to_wire_validates_against_expert_job_and_round_trips(job: Job) -> None:
    wire = job.to_wire()
    model = ExpertJob.model_validate(wire)
    assert model.model_dump(by_alias=True, exclude_none=True, mode="json") == wire
    assert set(SPEC_REQUIRED) <= set(wire) <= set(SPEC_REQUIRED) | set(SPEC_OPTIONAL)
    assert ("query" in wire) is (job.query is not None)
    assert wire["type"] == "expertJob" and wire["runtimeVersion"] == "v1.0"
    assert wire["status"] == job.status.value and type(wire["status"]) is str
    assert wire["usage"] == job.usage.to_wire()
    for stamp, seconds in ((wire["createdAt"], job.created_at), (wire["updatedAt"], job.updated_at)):
        assert ISO_UTC.fullmatch(stamp), stamp
        assert abs(datetime.fromisoformat(stamp).timestamp() - seconds) < 0.001
    response = ExpertJobResponse.model_validate({"data": {"expertJob": wire}})
    assert response.model_dump(by_alias=True, exclude_none=True, mode="json") == {"data": {"expertJob": wire}}


def test_list_response_has_data_and_meta() -> None:
    wires = [make_job().to_wire() for _ in range(2)]
    body = {"data": {"expertJobs": wires}, "meta": {"total": 7, "take": 2, "skip": 4}}
    response = ListJobsResponse.model_validate(body)
    assert response.model_dump(by_alias=True, exclude_none=True, mode="json") == body
    assert ListJobsResponse.model_json_schema(by_alias=True)["$defs"]["ListJobsMeta"]["required"] == [
        "total",
        "take",
        "skip",
    ]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "job"}, "type"),
        ({"runtimeVersion": "v2.0"}, "runtimeVersion"),
        ({"id": "x"}, "id"),
        ({"status": "done"}, "status"),
        ({"model": "gpt-6"}, "model"),
        ({"expertKey": "Bad"}, "expertKey"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_expert_job_rejects_what_the_spec_does_not_allow(change: dict[str, Any], field: str) -> None:
    wire = {**make_job().to_wire(), **change}
    assert reason_for(ExpertJob, wire, "expertJob").startswith(f"expertJob.{field}: ")


@pytest.mark.parametrize("field", SPEC_REQUIRED)
def test_expert_job_needs_every_required_field(field: str) -> None:
    wire = make_job().to_wire()
    del wire[field]
    assert reason_for(ExpertJob, wire, "expertJob") == f"expertJob.{field}: Field required"


def test_iso_utc_has_milliseconds_and_z() -> None:
    assert iso_utc(0) == "1970-01-01T00:00:00.000Z"
    assert iso_utc(1_767_225_600.5) == "2026-01-01T00:00:00.500Z"
    assert iso_utc(1.0009) == "1970-01-01T00:00:01.000Z"


def test_error_body_model() -> None:
    body = {"code": 422, "error": "Validation Failed", "reason": "body.maxSteps: must be a whole number"}
    assert ErrorBody.model_validate(body).model_dump() == body
    assert ErrorBody.model_json_schema()["required"] == ["code", "error", "reason"]


def test_usage_inside_a_job_is_the_wire_usage() -> None:
    job = make_job(usage=Usage.of(10, 5, reasoning=2, cached=3))
    assert ExpertJob.model_validate(job.to_wire()).usage == job.usage
