"""Job files: names resolved inside the application's workspace; text inline, images as file parts."""

from __future__ import annotations

import os
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
