"""Fixtures for the configuration tests: files in a temporary directory, a restored ``sys.path``."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from expert_jobs.config import Config, load_config

WriteFile = Callable[..., Path]
Load = Callable[..., Config]


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a (dedented) file under the temporary directory and return its path."""

    def write_file(text: str, name: str = "expert-jobs.toml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write_file


@pytest.fixture
def load(write: WriteFile) -> Load:
    """Write ``expert-jobs.toml`` and load it."""

    def load_text(text: str) -> Config:
        return load_config(write(text))

    return load_text
