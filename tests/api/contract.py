"""The API's contract, run against every transport: each route, each status code and body of the
spec (and of the extra routes), auth and tenancy. A transport's test module subclasses
:class:`ApiContract` and provides the ``connect`` fixture."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from expert_jobs import Reply, ToolCalls
from expert_jobs.api import DEFAULT_MAX_BODY_BYTES, MAX_JSON_DEPTH
from expert_jobs.domain.wire import ExpertJobResponse, ListJobsResponse
from tests.service.kit import APP_ID, OTHER_APP_ID, PREFIX, UNAUTHORIZED, UNKNOWN_ID, Env, body, make_env

Answer = tuple[int, Any, dict[str, str]]
"""Status, parsed JSON body (the raw text for event streams) and lower-cased headers."""
Call = Callable[..., Awaitable[Answer]]
"""``call(method, path, headers=None, query=None, body=None) -> Answer``."""
Connect = Callable[[Env], AbstractAsyncContextManager[Call]]

PAUSE_SCRIPT = {"main@1.0.0": [ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")]}
START = {"expertKey": "main@1.0.0", "query": "hello"}


def is_error(answer: Answer, code: int, error: str, reason: str | None = None) -> bool:
    """Whether ``answer`` is exactly the spec's error shape with this code (and reason)."""
    status, data, _ = answer
    assert status == code, answer
    assert set(data) == {"code", "error", "reason"}, data
    assert data["code"] == code and data["error"] == error, data
    if reason is not None:
        assert data["reason"] == reason, data
    return True


def parse_sse(text: str) -> list[dict[str, str]]:
    """Server-sent events of ``text`` as dicts of their fields (comments dropped)."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append(fields)
    return events


class ApiContract:
    """Tests every transport must pass; ``connect(env)`` yields a ``call`` over that transport."""

    @pytest.fixture
    def connect(self) -> Connect:  # pragma: no cover - provided by each transport
        raise NotImplementedError

    @staticmethod
    async def _start(call: Call, env: Env, data: Mapping[str, Any] = START) -> str:
        status, answer, _ = await call("POST", PREFIX, env.auth, None, body(data))
        assert status == 200, answer
        return str(answer["data"]["expertJob"]["id"])

    # ------------------------------------------------------------------ POST / (start)

    async def test_start(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            status, data, headers = await call(
                "POST", PREFIX, env.auth, None, body({**START, "maxSteps": "3"})
            )
            assert status == 200 and headers["content-type"].startswith("application/json")
            job = ExpertJobResponse.model_validate(data).data.expert_job
            assert (job.status, job.application_id, job.max_steps, job.query) == (
                "queued",
                APP_ID,
                3,
                "hello",
            )
            assert is_error(
                await call("POST", PREFIX, env.auth, None, body({"expertKey": "main@1.0.0"})),
                400,
                "Bad Request",
                "Query or files are required",
            )
            assert is_error(
                await call("POST", PREFIX, env.auth, None, body({"expertKey": "ghost@1.0.0", "query": "x"})),
                404,
                "Not Found",
                "Expert not found: ghost@1.0.0",
            )

    async def test_start_without_a_provider_key_is_400(self, connect: Connect) -> None:
        from expert_jobs.providers.registry import ProviderRegistry

        env = make_env()
        env.runtime.providers = ProviderRegistry(key_for=env.service.keyring.provider_key, environ={})
        async with connect(env) as call:
            assert is_error(
                await call("POST", PREFIX, env.auth, None, body(START)),
                400,
                "Bad Request",
                "Provider API key not found",
            )

    @pytest.mark.parametrize(
        ("content_type", "raw", "reason"),
        [
            ("application/json", b"{not json", "body: malformed JSON"),
            ("application/json", b"", "body: a JSON object is required"),
            ("application/json", b"[1, 2]", "body: expected a JSON object, got list"),
            (
                "application/json",
                b'{"expertKey": "main@1.0.0", "query": "x", "maxSteps": NaN}',
                "body: malformed",
            ),
            ("application/json", b"\xff\xfe", "body: not valid UTF-8"),
            ("text/plain", json.dumps(START).encode(), "body: expected Content-Type application/json"),
            ("application/x-www-form-urlencoded", b"expertKey=main", "body: expected Content-Type"),
            ("application/json", b'{"expertKey": 7, "maxSteps": "many"}', "body.expertKey: "),
        ],
    )
    async def test_start_with_a_bad_body_is_422(
        self, connect: Connect, content_type: str, raw: bytes, reason: str
    ) -> None:
        env = make_env()
        async with connect(env) as call:
            headers = {**env.auth, "Content-Type": content_type}
            answer = await call("POST", PREFIX, headers, None, raw)
            assert is_error(answer, 422, "Validation Failed")
            assert answer[1]["reason"].startswith(reason), answer
            if raw.startswith(b'{"expertKey": 7'):
                assert "body.maxSteps: " in answer[1]["reason"]

    async def test_json_content_type_variants_are_accepted(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            for content_type in ("application/json; charset=utf-8", "application/vnd.api+json"):
                headers = {**env.auth, "Content-Type": content_type}
                assert (await call("POST", PREFIX, headers, None, body(START)))[0] == 200

    # ------------------------------------------------------------------ authentication

    @pytest.mark.parametrize(
        ("method", "path", "data"),
        [
            ("GET", PREFIX, None),
            ("POST", PREFIX, START),
            ("GET", PREFIX + UNKNOWN_ID, None),
            ("POST", PREFIX + UNKNOWN_ID, {"status": "canceling"}),
            ("POST", PREFIX + UNKNOWN_ID + "/continue", {"query": "x"}),
            ("POST", PREFIX + UNKNOWN_ID + "/resume_from", {"checkpointId": UNKNOWN_ID}),
            ("POST", PREFIX + UNKNOWN_ID + "/cancel", None),
            ("GET", PREFIX + UNKNOWN_ID + "/checkpoints", None),
            ("GET", PREFIX + UNKNOWN_ID + "/checkpoints/stream", None),
            ("GET", PREFIX + UNKNOWN_ID + "/checkpoints/" + UNKNOWN_ID, None),
        ],
    )
    async def test_every_route_answers_401_without_a_valid_key(
        self, connect: Connect, method: str, path: str, data: Any
    ) -> None:
        env = make_env()
        system_route = method == "POST" and path == PREFIX + UNKNOWN_ID
        wrong_kind = env.auth if system_route else env.system_auth
        async with connect(env) as call:
            for headers in (
                {"Content-Type": "application/json"},
                {"Authorization": "", "Content-Type": "application/json"},
                {"Authorization": "Bearer ejk_not_a_key", "Content-Type": "application/json"},
                {"Authorization": f"Basic {env.key}", "Content-Type": "application/json"},
                {"Authorization": env.key, "Content-Type": "application/json"},
                wrong_kind,
            ):
                answer = await call(
                    method, path, headers, {"applicationId": APP_ID}, body(data) if data else None
                )
                assert answer[0] == 401 and answer[1] == UNAUTHORIZED, (headers, answer)

    # ------------------------------------------------------------------ GET /{id}

    async def test_get(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            job_id = await self._start(call, env)
            status, data, _ = await call("GET", PREFIX + job_id, env.auth)
            assert status == 200 and data["data"]["expertJob"]["id"] == job_id
            ExpertJobResponse.model_validate(data)
            not_found = f"Expert job not found: {job_id}"
            assert is_error(await call("GET", PREFIX + job_id, env.other_auth), 404, "Not Found", not_found)
            assert is_error(
                await call("GET", PREFIX + UNKNOWN_ID, env.auth),
                404,
                "Not Found",
                f"Expert job not found: {UNKNOWN_ID}",
            )
            answer = await call("GET", PREFIX + "NOT-AN-ID", env.auth)
            assert is_error(answer, 422, "Validation Failed") and answer[1]["reason"].startswith(
                "path.expertJobId: "
            )

    # ------------------------------------------------------------------ POST /{id} (status, system)

    async def test_update_status(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            job_id = await self._start(call, env)
            answer = await call("POST", PREFIX + job_id, env.system_auth, None, body({"status": "completed"}))
            assert is_error(answer, 409, "Conflict") and "queued" in answer[1]["reason"]
            status, data, _ = await call(
                "POST", PREFIX + job_id, env.system_auth, None, body({"status": "canceling"})
            )
            assert status == 200 and data["data"]["expertJob"]["status"] == "canceled"
            assert is_error(
                await call("POST", PREFIX + UNKNOWN_ID, env.system_auth, None, body({"status": "failed"})),
                404,
                "Not Found",
            )
            answer = await call("POST", PREFIX + job_id, env.system_auth, None, body({"status": "finished"}))
            assert is_error(answer, 422, "Validation Failed") and answer[1]["reason"].startswith(
                "body.status: "
            )
            answer = await call("POST", PREFIX + job_id, env.system_auth, None, body({}))
            assert answer[1]["reason"].startswith("body.status: ")
            answer = await call("POST", PREFIX + "x", env.system_auth, None, body({"status": "failed"}))
            assert is_error(answer, 422, "Validation Failed") and answer[1]["reason"].startswith(
                "path.expertJobId"
            )

    # ------------------------------------------------------------------ GET / (list)

    async def test_list(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            ids = [await self._start(call, env) for _ in range(3)]
            await self._start(call, env, {"expertKey": "writer@2.0.0", "query": "x"})
            query = {"applicationId": APP_ID, "filter": "MAIN", "take": "2", "skip": "0", "order": "asc"}
            status, data, _ = await call("GET", PREFIX, env.auth, query)
            assert status == 200
            page = ListJobsResponse.model_validate(data)
            assert page.meta.model_dump() == {"total": 3, "take": 2, "skip": 0}
            assert [j.id for j in page.data.expert_jobs] == ids[:2]
            status, data, _ = await call("GET", PREFIX, env.other_auth, {"applicationId": OTHER_APP_ID})
            assert status == 200 and data["meta"]["total"] == 0  # the other application sees none of them
            answer = await call("GET", PREFIX, env.auth, {"applicationId": OTHER_APP_ID})
            assert answer[0] == 401 and answer[1] == UNAUTHORIZED
            answer = await call("GET", PREFIX, env.auth, {"applicationId": APP_ID, "take": "500"})
            assert is_error(answer, 422, "Validation Failed") and answer[1]["reason"].startswith(
                "query.take: "
            )
            answer = await call("GET", PREFIX, env.auth, None)
            assert is_error(answer, 422, "Validation Failed") and "query.applicationId" in answer[1]["reason"]
            answer = await call(
                "GET", PREFIX, env.auth, [("applicationId", APP_ID), ("take", "1"), ("take", "2")]
            )
            assert is_error(answer, 422, "Validation Failed", "query.take: given more than once")

    # ------------------------------------------------------------------ POST /{id}/continue

    async def test_continue(self, connect: Connect) -> None:
        env = make_env(PAUSE_SCRIPT)
        async with connect(env) as call:
            job_id = await self._start(call, env)
            path = PREFIX + job_id + "/continue"
            assert is_error(
                await call("POST", path, env.auth, None, body({"query": "more"})),
                400,
                "Bad Request",
                "Current status is unable to continue",
            )
            await env.runtime.drive(job_id)
            answer = {"query": "yes", "interactiveToolCallResult": True}
            status, data, _ = await call("POST", path, env.auth, None, body(answer))
            assert status == 200 and data["data"]["expertJob"]["status"] == "queued"
            assert data["data"]["expertJob"]["interactiveToolCallResult"] is True
            await env.runtime.drive(job_id)
            assert is_error(
                await call("POST", path, env.auth, None, body({"files": []})),
                400,
                "Bad Request",
                "Query or files are required",
            )
            assert is_error(
                await call("POST", path, env.other_auth, None, body({"query": "x"})), 404, "Not Found"
            )
            answer422 = await call("POST", path, env.auth, None, body({"query": "x", "temperature": 3}))
            assert (
                is_error(answer422, 422, "Validation Failed") and "body.temperature" in answer422[1]["reason"]
            )
            status, data, _ = await call("POST", path, env.auth, None, body({"query": "more"}))
            assert status == 200 and data["data"]["expertJob"]["interactiveToolCallResult"] is False

    # ------------------------------------------------------------------ POST /{id}/resume_from

    async def test_resume_from(self, connect: Connect) -> None:
        env = make_env(PAUSE_SCRIPT)
        async with connect(env) as call:
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            path = PREFIX + job_id + "/resume_from"
            assert is_error(
                await call("POST", path, env.auth, None, body({"checkpointId": UNKNOWN_ID})),
                400,
                "Bad Request",
                "No checkpoint found",
            )
            _, page, _ = await call("GET", PREFIX + job_id + "/checkpoints", env.auth)
            pause = next(c for c in page["data"]["checkpoints"] if c["runState"] == "waitingInteractive")
            request = {"checkpointId": pause["id"], "query": "yes", "interactiveToolCallResult": "maybe"}
            answer = await call("POST", path, env.auth, None, body(request))
            assert is_error(answer, 422, "Validation Failed")
            assert answer[1]["reason"].startswith("body.interactiveToolCallResult: ")
            request["interactiveToolCallResult"] = True
            status, data, _ = await call("POST", path, env.auth, None, body(request))
            assert status == 200 and data["data"]["expertJob"]["id"] != job_id
            assert is_error(await call("POST", path, env.auth, None, body({})), 422, "Validation Failed")

    # ------------------------------------------------------------------ POST /{id}/cancel

    async def test_cancel(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            job_id = await self._start(call, env)
            status, data, _ = await call("POST", PREFIX + job_id + "/cancel", env.auth)
            assert status == 200 and data["data"]["expertJob"]["status"] == "canceled"
            assert is_error(await call("POST", PREFIX + job_id + "/cancel", env.auth), 409, "Conflict")
            assert is_error(await call("POST", PREFIX + job_id + "/cancel", env.other_auth), 404, "Not Found")

    # ------------------------------------------------------------------ checkpoints

    async def test_checkpoints(self, connect: Connect) -> None:
        env = make_env({"main@1.0.0": [ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("3")]})
        async with connect(env) as call:
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            path = PREFIX + job_id + "/checkpoints"
            status, data, _ = await call("GET", path, env.auth)
            assert status == 200
            every = data["data"]["checkpoints"]
            assert data["meta"] == {"total": len(every), "take": 100, "skip": 0} and len(every) >= 2
            assert [c["seq"] for c in every] == sorted(c["seq"] for c in every)
            assert every[-1]["runState"] == "completed" and every[-1]["expertJobId"] == job_id
            status, data, _ = await call("GET", path, env.auth, {"take": "1", "skip": "1"})
            assert [c["id"] for c in data["data"]["checkpoints"]] == [every[1]["id"]]
            assert is_error(await call("GET", path, env.auth, {"skip": "-3"}), 422, "Validation Failed")
            assert is_error(await call("GET", path, env.other_auth), 404, "Not Found")
            status, data, _ = await call("GET", path + "/" + every[0]["id"], env.auth)
            assert status == 200 and data["data"]["checkpoint"] == every[0]
            assert is_error(
                await call("GET", path + "/" + UNKNOWN_ID, env.auth),
                404,
                "Not Found",
                f"Checkpoint not found: {UNKNOWN_ID}",
            )
            assert is_error(await call("GET", path + "/" + "nope", env.auth), 422, "Validation Failed")

    async def test_checkpoint_stream_of_a_finished_job(self, connect: Connect) -> None:
        env = make_env({"main@1.0.0": [ToolCalls.of(("add", {"a": 1, "b": 2})), Reply("3")]})
        async with connect(env) as call:
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            status, text, headers = await call("GET", PREFIX + job_id + "/checkpoints/stream", env.auth)
            assert status == 200 and headers["content-type"].startswith("text/event-stream")
            events = parse_sse(text)
            _, page, _ = await call("GET", PREFIX + job_id + "/checkpoints", env.auth)
            stored = page["data"]["checkpoints"]
            assert [e["event"] for e in events] == ["message"] * len(stored)
            assert [json.loads(e["data"]) for e in events] == stored
            assert [e["id"] for e in events] == [str(c["seq"]) for c in stored]
            resumed = await call(
                "GET", PREFIX + job_id + "/checkpoints/stream", {**env.auth, "Last-Event-ID": events[0]["id"]}
            )
            assert [e["id"] for e in parse_sse(resumed[1])] == [e["id"] for e in events[1:]]
            answer = await call(
                "GET", PREFIX + job_id + "/checkpoints/stream", {**env.auth, "Last-Event-ID": "x"}
            )
            assert is_error(answer, 422, "Validation Failed")
            assert is_error(
                await call("GET", PREFIX + job_id + "/checkpoints/stream", env.other_auth), 404, "Not Found"
            )

    # ------------------------------------------------------------------ routing

    @pytest.mark.parametrize(
        "path",
        [
            "/",
            "/api/studio/v1/expert_jobs",  # the collection path has a trailing slash
            "/api/studio/v1/expert_job/",
            "/api/studio/v2/expert_jobs/",
            PREFIX + UNKNOWN_ID + "/",
            PREFIX + UNKNOWN_ID + "/nothing",
            PREFIX + UNKNOWN_ID + "/checkpoints/" + UNKNOWN_ID + "/more",
            PREFIX + "/" + UNKNOWN_ID,
        ],
    )
    async def test_unknown_paths_are_404(self, connect: Connect, path: str) -> None:
        env = make_env()
        async with connect(env) as call:
            answer = await call("GET", path, env.auth)
            assert is_error(answer, 404, "Not Found") and "Route not found" in answer[1]["reason"]

    @pytest.mark.parametrize(
        ("method", "path", "allow"),
        [
            ("DELETE", PREFIX, "GET, HEAD, POST"),
            ("PUT", PREFIX + UNKNOWN_ID, "GET, HEAD, POST"),
            ("GET", PREFIX + UNKNOWN_ID + "/continue", "POST"),
            ("GET", PREFIX + UNKNOWN_ID + "/cancel", "POST"),
            ("POST", PREFIX + UNKNOWN_ID + "/checkpoints", "GET, HEAD"),
            ("PATCH", PREFIX + UNKNOWN_ID + "/checkpoints/stream", "GET, HEAD"),
            ("POST", "/openapi.json", "GET, HEAD"),
        ],
    )
    async def test_wrong_methods_are_405_with_allow(
        self, connect: Connect, method: str, path: str, allow: str
    ) -> None:
        env = make_env()
        async with connect(env) as call:
            answer = await call(method, path, env.auth, None, body({}))
            assert is_error(answer, 405, "Method Not Allowed") and answer[2]["allow"] == allow

    async def test_openapi_document_is_served_without_credentials(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            status, data, _ = await call("GET", "/openapi.json", {})
            assert status == 200 and data["openapi"].startswith("3.1")
            assert {PREFIX, PREFIX + "{expertJobId}"} <= set(data["paths"])

    # ------------------------------------------------------------------ hostile input (issue 12)

    BODY_ROUTES = (
        ("POST", PREFIX, "auth"),
        ("POST", PREFIX + UNKNOWN_ID, "system_auth"),
        ("POST", PREFIX + UNKNOWN_ID + "/continue", "auth"),
        ("POST", PREFIX + UNKNOWN_ID + "/resume_from", "auth"),
    )

    @pytest.mark.parametrize(("method", "path", "who"), BODY_ROUTES)
    @pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
    async def test_deeply_nested_json_is_422_on_every_body_route(
        self, connect: Connect, method: str, path: str, who: str, depth: int
    ) -> None:
        env = make_env()
        async with connect(env) as call:
            for opener, closer in (b"[", b"]"), (b'{"a":', b"}"):
                raw = b'{"query":' + opener * depth + b"1" + closer * depth + b"}"
                answer = await call(method, path, getattr(env, who), None, raw)
                assert is_error(answer, 422, "Validation Failed"), answer
                assert answer[1]["reason"] == f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"

    async def test_json_nested_up_to_the_limit_reaches_the_schema(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            nested = b"[" * (MAX_JSON_DEPTH - 1) + b"]" * (MAX_JSON_DEPTH - 1)
            raw = b'{"expertKey": "main@1.0.0", "query": ' + nested + b"}"
            answer = await call("POST", PREFIX, env.auth, None, raw)
            assert is_error(answer, 422, "Validation Failed") and answer[1]["reason"].startswith(
                "body.query: "
            )
            # brackets inside strings are text, not nesting
            text = {"expertKey": "main@1.0.0", "query": "[" * 5_000 + '\\"{' * 100}
            status, data, _ = await call("POST", PREFIX, env.auth, None, body(text))
            assert status == 200 and data["data"]["expertJob"]["query"] == text["query"]

    @pytest.mark.parametrize("number", [b"1e400", b"-1e999", b"9" * 5_000])
    async def test_numbers_json_cannot_hold_are_422(self, connect: Connect, number: bytes) -> None:
        env = make_env()
        async with connect(env) as call:
            raw = b'{"expertKey": "main@1.0.0", "query": "x", "maxSteps": ' + number + b"}"
            answer = await call("POST", PREFIX, env.auth, None, raw)
            assert is_error(answer, 422, "Validation Failed"), answer
            assert answer[1]["reason"].startswith("body: malformed JSON: "), answer

    @pytest.mark.parametrize(
        "value",
        [
            "9" * 5_000,  # more digits than int() converts
            str(2**63),  # beyond a 64-bit seq
            str(2**64 + 1),
            "-1",
            "+3",
            "1.5",
            "1e3",
            "²",  # str.isdigit() says yes, int() says no
            "٣",  # an Arabic-Indic digit
            "0x10",
            "1 2",
        ],
    )
    async def test_an_insane_last_event_id_is_422(self, connect: Connect, value: str) -> None:
        env = make_env()
        async with connect(env) as call:
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            stream = PREFIX + job_id + "/checkpoints/stream"
            answer = await call("GET", stream, {**env.auth, "Last-Event-ID": value})
            assert is_error(answer, 422, "Validation Failed"), answer
            assert answer[1]["reason"].startswith("headers.Last-Event-ID: expected a checkpoint seq "), answer

    async def test_the_largest_last_event_id_is_accepted(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            stream = PREFIX + job_id + "/checkpoints/stream"
            for value in (str(2**63 - 1), " 0 ", "0" * 30 + "1", " "):  # blank: no Last-Event-ID
                status, text, _ = await call("GET", stream, {**env.auth, "Last-Event-ID": value})
                assert status == 200, (value, text)
                if value == str(2**63 - 1):
                    assert parse_sse(text) == []

    async def test_two_authorization_headers_are_401(self, connect: Connect) -> None:
        env = make_env()
        good = f"Bearer {env.key}"
        async with connect(env) as call:
            for pair in ((good, good), ("Bearer nope", good), (good, "Bearer nope")):
                headers = [("Authorization", pair[0]), ("Authorization", pair[1])]
                headers.append(("Content-Type", "application/json"))
                for method, path, data in (("GET", PREFIX + UNKNOWN_ID, None), ("POST", PREFIX, START)):
                    answer = await call(method, path, headers, None, body(data) if data else None)
                    assert answer[0] == 401 and answer[1] == UNAUTHORIZED, (pair, answer)

    async def test_two_content_types_or_last_event_ids_are_422(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            auth = ("Authorization", f"Bearer {env.key}")
            json_type = ("Content-Type", "application/json")
            answer = await call("POST", PREFIX, [auth, json_type, json_type], None, body(START))
            assert is_error(answer, 422, "Validation Failed", "headers.Content-Type: given more than once")
            job_id = await self._start(call, env)
            await env.runtime.drive(job_id)
            answer = await call(
                "GET",
                PREFIX + job_id + "/checkpoints/stream",
                [auth, ("Last-Event-ID", "1"), ("Last-Event-ID", "1")],
            )
            assert is_error(answer, 422, "Validation Failed", "headers.Last-Event-ID: given more than once")

    async def test_a_body_over_the_limit_is_413(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            big = body({**START, "query": "x" * DEFAULT_MAX_BODY_BYTES})
            for method, path, who in self.BODY_ROUTES:
                answer = await call(method, path, getattr(env, who), None, big)
                assert is_error(answer, 413, "Payload Too Large"), answer
                assert answer[1]["reason"] == f"body: larger than the limit of {DEFAULT_MAX_BODY_BYTES} bytes"
            # without credentials it is the 401, not the 413
            answer = await call("POST", PREFIX, {"Content-Type": "application/json"}, None, big)
            assert answer[0] == 401 and answer[1] == UNAUTHORIZED
            just = body(START)[:-1] + b" " * (DEFAULT_MAX_BODY_BYTES - len(body(START))) + b"}"
            assert len(just) == DEFAULT_MAX_BODY_BYTES  # JSON whitespace up to the limit itself
            assert (await call("POST", PREFIX, env.auth, None, just))[0] == 200

    @pytest.mark.parametrize(
        "path",
        [
            PREFIX,
            PREFIX + UNKNOWN_ID,
            PREFIX + UNKNOWN_ID + "/checkpoints",
            PREFIX + UNKNOWN_ID + "/checkpoints/stream",
            PREFIX + UNKNOWN_ID + "/checkpoints/" + UNKNOWN_ID,
            "/openapi.json",
        ],
    )
    async def test_head_answers_like_get_without_a_body(self, connect: Connect, path: str) -> None:
        env = make_env()
        async with connect(env) as call:
            query = {"applicationId": APP_ID}
            got = await call("GET", path, env.auth, query)
            head = await call("HEAD", path, env.auth, query)
            assert head[0] == got[0] != 405, (head, got)
            assert head[1] in (None, "", b""), head
            assert head[2].get("content-type") == got[2].get("content-type")
            if "content-length" in got[2]:
                assert head[2]["content-length"] == got[2]["content-length"]
            unauthenticated = await call("HEAD", path, {}, query)
            assert unauthenticated[0] == (200 if path == "/openapi.json" else 401)

    async def test_head_where_get_is_not_allowed_is_405(self, connect: Connect) -> None:
        env = make_env()
        async with connect(env) as call:
            status, data, headers = await call("HEAD", PREFIX + UNKNOWN_ID + "/cancel", env.auth)
            assert (status, headers["allow"]) == (405, "POST") and data in (None, "", b"")

    async def test_head_on_a_live_stream_does_not_follow_the_job(self, connect: Connect) -> None:
        env = make_env(PAUSE_SCRIPT)
        async with connect(env) as call:
            job_id = await self._start(call, env)  # queued: a GET would wait for the worker
            head = await call("HEAD", PREFIX + job_id + "/checkpoints/stream", env.auth)
            assert head[0] == 200 and head[2]["content-type"].startswith("text/event-stream")
            assert head[1] in (None, "", b"")
