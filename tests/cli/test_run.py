"""``expert-jobs run``: the bundled example, answers, exit codes, overrides and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from expert_jobs.transports.cli import _run
from tests.cli.conftest import ASKER, Invoke


def test_example_runs_with_tool_calls_delegate_and_pause(invoke: Invoke) -> None:
    out = invoke("run", "--example", "--answer", "yes", "--store", "memory://")
    assert out.code == 0, out.stderr
    job = out.json()
    assert job["type"] == "expertJob"
    assert job["status"] == "completed"
    assert job["expertKey"] == "sales-analyst@1.0.0"
    assert job["totalSteps"] == 7
    assert job["usage"]["totalTokens"] == 3823
    assert job["interactiveToolCallResult"] is True
    err = out.stderr
    assert '→ read_data(name="sales.csv")' in err
    assert "→ add(numbers=[120, 140, 130, 150])" in err
    assert "← add: 540" in err
    assert "⇢ delegate to headline-writer@1.0.0" in err
    assert "│   → percent_change(old=540, new=620)" in err
    assert '⇠ headline-writer@1.0.0 answered: "2024 sales up 14.8% to 620 units"' in err
    assert "? interactive ask_user(" in err
    assert "⏸ requestInteractiveToolResult" in err
    assert '✎ answer from --answer: "yes"' in err
    assert "final answer:" in err
    assert "✔ completed · 7 steps · 3,823 tokens" in err
    assert err.index("⇢ delegate") < err.index("⏸ requestInteractiveToolResult") < err.index("✎ answer")


def test_example_uses_the_default_sqlite_store_in_the_working_directory(
    invoke: Invoke, tmp_path: Path
) -> None:
    out = invoke("run", "--example", "--answer", "yes")
    assert out.code == 0, out.stderr
    assert (tmp_path / "expert-jobs.db").is_file()
    job_id = out.json()["id"]
    assert "store sqlite:///expert-jobs.db" in out.stderr
    shown = invoke("jobs", "show", job_id)
    assert shown.code == 0
    assert shown.json() == out.json()


def test_without_a_terminal_or_answer_the_job_stays_paused_and_can_be_continued(invoke: Invoke) -> None:
    out = invoke("run", "--example")
    assert out.code == 3
    paused = out.json()
    assert paused["status"] == "requestInteractiveToolResult"
    assert "no --answer value is left and standard input is not a terminal" in out.stderr
    assert f"expert-jobs jobs continue {paused['id']} --answer TEXT" in out.stderr
    assert "Traceback" not in out.stderr
    resumed = invoke("jobs", "continue", paused["id"], "--example", "--answer", "no")
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["status"] == "completed"
    assert "? interactive ask_user(" in resumed.stderr  # the question is shown again
    assert '✎ answer from --answer: "no"' in resumed.stderr
    assert '⇠ answer to ask_user: "no"' in resumed.stderr


def test_answers_are_used_in_order(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(ASKER)
    out = invoke("run", "go", "--answer", "one", "--answer", "two")
    assert out.code == 0, out.stderr
    job_id = out.json()["id"]
    err = out.stderr
    assert err.index('answer from --answer: "one"') < err.index('answer from --answer: "two"')
    assert err.index('ask(question="first?")') < err.index('"one"') < err.index('ask(question="second?")')
    listing = invoke("jobs", "checkpoints", job_id, "--json").json()
    answers = [
        result["content"]
        for checkpoint in listing["data"]["checkpoints"]
        for message in checkpoint["newMessages"]
        for result in message.get("results", [])
    ]
    assert answers == ["one", "two"]


def test_answers_run_out_then_the_prompt_asks(
    invoke: Invoke, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(ASKER)
    monkeypatch.setattr(_run, "stdin_is_terminal", lambda: True)
    out = invoke("run", "go", "--answer", "one", input="typed\n")
    assert out.code == 0, out.stderr
    assert 'answer from --answer: "one"' in out.stderr
    assert "second?" in out.stderr  # the prompt shows the question
    assert 'answer from prompt: "typed"' in out.stderr


def test_a_failed_job_exits_1_with_its_error(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(
        """
        store = "memory://"
        [provider]
        providerName = "scripted"
        [[provider.script]]
        fail = "authentication"
        message = "bad key"
        [experts."x"]
        instruction = "x"
        """
    )
    out = invoke("run", "hello")
    assert out.code == 1
    assert out.json()["status"] == "failed"
    assert "the job ended failed" in out.stderr
    assert "bad key" in out.stderr


def test_max_steps_and_model_overrides(invoke: Invoke) -> None:
    out = invoke(
        "run", "--example", "--store", "memory://", "--max-steps", "1", "--model", "gpt-5-mini",
        "--temperature", "0.5", "--max-retries", "2",
    )  # fmt: skip
    assert out.code == 1
    job = out.json()
    assert (job["status"], job["maxSteps"], job["totalSteps"]) == ("exceededMaxSteps", 1, 1)
    assert (job["model"], job["temperature"], job["maxRetries"]) == ("gpt-5-mini", 0.5, 2)
    assert "the job ended exceededMaxSteps" in out.stderr


def test_files_from_the_workspace(invoke: Invoke, write_config: Callable[..., Path], tmp_path: Path) -> None:
    workspace = tmp_path / "ws" / "localapplication00000000"
    workspace.mkdir(parents=True)
    (workspace / "notes.txt").write_text("hello", encoding="utf-8")
    write_config(
        """
        store = "memory://"
        workspace = "ws"
        provider = "test"
        [experts."reader"]
        instruction = "Read."
        """
    )
    out = invoke("run", "--file", "notes.txt", "--file", "notes.txt")
    assert out.code == 0, out.stderr
    assert out.json()["files"] == ["notes.txt", "notes.txt"]
    escaped = invoke("run", "--file", "../outside.txt")
    assert escaped.code == 2
    assert "Traceback" not in escaped.stderr


def test_the_expert_is_chosen_by_key_or_the_only_one(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    write_config(
        """
        store = "memory://"
        provider = "test"
        [experts."a"]
        instruction = "A."
        [experts."b"]
        version = "2.0.0"
        instruction = "B."
        """
    )
    several = invoke("run", "q")
    assert several.code == 2
    assert "choose one with --expert: a@1.0.0, b@2.0.0" in several.stderr
    chosen = invoke("run", "q", "--expert", "b")
    assert chosen.code == 0
    assert chosen.json()["expertKey"] == "b"


def test_the_config_comes_from_the_option_the_environment_or_the_working_directory(
    invoke: Invoke, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = """
        store = "memory://"
        provider = "test"
        [experts."{name}"]
        instruction = "x"
        """
    option = write_config(body.format(name="from-option"), "option.toml")
    env = write_config(body.format(name="from-env"), "env.toml")
    write_config(body.format(name="from-cwd"))
    assert invoke("run", "q").json()["expertKey"] == "from-cwd@1.0.0"
    monkeypatch.setenv("EXPERT_JOBS_CONFIG", str(env))
    assert invoke("run", "q").json()["expertKey"] == "from-env@1.0.0"
    assert invoke("run", "q", "--config", str(option)).json()["expertKey"] == "from-option@1.0.0"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--example", "--expert", "nobody"), "Expert not found: nobody"),
        (("run", "q"), "no experts are configured (no configuration file was found); give --config FILE"),
        (("run", "--example", "--config", "x.toml"), "give --config or --example, not both"),
        (("run", "--config", "missing.toml"), "missing.toml: no such file"),
        (("run", "--example", "--model", "gpt-0"), "gpt-0"),
        (("run", "--example", "--store", "redis://x"), "store: 'redis://x': expected memory://"),
        (("jobs", "show", "nosuchjob"), "Expert job not found: nosuchjob"),
        (("jobs", "checkpoints", "nosuchjob"), "Expert job not found: nosuchjob"),
        (("jobs", "list", "--application", "Bad"), "--application 'Bad' is not an id"),
        (("jobs", "list", "--status", "done"), "--status 'done' is not a job status"),
        (("jobs", "list", "--sort", "name"), "--sort must be createdAt or updatedAt"),
    ],
)
def test_errors_are_one_red_line_and_exit_2(invoke: Invoke, args: tuple[str, ...], message: str) -> None:
    out = invoke(*args)
    assert out.code == 2
    assert out.stdout == ""
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ")
    assert message in out.stderr
    assert out.stderr.count("\n") == 1


def test_a_bad_config_file_names_the_file_and_key(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    path = write_config('maxStep = 3\n[experts."x"]\ninstruction = "x"\n')
    out = invoke("run", "q")
    assert out.code == 2
    assert out.stderr.startswith("error: expert-jobs.toml: unknown key 'maxStep' (did you mean 'maxSteps'?)")
    named = invoke("run", "q", "--config", str(path))
    assert named.stderr.startswith(f"error: {path}: unknown key 'maxStep'")


def test_version(invoke: Invoke) -> None:
    from expert_jobs import __version__

    out = invoke("--version")
    assert (out.code, out.stdout) == (0, f"expert-jobs {__version__}\n")


def test_no_arguments_prints_help(invoke: Invoke) -> None:
    out = invoke()
    assert out.code in (0, 2)
    text = out.stdout + out.stderr
    for command in ("run", "jobs", "keys", "serve"):
        assert command in text


async def test_run_example_in_python() -> None:
    from expert_jobs.examples import run_example

    job = await run_example("no")
    assert (job.status.value, job.total_steps, job.usage.total_tokens) == ("completed", 7, 3823)


@pytest.fixture
def no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider key in the environment."""
    from expert_jobs.providers._common import PROVIDER_ENV_VARS

    for names in PROVIDER_ENV_VARS.values():
        for name in names:
            monkeypatch.delenv(name, raising=False)


REAL_MODEL = """
store = "sqlite:///jobs.db"

[experts."writer"]
instruction = "Write."
"""


@pytest.mark.usefixtures("no_provider_keys")
def test_without_a_provider_key_run_writes_nothing_and_says_what_to_set(
    invoke: Invoke, write_config: Callable[..., Path]
) -> None:
    from expert_jobs.transports.cli import EXIT_PROVIDER_KEY

    write_config(REAL_MODEL)
    out = invoke("run", "hello")
    assert out.code == EXIT_PROVIDER_KEY == 4
    assert out.stdout == ""
    assert out.stderr.count("\n") == 1
    assert out.stderr.startswith(
        "error: Provider API key not found for anthropic (model claude-sonnet-4-5): "
        "set ANTHROPIC_API_KEY in the environment"
    )
    assert "providerKeys.anthropic" in out.stderr
    assert out.stderr.rstrip().endswith("nothing was written")
    other = invoke("run", "hello", "--model", "gpt-5-mini")
    assert other.code == 4
    assert "set OPENAI_API_KEY" in other.stderr
    gemini = invoke("run", "hello", "--model", "gemini-2.5-flash")
    assert "set GEMINI_API_KEY or GOOGLE_API_KEY" in gemini.stderr
    assert invoke("jobs", "list", "--json").json()["meta"]["total"] == 0


def test_with_the_key_in_the_environment_the_job_is_written(
    invoke: Invoke, write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from expert_jobs.transports.cli import _run

    write_config(REAL_MODEL)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-used")
    checked: list[tuple[str, str]] = []
    original = _run.check_provider_key

    def spy(runtime: object, model: str, application_id: str, job_id: str | None = None) -> None:
        checked.append((model, application_id))
        original(runtime, model, application_id, job_id)  # type: ignore[arg-type]

    monkeypatch.setattr(_run, "check_provider_key", spy)

    async def fake_follow(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt  # stop before any model call: the job exists by now

    monkeypatch.setattr(_run, "follow_job", fake_follow)
    out = invoke("run", "hello")
    assert out.code == 130
    assert checked == [("claude-sonnet-4-5", "localapplication00000000")]
    assert invoke("jobs", "list", "--json").json()["meta"]["total"] == 1


def test_run_and_show_print_the_job_the_same_way(invoke: Invoke) -> None:
    out = invoke("run", "--example", "--answer", "yes")
    assert out.code == 0, out.stderr
    shown = invoke("jobs", "show", out.json()["id"])
    assert shown.stdout == out.stdout
    assert '"temperature": 0.0,' in out.stdout


def test_flags_show_as_flags_in_every_help(invoke: Invoke) -> None:
    import typer.main

    from expert_jobs.transports.cli import app

    root = typer.main.get_command(app)
    paths = [()] + [(name,) for name in root.commands]  # type: ignore[attr-defined]
    paths += [("jobs", name) for name in root.commands["jobs"].commands]  # type: ignore[attr-defined]
    paths += [("keys", name) for name in root.commands["keys"].commands]  # type: ignore[attr-defined]
    for path in paths:
        text = invoke(*path, "--help").stdout
        assert "--help" in text, path
        assert "<bool>" not in text, (path, text)
    listing = invoke("jobs", "list", "--help").stdout
    assert "--json " in listing and "Print JSON instead of a table." in listing
