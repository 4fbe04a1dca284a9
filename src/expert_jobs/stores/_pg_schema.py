"""The PostgreSQL schema and its migrations, versioned in a ``schema_version`` table.

Every store lives in its own PostgreSQL schema (``expert_jobs`` unless told otherwise), so several
deployments or test runs can share a database. :func:`migrate` brings a schema up to
:data:`SCHEMA_VERSION` inside one transaction holding a transaction-level advisory lock derived
from the schema name: when several processes open a new database at once, one migrates and the
others wait for it, then find nothing to do. A schema written by a newer library is refused.

Column types: times are ``double precision`` epoch seconds (exact round trips of Python floats);
keys and ids are ``text COLLATE "C"`` so ties break in code-point order like in Python; nested data
(the expert, files, usage, errors, checkpoints) is ``json``, not ``jsonb``: ``json`` keeps the text
as written (exact numbers, key order) and accepts ``\\u0000``, which ``jsonb`` refuses, and nothing
queries inside it. A checkpoint's messages sit in their own column so that rebuilding a history
reads only the deltas. The query is stored as JSON too (a JSON string), because PostgreSQL ``text``
cannot hold NUL characters.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING

from expert_jobs.domain.errors import StoreError, UsageError

if TYPE_CHECKING:
    from psycopg import AsyncConnection

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "advisory_key", "migrate", "quote_schema"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def quote_schema(schema: str) -> str:
    """The schema name as a quoted SQL identifier (letters, digits, ``_``; at most 63 characters)."""
    if _IDENTIFIER.fullmatch(schema) is None:
        raise UsageError(
            f"PostgreSQL store: invalid schema name {schema!r}"
            " (letters, digits and '_', not starting with a digit, at most 63 characters)"
        )
    return f'"{schema}"'


def _v1(s: str) -> tuple[str, ...]:
    return (
        f"""
        CREATE TABLE {s}.jobs (
            id text COLLATE "C" PRIMARY KEY,
            version bigint NOT NULL,
            lease_owner text COLLATE "C",
            lease_expires_at double precision,
            organization_id text NOT NULL,
            application_id text COLLATE "C" NOT NULL,
            expert_key text NOT NULL,
            expert json NOT NULL,
            query json,
            files json NOT NULL,
            model text NOT NULL,
            temperature double precision NOT NULL,
            max_steps integer NOT NULL,
            max_retries integer NOT NULL,
            status text COLLATE "C" NOT NULL,
            created_at double precision NOT NULL,
            updated_at double precision NOT NULL,
            current_step integer NOT NULL,
            total_steps integer NOT NULL,
            total_duration_ms bigint NOT NULL,
            usage json NOT NULL,
            interactive_tool_call_result boolean,
            error json,
            waiting_since double precision NOT NULL,
            last_checkpoint_id text,
            checkpoint_seq bigint NOT NULL,
            search_key text NOT NULL
        ) WITH (fillfactor = 80)
        """,
        # The list query: one application, sorted by either time, ties on id.
        f"CREATE INDEX jobs_app_created ON {s}.jobs (application_id, created_at, id)",
        # The claim query: only queued jobs, in claim order.
        f"CREATE INDEX jobs_claim ON {s}.jobs (waiting_since, id) WHERE status = 'queued'",
        # The expiry sweep: unleased waiting jobs by status.
        f"CREATE INDEX jobs_waiting ON {s}.jobs (status, waiting_since, id) WHERE lease_owner IS NULL",
        # held_by and lapsed_leases: only leased jobs are in these indexes.
        f"CREATE INDEX jobs_lease_owner ON {s}.jobs (lease_owner) WHERE lease_owner IS NOT NULL",
        f"CREATE INDEX jobs_lease_expiry ON {s}.jobs (lease_expires_at, id) WHERE lease_owner IS NOT NULL",
        f"""
        CREATE TABLE {s}.checkpoints (
            job_id text COLLATE "C" NOT NULL,
            seq bigint NOT NULL,
            id text COLLATE "C" NOT NULL UNIQUE,
            run_id text COLLATE "C" NOT NULL,
            data json NOT NULL,
            messages json NOT NULL,
            PRIMARY KEY (job_id, seq)
        )
        """,
    )


def _v2(s: str) -> tuple[str, ...]:
    # A step save updates the job row in place (a HOT update: no new index entries) only if the
    # new version fits on the row's page. At fillfactor 80, W2 (12,000 updates, of which ~9,000
    # change no indexed column) made ~8,000 HOT updates; at 65, ~8,900. The setting applies to the
    # pages filled from now on: no rewrite, only a brief lock.
    return (f"ALTER TABLE {s}.jobs SET (fillfactor = 65)",)


def _v3(s: str) -> tuple[str, ...]:
    # A list filtered by status (a poll counting an application's completed jobs) read every job
    # of the application through jobs_app_created and filtered the rows; this index reads only the
    # jobs in those statuses (a count of none read none), and serves a page of one status in
    # creation order. It costs no HOT update: status is already in jobs_waiting's key. Built in
    # the migration's transaction, writes to the table wait for the build; IF NOT EXISTS lets an
    # operator with a large table build it beforehand with CREATE INDEX CONCURRENTLY.
    return (
        f"CREATE INDEX IF NOT EXISTS jobs_app_status ON {s}.jobs (application_id, status, created_at, id)",
    )


MIGRATIONS = (_v1, _v2, _v3)
"""Functions of the quoted schema name giving the statements from version ``i`` to ``i + 1``."""

SCHEMA_VERSION = len(MIGRATIONS)
"""The schema version this library writes."""


def advisory_key(schema: str) -> tuple[int, int]:
    """The two 32-bit keys of the advisory lock that serializes migrations of ``schema``."""
    checksum = zlib.crc32(schema.encode())
    return 0x656A6F62, checksum - (1 << 32) if checksum >= 1 << 31 else checksum  # 'ejob', signed crc


async def _current(conn: AsyncConnection[tuple[object, ...]], schema: str) -> int | None:
    """The schema's version, or ``None`` if it has no ``schema_version`` table yet."""
    table = f"{quote_schema(schema)}.schema_version"
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    cur = await conn.execute(f"SELECT coalesce(max(version), 0) FROM {quote_schema(schema)}.schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row is not None else 0  # type: ignore[call-overload]


async def migrate(conn: AsyncConnection[tuple[object, ...]], schema: str) -> int:
    """Bring ``schema`` up to :data:`SCHEMA_VERSION` (creating it if needed); return the version found.

    ``conn`` must be in autocommit mode. Safe to call from many processes at once.
    """
    found = await _current(conn, schema)
    if found == SCHEMA_VERSION:
        return found  # the common case: no lock taken
    s = quote_schema(schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", advisory_key(schema))
        cur = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if await cur.fetchone() is None:
            await conn.execute(f"CREATE SCHEMA {s}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_version"
            " (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = await _current(conn, schema) or 0
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"PostgreSQL store: schema {schema!r} is at version {found}, newer than this library's"
                f" {SCHEMA_VERSION}; upgrade expert-jobs"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version](s):
                await conn.execute(statement)
            await conn.execute(f"INSERT INTO {s}.schema_version (version) VALUES (%s)", (version + 1,))
    return found
