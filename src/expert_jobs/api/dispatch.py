"""The transport-agnostic entry point: ``(method, path, headers, query, body) -> (status, json)``.

Routes (prefix ``/api/studio/v1/expert_jobs/``, exactly as the spec writes it, with its slash):

======  ===================================  ============  ==============================
method  path                                 key           operation
======  ===================================  ============  ==============================
GET     ``/``                                application   list jobs
POST    ``/``                                application   start a job
GET     ``/{expertJobId}``                   application   get a job
POST    ``/{expertJobId}``                   system        update a job's status
POST    ``/{expertJobId}/continue``          application   answer / follow up
POST    ``/{expertJobId}/resume_from``       application   branch from a checkpoint
POST    ``/{expertJobId}/cancel``            application   cancel a job
GET     ``/{expertJobId}/checkpoints``       application   page of checkpoints
GET     ``/{expertJobId}/checkpoints/stream`` application  server-sent events
GET     ``/{expertJobId}/checkpoints/{id}``  application   one checkpoint
GET     ``/openapi.json``                    none          the OpenAPI document
======  ===================================  ============  ==============================

Checks come in this order: route (404, then 405 with an ``Allow`` header), credentials (401),
content type and JSON (422), the schema of path, query and body (422), then the operation's own
outcomes. Every error body is ``{"code", "error", "reason"}``; an unexpected failure is a 500 of
the same shape (and is logged), never a traceback on the wire.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from expert_jobs.domain.errors import (
    MethodNotAllowed,
    NotFound,
    ServiceError,
    Unauthorized,
    ValidationFailed,
)
from expert_jobs.service.applications import Application, Principal, SystemPrincipal
from expert_jobs.service.service import ExpertJobsService

__all__ = [
    "OPENAPI_PATH",
    "PREFIX",
    "Api",
    "ApiResponse",
    "Headers",
    "QueryParams",
    "dispatch",
    "sse_event",
]

_log = logging.getLogger("expert_jobs.api")

PREFIX = "/api/studio/v1/expert_jobs/"
"""Every route of the API starts with this (the spec's collection path, trailing slash included)."""
OPENAPI_PATH = "/openapi.json"
"""Where the OpenAPI document is served (no credentials needed)."""

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
"""Request headers: a mapping or ``(name, value)`` pairs; names are matched ignoring case."""
QueryParams = Mapping[str, str] | Iterable[tuple[str, str]]
"""Query parameters: a mapping or ``(name, value)`` pairs (a name given twice is a 422)."""

_Key = Literal["application", "system", "none"]
_JSON_TYPES = ("application/json",)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """What :func:`dispatch` answers: a status and a JSON-ready body, or a stream.

    Unpacks as ``status, body = response``. ``stream``, when set, is the body of a
    ``text/event-stream`` response: chunks of server-sent-event text (``body`` is then ``None``).
    """

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: AsyncIterator[str] | None = None

    def __iter__(self) -> Iterator[Any]:
        return iter((self.status, self.body))

    @property
    def media_type(self) -> str:
        """``text/event-stream`` for a stream, else ``application/json``."""
        return "text/event-stream" if self.stream is not None else "application/json"


def sse_event(data: Any, *, event: str = "message", id: str | None = None) -> str:
    """One server-sent event: ``id`` (optional), ``event`` and ``data`` (JSON on one line)."""
    lines = [] if id is None else [f"id: {id}"]
    lines.append(f"event: {event}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return "\n".join(lines) + "\n\n"


def _error(exc: ServiceError, headers: Mapping[str, str] | None = None) -> ApiResponse:
    return ApiResponse(exc.code, exc.body(), dict(headers or {}))


def _lower_headers(headers: Headers | None) -> dict[str, str]:
    if headers is None:
        return {}
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): value for name, value in pairs}


def _query_dict(query: QueryParams | None) -> dict[str, str]:
    if query is None:
        return {}
    if isinstance(query, Mapping):
        return {str(k): v for k, v in query.items()}
    found: dict[str, str] = {}
    for name, value in query:
        if name in found:
            raise ValidationFailed(f"query.{name}: given more than once")
        found[name] = value
    return found


def _json_body(headers: Mapping[str, str], body: bytes | None) -> Any:
    content_type = headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in _JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
            raise ValidationFailed(f"body: expected Content-Type application/json, got {content_type!r}")
    if not body or not body.strip():
        raise ValidationFailed("body: a JSON object is required")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed("body: not valid UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValidationFailed(f"body: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailed(f"body: expected a JSON object, got {type(data).__name__}")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass(frozen=True, slots=True)
class _Route:
    name: str
    key: _Key


def _match(path: str) -> tuple[dict[str, _Route], dict[str, str]] | None:
    """The routes at ``path`` by method, and the path parameters; ``None``: no such path."""
    if path == OPENAPI_PATH:
        return {"GET": _Route("openapi", "none")}, {}
    if not path.startswith(PREFIX):
        return None
    rest = path[len(PREFIX) :]
    if rest == "":
        return {"GET": _Route("list", "application"), "POST": _Route("start", "application")}, {}
    parts = rest.split("/")
    if any(part == "" for part in parts):
        return None
    params = {"expertJobId": parts[0]}
    if len(parts) == 1:
        return {"GET": _Route("get", "application"), "POST": _Route("update_status", "system")}, params
    if len(parts) == 2:
        action = {
            "continue": ("POST", "continue"),
            "resume_from": ("POST", "resume_from"),
            "cancel": ("POST", "cancel"),
            "checkpoints": ("GET", "checkpoints"),
        }.get(parts[1])
        if action is None:
            return None
        return {action[0]: _Route(action[1], "application")}, params
    if len(parts) == 3 and parts[1] == "checkpoints":
        if parts[2] == "stream":
            return {"GET": _Route("stream", "application")}, params
        return {"GET": _Route("checkpoint", "application")}, {**params, "checkpointId": parts[2]}
    return None


class Api:
    """The API over an :class:`ExpertJobsService`; :meth:`dispatch` serves one request.

    ``sse_heartbeat``: seconds of silence after which a checkpoint stream sends a keep-alive
    comment (proxies close idle connections).
    """

    def __init__(self, service: ExpertJobsService, *, sse_heartbeat: float = 15.0) -> None:
        self.service = service
        self.sse_heartbeat = sse_heartbeat
        self._openapi: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of this API (built once)."""
        if self._openapi is None:
            from expert_jobs.api.openapi import openapi_document

            self._openapi = openapi_document()
        return self._openapi

    async def dispatch(
        self,
        method: str,
        path: str,
        headers: Headers | None = None,
        query: QueryParams | None = None,
        body: bytes | None = None,
    ) -> ApiResponse:
        """Serve one request; never raises (errors are answered with their status and body)."""
        method = method.upper()
        found = _match(path)
        if found is None:
            return _error(NotFound(f"Route not found: {method} {path}"))
        routes, params = found
        route = routes.get(method)
        if route is None:
            allow = ", ".join(sorted(routes))
            return _error(
                MethodNotAllowed(f"Method {method} is not allowed on {path}; allowed: {allow}"),
                {"allow": allow},
            )
        try:
            lowered = _lower_headers(headers)
            principal: Principal | None = None
            if route.key != "none":
                principal = self.service.authenticate(lowered.get("authorization"))
                wanted = SystemPrincipal if route.key == "system" else Application
                if not isinstance(principal, wanted):
                    raise Unauthorized()
            return await self._serve(route.name, principal, params, lowered, query, body)
        except ServiceError as exc:
            return _error(exc)
        except Exception:
            _log.exception("%s %s failed", method, path)
            return ApiResponse(
                500, {"code": 500, "error": "Internal Server Error", "reason": "Internal Server Error"}
            )

    async def _serve(
        self,
        name: str,
        principal: Principal | None,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        query: QueryParams | None,
        body: bytes | None,
    ) -> ApiResponse:
        service = self.service
        if name == "openapi":
            return ApiResponse(200, self.openapi())
        assert principal is not None
        job_id = params.get("expertJobId", "")
        if name == "list":
            return ApiResponse(200, (await service.list(principal, _query_dict(query))).to_wire())
        if name == "checkpoints":
            page = await service.list_checkpoints(principal, job_id, _query_dict(query))
            return ApiResponse(200, page.to_wire())
        if name == "checkpoint":
            checkpoint = await service.get_checkpoint(principal, job_id, params["checkpointId"])
            return ApiResponse(200, {"data": {"checkpoint": checkpoint.to_wire()}})
        if name == "stream":
            return await self._stream(principal, job_id, headers)
        if name == "get":
            job = await service.get(principal, job_id)
        elif name == "cancel":
            job = await service.cancel(principal, job_id)
        else:
            data = _json_body(headers, body)
            if name == "start":
                job = await service.start_job(principal, data)
            elif name == "update_status":
                job = await service.update_status(principal, job_id, data)
            elif name == "continue":
                job = await service.continue_job(principal, job_id, data)
            else:
                job = await service.resume_from(principal, job_id, data)
        return ApiResponse(200, {"data": {"expertJob": job.to_wire()}})

    async def _stream(self, principal: Principal, job_id: str, headers: Mapping[str, str]) -> ApiResponse:
        after: int | None = None
        last_event_id = headers.get("last-event-id")
        if last_event_id:
            if not last_event_id.strip().isdigit():
                raise ValidationFailed(
                    f"headers.Last-Event-ID: expected a checkpoint seq, got {last_event_id!r}"
                )
            after = int(last_event_id.strip())
        watch = await self.service.watch_checkpoints(
            principal, job_id, after_seq=after, heartbeat=self.sse_heartbeat
        )

        async def events() -> AsyncIterator[str]:
            async for item in watch:
                if item is None:
                    yield ": keep-alive\n\n"
                else:
                    yield sse_event(item.to_wire(), id=str(item.seq))

        return ApiResponse(
            200,
            None,
            {"cache-control": "no-cache", "x-accel-buffering": "no"},
            stream=events(),
        )


async def dispatch(
    service: ExpertJobsService,
    method: str,
    path: str,
    headers: Headers | None = None,
    query: QueryParams | None = None,
    body: bytes | None = None,
) -> ApiResponse:
    """Serve one request with a throw-away :class:`Api` over ``service`` (a transport serving many
    requests should keep one ``Api``). ``status, body = await dispatch(...)``."""
    return await Api(service).dispatch(method, path, headers, query, body)
