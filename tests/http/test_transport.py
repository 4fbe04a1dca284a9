"""What only the HTTP transport does (issue 12): the body is read after the credentials and never
past its limit, the app answers under a mount point (``root_path``, both conventions), and a
mounted app's service runs through the host's lifespan. Raw ASGI calls show what was received."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from expert_jobs import Reply
from expert_jobs.api import DEFAULT_MAX_BODY_BYTES
from expert_jobs.transports.http import create_app, route_path, service_lifespan
from tests.service.kit import APP_ID, PREFIX, UNAUTHORIZED, Env, body, make_env, wait_for_status

START = {"expertKey": "main@1.0.0", "query": "hello"}


@dataclass
class Exchange:
    """One raw ASGI request/response: what the app sent back and how much body it asked for."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    receives: int = 0
    bytes_received: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


async def asgi(
    app: Any,
    method: str,
    path: str,
    headers: Iterable[tuple[str, str]] = (),
    chunks: Iterable[bytes] = (),
    *,
    root_path: str = "",
    endless: bytes | None = None,
) -> Exchange:
    """Call ``app`` as a server would. The body is ``chunks``, then (with ``endless``) that chunk
    forever; each ``receive`` is counted."""
    out = Exchange()
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        out.receives += 1
        if pending:
            chunk = pending.pop(0)
            more = bool(pending) or endless is not None
        elif endless is not None:
            if out.receives > 200:
                raise AssertionError(f"the app read {out.bytes_received} bytes of an endless body")
            chunk, more = endless, True
        else:
            await asyncio.Event().wait()  # a real server: nothing until the client leaves
            raise AssertionError("unreachable")
        out.bytes_received += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": more}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            out.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
        "root_path": root_path,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=30)
    return out


def _auth(env: Env) -> list[tuple[str, str]]:
    return [("Authorization", f"Bearer {env.key}"), ("Content-Type", "application/json")]


# ---------------------------------------------------------------------- the body


async def test_a_bad_key_is_401_before_any_of_a_huge_body_is_read() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False)
    for authorization in ([], [("Authorization", "Bearer ejk_wrong")], [("Authorization", "Basic x")]):
        headers = [*authorization, ("Content-Type", "application/json"), ("Content-Length", str(200 << 20))]
        out = await asgi(app, "POST", PREFIX, headers, endless=b"x" * 65536)
        assert (out.status, out.json()) == (401, UNAUTHORIZED)
        assert out.receives == 0  # not one byte of the 200 MB was asked for
        assert out.headers["connection"] == "close"  # the unread body must not be parsed as a request


async def test_a_content_length_over_the_limit_is_413_at_once() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False)
    headers = [*_auth(env), ("Content-Length", str(DEFAULT_MAX_BODY_BYTES + 1))]
    out = await asgi(app, "POST", PREFIX, headers, endless=b"x" * 65536)
    assert out.status == 413 and out.receives == 0
    assert out.json() == {
        "code": 413,
        "error": "Payload Too Large",
        "reason": f"body: larger than the limit of {DEFAULT_MAX_BODY_BYTES} bytes",
    }
    assert out.headers["connection"] == "close"
    huge = [*_auth(env), ("Content-Length", "9" * 5_000)]
    assert (await asgi(app, "POST", PREFIX, huge, endless=b"x")).status == 413


async def test_a_body_without_length_is_read_only_up_to_the_limit() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False, max_body_bytes=100_000)
    headers = [*_auth(env), ("Transfer-Encoding", "chunked")]
    out = await asgi(app, "POST", PREFIX, headers, endless=b" " * 10_000)  # an endless body
    assert out.status == 413 and out.json()["reason"] == "body: larger than the limit of 100000 bytes"
    assert out.receives == 11 and out.bytes_received == 110_000  # stopped at the first chunk past it
    assert out.headers["connection"] == "close"
    assert await env.runtime.store.list(_all_jobs()) == ([], 0)


async def test_a_body_within_the_limit_in_chunks_is_served_and_keeps_the_connection() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False, max_body_bytes=100_000)
    data = body(START)
    out = await asgi(app, "POST", PREFIX, _auth(env), [data[:5], b"", data[5:]])
    assert out.status == 200, out.body
    assert "connection" not in out.headers


async def test_routes_without_a_body_never_read_one() -> None:
    """The body of a route that takes none is never read before the answer. A small one is then
    read and dropped (closing a socket with unread data would reset the connection, and the
    client lose the answer); one over the body limit is left unread and the connection closed."""
    env = make_env()
    app = create_app(env.service, manage_service=False)
    job = await env.service.start_job(env.app, START)
    routes = (
        ("GET", PREFIX + job.id),
        ("POST", PREFIX + job.id + "/cancel"),
        ("DELETE", PREFIX),
        ("GET", "/nowhere"),
    )
    small = [*_auth(env), ("Content-Length", "5")]
    for method, path in routes:
        out = await asgi(app, method, path, small, [b"12345"])
        assert out.status in (200, 404, 405, 409) and out.receives == 1, (method, path, out)
        assert "connection" not in out.headers  # drained after the answer: the connection stays
    large = [*_auth(env), ("Content-Length", str(DEFAULT_MAX_BODY_BYTES + 1))]
    for method, path in routes:
        out = await asgi(app, method, path, large, endless=b"x" * 65536)
        assert out.receives == 0 and out.headers["connection"] == "close", (method, path, out)


async def test_a_refused_body_within_the_limit_is_drained_once_the_key_is_good() -> None:
    """A request past the route and key checks but refused (here 422: not JSON) has its body read
    and dropped up to the body limit, so a client still sending gets its answer rather than a
    reset connection; an unknown client's body, only up to 64 KiB (it is left unread, the
    connection closed), and a body longer than announced is not read past the limit."""
    env = make_env()
    app = create_app(env.service, manage_service=False)
    size = 200_000
    chunks = [b"[" * 50_000] * 4
    refused = [("Authorization", f"Bearer {env.key}"), ("Content-Type", "text/plain")]
    out = await asgi(app, "POST", PREFIX, [*refused, ("Content-Length", str(size))], chunks)
    assert out.status == 422 and out.receives == 4 and out.bytes_received == size
    assert "connection" not in out.headers
    stranger = [("Authorization", "Bearer ejk_wrong"), ("Content-Type", "text/plain")]
    out = await asgi(app, "POST", PREFIX, [*stranger, ("Content-Length", str(size))], chunks)
    assert (out.status, out.receives, out.headers["connection"]) == (401, 0, "close")
    lying = [*refused, ("Content-Length", str(size))]
    out = await asgi(app, "POST", PREFIX, lying, endless=b"[" * 65536)
    assert out.status == 422 and out.headers["connection"] == "close"
    assert out.bytes_received <= DEFAULT_MAX_BODY_BYTES + 65536
    assert await env.runtime.store.list(_all_jobs()) == ([], 0)


async def test_a_refused_request_with_a_small_body_drains_it_and_keeps_the_connection() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False)
    data = body(START)
    headers = [("Authorization", "Bearer ejk_wrong"), ("Content-Length", str(len(data)))]
    out = await asgi(app, "POST", PREFIX, headers, [data[:10], data[10:]])
    assert (out.status, out.json()) == (401, UNAUTHORIZED)
    assert out.receives == 2 and "connection" not in out.headers
    assert await env.runtime.store.list(_all_jobs()) == ([], 0)


async def test_a_client_leaving_mid_body_gets_no_answer_and_starts_nothing() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False)
    sent: list[dict[str, Any]] = []
    messages = [
        {"type": "http.request", "body": b'{"expertKey": "main@1.0.0",', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": PREFIX,
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in _auth(env)],
    }
    await app(scope, receive, send)
    assert sent == []
    assert await env.runtime.store.list(_all_jobs()) == ([], 0)


def test_max_body_bytes_must_be_positive() -> None:
    env = make_env()
    with pytest.raises(ValueError, match="max_body_bytes"):
        create_app(env.service, max_body_bytes=0)


def _all_jobs() -> Any:
    from expert_jobs.domain.job import JobQuery

    return JobQuery(application_id=APP_ID)


# ---------------------------------------------------------------------- mount points


@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        ("", "/api/x", "/api/x"),
        ("/ej", "/ej/api/x", "/api/x"),  # ASGI / Starlette >= 0.35 / uvicorn --root-path: in full
        ("/ej", "/api/x", "/api/x"),  # older Starlette Mount: already cut
        ("/ej", "/ej", "/"),
        ("/ej", "/ej/", "/"),
        ("/ej", "/ejx/api", "/ejx/api"),  # not below the mount point
        ("/a/b", "/a/b/openapi.json", "/openapi.json"),
    ],
)
def test_route_path(root_path: str, path: str, expected: str) -> None:
    assert route_path({"type": "http", "root_path": root_path, "path": path}) == expected


async def test_root_path_in_both_conventions() -> None:
    env = make_env()
    app = create_app(env.service, manage_service=False)
    job = await env.service.start_job(env.app, START)
    for path in ("/ej" + PREFIX + job.id, PREFIX + job.id):
        out = await asgi(app, "GET", path, _auth(env), root_path="/ej")
        assert out.status == 200 and out.json()["data"]["expertJob"]["id"] == job.id, path
    out = await asgi(app, "GET", "/ej/nothing", _auth(env), root_path="/ej")
    assert out.status == 404 and out.json()["reason"] == "Route not found: GET /nothing"


def _host(env: Env) -> Starlette:
    """A host application of its own (a route of its own) mounting the API under ``/ej``."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with service_lifespan(env.service):
            yield

    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("host")

    return Starlette(
        routes=[Route("/hello", hello), Mount("/ej", app=create_app(env.service))], lifespan=lifespan
    )


async def test_mounted_in_a_host_app_every_route_answers_and_the_worker_runs_jobs() -> None:
    env = make_env([Reply("mounted answer")], worker=True)
    host = _host(env)
    transport = httpx.ASGITransport(app=host)
    async with (
        host.router.lifespan_context(host),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        assert (await client.get("/hello")).text == "host"
        started = await client.post("/ej" + PREFIX, headers=dict(_auth(env)), content=body(START))
        assert started.status_code == 200, started.text
        job_id = started.json()["data"]["expertJob"]["id"]
        done = await wait_for_status(env, job_id, "completed", within=30)  # the worker ran it
        assert done.total_steps == 1
        got = await client.get("/ej" + PREFIX + job_id, headers=dict(_auth(env)))
        assert got.json()["data"]["expertJob"]["status"] == "completed"
        stream = await client.get("/ej" + PREFIX + job_id + "/checkpoints/stream", headers=dict(_auth(env)))
        assert stream.status_code == 200 and "mounted answer" in stream.text
        listed = await client.get("/ej" + PREFIX, headers=dict(_auth(env)), params={"applicationId": APP_ID})
        assert listed.json()["meta"]["total"] == 1
        assert (await client.get("/ej/openapi.json")).json()["openapi"].startswith("3.1")
        assert (await client.head("/ej" + PREFIX + job_id, headers=dict(_auth(env)))).status_code == 200
        assert (await client.get(PREFIX + job_id, headers=dict(_auth(env)))).status_code == 404  # the host's
    assert env.service.worker is not None
    assert all(task.done() for task in env.service.worker._tasks)  # the host's shutdown stopped it


async def test_without_the_service_lifespan_a_mounted_apps_worker_never_starts() -> None:
    """Why ``service_lifespan`` exists: a host runs no lifespan of a mounted app."""
    env = make_env([Reply("x")], worker=True)
    host = Starlette(routes=[Mount("/ej", app=create_app(env.service))])
    async with host.router.lifespan_context(host):
        assert env.service.worker is not None and not env.service.worker._tasks


def test_mounted_under_a_real_server_the_hosts_lifespan_runs_the_worker() -> None:
    """The same host app under uvicorn (the options of ``expert-jobs serve``): a job submitted
    through the mount point is run by the worker the host's lifespan started."""
    from tests.http.live import LiveServer

    env = make_env([Reply("served through the host")], worker=True)
    with LiveServer(_host(env)) as server, httpx.Client(base_url=server.url, timeout=20) as client:
        assert client.get("/hello").text == "host"
        started = client.post("/ej" + PREFIX, headers=dict(_auth(env)), content=body(START))
        assert started.status_code == 200, started.text
        job_id = started.json()["data"]["expertJob"]["id"]
        stream = client.get("/ej" + PREFIX + job_id + "/checkpoints/stream", headers=dict(_auth(env)))
        assert stream.status_code == 200 and "served through the host" in stream.text
        job = client.get("/ej" + PREFIX + job_id, headers=dict(_auth(env))).json()["data"]["expertJob"]
        assert job["status"] == "completed"


def test_an_open_checkpoint_stream_does_not_hold_a_shutdown_past_its_timeout() -> None:
    """uvicorn's default waits for every open request at shutdown; a stream of a job nobody runs
    never ends, so ``expert-jobs serve`` bounds the wait (``timeout_graceful_shutdown``)."""
    import socket
    import time

    from expert_jobs.transports.cli._serve import ServerLimits
    from tests.http.live import LiveServer

    env = make_env()  # no worker: the job stays queued and its stream open
    server = LiveServer(create_app(env.service), ServerLimits(timeout_graceful_shutdown=1))
    with server:
        conn = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        job = httpx.post(server.url + PREFIX, headers=dict(_auth(env)), content=body(START), timeout=20)
        path = PREFIX + job.json()["data"]["expertJob"]["id"] + "/checkpoints/stream"
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {env.key}\r\n\r\n".encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        stopping = time.monotonic()
    # LiveServer's exit returned: the server stopped although the stream was still open
    try:
        assert time.monotonic() - stopping < 30
        conn.settimeout(30)
        while conn.recv(65536):  # the server closed the stream's connection
            pass
    finally:
        conn.close()
