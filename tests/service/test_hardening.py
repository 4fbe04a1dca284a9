"""Hostile input at the service: every bad value is a 4xx with the spec's error body, on every store,
and nothing is written for a refused request.

The documented ranges (docs/api.md): ``maxSteps`` 1..1,000,000, ``maxRetries`` 0..100,
``temperature`` 0..1; ``take`` 1..100 and any ``skip`` >= 0 (past the end: an empty page); names,
ids and filters without NUL; at most 100 files per request (exact repeats folded), each at most
1 MiB and 10 MiB together (``Workspace`` limits).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from expert_jobs import (
    JobQuery,
    JobStatus,
    MemoryStore,
    Reply,
    TextPart,
    ToolCalls,
    ToolResultsMessage,
    UserMessage,
    ValidationFailed,
    Workspace,
)
from expert_jobs.api import dispatch
from expert_jobs.engine.files import DEFAULT_MAX_FILE_BYTES
from expert_jobs.engine.runner import root_run_id
from expert_jobs.ports.store import JobStore
from expert_jobs.providers.scripted import Turn
from expert_jobs.service import CheckpointPageQuery

from .kit import APP_ID, PREFIX, Env, body, make_env

S = JobStatus
SCRIPT: dict[str, list[Turn]] = {
    "main@1.0.0": [ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")],
    "*": [Reply("ok")],
}
START = {"expertKey": "main@1.0.0", "query": "x"}


def _env(store: JobStore, workspace: Path | None = None, **limits: int) -> Env:
    env = make_env(SCRIPT, store=store)
    if workspace is not None:
        env.runtime.workspace = Workspace(workspace, **limits)
    return env


def _workspace(tmp_path: Path, files: dict[str, bytes] | None = None) -> Path:
    root = tmp_path / "ws"
    (root / APP_ID).mkdir(parents=True)
    for name, data in (files or {}).items():
        (root / APP_ID / name).write_bytes(data)
    return root


async def _total(env: Env) -> int:
    return (await env.runtime.store.list(JobQuery(application_id=APP_ID)))[1]


async def _paused(env: Env) -> str:
    """A job paused on an interactive question (root checkpoints written)."""
    job = await env.service.start_job(env.app, START)
    done = await env.runtime.drive(job.id)
    assert done.status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    return job.id


async def _completed(env: Env) -> str:
    job = await env.service.start_job(env.app, {"expertKey": "writer@2.0.0", "query": "x"})
    assert (await env.runtime.drive(job.id)).status is S.COMPLETED
    return job.id


async def _refused(call: Any, reason: str) -> None:
    """The call raises exactly ``422 Validation Failed`` with ``reason``."""
    with pytest.raises(ValidationFailed) as caught:
        await call
    assert caught.value.body() == {"code": 422, "error": "Validation Failed", "reason": reason}


# ---------------------------------------------------------------------------------------- numbers

TOO_LARGE = [
    ("maxSteps", 2**63, "body.maxSteps: Input should be less than or equal to 1000000"),
    ("maxSteps", 2**31, "body.maxSteps: Input should be less than or equal to 1000000"),
    ("maxSteps", "1e308", "body.maxSteps: Input should be less than or equal to 1000000"),
    ("maxSteps", 1e308, "body.maxSteps: Input should be less than or equal to 1000000"),
    ("maxSteps", 1_000_001, "body.maxSteps: Input should be less than or equal to 1000000"),
    ("maxRetries", 2**63, "body.maxRetries: Input should be less than or equal to 100"),
    ("maxRetries", "1e308", "body.maxRetries: Input should be less than or equal to 100"),
    ("maxRetries", 101, "body.maxRetries: Input should be less than or equal to 100"),
]
LARGEST = {"maxSteps": 1_000_000, "maxRetries": 100}


@pytest.mark.parametrize(("field", "value", "reason"), TOO_LARGE)
async def test_numbers_beyond_the_documented_range_are_422_and_start_writes_nothing(
    any_store: JobStore, field: str, value: Any, reason: str
) -> None:
    env = _env(any_store)
    await _refused(env.service.start_job(env.app, {**START, field: value}), reason)
    assert await _total(env) == 0
    # The largest documented value fits every store (PostgreSQL's columns are int4).
    job = await env.service.start_job(env.app, {**START, field: str(LARGEST[field])})
    stored = await env.service.get(env.app, job.id)
    assert stored.to_wire()[field] == LARGEST[field]


async def test_continue_and_resume_from_refuse_out_of_range_numbers_and_change_nothing(
    any_store: JobStore,
) -> None:
    env = _env(any_store)
    job_id = await _paused(env)
    before = await env.runtime.get(job_id)
    first = (await env.runtime.store.list_checkpoints(job_id, take=1))[0][0]
    temperature = ("temperature", "1e308", "body.temperature: Input should be less than or equal to 1")
    for field, value, reason in [*TOO_LARGE, temperature]:
        answer = {"query": "yes", "interactiveToolCallResult": True, field: value}
        await _refused(env.service.continue_job(env.app, job_id, answer), reason)
        branch = {"checkpointId": first.id, "query": "more", field: value}
        await _refused(env.service.resume_from(env.app, job_id, branch), reason)
    after = await env.runtime.get(job_id)
    assert (after.status, after.version, after.max_steps) == (before.status, before.version, before.max_steps)
    assert await _total(env) == 1


# ---------------------------------------------------------------------------------------- paging

HUGE_SKIPS = [2**63 - 1, 2**63, 2**64, "18446744073709551616", "1e308", 10**30]


async def test_a_skip_past_the_end_however_large_is_an_empty_page(any_store: JobStore) -> None:
    env = _env(any_store)
    for _ in range(3):
        await env.service.start_job(env.app, START)
    for skip in HUGE_SKIPS:
        page = await env.service.list(env.app, {"applicationId": APP_ID, "skip": skip})
        expected = int(float(skip)) if isinstance(skip, str) else skip
        assert (page.jobs, page.total, page.take, page.skip) == ([], 3, 100, expected)
        assert page.to_wire()["meta"] == {"total": 3, "take": 100, "skip": expected}
    # Only a number too long for Python to read is refused (clearly, without internals).
    await _refused(
        env.service.list(env.app, {"applicationId": APP_ID, "skip": "9" * 5000}),
        "query.skip: must be a number of at most 4300 digits",
    )


async def test_a_checkpoint_skip_past_the_end_however_large_is_an_empty_page(any_store: JobStore) -> None:
    env = _env(any_store)
    job_id = await _paused(env)
    count = (await env.runtime.store.list_checkpoints(job_id))[1]
    assert count >= 1
    for skip in HUGE_SKIPS:
        page = await env.service.list_checkpoints(env.app, job_id, {"skip": skip})
        expected = int(float(skip)) if isinstance(skip, str) else skip
        assert (page.checkpoints, page.total, page.skip) == ([], count, expected)
    # The checkpoint query parses numbers like the list query does.
    assert CheckpointPageQuery.model_validate({"skip": "1e3", "take": "5.0"}).skip == 1000
    # A stream resuming after a seq beyond what the stores hold sees nothing more.
    watch = await env.service.watch_checkpoints(env.app, job_id, after_seq=2**70)
    assert [item async for item in watch] == []


# ---------------------------------------------------------------------------------------- names

LONG_COMPONENT = "x" * 300 + ".txt"
LONG_PATH = "a/" * 2500 + "b.txt"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ([LONG_COMPONENT], "body.files[0]: the name is too long for the file system"),
        (["ok.txt", LONG_PATH], "body.files[1]: the name is too long for the file system"),
        (["ok.txt", "a\x00b.txt"], "body.files[1]: must not contain NUL characters"),
        ("\x00", "body.files[0]: must not contain NUL characters"),
    ],
)
async def test_file_names_the_file_system_cannot_hold_are_422_naming_the_field(
    any_store: JobStore, tmp_path: Path, files: Any, reason: str
) -> None:
    env = _env(any_store, _workspace(tmp_path, {"ok.txt": b"fine"}))
    await _refused(env.service.start_job(env.app, {**START, "files": files}), reason)
    assert await _total(env) == 0
    job_id = await _completed(env)
    version = (await env.runtime.get(job_id)).version
    await _refused(env.service.continue_job(env.app, job_id, {"query": "more", "files": files}), reason)
    assert (await env.runtime.get(job_id)).version == version
    first = (await env.runtime.store.list_checkpoints(job_id, take=1))[0][0]
    await _refused(
        env.service.resume_from(env.app, job_id, {"checkpointId": first.id, "files": files}), reason
    )
    assert await _total(env) == 1


# ---------------------------------------------------------------------------------------- NUL


async def test_nul_in_a_filter_is_422_on_every_store(any_store: JobStore) -> None:
    env = _env(any_store)
    await env.service.start_job(env.app, START)
    await _refused(
        env.service.list(env.app, {"applicationId": APP_ID, "filter": "ma\x00in"}),
        "query.filter: must not contain NUL characters",
    )


async def test_nul_in_a_tool_call_id_is_422(any_store: JobStore) -> None:
    env = _env(any_store)
    job_id = await _paused(env)
    answer = {"query": "yes", "interactiveToolCallResult": True, "toolCallId": "call\x00"}
    await _refused(
        env.service.continue_job(env.app, job_id, answer), "body.toolCallId: must not contain NUL characters"
    )
    assert (await env.runtime.get(job_id)).status is S.REQUEST_INTERACTIVE_TOOL_RESULT


async def test_nul_in_free_text_is_stored_and_read_back_exactly_on_every_store(any_store: JobStore) -> None:
    """Queries and answers are free text: NUL is kept (the stores hold them as JSON, which PostgreSQL
    ``text`` could not)."""
    env = _env(any_store)
    job = await env.service.start_job(env.app, {**START, "query": "before\x00after"})
    assert (await env.service.get(env.app, job.id)).query == "before\x00after"
    assert (await env.runtime.drive(job.id)).status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    answered = await env.service.continue_job(
        env.app, job.id, {"query": "y\x00es", "interactiveToolCallResult": True}
    )
    assert answered.status is S.QUEUED
    assert (await env.runtime.drive(job.id)).status is S.COMPLETED
    history = await env.runtime.store.load_history(job.id, root_run_id(job.id))
    assert history[0] == UserMessage((TextPart("before\x00after"),))
    answers = [r for m in history if isinstance(m, ToolResultsMessage) for r in m.results]
    assert [r.content for r in answers] == ["y\x00es"]
    followed = await env.service.continue_job(env.app, job.id, {"query": "and\x00then"})
    assert followed.status is S.QUEUED
    history = await env.runtime.store.load_history(job.id, root_run_id(job.id))
    assert history[-1] == UserMessage((TextPart("and\x00then"),))


async def test_lone_surrogates_in_text_are_422() -> None:
    env = make_env()
    await _refused(
        env.service.list(env.app, {"applicationId": APP_ID, "filter": "a\ud800"}),
        "query.filter: must be valid Unicode text (a lone surrogate at position 1)",
    )


# ---------------------------------------------------------------------------------------- files


async def test_more_files_than_the_limit_are_422_before_the_file_system_is_touched(
    any_store: JobStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(any_store, _workspace(tmp_path))

    def touched(*args: object) -> None:
        raise AssertionError("the workspace was searched for a request over the count limit")

    monkeypatch.setattr(Workspace, "check", touched)
    names = [f"f{i}.txt" for i in range(100_000)]
    await _refused(
        env.service.start_job(env.app, {**START, "files": names}),
        "body.files[100]: at most 100 files may be given, got 100000",
    )
    assert await _total(env) == 0


async def test_the_file_count_limit_is_configurable_and_repeats_count_once(tmp_path: Path) -> None:
    root = _workspace(tmp_path, {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"})
    env = _env(MemoryStore(), root, max_files=2)
    await _refused(
        env.service.start_job(env.app, {**START, "files": ["a.txt", "b.txt", "c.txt"]}),
        "body.files[2]: at most 2 files may be given, got 3",
    )
    job = await env.service.start_job(env.app, {**START, "files": ["b.txt", "a.txt", "b.txt", "a.txt"]})
    assert job.files == ("b.txt", "a.txt")
    assert (await env.runtime.get(job.id)).files == ("b.txt", "a.txt")


async def test_a_file_named_many_times_is_inlined_once(any_store: JobStore, tmp_path: Path) -> None:
    data = b"0123456789" * 100_000  # 1 MB
    env = _env(any_store, _workspace(tmp_path, {"big.txt": data}))
    job = await env.service.start_job(env.app, {**START, "files": ["big.txt"] * 150})
    assert job.files == ("big.txt",)
    assert (await env.runtime.drive(job.id)).status is S.REQUEST_INTERACTIVE_TOOL_RESULT
    first = (await env.runtime.store.load_history(job.id, root_run_id(job.id)))[0]
    assert isinstance(first, UserMessage) and len(first.parts) == 2  # the query and the file, once
    assert sum(len(p.text) for p in first.parts if isinstance(p, TextPart)) < len(data) + 200


async def test_a_file_over_the_default_size_limit_is_422_naming_it(
    any_store: JobStore, tmp_path: Path
) -> None:
    root = _workspace(tmp_path, {"ok.txt": b"ok", "big.txt": b"x" * (DEFAULT_MAX_FILE_BYTES + 1)})
    env = _env(any_store, root)
    await _refused(
        env.service.start_job(env.app, {**START, "files": ["ok.txt", "big.txt"]}),
        "body.files[1]: the file holds 1 MiB (1048577 bytes); a file may hold at most 1 MiB (1048576 bytes)",
    )
    assert await _total(env) == 0


async def test_files_over_the_configured_limits_are_422_on_start_continue_and_resume_from(
    any_store: JobStore, tmp_path: Path
) -> None:
    files = {"a.txt": b"a" * 10, "b.txt": b"b" * 10, "c.txt": b"c" * 10, "big.txt": b"x" * 11}
    env = _env(any_store, _workspace(tmp_path, files), max_file_bytes=10, max_total_bytes=25)
    too_big = "body.files[1]: the file holds 11 bytes; a file may hold at most 10 bytes"
    too_much = (
        "body.files[2]: the files up to this one hold 30 bytes;"
        " the files of a request may hold at most 25 bytes together"
    )
    cases = [(["a.txt", "big.txt"], too_big), (["a.txt", "b.txt", "c.txt"], too_much)]
    for names, reason in cases:
        await _refused(env.service.start_job(env.app, {**START, "files": names}), reason)
    assert await _total(env) == 0
    job_id = await _completed(env)
    version = (await env.runtime.get(job_id)).version
    first = (await env.runtime.store.list_checkpoints(job_id, take=1))[0][0]
    for names, reason in cases:
        await _refused(env.service.continue_job(env.app, job_id, {"files": names}), reason)
        branch = {"checkpointId": first.id, "query": "more", "files": names}
        await _refused(env.service.resume_from(env.app, job_id, branch), reason)
    assert (await env.runtime.get(job_id)).version == version
    assert await _total(env) == 1
    job = await env.service.start_job(env.app, {**START, "files": ["a.txt", "b.txt"]})
    assert job.files == ("a.txt", "b.txt")


async def test_the_workspace_is_searched_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(MemoryStore(), _workspace(tmp_path, {"a.txt": b"a"}))
    threads: list[int] = []
    check = Workspace.check

    def recording(self: Workspace, *args: Any) -> None:
        threads.append(threading.get_ident())
        check(self, *args)

    monkeypatch.setattr(Workspace, "check", recording)
    loop_thread = threading.get_ident()
    await env.service.start_job(env.app, {**START, "files": ["a.txt"]})
    assert threads and threads[0] != loop_thread  # the service's check, for the whole batch


# ---------------------------------------------------------------------------------------- over the API


async def test_hostile_requests_get_4xx_never_500_on_every_store(any_store: JobStore, tmp_path: Path) -> None:
    env = _env(any_store, _workspace(tmp_path, {"a.txt": b"a"}))
    job_id = await _paused(env)
    before = await _total(env)
    requests: list[tuple[str, str, dict[str, str] | None, Any, int]] = [
        ("POST", PREFIX, None, {**START, "maxSteps": 2**63}, 422),
        ("POST", PREFIX, None, {**START, "maxSteps": 2**31}, 422),
        ("POST", PREFIX, None, {**START, "maxRetries": 1e308}, 422),
        ("POST", PREFIX, None, {**START, "files": ["y" * 300]}, 422),
        ("POST", PREFIX, None, {**START, "files": ["a\x00"]}, 422),
        ("POST", PREFIX, None, {**START, "files": ["a.txt"] * 500}, 200),
        ("GET", PREFIX, {"applicationId": APP_ID, "skip": str(2**63)}, None, 200),
        ("GET", PREFIX, {"applicationId": APP_ID, "skip": "1e308"}, None, 200),
        ("GET", PREFIX, {"applicationId": APP_ID, "filter": "\x00"}, None, 422),
        ("GET", f"{PREFIX}{job_id}/checkpoints", {"skip": str(2**64)}, None, 200),
        ("POST", f"{PREFIX}{job_id}/continue", None, {"query": "y", "maxSteps": "1e308"}, 422),
    ]
    for method, path, query, data, status in requests:
        answer = await dispatch(
            env.service, method, path, env.auth, query, None if data is None else body(data)
        )
        assert answer.status == status, (path, query, data, answer.body)
        if status != 200:
            assert set(answer.body) == {"code", "error", "reason"} and answer.body["code"] == status
    assert await _total(env) == before + 1  # only the 500-times-named file started a job
