"""The API contract through ``dispatch`` (no transport), and what only ``dispatch`` shows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from expert_jobs.api import Api, ApiResponse, dispatch, sse_event
from expert_jobs.domain.errors import ServiceError
from expert_jobs.domain.job import JobQuery
from tests.service.kit import APP_ID, PREFIX, UNKNOWN_ID, Env, make_env

from .contract import ApiContract, Call, Connect


async def _answer(response: ApiResponse, method: str = "GET") -> tuple[int, Any, dict[str, str]]:
    headers = {k.lower(): v for k, v in response.headers.items()}
    headers["content-type"] = response.media_type
    if method.upper() == "HEAD":  # as a transport does: the headers of the answer, no body
        if response.stream is not None:
            assert [chunk async for chunk in response.stream] == []
        return response.status, None, headers
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
                return await _answer(await api.dispatch(method, path, headers, query, body), method)

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


# ---------------------------------------------------------------------- the body as chunks (issue 12)


class _Chunks:
    """An async iterable body that counts what was taken from it."""

    def __init__(
        self, *chunks: bytes, endless: bytes | None = None, fail: BaseException | None = None
    ) -> None:
        self.chunks = list(chunks)
        self.endless = endless
        self.fail = fail
        self.taken = 0

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            self.taken += 1
            yield chunk
        if self.fail is not None:
            raise self.fail
        while self.endless is not None:
            self.taken += 1
            assert self.taken < 1_000, "read far past the limit"
            yield self.endless


async def test_a_body_of_chunks_is_read_after_the_credentials_and_up_to_the_limit() -> None:
    env = make_env()
    api = Api(env.service, max_body_bytes=1_000)
    refused = _Chunks(endless=b"x" * 100)
    answer = await api.dispatch("POST", PREFIX, {"content-type": "application/json"}, None, refused)
    assert answer.status == 401 and refused.taken == 0
    endless = _Chunks(endless=b" " * 100)
    answer = await api.dispatch("POST", PREFIX, env.auth, None, endless)
    assert answer.status == 413 and endless.taken == 11  # the first chunk past 1,000 bytes, no more
    data = b'{"expertKey": "main@1.0.0", "query": "chunks"}'
    fine = _Chunks(data[:10], data[10:])
    answer = await api.dispatch("POST", PREFIX, env.auth, None, fine)
    assert answer.status == 200 and answer.body["data"]["expertJob"]["query"] == "chunks"
    declared = _Chunks(data)
    answer = await api.dispatch("POST", PREFIX, {**env.auth, "Content-Length": "1001"}, None, declared)
    assert answer.status == 413 and declared.taken == 0


async def test_an_error_of_the_body_iterator_goes_back_to_the_transport() -> None:
    env = make_env()
    api = Api(env.service)

    class ClientLeft(Exception):
        pass

    with pytest.raises(ClientLeft):
        await api.dispatch("POST", PREFIX, env.auth, None, _Chunks(b'{"expertKey":', fail=ClientLeft()))
    assert await env.runtime.store.list(JobQuery(application_id=APP_ID)) == ([], 0)


async def test_head_answers_the_get_answer_body_included_for_its_length() -> None:
    env = make_env()
    api = Api(env.service)
    job = await env.service.start_job(env.app, {"expertKey": "main@1.0.0", "query": "x"})
    got = await api.dispatch("GET", PREFIX + job.id, env.auth)
    head = await api.dispatch("HEAD", PREFIX + job.id, env.auth)
    assert (head.status, head.body, head.headers) == (got.status, got.body, got.headers)


def test_api_refuses_a_limit_below_one_byte() -> None:
    with pytest.raises(ValueError, match="max_body_bytes"):
        Api(make_env().service, max_body_bytes=0)
