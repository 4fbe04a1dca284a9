"""Fixtures of the service tests: a fresh job store of each kind (memory, SQLite under ``tmp_path``,
PostgreSQL in a new schema dropped afterwards; skipped, saying why, when the server is unreachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from expert_jobs import MemoryStore, SQLiteStore
from expert_jobs.ports.store import JobStore
from tests.stores.conftest import postgres_url  # noqa: F401 (a fixture, used by name)

STORE_KINDS = ("memory", "sqlite", "postgres")


@pytest.fixture
def pg_schemas(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """Names of the PostgreSQL schemas a test created; all dropped afterwards."""
    created: list[str] = []
    yield created
    if created:
        import psycopg

        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as conn:
            for schema in created:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=STORE_KINDS)
async def any_store(
    request: pytest.FixtureRequest, tmp_path: Path, pg_schemas: list[str]
) -> AsyncIterator[JobStore]:
    """A fresh, empty store of each kind in turn (closed afterwards)."""
    store: JobStore
    if request.param == "memory":
        store = MemoryStore()
    elif request.param == "sqlite":
        store = await SQLiteStore.open(tmp_path / "jobs.db")
    else:
        from expert_jobs.stores.postgres import PostgresStore

        url = request.getfixturevalue("postgres_url")
        schema = f"ej_svc_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        pg_schemas.append(schema)
        store = await PostgresStore.open(url, schema=schema, max_size=4)
    try:
        yield store
    finally:
        await store.close()
