"""Helpers for the CLI tests: a clean working directory (the default SQLite store lands there), no
configuration from the environment, and ``invoke`` over ``typer.testing.CliRunner``."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from expert_jobs.config import CONFIG_ENV_VAR
from expert_jobs.transports.cli import app


@dataclass
class Outcome:
    """What one command did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """stdout parsed as JSON (the whole of it must be JSON)."""
        return json.loads(self.stdout)


Invoke = Callable[..., Outcome]


@pytest.fixture(autouse=True)
def _clean_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def invoke() -> Invoke:
    """Run ``expert-jobs ARGS`` in-process; a traceback (an unexpected exception) fails the test."""

    def run(*args: str, input: str | None = None) -> Outcome:
        result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    return run


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write a configuration file (dedented TOML) into the working directory."""

    def write(text: str, name: str = "expert-jobs.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


ASKER = """
store = "sqlite:///jobs.db"

[provider]
providerName = "scripted"

[[provider.script]]
toolCalls = [{ name = "ask", arguments = { question = "first?" } }]

[[provider.script]]
toolCalls = [{ name = "ask", arguments = { question = "second?" } }]

[[provider.script]]
text = "done"

[experts."asker"]
instruction = "Ask twice."

[experts."asker".skills."people"]
type = "interactiveSkill"

[experts."asker".skills."people".tools."ask"]
description = "Ask the user"
inputJsonSchema = '{"type": "object", "properties": {"question": {"type": "string"}}}'
"""
"""An expert that asks two questions, one after the other, then answers ``done``."""
