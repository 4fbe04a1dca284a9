"""The API contract through the Starlette app with a real HTTP client, and the app's own duties:
lifespan (worker start/stop), live server-sent events, ``app_from_config``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from expert_jobs import Reply, ToolCalls
from expert_jobs.transports.http import app_from_config, create_app
from tests.api.contract import ApiContract, Call, Connect, parse_sse
from tests.service.kit import APP_ID, ORG_ID, PREFIX, Env, body, make_env


def client_for(app: Any) -> httpx.AsyncClient:
    """An HTTP client talking to the ASGI app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


class TestHttp(ApiContract):
    """The contract over HTTP (``create_app`` + ``httpx``)."""

    @pytest.fixture
    def connect(self) -> Connect:
        @asynccontextmanager
        async def connect(env: Env) -> AsyncIterator[Call]:
            app = create_app(env.service)

            async def call(
                method: str, path: str, headers: Any = None, query: Any = None, body: bytes | None = None
            ) -> tuple[int, Any, dict[str, str]]:
                pairs = headers.items() if isinstance(headers, dict) else headers or ()
                raw = [(name, value.encode("utf-8")) for name, value in pairs]  # non-ASCII values too
                response = await client.request(method, path, headers=raw, params=query, content=body)
                received = {k.lower(): v for k, v in response.headers.items()}
                if method == "HEAD":
                    return response.status_code, response.content, received
                if received.get("content-type", "").startswith("text/event-stream"):
                    return response.status_code, response.text, received
                return response.status_code, response.json(), received

            async with app.router.lifespan_context(app), client_for(app) as client:
                yield call

        return connect


async def test_lifespan_starts_the_worker_and_closes_the_service() -> None:
    env = make_env([Reply("hi")], worker=True)
    app = create_app(env.service)
    closed = []
    original = env.runtime.close

    async def close() -> None:
        closed.append(True)
        await original()

    env.runtime.close = close  # type: ignore[method-assign]
    async with app.router.lifespan_context(app), client_for(app) as client:
        assert env.service.worker is not None and env.service.worker._tasks
        response = await client.post(
            PREFIX, headers=env.auth, content=body({"expertKey": "main@1.0.0", "query": "x"})
        )
        job_id = response.json()["data"]["expertJob"]["id"]
        stream = await client.get(PREFIX + job_id + "/checkpoints/stream", headers=env.auth)
        assert parse_sse(stream.text)[-1]["event"] == "message"
        done = await client.get(PREFIX + job_id, headers=env.auth)
        assert done.json()["data"]["expertJob"]["status"] == "completed"
    assert closed == [True]
    assert all(task.done() for task in env.service.worker._tasks)


async def test_live_stream_over_http_delivers_each_checkpoint_as_it_is_written() -> None:
    script = {
        "main@1.0.0": [
            ToolCalls.of(("add", {"a": 1, "b": 2}), delay=0.05),
            ToolCalls.of(("ask", {"question": "go on?"}), delay=0.05),
        ]
    }
    env = make_env(script, worker=True)
    app = create_app(env.service)
    async with app.router.lifespan_context(app), client_for(app) as client:
        response = await client.post(
            PREFIX, headers=env.auth, content=body({"expertKey": "main@1.0.0", "query": "x"})
        )
        job_id = response.json()["data"]["expertJob"]["id"]
        async with client.stream("GET", PREFIX + job_id + "/checkpoints/stream", headers=env.auth) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = "".join([chunk async for chunk in stream.aiter_text()])
        events = parse_sse(text)
        states = [json.loads(e["data"])["runState"] for e in events]
        assert states[-1] == "waitingInteractive"  # the stream ends when the job pauses for a person
        stored = (await client.get(PREFIX + job_id + "/checkpoints", headers=env.auth)).json()
        assert [e["id"] for e in events] == [str(c["seq"]) for c in stored["data"]["checkpoints"]]


async def test_app_from_config_serves_the_configured_applications(tmp_path: Path) -> None:
    from expert_jobs.config import load_config
    from expert_jobs.service import hash_key

    key = "ejk_from_config"
    (tmp_path / "expert-jobs.toml").write_text(
        f"""
store = "memory://"

[provider]
providerName = "scripted"
script = [{{ text = "configured answer" }}]

[worker]
pollInterval = 0.02

[applications.{APP_ID}]
organizationId = "{ORG_ID}"
keyHashes = ["{hash_key(key)}"]

[experts."greeter"]
instruction = "Greet."
"""
    )
    app = app_from_config(load_config(tmp_path / "expert-jobs.toml"))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with app.router.lifespan_context(app), client_for(app) as client:
        response = await client.post(
            PREFIX, headers=headers, content=body({"expertKey": "greeter@1.0.0", "query": "x"})
        )
        assert response.status_code == 200, response.text
        job_id = response.json()["data"]["expertJob"]["id"]
        await client.get(PREFIX + job_id + "/checkpoints/stream", headers=headers)
        job = (await client.get(PREFIX + job_id, headers=headers)).json()["data"]["expertJob"]
        assert job["status"] == "completed" and job["organizationId"] == ORG_ID
        assert (
            await client.get(PREFIX + job_id, headers={"Authorization": "Bearer nope"})
        ).status_code == 401


async def test_unmanaged_app_leaves_the_service_alone() -> None:
    env = make_env(worker=True)
    app = create_app(env.service, manage_service=False)
    async with app.router.lifespan_context(app):
        assert env.service.worker is not None and not env.service.worker._tasks
