"""Hostile input over real HTTP (issue 12): a uvicorn server with the options of ``expert-jobs
serve`` on 127.0.0.1, over SQLite and over PostgreSQL (a fresh schema for the module; skipped,
saying why, only when the server cannot be reached), with a worker running the jobs.

Hypothesis generates bodies, raw bodies, query strings, headers and paths (huge numbers, deep
nesting, giant strings, NUL characters, wrong types, repeated headers); fixed cases cover each
hardening item. For every request: no 500 (nor an error logged by the app or the server), no hang
(every client wait is bounded), an error in the API's shape, and no job written when the request
was refused. After each test the server still serves a normal request, and its worker still runs
jobs.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from expert_jobs import Reply, ToolCalls
from expert_jobs.api import DEFAULT_MAX_BODY_BYTES, MAX_EVENT_ID, MAX_JSON_DEPTH
from expert_jobs.ports.store import JobStore
from expert_jobs.stores import open_store
from expert_jobs.transports.http import create_app
from tests.http.live import LiveServer, parse_response, raw_exchange
from tests.service.kit import APP_ID, PREFIX, UNAUTHORIZED, UNKNOWN_ID, Env, make_env

SCRIPT = {"main@1.0.0": [ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")], "*": [Reply("ok")]}
START = {"expertKey": "main@1.0.0", "query": "hello"}
CLIENT_TIMEOUT = httpx.Timeout(20.0)
HYPOTHESIS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,  # the autouse health check runs once per test, on purpose
    ],
)


# ---------------------------------------------------------------------- the server under attack


class _Errors(logging.Handler):
    """Every ERROR the app or the server logs (a 500, an exception after a stream started)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class Live:
    """The server, its service and a way to count the job rows in its database."""

    kind: str
    env: Env
    server: LiveServer
    client: httpx.Client
    count_rows: Callable[[], int]
    errors: _Errors
    paused_job: str = ""
    workspace: Path = field(default_factory=Path)

    @property
    def auth(self) -> dict[str, str]:
        return self.env.auth

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: Any = None,
        params: Any = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One request, checked: no 500, the error shape, nothing written when refused."""
        before = self.count_rows()
        response = self.client.request(method, path, headers=headers, params=params, content=content)
        response.read()  # a stream too: an exception after its headers would cut it here
        check_answer(response)
        if response.status_code >= 400:
            assert self.count_rows() == before, f"a refused request wrote a job: {response.text[:200]}"
        return response


def check_answer(response: httpx.Response) -> None:
    """No server error; an error answer is the API's ``{"code", "error", "reason"}`` (a request
    head the server itself refuses is its plain-text 400)."""
    status = response.status_code
    assert status < 500, (status, response.text[:500])
    if status < 400 or response.request.method == "HEAD":
        return
    if status == 400 and response.headers.get("content-type", "").startswith("text/plain"):
        return  # uvicorn refused the request head (too large, malformed)
    data = response.json()
    assert set(data) == {"code", "error", "reason"} and data["code"] == status, data


def _postgres_url() -> str:
    from tests.stores.conftest import _reachable_postgres

    url, why = _reachable_postgres()
    if url is None:
        pytest.skip(f"the PostgreSQL half of the hostile suite needs a server: {why}")
    return url


def _store(kind: str, folder: Path) -> tuple[JobStore, Callable[[], int], Callable[[], None]]:
    """A fresh store, a row counter reading its database directly, and a clean-up."""
    if kind == "sqlite":
        path = folder / "jobs.db"
        store = open_store(f"sqlite:///{path}")

        def count_sqlite() -> int:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=20) as conn:
                return int(conn.execute("SELECT count(*) FROM jobs").fetchone()[0])

        return store, count_sqlite, lambda: None
    import psycopg

    from expert_jobs.stores.postgres import PostgresStore

    url = _postgres_url()
    schema = f"ej_hostile_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(url, autocommit=True)

    def count_postgres() -> int:
        row = conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone()
        assert row is not None
        return int(row[0])

    def drop() -> None:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.close()

    return PostgresStore(url, schema=schema, max_size=4), count_postgres, drop


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The API over real HTTP on a fresh store of each kind, a worker running its jobs, and one
    job paused on an interactive question (with checkpoints) to aim continue, resume_from and the
    checkpoint routes at."""
    kind = request.param
    folder = tmp_path_factory.mktemp(f"hostile-{kind}")
    workspace = folder / "workspace"
    (workspace / APP_ID).mkdir(parents=True)
    (workspace / APP_ID / "data.txt").write_text("1,2,3\n")
    store, count_rows, clean_up = _store(kind, folder)
    env = make_env(SCRIPT, store=store, worker=True, workspace=str(workspace))
    errors = _Errors()
    loggers = [
        logging.getLogger(name) for name in ("uvicorn.error", "expert_jobs.api", "expert_jobs.service")
    ]
    for logger in loggers:
        logger.addHandler(errors)
    try:
        with (
            LiveServer(create_app(env.service)) as server,
            httpx.Client(base_url=server.url, timeout=CLIENT_TIMEOUT) as client,
        ):
            found = Live(kind, env, server, client, count_rows, errors, workspace=workspace)
            found.paused_job = start_and_wait(found, "requestInteractiveToolResult")
            yield found
    finally:
        for logger in loggers:
            logger.removeHandler(errors)
        clean_up()


@pytest.fixture(autouse=True)
def _still_healthy(live: Live) -> Iterator[None]:
    """After each test: nothing logged as an error, and a normal job still runs."""
    live.errors.records.clear()
    yield
    logged = [record.getMessage() for record in live.errors.records]
    assert logged == [], logged
    start_and_wait(live, "requestInteractiveToolResult")


def start_and_wait(live: Live, *statuses: str, data: Any = START) -> str:
    """Start a job over HTTP and poll until the worker brought it to one of ``statuses``."""
    response = live.client.post(PREFIX, headers=live.auth, content=json.dumps(data).encode())
    assert response.status_code == 200, response.text
    job_id = str(response.json()["data"]["expertJob"]["id"])
    deadline = time.monotonic() + 60
    while True:
        job = live.client.get(PREFIX + job_id, headers=live.auth).json()["data"]["expertJob"]
        if job["status"] in statuses:
            return job_id
        assert time.monotonic() < deadline, f"job {job_id} stayed {job['status']}"
        time.sleep(0.02)


def body_routes(live: Live) -> list[tuple[str, dict[str, str]]]:
    """Every route that takes a body, with the key it needs."""
    job = live.paused_job
    return [
        (PREFIX, live.auth),
        (PREFIX + job, live.env.system_auth),
        (PREFIX + job + "/continue", live.auth),
        (PREFIX + job + "/resume_from", live.auth),
    ]


# ---------------------------------------------------------------------- the hardening items


def test_deeply_nested_json_is_422_on_every_body_route(live: Live) -> None:
    for path, headers in body_routes(live):
        for depth in (MAX_JSON_DEPTH + 1, 1_000, 100_000):
            raw = b'{"query":' + b"[" * depth + b"]" * depth + b"}"
            response = live.call("POST", path, headers=headers, content=raw)
            assert response.status_code == 422, (path, depth, response.text)
            assert response.json()["reason"] == f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels"


def test_insane_last_event_ids_are_422_and_the_largest_sane_one_streams(live: Live) -> None:
    stream = PREFIX + live.paused_job + "/checkpoints/stream"
    for value in ("9" * 5_000, str(2**63), str(2**64), "-1", "1e3", "0x1"):
        response = live.call("GET", stream, headers={**live.auth, "Last-Event-ID": value})
        assert response.status_code == 422, (value[:30], response.text)
    everything = live.call("GET", stream, headers=live.auth).text
    assert live.call("GET", stream, headers={**live.auth, "Last-Event-ID": "0"}).status_code == 200
    response = live.call("GET", stream, headers={**live.auth, "Last-Event-ID": str(MAX_EVENT_ID)})
    assert response.status_code == 200 and response.text == "" and "event: message" in everything


def test_repeated_headers(live: Live) -> None:
    key = f"Bearer {live.env.key}"
    json_type = ("Content-Type", "application/json")
    for pair in ((key, key), ("Bearer ejk_wrong", key), (key, "Bearer ejk_wrong")):
        headers = [("Authorization", pair[0]), ("Authorization", pair[1]), json_type]
        response = live.call("POST", PREFIX, headers=headers, content=json.dumps(START).encode())
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    response = live.call(
        "POST",
        PREFIX,
        headers=[("Authorization", key), json_type, json_type],
        content=json.dumps(START).encode(),
    )
    assert response.json()["reason"] == "headers.Content-Type: given more than once"
    response = live.call(
        "GET",
        PREFIX + live.paused_job + "/checkpoints/stream",
        headers=[("Authorization", key), ("Last-Event-ID", "1"), ("Last-Event-ID", "2")],
    )
    assert response.json()["reason"] == "headers.Last-Event-ID: given more than once"


def test_head_answers_like_get(live: Live) -> None:
    job = live.paused_job
    listing = {"applicationId": APP_ID}
    for path, params in (
        (PREFIX, listing),
        (PREFIX + job, None),
        (PREFIX + UNKNOWN_ID, None),
        (PREFIX + job + "/checkpoints", None),
        (PREFIX + job + "/checkpoints/stream", None),
        ("/openapi.json", None),
    ):
        got = live.call("GET", path, headers=live.auth, params=params)
        head = live.call("HEAD", path, headers=live.auth, params=params)
        assert head.status_code == got.status_code, path
        assert head.content == b""
        for name in ("content-type", "content-length", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    response = live.call("HEAD", PREFIX + job + "/cancel", headers=live.auth)
    assert (response.status_code, response.headers["allow"]) == (405, "POST")
    response = live.call("DELETE", PREFIX, headers=live.auth)
    assert (response.status_code, response.headers["allow"]) == (405, "GET, HEAD, POST")


def _head(path: str, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def test_a_huge_announced_body_is_answered_at_once_without_being_sent(live: Live) -> None:
    """The body never comes: the answer (401 without a good key, else 413) cannot have waited
    for it, and the server closes the connection, whose unread body it will not parse."""
    before = live.count_rows()
    declared = {"Content-Type": "application/json", "Content-Length": str(200 << 20)}
    for authorization, status in (
        (None, 401),
        ("Bearer ejk_wrong", 401),
        (f"Bearer {live.env.key}", 413),
    ):
        headers = declared if authorization is None else {**declared, "Authorization": authorization}
        got, received, data = parse_response(raw_exchange(live.server.port, _head(PREFIX, headers)))
        assert got == status and received["connection"] == "close", (got, received, data)
        assert json.loads(data)["code"] == status
    assert live.count_rows() == before


def test_a_chunked_body_past_the_limit_is_413_once_the_limit_is_passed(live: Live) -> None:
    before = live.count_rows()
    headers = {
        "Authorization": f"Bearer {live.env.key}",
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
    }
    size = DEFAULT_MAX_BODY_BYTES + 1
    chunk = f"{size:x}\r\n".encode() + b" " * size + b"\r\n"  # no last chunk: the body never ends
    got, received, data = parse_response(raw_exchange(live.server.port, _head(PREFIX, headers) + chunk))
    assert (got, received["connection"]) == (413, "close"), data
    assert json.loads(data) == {
        "code": 413,
        "error": "Payload Too Large",
        "reason": f"body: larger than the limit of {DEFAULT_MAX_BODY_BYTES} bytes",
    }
    assert live.count_rows() == before


def test_a_request_head_that_grows_past_the_servers_limit_is_cut_off(live: Live) -> None:
    """A head still incomplete at ``max_header_bytes`` (a header that never ends: slowloris, or a
    flood) is refused with the server's 400 and the connection closed, never buffered on."""
    big = live.server.limits.max_header_bytes
    for request in (
        f"GET {PREFIX} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * big}",
        f"GET /{'a' * big}",
        "GET / HTTP/1.1\r\n" + "X-Many: 1\r\n" * (big // 10),
    ):
        answer = raw_exchange(live.server.port, request.encode())
        assert answer == b"" or parse_response(answer)[0] == 400, answer[:200]  # refused or reset


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("maxSteps", 1e308),
        ("maxSteps", 2**63),
        ("maxSteps", str(2**63)),
        ("maxSteps", -(2**63) - 1),
        ("maxRetries", 1e308),
        ("maxRetries", 2**63),
        ("maxRetries", str(2**64)),
        ("temperature", 1e308),
        ("temperature", -1e308),
        ("temperature", 2**63),
        ("temperature", "1e999"),
        ("files", ["a" * 5_000]),  # ENAMETOOLONG
        ("files", ["a/" * 3_000 + "b"]),
        ("files", ["data.txt\x00"]),
        ("files", [f"f{i}" for i in range(20_000)]),  # too many files
        ("files", "x" * 100_000),
        ("query", "\ud800"),  # a lone surrogate
        ("model", "m" * 100_000),
        ("expertKey", "\x00"),
    ],
)
def test_service_fields_out_of_range_are_refused(live: Live, field: str, value: Any) -> None:
    data = {**START, field: value}
    for path, headers in body_routes(live):
        if path.endswith("/continue"):
            data.pop("expertKey", None)
        response = live.call("POST", path, headers=headers, content=json.dumps(data).encode())
        if path == PREFIX:
            assert 400 <= response.status_code < 500, response.text


@pytest.mark.parametrize(
    "params",
    [
        {"take": str(2**63)},
        {"skip": str(2**63)},
        {"skip": str(2**64)},
        {"skip": "9" * 5_000},
        {"take": "-" + "9" * 30},
        {"filter": "a\x00b"},
        {"filter": "x" * 10_000},
        {"filter": "%_\\"},
        {"sort": "\x00"},
        {"order": "'; DROP TABLE jobs; --"},
    ],
)
def test_list_and_checkpoint_queries_out_of_range_are_refused(live: Live, params: dict[str, str]) -> None:
    response = live.call("GET", PREFIX, headers=live.auth, params={"applicationId": APP_ID, **params})
    if "skip" in params:  # past the end: an empty page, or refused
        assert response.status_code in (200, 422), response.text
    elif "filter" not in params or "\x00" in params["filter"]:
        assert response.status_code == 422, response.text
    checkpoint_params = {k: v for k, v in params.items() if k in ("take", "skip")}
    if checkpoint_params:
        path = PREFIX + live.paused_job + "/checkpoints"
        response = live.call("GET", path, headers=live.auth, params=checkpoint_params)
        assert response.status_code in (200, 422), response.text


# ---------------------------------------------------------------------- generated hostility

HUGE_NUMBERS = st.sampled_from(
    [2**63, 2**63 - 1, -(2**63), 2**64, 10**30, 1e308, -1e308, 5e-324, 1.7976931348623157e308, 0, -1]
)
HOSTILE_TEXT = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "x" * 100_000,
        "\ud800",
        "\udfff\ud800",
        "../../etc/passwd",
        "/etc/passwd",
        "a" * 5_000,
        "%_\\",
        "'; DROP TABLE jobs; --",
        "\u202e\ufeff",
        "main@1.0.0\x00",
        "",
        " ",
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | HUGE_NUMBERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | HOSTILE_TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=12,
)
FIELDS = (
    "expertKey",
    "query",
    "files",
    "maxSteps",
    "maxRetries",
    "temperature",
    "model",
    "interactiveToolCallResult",
    "toolCallId",
    "checkpointId",
    "status",
)
BODIES = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES, max_size=6).map(
    lambda data: {"expertKey": "main@1.0.0", **data}
)


def _nested(depth: int, kind: str) -> bytes:
    opener, closer = (b"[", b"]") if kind == "list" else (b'{"a":', b"}")
    return b'{"query":' + opener * depth + b"0" + closer * depth + b"}"


RAW_BODIES = (
    st.binary(max_size=300)
    | st.builds(_nested, st.integers(min_value=1, max_value=20_000), st.sampled_from(["list", "dict"]))
    | st.sampled_from(
        [
            b'{"maxSteps": ' + b"9" * 5_000 + b"}",
            b'{"temperature": 1e400}',
            b'{"maxSteps": NaN}',
            b'{"query": "\\ud800"}',
            b'{"query": "\\u0000"}',
            b"\xff\xfe{}",
            b'{"a": 1, "a": 2}',
            b"{" * 70,
            b"[" * 200_000,
            b'"' + b"x" * 50_000,
            b"",
            b"null",
        ]
    )
)


@HYPOTHESIS
@given(data=BODIES, route=st.integers(min_value=0, max_value=3))
def test_generated_bodies(live: Live, data: dict[str, Any], route: int) -> None:
    path, headers = body_routes(live)[route]
    live.call("POST", path, headers=headers, content=json.dumps(data).encode())


@HYPOTHESIS
@given(
    raw=RAW_BODIES,
    route=st.integers(min_value=0, max_value=3),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=latin-1", "text/plain", "application/x+json", ""]
    ),
)
def test_generated_raw_bodies(live: Live, raw: bytes, route: int, content_type: str) -> None:
    path, headers = body_routes(live)[route]
    sent = {**headers, "Content-Type": content_type} if content_type else headers
    live.call("POST", path, headers=sent, content=raw)


QUERY_VALUES = (
    st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | HUGE_NUMBERS.map(str)
    | st.text(max_size=40)
    | HOSTILE_TEXT.filter(
        lambda text: len(text) <= 5_000 and not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    )
)  # heads past the server's limit: test_a_request_head_that_grows_past_the_servers_limit_is_cut_off
QUERIES = st.lists(
    st.tuples(
        st.sampled_from(["applicationId", "take", "skip", "filter", "sort", "order", "x"]), QUERY_VALUES
    ),
    max_size=6,
)


@HYPOTHESIS
@given(query=QUERIES, checkpoints=st.booleans(), own_application=st.booleans())
def test_generated_queries(
    live: Live, query: list[tuple[str, str]], checkpoints: bool, own_application: bool
) -> None:
    params = [("applicationId", APP_ID)] if own_application else []
    path = PREFIX + live.paused_job + "/checkpoints" if checkpoints else PREFIX
    live.call("GET", path, headers=live.auth, params=params + query)


HEADER_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60
)
HEADER_VALUES = HEADER_TEXT | st.sampled_from(["Bearer ", "bearer", "Bearer \u00e9", str(2**63), "9" * 5_000])


@HYPOTHESIS
@given(
    extra=st.lists(
        st.tuples(
            st.sampled_from(["Authorization", "Content-Type", "Last-Event-ID", "X-Any"]), HEADER_VALUES
        ),
        max_size=4,
    ),
    keep_key=st.booleans(),
    route=st.sampled_from(["list", "get", "stream", "start", "status"]),
)
def test_generated_headers(live: Live, extra: list[tuple[str, str]], keep_key: bool, route: str) -> None:
    key = live.env.system_key if route == "status" else live.env.key
    headers = [("Authorization", f"Bearer {key}")] if keep_key else []
    headers += [(name, value.strip()) for name, value in extra]
    raw_headers = [(name, value.encode("latin-1")) for name, value in headers]
    job = live.paused_job
    method, path, params, content = {
        "list": ("GET", PREFIX, {"applicationId": APP_ID}, None),
        "get": ("GET", PREFIX + job, None, None),
        "stream": ("GET", PREFIX + job + "/checkpoints/stream", None, None),
        "start": ("POST", PREFIX, None, json.dumps(START).encode()),
        "status": ("POST", PREFIX + job, None, b'{"status": "processing"}'),
    }[route]
    response = live.call(method, path, headers=raw_headers, params=params, content=content)
    if [name for name, _ in headers].count("Authorization") > 1:
        assert response.status_code == 401


PATH_SEGMENTS = st.text(max_size=40) | st.sampled_from(
    ["%00", "..", "%2e%2e", "a" * 3_000, UNKNOWN_ID + "\x00", "\ud7ff", "checkpoints", "stream", ""]
)


@HYPOTHESIS
@given(
    segments=st.lists(PATH_SEGMENTS, min_size=1, max_size=4),
    method=st.sampled_from(["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]),
)
def test_generated_paths(live: Live, segments: list[str], method: str) -> None:
    path = PREFIX + "/".join(quote(segment, safe="%") for segment in segments)  # %00 stays as it is
    content = json.dumps(START).encode() if method in ("POST", "PUT", "PATCH") else None
    live.call(method, path, headers=live.auth, content=content)
