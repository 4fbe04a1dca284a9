"""``open_store``: the URL picks the backend; bad URLs are clear usage errors."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

import expert_jobs.stores
from expert_jobs.domain.errors import StoreError, UsageError
from expert_jobs.stores import MemoryStore, SQLiteStore, open_store


def _close(store: object) -> None:
    asyncio.run(store.close())  # type: ignore[attr-defined]


def test_memory() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)


def test_sqlite_relative_path_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    store = open_store("sqlite:///data/jobs.db")
    assert isinstance(store, SQLiteStore)
    try:
        assert store.path == "data/jobs.db" and (tmp_path / "data" / "jobs.db").exists()
    finally:
        _close(store)


def test_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "my jobs.db"
    store = open_store(f"sqlite:///{path}")
    assert isinstance(store, SQLiteStore)
    try:
        assert store.path == str(path) and path.exists() and store.synchronous == "FULL"
    finally:
        _close(store)


def test_sqlite_options_in_the_query_string(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path}/jobs.db?synchronous=normal&busy_timeout=2.5&readers=3")
    assert isinstance(store, SQLiteStore)
    try:
        assert store.synchronous == "NORMAL" and store.path == f"{tmp_path}/jobs.db"
    finally:
        _close(store)


def test_sqlite_in_memory() -> None:
    store = open_store("sqlite:///:memory:")
    assert isinstance(store, SQLiteStore) and store.in_memory
    _close(store)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://jobs.db", "sqlite:///relative/path.db"),
        ("sqlite:///", "no database path"),
        ("sqlite:///x.db?fast=yes", "unknown SQLite option 'fast'"),
        ("sqlite:///x.db?readers=many", "readers='many' is not valid \\(int expected"),
        ("mysql://root@localhost/jobs", "unknown scheme 'mysql'; expected one of memory://, sqlite:///path"),
        ("jobs.db", "has no scheme"),
    ],
)
def test_bad_urls_are_usage_errors(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=message.replace("?", r"\?")):
        open_store(url)
    assert list(tmp_path.iterdir()) == []  # nothing was created


def test_a_sqlite_file_in_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/missing/jobs.db")


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_postgres_urls_make_a_postgres_store(scheme: str) -> None:
    postgres = pytest.importorskip("expert_jobs.stores.postgres")
    store = open_store(f"{scheme}://postgres@127.0.0.1:5432/test")
    assert isinstance(store, postgres.PostgresStore)
    asyncio.run(store.close())


def test_postgres_store_is_imported_lazily() -> None:
    assert "PostgresStore" in expert_jobs.stores.__all__
    if "expert_jobs.stores.postgres" not in sys.modules:
        assert "PostgresStore" not in vars(expert_jobs.stores)
    with pytest.raises(AttributeError, match="NoSuchStore"):
        _ = expert_jobs.stores.NoSuchStore  # type: ignore[attr-defined]


def test_the_config_default_store_is_a_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from expert_jobs.config import DEFAULT_STORE_URL

    monkeypatch.chdir(tmp_path)
    store = open_store(DEFAULT_STORE_URL)
    try:
        assert isinstance(store, SQLiteStore) and (tmp_path / "expert-jobs.db").exists()
    finally:
        _close(store)
