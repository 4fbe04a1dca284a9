"""The API contract through ``dispatch`` (no transport), and what only ``dispatch`` shows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from expert_jobs.api import Api, ApiResponse, dispatch, sse_event
from expert_jobs.domain.errors import ServiceError
from tests.service.kit import PREFIX, UNKNOWN_ID, Env, make_env

from .contract import ApiContract, Call, Connect


async def _answer(response: ApiResponse) -> tuple[int, Any, dict[str, str]]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    headers["content-type"] = response.media_type
    if response.stream is not None:
        return response.status, "".join([chunk async for chunk in response.stream]), headers
    json.dumps(response.body)  # every body is JSON-ready
    return response.status, response.body, headers


class TestDispatch(ApiContract):
    """The contract over :meth:`Api.dispatch`."""

    @pytest.fixture
    def connect(self) -> Connect:
        @asynccontextmanager
        async def connect(env: Env) -> AsyncIterator[Call]:
            api = Api(env.service)

            async def call(
                method: str, path: str, headers: Any = None, query: Any = None, body: bytes | None = None
            ) -> tuple[int, Any, dict[str, str]]:
                return await _answer(await api.dispatch(method, path, headers, query, body))

            async with env.service:
                yield call

        return connect


async def test_dispatch_function_unpacks_as_status_and_body() -> None:
    env = make_env()
    status, body = await dispatch(
        env.service, "GET", PREFIX + UNKNOWN_ID, {"authorization": f"Bearer {env.key}"}
    )
    assert status == 404 and body["error"] == "Not Found"


async def test_an_unexpected_failure_is_a_500_of_the_error_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    env = make_env()

    async def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("store on fire")

    monkeypatch.setattr(env.runtime.store, "get", boom)
    status, body = await dispatch(
        env.service, "GET", PREFIX + UNKNOWN_ID, {"Authorization": f"Bearer {env.key}"}
    )
    assert (status, body) == (
        500,
        {"code": 500, "error": "Internal Server Error", "reason": "Internal Server Error"},
    )


async def test_service_errors_map_by_type_to_their_code() -> None:
    env = make_env()
    api = Api(env.service)
    for code in (400, 401, 404, 409, 422):
        cls = next(c for c in _subclasses(ServiceError) if c.code == code)
        reason = "the reason" if code != 401 else "Failed to authenticate"

        async def raise_it(
            *args: Any, _cls: type[ServiceError] = cls, _reason: str = reason, **kw: Any
        ) -> Any:
            raise _cls(_reason)

        env.service.get = raise_it  # type: ignore[method-assign]
        answer = await api.dispatch("GET", PREFIX + UNKNOWN_ID, {"authorization": f"Bearer {env.key}"})
        assert (answer.status, answer.body) == (code, {"code": code, "error": cls.error, "reason": reason})


def _subclasses(cls: type[ServiceError]) -> list[type[ServiceError]]:
    found = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def test_sse_event_format() -> None:
    assert sse_event({"a": "é\n"}, id="3") == 'id: 3\nevent: message\ndata: {"a":"é\\n"}\n\n'
    assert sse_event([1], event="end") == "event: end\ndata: [1]\n\n"


async def test_the_stream_sends_keep_alives_while_a_job_runs() -> None:
    from expert_jobs import Reply

    env = make_env({"main@1.0.0": [Reply("slow", delay=0.3)]}, worker=True)
    api = Api(env.service, sse_heartbeat=0.05)
    headers = {"authorization": f"Bearer {env.key}", "content-type": "application/json"}
    async with env.service:
        started = await api.dispatch("POST", PREFIX, headers, None, b'{"expertKey":"main@1.0.0","query":"x"}')
        job_id = started.body["data"]["expertJob"]["id"]
        response = await api.dispatch("GET", PREFIX + job_id + "/checkpoints/stream", headers)
        assert response.stream is not None and response.headers["cache-control"] == "no-cache"
        chunks = [chunk async for chunk in response.stream]
    assert ": keep-alive\n\n" in chunks
    assert json.loads(chunks[-1].split("data: ", 1)[1])["runState"] == "completed"
