"""Fixtures shared by the store tests: where SQLite files go and how to reach PostgreSQL."""

from __future__ import annotations

import os
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
