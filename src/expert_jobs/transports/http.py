"""The HTTP transport: a Starlette ASGI app over :meth:`expert_jobs.api.Api.dispatch`.

Thin on purpose: every request becomes one ``dispatch`` call and its answer one response (a
``text/event-stream`` for the checkpoint stream). The app's lifespan starts the service's worker
and closes the service. Serve it with any ASGI server::

    uvicorn.run(app_from_config(load_config("expert-jobs.toml")), host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from expert_jobs.api.dispatch import Api
from expert_jobs.service.service import ExpertJobsService

if TYPE_CHECKING:
    from expert_jobs.config import Config

__all__ = ["app_from_config", "create_app"]


def _json(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def create_app(
    service: ExpertJobsService, *, manage_service: bool = True, sse_heartbeat: float = 15.0
) -> Starlette:
    """An ASGI app serving the API of ``service``.

    With ``manage_service`` (default) the app's lifespan starts the service (its worker) and
    closes it at shutdown; pass ``False`` when the service's life is managed elsewhere.
    """
    api = Api(service, sse_heartbeat=sse_heartbeat)

    async def endpoint(request: Request) -> Response:
        body = await request.body() if request.method in ("POST", "PUT", "PATCH") else None
        answer = await api.dispatch(
            request.method,
            request.scope["path"],
            request.headers.items(),
            request.query_params.multi_items(),
            body,
        )
        if answer.stream is not None:
            return StreamingResponse(
                answer.stream,
                status_code=answer.status,
                headers=dict(answer.headers),
                media_type=answer.media_type,
            )
        return Response(
            _json(answer.body),
            status_code=answer.status,
            headers=dict(answer.headers),
            media_type=answer.media_type,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not manage_service:
            yield
            return
        await service.start()
        try:
            yield
        finally:
            await service.close()

    async def handle(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive))
        await response(scope, receive, send)

    # No Starlette routes: every path (whatever characters it holds) and method reaches
    # ``dispatch``, which owns routing, 404 and 405.
    app = Starlette(lifespan=lifespan)
    app.router.default = handle
    app.state.service = service
    app.state.api = api
    return app


def app_from_config(config: Config) -> Starlette:
    """The ASGI app of a configuration: its runtime, applications, keys and worker (started and
    stopped with the app). What ``expert-jobs serve`` runs under uvicorn."""
    return create_app(ExpertJobsService.from_config(config))
