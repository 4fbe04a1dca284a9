"""The HTTP transport: a Starlette ASGI app over :meth:`expert_jobs.api.Api.dispatch`.

Thin on purpose: every request becomes one ``dispatch`` call and its answer one response (a
``text/event-stream`` for the checkpoint stream). The app's lifespan starts the service's worker
and closes the service. Serve it with any ASGI server::

    uvicorn.run(app_from_config(load_config("expert-jobs.toml")), host="127.0.0.1", port=8000)

What the app does for the server:

- **Body**: handed to ``dispatch`` as the chunks the server receives, so it is read only on a
  route that takes one, only once the credentials are good, and never past ``max_body_bytes``
  (413). A response that leaves a request body unread closes the connection.
- **Mounting**: routes are matched on the path below the ASGI ``root_path`` (a Starlette or
  FastAPI ``Mount``, ``uvicorn --root-path``, with the path given in full or already cut). A
  mounted app's lifespan is not run by its host: run :func:`service_lifespan` in the host's.
- **HEAD**: the ``GET`` answer's status and headers (``Content-Length`` included), no body.
- **Dashboard**: ``/ui`` is the web dashboard (:mod:`expert_jobs.transports.web`, docs/dashboard.md).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from expert_jobs.api.dispatch import DEFAULT_MAX_BODY_BYTES, Api, ApiResponse
from expert_jobs.service.service import ExpertJobsService

if TYPE_CHECKING:
    from expert_jobs.config import Config

__all__ = [
    "DASHBOARD_PATH",
    "DEFAULT_MAX_BODY_BYTES",
    "app_from_config",
    "create_app",
    "route_path",
    "service_lifespan",
]

DASHBOARD_PATH = "/ui"
"""Where :func:`create_app` mounts the web dashboard."""


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def route_path(scope: Scope) -> str:
    """The request's path below the app's mount point (ASGI ``root_path``).

    ASGI servers and recent Starlette versions give ``path`` in full, ``root_path`` included
    (``Mount("/ej", app)``: ``root_path="/ej"``, ``path="/ej/api/..."``); older Starlette versions
    gave only what follows the mount. Both come out as ``/api/...``.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        rest = path[len(root_path) :]
        if rest == "" or rest.startswith("/"):
            return rest or "/"
    return path


@asynccontextmanager
async def service_lifespan(service: ExpertJobsService) -> AsyncIterator[None]:
    """Start ``service`` (its worker) and close it at the end: the lifespan of the app of
    :func:`create_app`. A host app that mounts that app runs this in its own lifespan, since a
    host runs no mounted app's lifespan::

        service = build_service(load_config("expert-jobs.toml"))

        @asynccontextmanager
        async def lifespan(app):
            async with service_lifespan(service):
                yield

        host = Starlette(routes=[Mount("/ej", create_app(service))], lifespan=lifespan)
    """
    await service.start()
    try:
        yield
    finally:
        await service.close()


class _Body:
    """The request body as the chunks the server receives, noting whether it was read to its end."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.finished = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._request.stream():
            if chunk:
                yield chunk
        self.finished = True


_DRAIN_BYTES = 65_536
"""An unread request body announced at most this long is read and dropped before the answer,
whoever sent it; past the route and credential checks, one up to ``max_body_bytes`` is."""
_DRAIN_SECONDS = 2.0
"""How long reading such a rest may take before the connection is closed instead."""
_BEFORE_CREDENTIALS = frozenset({401, 404, 405})
"""The answers a request can get before its credentials are known good (dispatch checks the
route, then the key): an unknown client never makes the server read more than ``_DRAIN_BYTES``."""


async def _drain(receive: Receive, headers: Mapping[str, str], limit: int) -> bool:
    """Read and drop the unread rest of a request body announced at most ``limit`` bytes long (a
    refused request's), so that the connection stays usable: closing a socket with unread data
    resets it, and the client, still sending or not, would lose the answer too (the peer's reset
    discards what it had not read yet). ``False`` (close the connection instead) for a longer,
    chunked or slow body, or a client that left."""
    length = headers.get("content-length", "").strip()
    if not length.isdigit() or len(length) > 12 or int(length) > limit:
        return False
    read = 0
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                read += len(message.get("body", b""))
                if read > limit:  # more than announced: no server should pass that on
                    return False
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        return False


def _announces_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("content-length", "").strip()
    return "transfer-encoding" in headers or (length != "" and length.strip("0") != "")


def create_app(
    service: ExpertJobsService,
    *,
    manage_service: bool = True,
    sse_heartbeat: float = 15.0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    dashboard: bool = True,
) -> Starlette:
    """An ASGI app serving the API of ``service``, and its web dashboard at ``/ui`` (unless
    ``dashboard`` is false; see docs/dashboard.md).

    With ``manage_service`` (default) the app's lifespan starts the service (its worker) and
    closes it at shutdown; pass ``False`` when the service's life is managed elsewhere. Mounted in
    a host app, the app's lifespan does not run: the host runs :func:`service_lifespan` instead.
    ``max_body_bytes`` (default 1 MiB) is the largest request body read: more is a 413.
    """
    api = Api(service, sse_heartbeat=sse_heartbeat, max_body_bytes=max_body_bytes)

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = _Body(request)
        try:
            answer = await api.dispatch(
                request.method,
                route_path(scope),
                request.headers.items(),
                request.query_params.multi_items(),
                body,
            )
        except ClientDisconnect:
            return  # the client left while sending its body: nobody to answer
        headers = dict(answer.headers)
        unread = not body.finished and _announces_body(request.headers)
        limit = _DRAIN_BYTES if answer.status in _BEFORE_CREDENTIALS else max(max_body_bytes, _DRAIN_BYTES)
        if unread and not await _drain(receive, request.headers, limit):
            headers["connection"] = "close"  # the unread rest of the body must not be taken as a request
        await _response(answer, headers, head=request.method == "HEAD")(scope, receive, send)

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1000})
            return
        await respond(scope, receive, send)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not manage_service:
            yield
            return
        async with service_lifespan(service):
            yield

    # One Starlette route, the dashboard's mount; every other path (whatever characters it holds)
    # and method reaches ``dispatch``, which owns the API's routing, 404 and 405.
    routes: list[Mount] = []
    if dashboard:
        from expert_jobs.transports.web import create_dashboard

        routes.append(Mount(DASHBOARD_PATH, app=create_dashboard(service)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.router.redirect_slashes = dashboard  # /ui -> /ui/; no other path has a route to redirect to
    app.router.default = handle
    app.state.service = service
    app.state.api = api
    return app


def _response(answer: ApiResponse, headers: dict[str, str], *, head: bool) -> Response:
    if answer.stream is not None:  # for HEAD, dispatch gave an empty stream
        return StreamingResponse(
            answer.stream, status_code=answer.status, headers=headers, media_type=answer.media_type
        )
    payload = _json(answer.body)
    if head:  # the GET answer's headers, Content-Length included; no body
        headers["content-length"] = str(len(payload))
        payload = b""
    return Response(payload, status_code=answer.status, headers=headers, media_type=answer.media_type)


def app_from_config(config: Config, *, max_body_bytes: int | None = None) -> Starlette:
    """The ASGI app of a configuration: its runtime, applications, keys and worker (started and
    stopped with the app). What ``expert-jobs serve`` runs under uvicorn. ``max_body_bytes``
    defaults to the configuration's ``[server] maxBodyBytes`` if it has one, else 1 MiB."""
    from expert_jobs.config import build_service

    if max_body_bytes is None:
        max_body_bytes = getattr(config.server, "max_body_bytes", None) or DEFAULT_MAX_BODY_BYTES
    return create_app(build_service(config), max_body_bytes=max_body_bytes)
