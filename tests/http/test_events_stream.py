"""``GET {expertJobId}/events/stream`` over real HTTP: uvicorn on a socket (``LiveServer``, with the
options of ``expert-jobs serve``) and an HTTP client reading the event stream as it arrives, on the
MemoryStore and on SQLite (the contract of tests/api/test_events_stream.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from expert_jobs import Reply, ToolCalls
from expert_jobs.transports.http import create_app
from tests.api.contract import parse_sse
from tests.api.test_events_stream import EventsStreamContract, Open, Stream, _env
from tests.service.kit import PREFIX, Env, body

from .live import LiveServer


class TestEventsStreamOverHttp(EventsStreamContract):
    """The contract over a real server (the service runs in the server's own event loop)."""

    @pytest.fixture
    def open_api(self) -> Open:
        @asynccontextmanager
        async def open_api(env: Env) -> AsyncIterator[tuple[Stream, Callable[..., Awaitable[Any]]]]:
            with LiveServer(create_app(env.service)) as server:
                async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:

                    async def stream(method: str, path: str, headers: Any) -> tuple[int, str, dict[str, str]]:
                        async with client.stream(method, path, headers=headers) as response:
                            text = "".join([chunk async for chunk in response.aiter_text()])
                        received = {k.lower(): v for k, v in response.headers.items()}
                        return response.status_code, text, received

                    async def post(path: str, headers: Any, data: bytes | None, method: str = "POST") -> Any:
                        response = await client.request(method, path, headers=headers, content=data)
                        assert response.status_code == 200, response.text
                        return response.json()

                    yield stream, post

        return open_api


async def test_deltas_arrive_while_the_answer_is_generated(tmp_path: Path) -> None:
    """The answer's deltas reach the client as they are made, not in one piece at the end: the
    first is read while the job is still processing."""
    answer = "A long answer, written piece by piece. " * 10
    env = _env("sqlite", tmp_path, [ToolCalls.of(("add", {"a": 1, "b": 2}), delay=0.3), Reply(answer)])
    statuses: list[str] = []
    text = ""
    with LiveServer(create_app(env.service)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            started = await client.post(
                PREFIX, headers=env.auth, content=body({"expertKey": "main@1.0.0", "query": "1 + 2?"})
            )
            job_id = started.json()["data"]["expertJob"]["id"]
            path = PREFIX + job_id + "/events/stream"
            async with client.stream("GET", path, headers=env.auth) as response:
                buffer = ""
                async for chunk in response.aiter_text():
                    buffer += chunk
                    while "\n\n" in buffer:
                        block, buffer = buffer.split("\n\n", 1)
                        for event in parse_sse(block):
                            data = json.loads(event["data"])
                            if event["event"] != "delta" or data["detail"]["type"] != "text":
                                continue
                            if not text:
                                job = await client.get(PREFIX + job_id, headers=env.auth)
                                statuses.append(job.json()["data"]["expertJob"]["status"])
                            text += data["detail"]["text"]
    assert text == answer
    assert statuses == ["processing"]
