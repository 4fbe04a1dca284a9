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
GET     ``/{expertJobId}/events/stream``     application   server-sent events (live)
GET     ``/openapi.json``                    none          the OpenAPI document
======  ===================================  ============  ==============================

``HEAD`` is served wherever ``GET`` is, with the same status and headers (a transport sends no
body; a stream is not followed), and a 405's ``Allow`` lists it.

Checks come in this order: route (404, then 405 with an ``Allow`` header), credentials (401; two
``Authorization`` headers are refused, never one picked), then, on the routes with a body: a
``Content-Length`` over the limit (413, before any of the body is read), the content type (422),
the body read up to its limit (413), its JSON (422: malformed, nested deeper than
:data:`MAX_JSON_DEPTH`, a number JSON cannot hold); then the schema of path, query and body (422),
then the operation's own outcomes. The body is read only once the credentials are known good.
Every error body is ``{"code", "error", "reason"}``; an unexpected failure is a 500 of the same
shape (and is logged), never a traceback on the wire.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal

from expert_jobs.api.openapi import openapi_document
from expert_jobs.api.paths import OPENAPI_PATH, PREFIX
from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import (
    MethodNotAllowed,
    NotFound,
    ServiceError,
    Unauthorized,
    ValidationFailed,
)
from expert_jobs.domain.events import JobEvent
from expert_jobs.service.applications import Application, Principal, SystemPrincipal
from expert_jobs.service.service import ExpertJobsService

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
    "sse_event",
]

_log = logging.getLogger("expert_jobs.api")


Headers = Mapping[str, str] | Iterable[tuple[str, str]]
"""Request headers: a mapping or ``(name, value)`` pairs; names are matched ignoring case."""
QueryParams = Mapping[str, str] | Iterable[tuple[str, str]]
"""Query parameters: a mapping or ``(name, value)`` pairs (a name given twice is a 422)."""
Body = bytes | AsyncIterable[bytes] | None
"""A request body: the bytes, or its chunks as they arrive (read only when the route takes a body
and the credentials are good, and never beyond the limit)."""

DEFAULT_MAX_BODY_BYTES = 1_048_576
"""The default limit of a request body (1 MiB): a larger one is a 413."""
MAX_JSON_DEPTH = 64
"""The deepest nesting of arrays and objects a JSON body may have (the API's bodies need 2)."""
MAX_EVENT_ID = 2**63 - 1
"""The largest ``Last-Event-ID`` accepted: a checkpoint ``seq`` is a signed 64-bit integer."""

_Key = Literal["application", "system", "none"]
_JSON_TYPES = ("application/json",)
_BODY_ROUTES = frozenset({"start", "update_status", "continue", "resume_from"})
_STREAM_ROUTES = frozenset({"stream", "events_stream"})
_EVENT_ID = re.compile(r"[0-9]+")
_MAX_INT_DIGITS = 4_300  # Python's own limit for int(str): past it, int() raises anyway
# How deep a body nests: its strings (escapes included) dropped, its brackets as steps of +1 / -1.
_JSON_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))


class PayloadTooLarge(ServiceError):
    """413: the request body is larger than the server's limit (checked while it is read)."""

    code = 413
    error = "Payload Too Large"


class _BodyReadFailed(Exception):
    """The transport's body iterator raised (the client went away...): re-raised to the transport."""


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


def _lower_headers(headers: Headers | None) -> tuple[dict[str, str], frozenset[str]]:
    """The headers by lower-case name, and the names given more than once (in any case)."""
    if headers is None:
        return {}, frozenset()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found: dict[str, str] = {}
    repeated: set[str] = set()
    for name, value in pairs:
        lowered = name.lower()
        if lowered in found:
            repeated.add(lowered)
        found[lowered] = value
    return found, frozenset(repeated)


def _allow(routes: Mapping[str, _Route]) -> str:
    methods = set(routes)
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body: larger than the limit of {limit} bytes")


def _declared_too_large(value: str | None, limit: int) -> bool:
    """Whether a ``Content-Length`` announces more than ``limit`` bytes (a value that is not a
    number is left to the read, which counts what really comes)."""
    if value is None:
        return False
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        return False
    return len(value) > 19 or int(value) > limit


async def _read_body(body: Body, limit: int) -> bytes:
    """The body's bytes, reading chunks only up to ``limit`` (413 beyond it)."""
    if body is None:
        return b""
    if isinstance(body, bytes | bytearray | memoryview):
        if len(body) > limit:
            raise _too_large(limit)
        return bytes(body)
    chunks: list[bytes] = []
    size = 0
    iterator = aiter(body)
    while True:
        try:
            chunk = await anext(iterator)
        except StopAsyncIteration:
            return b"".join(chunks)
        except Exception as exc:
            raise _BodyReadFailed() from exc
        size += len(chunk)
        if size > limit:
            await _close(iterator)
            raise _too_large(limit)
        chunks.append(chunk)


async def _close(iterator: object) -> None:
    """Close an async generator left unfinished (a body not read to its end, a stream not sent)."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


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


def _check_content_type(headers: Mapping[str, str]) -> None:
    content_type = headers.get("content-type")
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in _JSON_TYPES and not (media.startswith("application/") and media.endswith("+json")):
            raise ValidationFailed(f"body: expected Content-Type application/json, got {content_type!r}")


def _check_depth(body: bytes) -> None:
    """422 when arrays and objects nest deeper than :data:`MAX_JSON_DEPTH` (brackets in strings
    do not count). Decided before parsing, so no depth ever reaches the parser's recursion; in C
    but for one pass over the brackets (tens of milliseconds for a 1 MiB body of nothing else)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return
    steps = _JSON_STRINGS.sub(b"", body).translate(_BRACKET_STEPS, _NOT_BRACKETS)
    if max(accumulate(memoryview(steps).cast("b")), default=0) > MAX_JSON_DEPTH:
        raise ValidationFailed(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _json_body(body: bytes) -> Any:
    if not body.strip():
        raise ValidationFailed("body: a JSON object is required")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed("body: not valid UTF-8") from None
    _check_depth(body)
    try:
        data = json.loads(
            text, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
        )
    except RecursionError:  # not reachable past _check_depth; kept as the last line of defence
        raise ValidationFailed(f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValidationFailed(f"body: malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationFailed(f"body: expected a JSON object, got {type(data).__name__}")
    return data


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        raise ValueError(f"an integer of {digits} digits (at most {_MAX_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _last_event_id(value: str) -> int:
    """A ``Last-Event-ID``: a checkpoint seq, ASCII digits from 0 to :data:`MAX_EVENT_ID`."""
    digits = value.strip().lstrip("0") or "0"
    if _EVENT_ID.fullmatch(digits) is None or len(digits) > 19 or int(digits) > MAX_EVENT_ID:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise ValidationFailed(
            f"headers.Last-Event-ID: expected a checkpoint seq (0 to {MAX_EVENT_ID}), got {shown!r}"
        )
    return int(digits)


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
    if len(parts) == 3 and parts[1] == "events" and parts[2] == "stream":
        return {"GET": _Route("events_stream", "application")}, params
    if len(parts) == 3 and parts[1] == "checkpoints":
        if parts[2] == "stream":
            return {"GET": _Route("stream", "application")}, params
        return {"GET": _Route("checkpoint", "application")}, {**params, "checkpointId": parts[2]}
    return None


class Api:
    """The API over an :class:`ExpertJobsService`; :meth:`dispatch` serves one request.

    ``sse_heartbeat``: seconds of silence after which an event stream sends a keep-alive
    comment (proxies close idle connections). ``max_body_bytes``: the largest request body
    accepted (a larger one is a 413, found while reading: no more than that is ever read).
    """

    def __init__(
        self,
        service: ExpertJobsService,
        *,
        sse_heartbeat: float = 15.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {max_body_bytes}")
        self.service = service
        self.sse_heartbeat = sse_heartbeat
        self.max_body_bytes = max_body_bytes
        self._openapi: dict[str, Any] | None = None

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of this API (built once)."""
        if self._openapi is None:
            self._openapi = openapi_document()
        return self._openapi

    async def dispatch(
        self,
        method: str,
        path: str,
        headers: Headers | None = None,
        query: QueryParams | None = None,
        body: Body = None,
    ) -> ApiResponse:
        """Serve one request; never raises (errors are answered with their status and body), except
        for an error raised by an iterator given as ``body`` (the client went away...), which goes
        back to the transport unchanged.

        ``path`` is the path below the app's mount point (a transport strips its ``root_path``).
        For ``HEAD`` the answer is the ``GET`` answer (``body`` included, so a transport can give
        its ``Content-Length``) with a stream replaced by an empty one: a transport sends no body.
        """
        method = method.upper()
        head = method == "HEAD"
        found = _match(path)
        if found is None:
            return _error(NotFound(f"Route not found: {method} {path}"))
        routes, params = found
        route = routes.get("GET" if head else method)
        if route is None:
            allow = _allow(routes)
            return _error(
                MethodNotAllowed(f"Method {method} is not allowed on {path}; allowed: {allow}"),
                {"allow": allow},
            )
        try:
            lowered, repeated = _lower_headers(headers)
            principal: Principal | None = None
            if route.key != "none":
                if "authorization" in repeated:
                    raise Unauthorized()
                principal = self.service.authenticate(lowered.get("authorization"))
                wanted = SystemPrincipal if route.key == "system" else Application
                if not isinstance(principal, wanted):
                    raise Unauthorized()
            data: Any = None
            if route.name in _BODY_ROUTES:
                data = await self._body(lowered, repeated, body)
            elif route.name in _STREAM_ROUTES and "last-event-id" in repeated:
                raise ValidationFailed("headers.Last-Event-ID: given more than once")
            return await self._serve(route.name, principal, params, lowered, query, data, head)
        except _BodyReadFailed as failed:
            assert failed.__cause__ is not None
            raise failed.__cause__ from None
        except ServiceError as exc:
            return _error(exc)
        except Exception:
            _log.exception("%s %s failed", method, path)
            return ApiResponse(
                500, {"code": 500, "error": "Internal Server Error", "reason": "Internal Server Error"}
            )

    async def _body(self, headers: Mapping[str, str], repeated: frozenset[str], body: Body) -> Any:
        """The JSON object of a request body: size announced, content type, size read, JSON."""
        limit = self.max_body_bytes
        if _declared_too_large(headers.get("content-length"), limit):
            raise _too_large(limit)
        if "content-type" in repeated:
            raise ValidationFailed("headers.Content-Type: given more than once")
        _check_content_type(headers)
        return _json_body(await _read_body(body, limit))

    async def _serve(
        self,
        name: str,
        principal: Principal | None,
        params: Mapping[str, str],
        headers: Mapping[str, str],
        query: QueryParams | None,
        data: Any,
        head: bool = False,
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
            return await self._stream(principal, job_id, headers, head)
        if name == "events_stream":
            return await self._events_stream(principal, job_id, headers, head)
        if name == "get":
            job = await service.get(principal, job_id)
        elif name == "cancel":
            job = await service.cancel(principal, job_id)
        else:
            if name == "start":
                job = await service.start_job(principal, data)
            elif name == "update_status":
                job = await service.update_status(principal, job_id, data)
            elif name == "continue":
                job = await service.continue_job(principal, job_id, data)
            else:
                job = await service.resume_from(principal, job_id, data)
        return ApiResponse(200, {"data": {"expertJob": job.to_wire()}})

    async def _stream(
        self, principal: Principal, job_id: str, headers: Mapping[str, str], head: bool
    ) -> ApiResponse:
        """A job's checkpoints, one ``message`` event each, ``id`` its seq."""
        watch = await self.service.watch_checkpoints(
            principal, job_id, after_seq=_resume_after(headers), heartbeat=self.sse_heartbeat
        )
        return await _sse_response(watch, head, lambda item: sse_event(item.to_wire(), id=str(item.seq)))

    async def _events_stream(
        self, principal: Principal, job_id: str, headers: Mapping[str, str], head: bool
    ) -> ApiResponse:
        """A job's live events: ``checkpoint`` events (``id`` their seq, what ``Last-Event-ID``
        resumes) and, between them, the live ones (``transition``, ``step``, ``toolCall``,
        ``toolResult``, ``retry``, ``delta``) without an ``id``, so a client's last event id stays
        the last checkpoint's seq."""
        watch = await self.service.watch_events(
            principal, job_id, after_seq=_resume_after(headers), heartbeat=self.sse_heartbeat
        )

        def event(item: Checkpoint | JobEvent) -> str:
            if isinstance(item, JobEvent):
                return sse_event(item.to_wire(), event=item.kind)
            return sse_event(item.to_wire(), event="checkpoint", id=str(item.seq))

        return await _sse_response(watch, head, event)


def _resume_after(headers: Mapping[str, str]) -> int | None:
    """The checkpoint seq a ``Last-Event-ID`` header resumes after (``None``: from the start)."""
    last_event_id = headers.get("last-event-id", "")
    return _last_event_id(last_event_id) if last_event_id.strip() else None


_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _sse_response(watch: AsyncIterator[Any], head: bool, encode: Callable[[Any], str]) -> ApiResponse:
    """The ``text/event-stream`` answer following ``watch`` (``None`` items are heartbeats), each
    item sent as ``encode`` makes it; for ``HEAD`` (the job was checked: 404...) nothing is followed."""
    if head:
        await _close(watch)
        return ApiResponse(200, None, dict(_SSE_HEADERS), stream=_no_events())

    async def events() -> AsyncIterator[str]:
        try:
            async for item in watch:
                yield ": keep-alive\n\n" if item is None else encode(item)
        finally:
            await _close(watch)

    return ApiResponse(200, None, dict(_SSE_HEADERS), stream=events())


async def _no_events() -> AsyncIterator[str]:
    """The stream of a ``HEAD`` answer: nothing."""
    return
    yield  # an async generator that ends at once


async def dispatch(
    service: ExpertJobsService,
    method: str,
    path: str,
    headers: Headers | None = None,
    query: QueryParams | None = None,
    body: Body = None,
) -> ApiResponse:
    """Serve one request with a throw-away :class:`Api` over ``service`` (a transport serving many
    requests should keep one ``Api``). ``status, body = await dispatch(...)``."""
    return await Api(service).dispatch(method, path, headers, query, body)
