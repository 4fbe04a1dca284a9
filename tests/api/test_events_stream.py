"""``GET {expertJobId}/events/stream``: a job's live events over server-sent events, through the
dispatcher, on the MemoryStore and on SQLite. :class:`EventsStreamContract` is run over real HTTP
too (tests/http/test_events_stream.py)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from expert_jobs import Fail, Reply, ScriptedProvider, SQLiteStore, ToolCalls
from expert_jobs.api import Api
from expert_jobs.ports.store import JobStore
from expert_jobs.stores.memory import MemoryStore
from tests.service.kit import PREFIX, Env, body, make_env

from .contract import is_error, parse_sse

ANSWER = "Three, as the tool said."
# The first turn waits, so that the stream is open before the job's answer is generated.
SCRIPT = [ToolCalls.of(("add", {"a": 1, "b": 2}), delay=0.3), Reply(ANSWER, thinking="1 + 2 = 3")]

Stream = Callable[..., Awaitable[tuple[int, str, dict[str, str]]]]
"""``stream(method, path, headers) -> (status, the whole body as text, lower-cased headers)``; with
it ``post(path, headers, body, method="POST") -> JSON`` (asserting a 200) on the same server."""
Open = Callable[[Env], AbstractAsyncContextManager[tuple[Stream, Callable[..., Awaitable[Any]]]]]


def _env(store_kind: str, tmp_path: Path, script: list[Any] | None = None, **options: Any) -> Env:
    store: JobStore = MemoryStore() if store_kind == "memory" else SQLiteStore(tmp_path / "jobs.db")
    provider = ScriptedProvider(script or SCRIPT, stream_chunk_chars=5, stream_delay=0.005)
    return make_env(store=store, providers=provider, worker=True, **options)


def _data(event: dict[str, str]) -> Any:
    return json.loads(event["data"])


class EventsStreamContract:
    """What every transport's ``events/stream`` does; ``open_api(env)`` yields ``(stream, post)``."""

    @pytest.fixture(params=["memory", "sqlite"])
    def store_kind(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def open_api(self) -> Open:  # pragma: no cover - provided by each transport
        raise NotImplementedError

    async def test_a_running_job_streams_its_events_and_its_answer_as_deltas(
        self, open_api: Open, store_kind: str, tmp_path: Path
    ) -> None:
        env = _env(store_kind, tmp_path)
        async with open_api(env) as (stream, post):
            started = await post(PREFIX, env.auth, body({"expertKey": "main@1.0.0", "query": "1 + 2?"}))
            job_id = started["data"]["expertJob"]["id"]
            status, text, headers = await stream("GET", PREFIX + job_id + "/events/stream", env.auth)
            assert status == 200 and headers["content-type"].startswith("text/event-stream")
            assert headers["cache-control"] == "no-cache"
            events = parse_sse(text)
            page = await post(PREFIX + job_id + "/checkpoints", env.auth, None, method="GET")
            stored = page["data"]["checkpoints"]
        names = [e["event"] for e in events]
        # Every checkpoint, in seq order, each with its seq as the event id; nothing else has an id.
        checkpoints = [e for e in events if e["event"] == "checkpoint"]
        assert [e["id"] for e in checkpoints] == [str(c["seq"]) for c in stored]
        assert [_data(e) for e in checkpoints] == stored
        assert all("id" not in e for e in events if e["event"] != "checkpoint")
        for name in ("toolCall", "toolResult", "step", "transition", "delta"):
            assert name in names, (name, names)
        deltas = [_data(e) for e in events if e["event"] == "delta"]
        assert {d["expertJobId"] for d in deltas} == {job_id}
        answer = [
            d["detail"]["text"] for d in deltas if d["detail"]["type"] == "text" and d["stepNumber"] == 2
        ]
        thinking = [d["detail"]["text"] for d in deltas if d["detail"]["type"] == "thinking"]
        assert "".join(answer) == ANSWER and len(answer) > 1
        assert "".join(thinking) == "1 + 2 = 3"
        # The deltas of the answer come before its checkpoint; the stream ends with the final
        # checkpoint and the transition into completed.
        last_delta = max(i for i, e in enumerate(events) if e["event"] == "delta")
        assert last_delta < names.index("checkpoint", last_delta)
        assert names[-2:] == ["checkpoint", "transition"]
        assert _data(events[-1])["status"] == "completed" and _data(events[-2])["status"] == "completed"
        assert not env.runtime.events.active  # the stream let go of the bus

    async def test_last_event_id_resumes_the_checkpoints_after_it(
        self, open_api: Open, store_kind: str, tmp_path: Path
    ) -> None:
        env = _env(store_kind, tmp_path, [ToolCalls.of(("add", {"a": 1, "b": 2})), Reply(ANSWER)])
        async with open_api(env) as (stream, post):
            started = await post(PREFIX, env.auth, body({"expertKey": "main@1.0.0", "query": "1 + 2?"}))
            job_id = started["data"]["expertJob"]["id"]
            path = PREFIX + job_id + "/events/stream"
            whole = parse_sse((await stream("GET", path, env.auth))[1])
            seqs = [e["id"] for e in whole if e["event"] == "checkpoint"]
            assert len(seqs) >= 2
            status, text, _ = await stream("GET", path, {**env.auth, "Last-Event-ID": seqs[0]})
            resumed = parse_sse(text)
            # A resting job: the persisted events after the id, and no live ones.
            assert status == 200 and [e["id"] for e in resumed] == seqs[1:]
            assert {e["event"] for e in resumed} == {"checkpoint"}
            status, text, _ = await stream("GET", path, {**env.auth, "Last-Event-ID": seqs[-1]})
            assert status == 200 and parse_sse(text) == []

    async def test_the_stream_is_refused_as_the_other_routes_are(
        self, open_api: Open, store_kind: str, tmp_path: Path
    ) -> None:
        env = _env(store_kind, tmp_path, [Reply(ANSWER)])
        async with open_api(env) as (stream, post):
            started = await post(PREFIX, env.auth, body({"expertKey": "main@1.0.0", "query": "x"}))
            path = PREFIX + started["data"]["expertJob"]["id"] + "/events/stream"
            status, text, _ = await stream("GET", path, env.other_auth)
            assert is_error((status, json.loads(text), {}), 404, "Not Found")
            status, text, _ = await stream("GET", path, {})
            assert is_error((status, json.loads(text), {}), 401, "Unauthorized", "Failed to authenticate")
            status, text, _ = await stream("GET", path, {**env.auth, "Last-Event-ID": "-1"})
            assert is_error((status, json.loads(text), {}), 422, "Validation Failed")
            assert json.loads(text)["reason"].startswith("headers.Last-Event-ID: expected a checkpoint seq")
            status, text, _ = await stream("GET", PREFIX + "nope/events/stream", env.auth)
            assert is_error((status, json.loads(text), {}), 422, "Validation Failed")


async def _dispatch_text(api: Api, method: str, path: str, headers: Any) -> tuple[int, str, dict[str, str]]:
    answer = await api.dispatch(method, path, headers)
    received = {k.lower(): v for k, v in answer.headers.items()}
    received["content-type"] = answer.media_type
    if answer.stream is not None:
        return answer.status, "".join([chunk async for chunk in answer.stream]), received
    return answer.status, json.dumps(answer.body), received


class TestEventsStreamOverDispatch(EventsStreamContract):
    """The contract through :meth:`Api.dispatch`."""

    @pytest.fixture
    def open_api(self) -> Open:
        @asynccontextmanager
        async def open_api(env: Env) -> AsyncIterator[tuple[Stream, Callable[..., Awaitable[Any]]]]:
            api = Api(env.service)

            async def stream(method: str, path: str, headers: Any) -> tuple[int, str, dict[str, str]]:
                return await _dispatch_text(api, method, path, headers)

            async def post(path: str, headers: Any, data: bytes | None, method: str = "POST") -> Any:
                answer = await api.dispatch(method, path, headers, None, data)
                assert answer.status == 200, answer.body
                return answer.body

            async with env.service:
                yield stream, post

        return open_api


async def test_head_checks_the_job_and_follows_nothing(tmp_path: Path) -> None:
    env = _env("memory", tmp_path, [Reply(ANSWER, delay=5.0)])
    api = Api(env.service)
    async with env.service:
        started = await api.dispatch(
            "POST", PREFIX, env.auth, None, body({"expertKey": "main@1.0.0", "query": "x"})
        )
        job_id = started.body["data"]["expertJob"]["id"]
        status, text, headers = await _dispatch_text(
            api, "HEAD", PREFIX + job_id + "/events/stream", env.auth
        )
        assert (status, text) == (200, "") and headers["content-type"] == "text/event-stream"
        assert not env.runtime.events.deltas  # nobody follows the job: its generation does not stream
        status, _, _ = await _dispatch_text(api, "HEAD", PREFIX + job_id + "/events/stream", env.other_auth)
        assert status == 404
        await env.runtime.cancel(job_id)


async def test_keep_alives_are_sent_while_nothing_happens(tmp_path: Path) -> None:
    env = _env("memory", tmp_path, [Reply(ANSWER, delay=0.3)], stream_poll_interval=10.0)
    api = Api(env.service, sse_heartbeat=0.05)
    async with env.service:
        started = await api.dispatch(
            "POST", PREFIX, env.auth, None, body({"expertKey": "main@1.0.0", "query": "x"})
        )
        job_id = started.body["data"]["expertJob"]["id"]
        answer = await api.dispatch("GET", PREFIX + job_id + "/events/stream", env.auth)
        assert answer.stream is not None
        chunks = [chunk async for chunk in answer.stream]
    assert ": keep-alive\n\n" in chunks
    assert parse_sse("".join(chunks))[-1]["event"] == "transition"


async def test_a_retry_is_sent_live_and_voids_the_deltas_before_it(tmp_path: Path) -> None:
    script = [
        ToolCalls.of(("add", {"a": 1, "b": 2}), delay=0.3),
        Fail("connection", "reset", partial=Reply("Thr")),
        Reply(ANSWER),
    ]
    env = _env("memory", tmp_path, script)
    env.runtime.settings = dataclasses.replace(env.runtime.settings, backoff_base=0.0)
    api = Api(env.service)
    async with env.service:
        started = await api.dispatch(
            "POST", PREFIX, env.auth, None, body({"expertKey": "main@1.0.0", "query": "x"})
        )
        job_id = started.body["data"]["expertJob"]["id"]
        _, text, _ = await _dispatch_text(api, "GET", PREFIX + job_id + "/events/stream", env.auth)
    events = parse_sse(text)
    names = [e["event"] for e in events]
    retry = names.index("retry")
    assert _data(events[retry])["detail"]["error"]["kind"] == "connection"
    after = [
        _data(e)["detail"]["text"]
        for e in events[retry:]
        if e["event"] == "delta" and _data(e)["detail"]["type"] == "text"
    ]
    before = [
        _data(e)["detail"]["text"]
        for e in events[:retry]
        if e["event"] == "delta" and _data(e)["detail"]["type"] == "text"
    ]
    assert "".join(before).endswith("Thr") and "".join(after) == ANSWER
    final = _data([e for e in events if e["event"] == "checkpoint"][-1])
    assert final["newMessages"][-1]["parts"] == [{"type": "text", "text": ANSWER}]
