"""The API layer: :func:`dispatch` (method, path, headers, query, body -> status, JSON body) over an
:class:`~expert_jobs.service.ExpertJobsService`, with authentication, routing, error mapping and
the OpenAPI document. A transport is a few lines over :meth:`Api.dispatch`."""

from expert_jobs.api.dispatch import (
    DEFAULT_MAX_BODY_BYTES,
    MAX_EVENT_ID,
    MAX_JSON_DEPTH,
    OPENAPI_PATH,
    PREFIX,
    Api,
    ApiResponse,
    Body,
    Headers,
    PayloadTooLarge,
    QueryParams,
    dispatch,
    sse_event,
)
from expert_jobs.api.openapi import openapi_document

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_EVENT_ID",
    "MAX_JSON_DEPTH",
    "OPENAPI_PATH",
    "PREFIX",
    "Api",
    "ApiResponse",
    "Body",
    "Headers",
    "PayloadTooLarge",
    "QueryParams",
    "dispatch",
    "openapi_document",
    "sse_event",
]
