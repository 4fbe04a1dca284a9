"""The real console script in a subprocess: the README's main command, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from expert_jobs.domain.errors import UsageError
from expert_jobs.transports.cli import _run
from tests.cli.conftest import ASKER, Invoke


def _command() -> list[str]:
    script = Path(sys.executable).with_name("expert-jobs")
    return [str(script)] if script.exists() else [sys.executable, "-m", "expert_jobs.transports.cli"]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EXPERT_JOBS_CONFIG"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def test_the_readme_command_runs_the_example_offline(tmp_path: Path) -> None:
    done = subprocess.run(
        [*_command(), "run", "--example", "--answer", "yes"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed"
    assert job["totalSteps"] == 7
    assert (tmp_path / "expert-jobs.db").is_file()
    err = done.stderr
    for seen in ("→ read_data(", "→ add(", "⇢ delegate to headline-writer", "│   → percent_change(",
                 "? interactive ask_user(", "⏸ requestInteractiveToolResult", '✎ answer from --answer: "yes"',
                 "✔ completed"):  # fmt: skip
        assert seen in err
    assert "\x1b[" not in err  # not a terminal: no cursor movement or colours
    listed = subprocess.run(
        [*_command(), "jobs", "list", "--json"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert [j["id"] for j in json.loads(listed.stdout)["data"]["expertJobs"]] == [job["id"]]


def test_the_readme_paused_path_continues_as_written(tmp_path: Path) -> None:
    """README: without --answer and without a terminal `run --example` exits 3 and leaves the job
    paused; `expert-jobs jobs continue <id> --answer yes` (as written: no --example) runs it on,
    offline, with no provider key in the environment."""
    from expert_jobs.providers._common import PROVIDER_ENV_VARS

    env = _env()
    for names in PROVIDER_ENV_VARS.values():
        for name in names:
            env.pop(name, None)
    paused = subprocess.run(
        [*_command(), "run", "--example"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert paused.returncode == 3, paused.stderr
    job_id = json.loads(paused.stdout)["id"]
    assert f"expert-jobs jobs continue {job_id} --answer TEXT" in paused.stderr
    resumed = subprocess.run(
        [*_command(), "jobs", "continue", job_id, "--answer", "yes"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    job = json.loads(resumed.stdout)
    assert (job["id"], job["status"], job["totalSteps"]) == (job_id, "completed", 7)
    assert '✎ answer from --answer: "yes"' in resumed.stderr
    assert "Provider API key not found" not in resumed.stderr


SLOW = """
store = "sqlite:///slow.db"

[provider]
providerName = "scripted"

[[provider.script]]
toolCalls = [{ name = "add", arguments = { numbers = [1, 2] } }]

[[provider.script]]
text = "too late"
delay = 60

[experts."slow"]
instruction = "Be slow."

[experts."slow".skills."math"]
type = "pythonSkill"
module = "expert_jobs.examples.tools"
pick = ["add"]
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_cancels_the_running_job(tmp_path: Path) -> None:
    (tmp_path / "expert-jobs.toml").write_text(textwrap.dedent(SLOW), encoding="utf-8")
    process = subprocess.Popen(
        [*_command(), "run", "go"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        seen = ""
        deadline = time.monotonic() + 30
        while "← add: 3" not in seen and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            seen += line
        assert "← add: 3" in seen, seen
        time.sleep(0.2)  # into the slow generation
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        stdout, rest = process.communicate(timeout=30)
        assert time.monotonic() - started < 10  # the 60 s generation was abandoned
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, seen + rest
    job = json.loads(stdout)
    assert job["status"] == "canceled"
    assert "Ctrl-C: canceling the job" in rest
    assert "interrupted: the job is canceled" in rest
    shown = subprocess.run(
        [*_command(), "jobs", "checkpoints", job["id"], "--json"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    checkpoints = json.loads(shown.stdout)["data"]["checkpoints"]
    assert checkpoints[-1]["status"] == "canceled"  # a final checkpoint


def test_ctrl_c_at_the_prompt_cancels_the_paused_job(
    invoke: Invoke, write_config: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "expert-jobs.toml").write_text(textwrap.dedent(ASKER), encoding="utf-8")

    def interrupted(console: object) -> object:
        def ask(call: object) -> str:
            raise KeyboardInterrupt

        return ask

    monkeypatch.setattr(_run, "stdin_is_terminal", lambda: True)
    monkeypatch.setattr(_run, "console_prompt", interrupted)
    out = invoke("run", "go")
    assert out.code == 130
    assert out.json()["status"] == "canceled"
    assert "Ctrl-C: canceling the job" in out.stderr


def test_answer_needed_is_a_usage_error_with_context() -> None:
    from expert_jobs.domain.messages import ToolCall
    from expert_jobs.domain.status import JobStatus

    error = _run.AnswerNeeded(
        "j1", JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT, ToolCall("c1", "ask", {"q": "?"})
    )
    assert isinstance(error, UsageError)
    assert (error.job_id, error.tool_name, error.tool_call_id) == ("j1", "ask", "c1")
    assert "expert-jobs jobs continue j1 --answer TEXT" in str(error)


async def test_a_second_ctrl_c_abandons_a_job_whose_cancel_does_not_finish() -> None:
    import asyncio

    class Runtime:
        canceled = 0

        async def drive(self, job_id: str) -> object:
            await asyncio.sleep(60)
            raise AssertionError("not abandoned")

        async def cancel(self, job_id: str) -> object:
            Runtime.canceled += 1
            await asyncio.sleep(60)
            raise AssertionError("not abandoned")

    class View:
        lines: list[str] = []

        def log(self, markup: str) -> None:
            self.lines.append(markup)

    view = View()
    driver = _run._Interruptible(Runtime(), view)  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, os.kill, os.getpid(), signal.SIGINT)
    loop.call_later(0.15, os.kill, os.getpid(), signal.SIGINT)
    with pytest.raises(_run.JobAbandoned) as caught:
        await asyncio.wait_for(driver.drive("job1"), 10)
    assert caught.value.job_id == "job1"
    assert Runtime.canceled == 1
    assert "press Ctrl-C again to abandon it" in view.lines[0]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is removed


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_keys_create_then_serve_answers_the_api_and_runs_jobs(tmp_path: Path) -> None:
    import httpx

    made = subprocess.run(
        [*_command(), "keys", "create", "--application", "myapplication00000000001", "--json"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    key = json.loads(made.stdout)
    (tmp_path / "expert-jobs.toml").write_text(
        key["toml"] + '\n[provider]\nproviderName = "test"\n[experts."echo"]\ninstruction = "Echo."\n',
        encoding="utf-8",
    )
    port = _free_port()
    server = subprocess.Popen(
        [*_command(), "serve", "--port", str(port)],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/studio/v1/expert_jobs/"
    headers = {"Authorization": f"Bearer {key['key']}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base, timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)
        started = httpx.post(
            base,
            headers=headers,
            json={"applicationId": "myapplication00000000001", "expertKey": "echo", "query": "hi"},
            timeout=10,
        )
        assert started.status_code == 200, started.text
        job_id = started.json()["data"]["expertJob"]["id"]
        while True:
            shown = httpx.get(base + job_id, headers=headers, timeout=10).json()["data"]["expertJob"]
            if shown["status"] == "completed":
                break
            assert time.monotonic() < deadline, shown
            time.sleep(0.05)
        assert (
            httpx.get(base + job_id, headers={"Authorization": "Bearer ejk_wrong"}, timeout=10).status_code
            == 401
        )
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.communicate()
    assert server.returncode == 0
    # The server's store is the embedded default in its working directory: the CLI sees the job.
    listed = subprocess.run(
        [*_command(), "jobs", "list", "--json", "--application", "myapplication00000000001"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert [j["id"] for j in json.loads(listed.stdout)["data"]["expertJobs"]] == [job_id]
