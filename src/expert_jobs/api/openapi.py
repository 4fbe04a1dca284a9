"""The OpenAPI 3.1 document of the API, generated from the wire models.

Request and response bodies come from the pydantic models of :mod:`expert_jobs.domain.wire`
(``models_json_schema``, every ``$ref`` under ``#/components/schemas``), the checkpoint objects'
included (their ``...Wire`` models, named here without the suffix: ``Checkpoint``, ``JobError``,
``ToolResult``...). Paths, parameters, responses and the security schemes follow the Expert Jobs
API specification, plus the extra routes (continue, resume_from, cancel, checkpoints) and the
transport's 413 for a body over the limit. Two refinements over the spec's text, both accepting
what the spec allows: ``temperature``, ``maxSteps`` and ``maxRetries`` are documented as numeric
strings *or* numbers, and ``take`` / ``skip`` as integers with their defaults (optional).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from pydantic.json_schema import models_json_schema

from expert_jobs.api.paths import PREFIX
from expert_jobs.domain.wire import (
    MAX_RETRIES_LIMIT,
    MAX_STEPS_LIMIT,
    CheckpointListResponse,
    CheckpointResponse,
    ContinueJobRequest,
    ExpertJobResponse,
    ListJobsResponse,
    ResumeFromRequest,
    StartJobRequest,
    UpdateStatusRequest,
)

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_ID = {
    "type": "string",
    "pattern": "^[a-z0-9]+$",
    "minLength": 24,
    "maxLength": 24,
    "description": "A unique identifier for a resource",
    "examples": ["test12345678901234567890"],
}
_NUMBER_STRING = "^(0(\\.[0-9]+)?|1(\\.0+)?|\\.[0-9]+)$"
# Numeric strings within the wire models' ranges (1..MAX_STEPS_LIMIT, 0..MAX_RETRIES_LIMIT).
_COUNT_STRING = {"maxSteps": "^([1-9][0-9]{0,5}|1000000)$", "maxRetries": "^(100|[1-9]?[0-9])$"}
_COUNT_RANGE = {"maxSteps": (1, MAX_STEPS_LIMIT), "maxRetries": (0, MAX_RETRIES_LIMIT)}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


def _error_schema(code: int, error: str, reason: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "code": {"type": "integer", "const": code},
            "error": {"type": "string", "const": error},
            "reason": reason if reason is not None else {"type": "string"},
        },
        "required": ["code", "error", "reason"],
    }


def _renamed(node: Any, names: dict[str, str]) -> Any:
    """``node`` with every reference to a schema of ``names`` (a ``$ref``, a discriminator's
    mapping, a title) using its new name."""
    if isinstance(node, dict):
        return {key: _renamed(value, names) for key, value in node.items()}
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    if isinstance(node, str):
        if node in names:
            return names[node]
        prefix, _, name = node.rpartition("/")
        if prefix and name in names and _REF.format(model=name) == node:
            return _REF.format(model=names[name])
    return node


def _refine_numbers(schema: dict[str, Any]) -> None:
    """``temperature``/``maxSteps``/``maxRetries``: a numeric string (the spec) or a number."""
    properties = schema.get("properties", {})
    if "temperature" in properties:
        properties["temperature"] = {
            "anyOf": [
                {"type": "string", "pattern": _NUMBER_STRING},
                {"type": "number", "minimum": 0, "maximum": 1},
                {"type": "null"},
            ],
            "description": "A number from 0 to 1 (a numeric string or a number)",
        }
    for name, pattern in _COUNT_STRING.items():
        if name in properties:
            minimum, maximum = _COUNT_RANGE[name]
            properties[name] = {
                "anyOf": [
                    {"type": "string", "pattern": pattern},
                    {"type": "integer", "minimum": minimum, "maximum": maximum},
                    {"type": "null"},
                ],
                "description": f"A whole number from {minimum} to {maximum} (a numeric string or a number)",
            }


def _schemas() -> dict[str, Any]:
    _, generated = models_json_schema(
        [
            (StartJobRequest, "validation"),
            (ContinueJobRequest, "validation"),
            (ResumeFromRequest, "validation"),
            (UpdateStatusRequest, "validation"),
            (ExpertJobResponse, "serialization"),
            (ListJobsResponse, "serialization"),
            (CheckpointResponse, "serialization"),
            (CheckpointListResponse, "serialization"),
        ],
        ref_template=_REF,
    )
    # The checkpoint's models are named ``...Wire`` in Python (beside the domain's own classes).
    names = {name: name.removesuffix("Wire") for name in generated["$defs"] if name.endswith("Wire")}
    schemas: dict[str, Any] = {
        names.get(name, name): _renamed(copy.deepcopy(schema), names)
        for name, schema in generated["$defs"].items()
    }
    for name in ("StartJobRequest", "ContinueJobRequest", "ResumeFromRequest"):
        _refine_numbers(schemas[name])
    schemas["BadRequestError"] = _error_schema(400, "Bad Request")
    schemas["UnauthorizedError"] = _error_schema(
        401, "Unauthorized", {"type": "string", "const": "Failed to authenticate"}
    )
    schemas["NotFoundError"] = _error_schema(404, "Not Found")
    schemas["ConflictError"] = _error_schema(409, "Conflict")
    schemas["ValidationFailedError"] = _error_schema(422, "Validation Failed", {})
    schemas["PayloadTooLargeError"] = _error_schema(413, "Payload Too Large")
    return schemas


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_UNAUTHORIZED = _json(
    _ref("UnauthorizedError"),
    "Authentication failed. Possible reasons:\n- Authorization header is not provided\n"
    "- Invalid API key\n- Application not found",
)
_JOB_OK = _json(_ref("ExpertJobResponse"), "Response for status 200")
_JOB_NOT_FOUND = _json(_ref("NotFoundError"), "Expert job not found.")
_PATH_INVALID = _json(_ref("ValidationFailedError"), "Path parameter schema validation failed.")
_TOO_LARGE = _json(
    _ref("PayloadTooLargeError"), "The request body is larger than the server's limit (1 MiB by default)."
)


def _path_param(name: str = "expertJobId") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": dict(_ID)}


def _page_params() -> list[dict[str, Any]]:
    return [
        {
            "name": "take",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 100},
        },
        {
            "name": "skip",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
    ]


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": _ref(name)}}}


def _event_stream(
    operation_id: str,
    summary: str,
    description: str,
    tags: list[str],
    ok: str,
    schema: dict[str, Any],
) -> dict[str, Any]:
    """A server-sent-event route of one job: the ``Last-Event-ID`` header resumes after a checkpoint
    seq; ``schema`` describes the events."""
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": tags,
            "security": [{"apiKey": []}],
            "parameters": [
                _path_param(),
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "Resume after this checkpoint seq (0 to 9223372036854775807).",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
            ],
            "responses": {
                "200": {"description": ok, "content": {"text/event-stream": {"schema": schema}}},
                "401": _UNAUTHORIZED,
                "404": _JOB_NOT_FOUND,
                "422": _json(
                    _ref("ValidationFailedError"), "Path parameter or Last-Event-ID validation failed."
                ),
            },
        }
    }


def _continue_like(operation_id: str, summary: str, description: str, body: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "tags": ["Expert Jobs"],
        "security": [{"apiKey": []}],
        "parameters": [_path_param()],
        "requestBody": _body(body),
        "responses": {
            "200": _JOB_OK,
            "400": _json(
                _ref("BadRequestError"),
                "Bad Request. Possible reasons:\n- Current status is unable to continue\n"
                "- No checkpoint found\n- Query or files are required\n- Provider API key not found",
            ),
            "401": _UNAUTHORIZED,
            "404": _JOB_NOT_FOUND,
            "413": _TOO_LARGE,
            "422": _json(
                _ref("ValidationFailedError"), "Request body or path parameter schema validation failed."
            ),
        },
    }


def _paths() -> dict[str, Any]:
    item = PREFIX + "{expertJobId}"
    tags = ["Expert Jobs"]
    return {
        PREFIX + "{expertJobId}": {
            "get": {
                "operationId": "getApiStudioV1Expert_jobsByExpertJobId",
                "summary": "Get an expert job",
                "description": "Retrieve detailed information about a specific expert job including its "
                "current status.",
                "tags": tags,
                "security": [{"apiKey": []}],
                "parameters": [_path_param()],
                "responses": {
                    "200": _JOB_OK,
                    "401": _UNAUTHORIZED,
                    "404": _JOB_NOT_FOUND,
                    "422": _PATH_INVALID,
                },
            },
            "post": {
                "operationId": "postApiStudioV1Expert_jobsByExpertJobId",
                "summary": "Update an expert job status",
                "description": "Update the status of an expert job. Internal API for system use only.",
                "tags": tags,
                "security": [{"systemKey": []}],
                "parameters": [_path_param()],
                "requestBody": _body("UpdateStatusRequest"),
                "responses": {
                    "200": _JOB_OK,
                    "401": _json(
                        _ref("UnauthorizedError"),
                        "Authentication failed. Possible reasons:\n- Authorization header is not provided\n"
                        "- Invalid system API key",
                    ),
                    "404": _JOB_NOT_FOUND,
                    "409": _json(
                        _ref("ConflictError"), "The job's current status does not allow the requested one."
                    ),
                    "413": _TOO_LARGE,
                    "422": _json(
                        _ref("ValidationFailedError"),
                        "Request body or path parameter schema validation failed.",
                    ),
                },
            },
        },
        PREFIX: {
            "get": {
                "operationId": "getApiStudioV1Expert_jobs",
                "summary": "List expert jobs",
                "description": "List all expert jobs in the application. Supports filtering by expert key, "
                "sorting, and pagination. `filter` keeps jobs whose expert key contains it (ignoring "
                "case); `sort` defaults to `createdAt`, `order` to `desc`.",
                "tags": tags,
                "security": [{"apiKey": []}],
                "parameters": [
                    {"name": "applicationId", "in": "query", "required": True, "schema": dict(_ID)},
                    {
                        "name": "filter",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 256},
                    },
                    {
                        "name": "sort",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "string",
                            "enum": ["createdAt", "updatedAt"],
                            "default": "createdAt",
                        },
                    },
                    {
                        "name": "order",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
                    },
                    *_page_params(),
                ],
                "responses": {
                    "200": _json(_ref("ListJobsResponse"), "Response for status 200"),
                    "401": _UNAUTHORIZED,
                    "422": _json(_ref("ValidationFailedError"), "Query parameter schema validation failed."),
                },
            },
            "post": {
                "operationId": "postApiStudioV1Expert_jobs",
                "summary": "Start an expert job",
                "description": "Start a new expert job execution. Requires an expert key, and optionally a "
                "query and/or files. The job runs asynchronously and can be monitored via checkpoints.",
                "tags": tags,
                "security": [{"apiKey": []}],
                "requestBody": _body("StartJobRequest"),
                "responses": {
                    "200": _JOB_OK,
                    "400": _json(
                        _ref("BadRequestError"),
                        "Bad Request. Possible reasons:\n- Query or files are required\n"
                        "- Provider API key not found",
                    ),
                    "401": _UNAUTHORIZED,
                    "404": _json(_ref("NotFoundError"), "Expert not found."),
                    "413": _TOO_LARGE,
                    "422": _json(_ref("ValidationFailedError"), "Request body schema validation failed."),
                },
            },
        },
        item + "/continue": {
            "post": _continue_like(
                "postApiStudioV1Expert_jobsByExpertJobIdContinue",
                "Continue an expert job",
                "Answer the pending interactive tool call (`interactiveToolCallResult: true`, the "
                "`query` is the answer) or follow up a completed, exceededMaxSteps or failed job with "
                "a new query and/or files.",
                "ContinueJobRequest",
            )
        },
        item + "/resume_from": {
            "post": _continue_like(
                "postApiStudioV1Expert_jobsByExpertJobIdResume_from",
                "Branch a new job from a checkpoint",
                "Start a new job from any checkpoint of the job's root run, optionally continued with an "
                "answer or a follow-up.",
                "ResumeFromRequest",
            )
        },
        item + "/cancel": {
            "post": {
                "operationId": "postApiStudioV1Expert_jobsByExpertJobIdCancel",
                "summary": "Cancel an expert job",
                "description": "Cancel the job: `canceled` at once when no worker holds it, else "
                "`canceling` until its worker stops it.",
                "tags": tags,
                "security": [{"apiKey": []}],
                "parameters": [_path_param()],
                "responses": {
                    "200": _JOB_OK,
                    "401": _UNAUTHORIZED,
                    "404": _JOB_NOT_FOUND,
                    "409": _json(_ref("ConflictError"), "The job can no longer be canceled."),
                    "422": _PATH_INVALID,
                },
            }
        },
        item + "/checkpoints": {
            "get": {
                "operationId": "getApiStudioV1Expert_jobsByExpertJobIdCheckpoints",
                "summary": "List a job's checkpoints",
                "description": "The job's checkpoints (every run's) in sequence order, paged.",
                "tags": tags,
                "security": [{"apiKey": []}],
                "parameters": [_path_param(), *_page_params()],
                "responses": {
                    "200": _json(_ref("CheckpointListResponse"), "Response for status 200"),
                    "401": _UNAUTHORIZED,
                    "404": _JOB_NOT_FOUND,
                    "422": _json(
                        _ref("ValidationFailedError"), "Path or query parameter schema validation failed."
                    ),
                },
            }
        },
        item + "/checkpoints/stream": _event_stream(
            "getApiStudioV1Expert_jobsByExpertJobIdCheckpointsStream",
            "Stream a job's checkpoints",
            "Server-sent events: one `message` event per checkpoint (`id` is its "
            "`seq`, `data` the checkpoint as JSON), those already written first; the stream ends "
            "once the job rests (completed, paused for a person, failed, exceededMaxSteps, "
            "canceled, expired). A `Last-Event-ID` header resumes after that seq.",
            tags,
            "A stream of checkpoints",
            {"type": "string"},
        ),
        item + "/events/stream": _event_stream(
            "getApiStudioV1Expert_jobsByExpertJobIdEventsStream",
            "Stream a job's live events",
            "Server-sent events, until the job rests (completed, paused for a "
            "person, failed, exceededMaxSteps, canceled, expired): a `checkpoint` event per "
            "checkpoint (`id` its `seq`, `data` the checkpoint as JSON), those already written "
            "first, and between them the live events of a job run by this server's worker: "
            "`transition`, `step`, `toolCall`, `toolResult`, `retry` and `delta` (a piece of a "
            "generation as it streams), without an `id`, `data` the event as JSON. A "
            "`Last-Event-ID` header resumes the checkpoints after that seq; live events are "
            "never replayed.",
            tags,
            "A stream of checkpoints and live events",
            _JOB_EVENT,
        ),
        item + "/checkpoints/{checkpointId}": {
            "get": {
                "operationId": "getApiStudioV1Expert_jobsByExpertJobIdCheckpointsByCheckpointId",
                "summary": "Get one checkpoint",
                "tags": tags,
                "security": [{"apiKey": []}],
                "parameters": [_path_param(), _path_param("checkpointId")],
                "responses": {
                    "200": _json(_ref("CheckpointResponse"), "Response for status 200"),
                    "401": _UNAUTHORIZED,
                    "404": _json(_ref("NotFoundError"), "Expert job or checkpoint not found."),
                    "422": _PATH_INVALID,
                },
            }
        },
    }


_JOB_EVENT: dict[str, Any] = {
    "description": "One server-sent event of a job's event stream.",
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "type": "string",
            "enum": ["checkpoint", "transition", "step", "toolCall", "toolResult", "retry", "delta"],
        },
        "id": {
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "A checkpoint event's seq (live events have none).",
        },
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The checkpoint, or the live event (type, expertJobId, runId, expertKey, "
            "stepNumber, timestamp, status, fromStatus, trigger, detail), as one line of JSON.",
        },
    },
}


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document (a fresh copy on every call)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Expert Jobs API",
            "version": "v1",
            "description": "Run LLM expert jobs: start, monitor, continue and cancel them.",
        },
        "tags": [{"name": "Expert Jobs"}],
        # The operations share response objects (_JOB_OK, ...); a JSON round trip gives each its
        # own, so no caller's change to one operation or one document reaches another.
        "paths": json.loads(json.dumps(_paths())),
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An application's API key: `Authorization: Bearer ejk_...`",
                },
                "systemKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A system key of the runtime: `Authorization: Bearer ejs_...`",
                },
            },
        },
    }
