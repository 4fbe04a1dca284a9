"""Fixtures shared by the store tests: where SQLite files go and how to reach PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_URLS = (
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://root@127.0.0.1:5432/test",
)
"""Tried in order unless ``EXPERT_JOBS_TEST_POSTGRES_URL`` names the server to use."""


def _reachable_postgres() -> tuple[str | None, str]:
    try:
        import psycopg
    except ImportError:
        return None, "psycopg is not installed (pip install 'expert-jobs[postgres]')"
    explicit = os.environ.get("EXPERT_JOBS_TEST_POSTGRES_URL")
    errors = []
    for url in (explicit,) if explicit else POSTGRES_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return url, ""
        except psycopg.Error as exc:
            errors.append(f"{url}: {str(exc).strip()}")
    return None, "PostgreSQL unreachable (set EXPERT_JOBS_TEST_POSTGRES_URL): " + "; ".join(errors)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A reachable PostgreSQL server, or the test is skipped saying why."""
    url, why = _reachable_postgres()
    if url is None:
        pytest.skip(why)
    yield url


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[list[str]]:
    """The PostgreSQL schemas a test makes (with :func:`new_schema`), dropped when it ends."""
    import psycopg

    created: list[str] = []
    yield created
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for schema in created:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def new_schema(created: list[str]) -> str:
    """A fresh schema name, noted in ``created`` (the ``schemas`` fixture) to be dropped."""
    name = f"ej_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    created.append(name)
    return name
