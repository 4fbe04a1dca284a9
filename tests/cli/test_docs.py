"""``docs/cli.md`` tells the truth: every command and option is documented, and the example's live
view shown there is what the command prints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main

from expert_jobs.transports.cli import app
from tests.cli.conftest import Invoke

DOC = (Path(__file__).parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found = [(path, command)]
    if hasattr(command, "commands"):  # a group (typer vendors its own click)
        for name, sub in command.commands.items():
            found.extend(_commands(sub, (*path, name)))
    return found


def test_every_command_and_option_is_documented() -> None:
    root = typer.main.get_command(app)
    commands = _commands(root)
    names = {" ".join(p) for p, _ in commands}
    assert names >= {"run", "jobs list", "jobs show", "jobs checkpoints", "jobs continue", "jobs cancel"}
    assert names >= {"keys create", "serve"}
    for path, command in commands:
        if path and not hasattr(command, "commands"):
            assert f"## `expert-jobs {' '.join(path)}" in DOC, path
        for param in command.params:
            for option in param.opts:
                if option.startswith("--") and option != "--help":
                    assert re.search(rf"`[^`\n]*{re.escape(option)}\b", DOC), (path, option)


def _ids(text: str) -> str:
    return re.sub(r"\b[a-z0-9]{24}\b", "<id>", text)


def test_the_documented_live_view_is_real(invoke: Invoke) -> None:
    block = DOC.split("$ expert-jobs run --example --answer yes\n", 1)[1]
    documented = block.split("\n{", 1)[0]
    out = invoke("run", "--example", "--answer", "yes")
    assert out.code == 0
    assert _ids(out.stderr.strip()) == _ids(documented.strip())


def _block_after(command: str) -> str:
    """The output documented under ``$ COMMAND`` (up to the next ``$`` line or the block's end)."""
    text = DOC.split(f"$ {command}\n", 1)[1].split("```", 1)[0]
    return text.split("\n$ ", 1)[0]


def _lines(text: str) -> list[str]:
    return [_ids(line.rstrip()) for line in text.strip().splitlines()]


def test_the_documented_checkpoint_table_and_transcript_are_real(invoke: Invoke) -> None:
    job_id = invoke("run", "--example", "--answer", "yes").json()["id"]
    table = invoke("jobs", "checkpoints", job_id)
    documented = _block_after("expert-jobs jobs checkpoints snhzdnrpktrcj8ajne6d7vq2")
    assert _lines(table.stdout) == _lines(documented)
    transcript = invoke("jobs", "show", job_id, "--transcript")
    documented = _block_after("expert-jobs jobs show snhzdnrpktrcj8ajne6d7vq2 --transcript")
    assert _lines(transcript.stdout) == _lines(documented)


def test_the_documented_exit_codes_are_the_programs() -> None:
    from expert_jobs.transports import cli

    table = DOC.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    codes = {int(code) for code in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert codes == {0, cli.EXIT_JOB_NOT_COMPLETED, cli.EXIT_USAGE, cli.EXIT_ANSWER_NEEDED,
                     cli.EXIT_PROVIDER_KEY, cli.EXIT_INTERRUPTED}  # fmt: skip
