"""The SQLite schema and its migrations, versioned by ``PRAGMA user_version``.

Each entry of :data:`MIGRATIONS` moves the schema one version up; a database is migrated in one
``BEGIN IMMEDIATE`` transaction (so two processes opening the same new file never both migrate it),
and a file written by a newer library is refused rather than misread.
"""

from __future__ import annotations

import sqlite3

from expert_jobs.domain.errors import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

_V1 = (
    """
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL,
        organization_id TEXT NOT NULL,
        application_id TEXT NOT NULL,
        expert_key TEXT NOT NULL,
        expert TEXT NOT NULL,
        query TEXT,
        files TEXT NOT NULL,
        model TEXT NOT NULL,
        temperature REAL NOT NULL,
        max_steps INTEGER NOT NULL,
        max_retries INTEGER NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        current_step INTEGER NOT NULL,
        total_steps INTEGER NOT NULL,
        total_duration_ms INTEGER NOT NULL,
        usage TEXT NOT NULL,
        interactive_tool_call_result INTEGER,
        error TEXT,
        waiting_since REAL NOT NULL,
        last_checkpoint_id TEXT,
        checkpoint_seq INTEGER NOT NULL,
        search_key TEXT NOT NULL
    )
    """,
    # The list query: one application, sorted by either time, ties on id.
    "CREATE INDEX jobs_app_created ON jobs (application_id, created_at, id)",
    "CREATE INDEX jobs_app_updated ON jobs (application_id, updated_at, id)",
    # The claim query (status = 'queued' ORDER BY waiting_since, id) and the expiry sweep.
    "CREATE INDEX jobs_status_waiting ON jobs (status, waiting_since, id)",
    # held_by and lapsed_leases: only leased jobs are in these indexes.
    "CREATE INDEX jobs_lease_owner ON jobs (lease_owner) WHERE lease_owner IS NOT NULL",
    "CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at, id) WHERE lease_owner IS NOT NULL",
    """
    CREATE TABLE checkpoints (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL UNIQUE,
        run_id TEXT NOT NULL,
        data TEXT NOT NULL,
        UNIQUE (job_id, seq)
    )
    """,
    "CREATE INDEX checkpoints_run ON checkpoints (job_id, run_id, seq)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1,)
"""Statements moving the schema from version ``i`` to ``i + 1`` (``user_version`` 0 is an empty file)."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this library writes."""


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database up to :data:`SCHEMA_VERSION`; return the version found before.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        found: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"SQLite store {path}: schema version {found} is newer than this library's {SCHEMA_VERSION};"
                " upgrade expert-jobs"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return found
