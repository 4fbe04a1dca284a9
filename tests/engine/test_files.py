"""Job files: names resolved inside the application's workspace; text inline, images as file parts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from expert_jobs import (
    FilePart,
    JobStatus,
    Reply,
    Runtime,
    ScriptedProvider,
    TextPart,
    UserMessage,
    Workspace,
)
from expert_jobs.domain.errors import UsageError
from expert_jobs.engine.files import FileRefused
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    app = tmp_path / DEFAULT_APPLICATION_ID
    (app / "docs").mkdir(parents=True)
    (app / "docs" / "notes.txt").write_text("hello notes")
    (app / "chart.png").write_bytes(PNG)
    (tmp_path / "secret.txt").write_text("not yours")
    os.symlink(tmp_path / "secret.txt", app / "link.txt")
    return Workspace(tmp_path)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../secret.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        ("link.txt", "out of the workspace"),
        ("missing.txt", "no such file"),
        ("", "empty"),
    ],
)
def test_names_that_leave_the_workspace_or_do_not_exist_are_refused(
    workspace: Workspace, name: str, why: str
) -> None:
    with pytest.raises(FileRefused, match=why):
        workspace.check(DEFAULT_APPLICATION_ID, (name,), "anthropic")


def test_binary_files_are_refused_for_providers_without_file_parts(workspace: Workspace) -> None:
    workspace.check(DEFAULT_APPLICATION_ID, ("chart.png",), "openai")
    with pytest.raises(FileRefused, match="not supported by deepseek"):
        workspace.check(DEFAULT_APPLICATION_ID, ("chart.png",), "deepseek")


async def test_files_become_parts_of_the_first_message(workspace: Workspace) -> None:
    provider = ScriptedProvider([Reply("seen")])
    provider.record_requests = True
    runtime = Runtime(providers=provider, workspace=workspace)
    runtime.add_expert("reader", "You read files.")
    job = await runtime.run("reader", "summarise", ["docs/notes.txt", "chart.png"])
    assert job.status is JobStatus.COMPLETED
    assert job.files == ("docs/notes.txt", "chart.png")
    first = provider.requests[0].messages[0]
    assert isinstance(first, UserMessage)
    query, notes, chart = first.parts
    assert query == TextPart("summarise")
    assert (
        isinstance(notes, TextPart) and "hello notes" in notes.text and 'name="docs/notes.txt"' in notes.text
    )
    assert chart == FilePart("chart.png", "image/png", PNG)


async def test_a_job_with_a_refused_file_is_never_written(workspace: Workspace) -> None:
    runtime = Runtime(providers=ScriptedProvider([Reply("x")]), workspace=workspace)
    runtime.add_expert("reader", "You read files.")
    with pytest.raises(FileRefused):
        await runtime.submit("reader", "q", ["../secret.txt"])
    _jobs, total = await runtime.store.list(__import__("expert_jobs").JobQuery(DEFAULT_APPLICATION_ID))
    assert total == 0


# -- limits and names the file system refuses ---------------------------------------------------


@pytest.mark.parametrize("limit", ["max_files", "max_file_bytes", "max_total_bytes"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5])
def test_workspace_limits_must_be_whole_numbers_of_at_least_one(
    tmp_path: Path, limit: str, value: object
) -> None:
    with pytest.raises(UsageError, match=limit):
        Workspace(tmp_path, **{limit: value})  # type: ignore[arg-type]


def test_names_the_file_system_cannot_hold_are_refused_not_raised(
    workspace: Workspace, tmp_path: Path
) -> None:
    app = tmp_path / DEFAULT_APPLICATION_ID
    os.symlink(app / "loop-b", app / "loop-a")
    os.symlink(app / "loop-a", app / "loop-b")
    os.mkfifo(app / "pipe.txt")
    cases = {
        "x" * 300: "too long for the file system",
        "a/" * 2500 + "b": "too long for the file system",
        "loop-a": "link loop|no such file",
        "pipe.txt": "no such file",
        "docs": "no such file",
        "bad\udc80\ud800.txt": "invalid name",
    }
    for name, why in cases.items():
        with pytest.raises(FileRefused, match=why) as caught:
            workspace.check(DEFAULT_APPLICATION_ID, ("docs/notes.txt", name), "anthropic")
        assert (caught.value.name, caught.value.index) == (name, 1)


async def test_count_and_size_limits_are_checked_off_the_loop_and_again_when_read(tmp_path: Path) -> None:
    app = tmp_path / DEFAULT_APPLICATION_ID
    app.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (app / name).write_bytes(b"x" * 10)
    workspace = Workspace(tmp_path, max_files=2, max_file_bytes=10, max_total_bytes=15)
    with pytest.raises(FileRefused, match=r"at most 2 files may be given, got 3") as caught:
        await workspace.check_async(DEFAULT_APPLICATION_ID, ("a.txt", "b.txt", "c.txt"), "openai")
    assert caught.value.index == 2
    with pytest.raises(FileRefused, match=r"hold 20 bytes; .* at most 15 bytes together") as caught:
        await workspace.check_async(DEFAULT_APPLICATION_ID, ("a.txt", "b.txt"), "openai")
    assert (caught.value.name, caught.value.index) == ("b.txt", 1)
    await workspace.check_async(DEFAULT_APPLICATION_ID, ("a.txt",), "openai")
    # A file that grew after the job was started fails the job when it is read, naming the file.
    runtime = Runtime(providers=ScriptedProvider([Reply("x")]), workspace=workspace)
    runtime.add_expert("reader", "You read files.")
    job = await runtime.submit("reader", "q", ["a.txt"])
    (app / "a.txt").write_bytes(b"x" * 11)
    done = await runtime.drive(job.id)
    assert done.status is JobStatus.FAILED
    assert done.error is not None
    assert "file 'a.txt': the file holds 11 bytes; a file may hold at most 10 bytes" in done.error.message
    # A configuration problem found while running: kind usage, naming its exception.
    assert (done.error.kind, done.error.exception, done.error.job_id) == ("usage", "FileRefused", job.id)


async def test_the_runtime_checks_files_off_the_event_loop(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    # submit, continue_job and branch_from check the files in a worker thread (a request naming
    # many files on a slow disk must not stall every job of the process).
    threads: list[int] = []
    check = Workspace.check

    def recording(self: Workspace, *args: object) -> None:
        threads.append(threading.get_ident())
        check(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Workspace, "check", recording)
    loop_thread = threading.get_ident()
    runtime = Runtime(providers=ScriptedProvider([Reply("a"), Reply("b"), Reply("c")]), workspace=workspace)
    runtime.add_expert("reader", "You read files.")
    job = await runtime.run("reader", "summarise", ["docs/notes.txt"])
    assert job.status is JobStatus.COMPLETED
    await runtime.continue_job(job.id, "and this?", ["chart.png"])
    job = await runtime.drive(job.id)
    first = (await runtime.store.list_checkpoints(job.id, take=1))[0][0]
    await runtime.branch_from(job.id, first.id, "again", ["docs/notes.txt"])
    assert len(threads) >= 3  # one check per request (a branch also checks before it exists)
    assert loop_thread not in threads
    # A refused file is still refused before anything is written, from the worker thread.
    with pytest.raises(FileRefused, match=r"'\.\.' is not allowed"):
        await runtime.continue_job(job.id, "more", ["../secret.txt"])
    assert loop_thread not in threads
    await runtime.close()
