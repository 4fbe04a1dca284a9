"""Wire models: the Expert Jobs API bodies, exactly as the spec states them.

camelCase on the wire (aliases), snake_case in Python. Request models validate at the edge;
responses are built by the engine from trusted data (``Job.to_wire``, ``Checkpoint.to_wire``) and
these models describe them (OpenAPI, tests). :func:`validation_reason` turns a pydantic error into
a 422 reason that names every offending field path.
"""

from __future__ import annotations

import math
import re
import sys
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
)

from expert_jobs.domain.checkpoint import CheckpointKind, RunState
from expert_jobs.domain.errors import JobErrorKind
from expert_jobs.domain.expert_key import ExpertKeyStr
from expert_jobs.domain.ids import ResourceId
from expert_jobs.domain.models import SPEC_MODEL_IDS
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

__all__ = [
    "MAX_FILE_NAME_LENGTH",
    "MAX_QUERY_LENGTH",
    "MAX_RETRIES_LIMIT",
    "MAX_STEPS_LIMIT",
    "AssistantMessageWire",
    "CheckpointData",
    "CheckpointListData",
    "CheckpointListResponse",
    "CheckpointResponse",
    "CheckpointWire",
    "ContinueJobRequest",
    "DelegationWire",
    "ErrorBody",
    "ExpertJob",
    "ExpertJobData",
    "ExpertJobResponse",
    "FilePartWire",
    "JobErrorWire",
    "ListJobsData",
    "ListJobsMeta",
    "ListJobsQuery",
    "ListJobsResponse",
    "MessageWire",
    "ModelId",
    "PendingToolCallWire",
    "ResumeFromRequest",
    "Skip",
    "StartJobRequest",
    "Take",
    "TextPartWire",
    "ThinkingPartWire",
    "ToolCallPartWire",
    "ToolResultWire",
    "ToolResultsMessageWire",
    "UpdateStatusRequest",
    "UserMessageWire",
    "validation_reason",
]

MAX_QUERY_LENGTH = 20_480
"""The longest ``query`` (characters) a request may carry."""
MAX_FILE_NAME_LENGTH = 20_480
"""The longest file name (characters) a request may carry; the workspace also refuses, with a 422,
names its file system cannot hold (on Linux a component over 255 bytes, a path over 4,096)."""
MAX_STEPS_LIMIT = 1_000_000
"""The largest ``maxSteps`` a request may ask for (every store holds it: PostgreSQL's are int4)."""
MAX_RETRIES_LIMIT = 100
"""The largest ``maxRetries`` a request may ask for."""


def _check_model_id(value: str, info: ValidationInfo) -> str:
    extra = (info.context or {}).get("extra_models", ())
    if value in SPEC_MODEL_IDS or value in extra:
        return value
    raise ValueError(f"unknown model {value!r}; expected one of: {', '.join(SPEC_MODEL_IDS)}")


ModelId = Annotated[
    str,
    AfterValidator(_check_model_id),
    WithJsonSchema({"type": "string", "enum": list(SPEC_MODEL_IDS)}),
]
"""One of the spec's 22 model ids (or an id the runtime registered, passed as validation context)."""


_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)


def _number(value: Any, *, integer: bool) -> Any:
    """Accept a number or a numeric string; refuse booleans, blanks, NaN and infinities."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, str):
        text = value.strip()
        # Plain decimal notation only: Python's own parsers also take "1_000", "inf" and "nan".
        if _DECIMAL.fullmatch(text) is None:
            raise ValueError(f"must be a number, got {value!r}")
        if integer and text.lstrip("+-").isdigit():
            try:
                value = int(text)
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
                raise ValueError(
                    f"must be a number of at most {sys.get_int_max_str_digits()} digits"
                ) from None
        else:
            value = float(text)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        if integer:
            if not value.is_integer():
                raise ValueError("must be a whole number")
            value = int(value)
    return value


def _as_float(value: Any) -> Any:
    return _number(value, integer=False)


def _as_int(value: Any) -> Any:
    return _number(value, integer=True)


Temperature = Annotated[
    float,
    BeforeValidator(_as_float),
    Field(ge=0, le=1),
    WithJsonSchema({"type": "string", "description": "A number from 0 to 1 (a number or a numeric string)"}),
]
"""``temperature``: 0 to 1."""
MaxSteps = Annotated[
    int,
    BeforeValidator(_as_int),
    Field(ge=1, le=MAX_STEPS_LIMIT),
    WithJsonSchema(
        {
            "type": "string",
            "description": f"A whole number from 1 to {MAX_STEPS_LIMIT} (a number or a numeric string)",
        }
    ),
]
"""``maxSteps``: 1 to :data:`MAX_STEPS_LIMIT`."""
MaxRetries = Annotated[
    int,
    BeforeValidator(_as_int),
    Field(ge=0, le=MAX_RETRIES_LIMIT),
    WithJsonSchema(
        {
            "type": "string",
            "description": f"A whole number from 0 to {MAX_RETRIES_LIMIT} (a number or a numeric string)",
        }
    ),
]
"""``maxRetries``: 0 to :data:`MAX_RETRIES_LIMIT`."""


def _unicode(value: str) -> str:
    """Text must be valid Unicode: JSON's ``"\\ud800"`` (a lone surrogate) cannot be stored or sent."""
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"must be valid Unicode text (a lone surrogate at position {exc.start})"
            ) from None
    return value


def _name(value: str) -> str:
    """Names, ids and filters: valid Unicode without NUL (PostgreSQL text cannot hold NUL, and no
    file name can)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return _unicode(value)


_TEXT = AfterValidator(_unicode)
_NAME = AfterValidator(_name)
FileName = Annotated[str, Field(max_length=MAX_FILE_NAME_LENGTH), _NAME]
Query = Annotated[str, Field(max_length=MAX_QUERY_LENGTH), _TEXT]


def _files(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Files = Annotated[
    list[FileName],
    BeforeValidator(_files),
    WithJsonSchema(
        {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "A file name or a list of names in the application's workspace (the"
            " service folds a name given twice into one)",
        }
    ),
]
"""``files``: one name or a list of names (valid Unicode, no NUL, at most
:data:`MAX_FILE_NAME_LENGTH` characters each)."""

Take = Annotated[int, BeforeValidator(_as_int), Field(ge=1, le=100)]
"""A page size: 1 to 100."""
Skip = Annotated[int, BeforeValidator(_as_int), Field(ge=0)]
"""How many items a page skips: any whole number >= 0; past the last item (however far) the page
is empty (the stores clamp what they cannot hold)."""

_REQUEST = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)
_RESPONSE = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class StartJobRequest(BaseModel):
    """Body of ``POST /api/studio/v1/expert_jobs/``."""

    model_config = _REQUEST

    expert_key: ExpertKeyStr = Field(alias="expertKey", max_length=511)
    query: Query | None = None
    files: Files | None = None
    temperature: Temperature | None = None
    max_steps: MaxSteps | None = Field(None, alias="maxSteps")
    max_retries: MaxRetries | None = Field(None, alias="maxRetries")
    model: ModelId | None = None


class ContinueJobRequest(BaseModel):
    """Body of ``POST {id}/continue``: an interactive answer or a follow-up query.

    With ``interactiveToolCallResult: true`` the ``query`` is the answer to a pending interactive
    tool call (``toolCallId`` picks it; else the first pending one). Otherwise ``query`` and/or
    ``files`` are a follow-up on a finished job.
    """

    model_config = _REQUEST

    query: Query | None = None
    files: Files | None = None
    interactive_tool_call_result: bool | None = Field(None, alias="interactiveToolCallResult")
    tool_call_id: Annotated[str, _NAME] | None = Field(None, alias="toolCallId", max_length=256)
    temperature: Temperature | None = None
    max_steps: MaxSteps | None = Field(None, alias="maxSteps")
    max_retries: MaxRetries | None = Field(None, alias="maxRetries")
    model: ModelId | None = None


class ResumeFromRequest(ContinueJobRequest):
    """Body of ``POST {id}/resume_from``: branch a new job from any checkpoint of this one."""

    checkpoint_id: ResourceId = Field(alias="checkpointId")


class UpdateStatusRequest(BaseModel):
    """Body of ``POST /api/studio/v1/expert_jobs/{id}`` (system)."""

    model_config = _REQUEST

    status: JobStatus


class ListJobsQuery(BaseModel):
    """Query of ``GET /api/studio/v1/expert_jobs/``."""

    model_config = _REQUEST

    application_id: ResourceId = Field(alias="applicationId")
    filter: Annotated[str, _NAME] | None = Field(None, min_length=1, max_length=256)
    sort: Literal["createdAt", "updatedAt"] | None = None
    order: Literal["asc", "desc"] | None = None
    take: Take = 100
    skip: Skip = 0


class ExpertJob(BaseModel):
    """The spec's ``expertJob`` object."""

    model_config = _RESPONSE

    type: Literal["expertJob"]
    id: ResourceId
    organization_id: ResourceId = Field(alias="organizationId")
    created_at: str = Field(alias="createdAt")
    updated_at: str = Field(alias="updatedAt")
    status: JobStatus
    runtime_version: Literal["v1.0"] = Field(alias="runtimeVersion")
    expert_key: ExpertKeyStr = Field(alias="expertKey")
    query: str | None = None
    files: list[str]
    interactive_tool_call_result: bool | None = Field(None, alias="interactiveToolCallResult")
    expert: dict[str, Any]
    model: ModelId
    temperature: float
    max_steps: int = Field(alias="maxSteps")
    max_retries: int = Field(alias="maxRetries")
    current_step: int = Field(alias="currentStep")
    total_steps: int = Field(alias="totalSteps")
    total_duration: int = Field(alias="totalDuration")
    usage: Usage
    application_id: ResourceId = Field(alias="applicationId")


class ExpertJobData(BaseModel):
    """``data`` of a single-job response."""

    model_config = _RESPONSE

    expert_job: ExpertJob = Field(alias="expertJob")


class ExpertJobResponse(BaseModel):
    """``{"data": {"expertJob": ...}}``."""

    model_config = _RESPONSE

    data: ExpertJobData


class ListJobsData(BaseModel):
    """``data`` of the list response."""

    model_config = _RESPONSE

    expert_jobs: list[ExpertJob] = Field(alias="expertJobs")


class ListJobsMeta(BaseModel):
    """Paging of the list response."""

    model_config = _RESPONSE

    total: int
    take: int
    skip: int


class ListJobsResponse(BaseModel):
    """``{"data": {"expertJobs": [...]}, "meta": {"total", "take", "skip"}}``."""

    model_config = _RESPONSE

    data: ListJobsData
    meta: ListJobsMeta


# --------------------------------------------------------------------------- checkpoints
# Checkpoints are rendered by ``Checkpoint.to_wire`` (plain data, on the read path); these models
# describe that rendering for the OpenAPI document and the tests. Every key is camelCase; values
# that name a kind (``tool_call``, ``rate_limit``) are identifiers, spelled as in Python.


class TextPartWire(BaseModel):
    """Text; ``signature``: an opaque provider token attached to it (Gemini)."""

    model_config = _RESPONSE

    type: Literal["text"]
    text: str
    signature: str | None = None


class FilePartWire(BaseModel):
    """A binary file given to the model (an image or a PDF), base64 in ``data``."""

    model_config = _RESPONSE

    type: Literal["file"]
    name: str
    media_type: str = Field(alias="mediaType")
    data: str


class ThinkingPartWire(BaseModel):
    """Reasoning the model produced; ``signature``, ``redactedData`` and ``providerData`` are opaque
    provider data replayed to the ``provider`` that produced it."""

    model_config = _RESPONSE

    type: Literal["thinking"]
    text: str
    signature: str | None = None
    redacted_data: str | None = Field(None, alias="redactedData")
    provider: str | None = None
    provider_data: dict[str, Any] | None = Field(None, alias="providerData")


class ToolCallPartWire(BaseModel):
    """A tool call the model asked for (``arguments``: the model's, as it sent them)."""

    model_config = _RESPONSE

    type: Literal["tool_call"]
    id: str
    name: str
    arguments: dict[str, Any]
    signature: str | None = None


class UserMessageWire(BaseModel):
    """What the user (or a parent expert) said: a query and its files."""

    model_config = _RESPONSE

    role: Literal["user"]
    parts: list[Annotated[TextPartWire | FilePartWire, Field(discriminator="type")]]


class AssistantMessageWire(BaseModel):
    """One model response: text, thinking and tool calls, in the order the model produced them."""

    model_config = _RESPONSE

    role: Literal["assistant"]
    parts: list[Annotated[TextPartWire | ThinkingPartWire | ToolCallPartWire, Field(discriminator="type")]]
    provider: str | None = None
    model: str | None = None


class ToolResultWire(BaseModel):
    """The result of one tool call, as text for the model; ``isError`` marks a failure."""

    model_config = _RESPONSE

    call_id: str = Field(alias="callId")
    name: str
    content: str
    is_error: bool = Field(alias="isError")


class ToolResultsMessageWire(BaseModel):
    """The results of every tool call of the preceding assistant message, in call order."""

    model_config = _RESPONSE

    role: Literal["tool"]
    results: list[ToolResultWire]


MessageWire = Annotated[
    UserMessageWire | AssistantMessageWire | ToolResultsMessageWire, Field(discriminator="role")
]
"""One message of a checkpoint's ``newMessages``."""


class PendingToolCallWire(BaseModel):
    """A tool call still awaiting its result (a delegate's or a person's answer)."""

    model_config = _RESPONSE

    id: str
    name: str
    arguments: dict[str, Any]
    signature: str | None


class DelegationWire(BaseModel):
    """A child run started for a delegate tool call of its parent run."""

    model_config = _RESPONSE

    call_id: str = Field(alias="callId")
    run_id: str = Field(alias="runId")
    expert_key: str = Field(alias="expertKey")
    query: str


class JobErrorWire(BaseModel):
    """Why a run failed or stopped (``JobError.to_data``): ``kind``, ``message`` and ``retryable``
    always; the rest where known, plus any context of its kind (``limitSeconds`` of a
    ``job_timeout``)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    kind: JobErrorKind
    message: str
    retryable: bool
    attempt: int | None = None
    status_code: int | None = Field(None, alias="statusCode")
    provider: str | None = None
    job_id: str | None = Field(None, alias="jobId")
    step: int | None = None
    exception: str | None = None


_Count = Annotated[int, Field(ge=0)]


class CheckpointWire(BaseModel):
    """A checkpoint as the API shows it (``Checkpoint.to_wire``): an immutable snapshot of a run,
    written at every step end and every stop."""

    model_config = _RESPONSE

    type: Literal["checkpoint"]
    id: ResourceId
    expert_job_id: ResourceId = Field(alias="expertJobId")
    run_id: str = Field(alias="runId")
    parent_run_id: str | None = Field(alias="parentRunId")
    seq: _Count
    step_number: _Count = Field(alias="stepNumber")
    kind: CheckpointKind
    status: JobStatus
    run_state: RunState = Field(alias="runState")
    expert_key: str = Field(alias="expertKey")
    created_at: str = Field(alias="createdAt", json_schema_extra={"format": "date-time"})
    new_messages: list[MessageWire] = Field(
        alias="newMessages", description="The messages this checkpoint added to its run's history"
    )
    message_count: _Count = Field(alias="messageCount")
    usage: Usage
    run_usage: Usage = Field(alias="runUsage")
    step_usage: Usage = Field(alias="stepUsage")
    total_steps: _Count = Field(alias="totalSteps")
    total_duration: _Count = Field(alias="totalDuration")
    retry_count: _Count = Field(alias="retryCount")
    pending_tool_calls: list[PendingToolCallWire] = Field(alias="pendingToolCalls")
    partial_tool_results: list[ToolResultWire] = Field(alias="partialToolResults")
    delegations: list[DelegationWire]
    error: JobErrorWire | None
    output: Any = Field(
        None,
        description=(
            "The run's validated output, a JSON value, when its expert declares an output schema: "
            "on the checkpoint where the run completes (the job's final one for the root run); "
            "absent otherwise"
        ),
    )


class CheckpointData(BaseModel):
    """``data`` of a single-checkpoint response."""

    model_config = _RESPONSE

    checkpoint: CheckpointWire


class CheckpointResponse(BaseModel):
    """``{"data": {"checkpoint": ...}}``."""

    model_config = _RESPONSE

    data: CheckpointData


class CheckpointListData(BaseModel):
    """``data`` of a page of checkpoints."""

    model_config = _RESPONSE

    checkpoints: list[CheckpointWire]


class CheckpointListResponse(BaseModel):
    """``{"data": {"checkpoints": [...]}, "meta": {"total", "take", "skip"}}``."""

    model_config = _RESPONSE

    data: CheckpointListData
    meta: ListJobsMeta


class ErrorBody(BaseModel):
    """Every error response: ``{"code", "error", "reason"}``."""

    model_config = _RESPONSE

    code: int
    error: str
    reason: Any


def validation_reason(exc: ValidationError, location: str = "body") -> str:
    """A 422 reason naming each offending field path, e.g. ``body.maxSteps: must be >= 1``."""
    problems = []
    for error in exc.errors(include_url=False):
        path = location
        for part in error["loc"]:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(f"{path}: {message}")
    return "; ".join(problems)
