"""``PostgresStore``: many workers on many machines share one PostgreSQL database.

PostgreSQL is the distributed engine: there is no home-made consensus. A worker claims a job with
one statement that picks it ``FOR UPDATE SKIP LOCKED`` and writes the lease, so workers never wait
on each other's claims and never take the same job; the lease (owner and expiry) lives on the job row, the
runtime renews it every third of its length, and a job whose lease lapsed is recovered by any
worker's sweeper. Saves are conditional on the job's ``version`` and append their checkpoint in the
same statement, so a cancel written by another process makes the running worker's next save fail
with ``StaleJobVersion``: it reloads the job, sees ``canceling`` and stops within one step.

Durability: every write returns only after its transaction committed with the server's
``synchronous_commit`` (``on`` by default: the WAL is flushed to disk). Throughput comes from group
commit, not from weaker durability: concurrent writes of one process share transactions (see
``_pg_writer``), and PostgreSQL itself shares WAL flushes between the commits of many processes.

The constructor is synchronous and does no I/O: the connection pool opens (and the schema is
created or migrated, see ``_pg_schema``) on first use, on the event loop that uses the store.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from itertools import zip_longest
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import StaleJobVersion, StoreError, UsageError
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.messages import Message, message_from_data
from expert_jobs.domain.status import JobStatus
from expert_jobs.stores._pg_json import register_json_loader
from expert_jobs.stores._pg_schema import migrate, quote_schema
from expert_jobs.stores._pg_writer import BulkStatement, GroupCommitWriter, Row, register_arrays
from expert_jobs.stores._rows import (
    INSERT_COLUMNS,
    JOB_COLUMNS,
    UPDATE_COLUMNS,
    checkpoint_json,
    clamp_page,
    clamp_seq,
    dumps,
    insert_values,
    job_from_row,
    messages_json,
    update_values,
)

__all__ = ["PostgresStore"]

_T = TypeVar("_T")

DEFAULT_SCHEMA = "expert_jobs"
"""The PostgreSQL schema a store uses unless told otherwise."""

_TYPES: dict[str, str] = {
    "id": "text",
    "version": "bigint",
    "expected": "bigint",
    "release_for": "text",
    "lease_owner": "text",
    "lease_expires_at": "float8",
    "organization_id": "text",
    "application_id": "text",
    "expert_key": "text",
    "expert": "json",
    "query": "json",
    "files": "json",
    "model": "text",
    "temperature": "float8",
    "max_steps": "integer",
    "max_retries": "integer",
    "status": "text",
    "created_at": "float8",
    "updated_at": "float8",
    "current_step": "integer",
    "total_steps": "integer",
    "total_duration_ms": "bigint",
    "usage": "json",
    "interactive_tool_call_result": "boolean",
    "error": "json",
    "waiting_since": "float8",
    "last_checkpoint_id": "text",
    "checkpoint_seq": "bigint",
    "search_key": "text",
}
"""The SQL type of every column (parameters are cast to it, so statements prepare unambiguously)."""

_QUERY_INDEX = INSERT_COLUMNS.index("query")
_COLS = ", ".join(JOB_COLUMNS)
_URL_OPTIONS = {"schema", "min_size", "max_size", "writers", "max_batch", "claim_batch"}


def _types(columns: Sequence[str]) -> tuple[str, ...]:
    return tuple(_TYPES[c] for c in columns)


def _arrays(columns: Sequence[str]) -> str:
    # Binary parameters (%b), built by _pg_writer.encode_array with these exact types (the casts
    # are then no-ops; they convert the plain lists psycopg sends when the fast path declines).
    return ", ".join(f"%b::{_TYPES[c]}[]" for c in columns)


def _insert_values(job: Job) -> list[Any]:
    """:func:`insert_values` with the query as JSON text (PostgreSQL ``text`` cannot hold NUL)."""
    values = insert_values(job)
    query = values[_QUERY_INDEX]
    if query is not None:
        values[_QUERY_INDEX] = dumps(query)
    return values


def _checkpoint_values(checkpoint: Checkpoint) -> list[Any]:
    return [
        checkpoint.job_id,
        checkpoint.seq,
        checkpoint.id,
        checkpoint.run_id,
        checkpoint_json(checkpoint, with_messages=False),
        messages_json(checkpoint.new_messages),
    ]


def _claim_order(job: Job) -> tuple[float, str]:
    return job.waiting_since, job.id


def _checkpoint_from_row(data: dict[str, Any], messages: list[Any]) -> Checkpoint:
    data["new_messages"] = messages
    return Checkpoint.from_data(data)


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """Split the store's options (``schema``, ``min_size``, ``max_size``, ``writers``, ``max_batch``,
    ``claim_batch``) off a ``postgresql://`` URL's query string; the rest is libpq's."""
    parts = urlsplit(url)
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _URL_OPTIONS:
            ours[key] = value
        else:
            theirs.append((key, value))
    if not ours:
        return url, ours
    # libpq percent-decodes its URI parameters but reads "+" as a plus: encode spaces as %20.
    return urlunsplit(parts._replace(query=urlencode(theirs, quote_via=quote))), ours


class PostgresStore:
    """A :class:`~expert_jobs.ports.store.JobStore` in PostgreSQL (see the module docstring).

    ``url``: a libpq URL or key/value string (``postgresql://user:pass@host:5432/db``); options of
    this store may also ride in the URL's query string (``?schema=jobs_eu&max_size=20``), where
    they override the keyword arguments. ``schema``: the PostgreSQL schema holding the tables
    (created on first use). ``min_size`` / ``max_size``: the connection pool's bounds.
    ``claim_batch``: the most claims of one worker, made at the same moment, that one statement
    serves (1: a statement per claim).
    ``writers``: how many group-commit transactions may be in flight at once (at most
    ``max_size``; each holds a pooled connection while it commits). One is the default: what is
    queued while a transaction commits goes into the next one, so batches grow with the load and
    commits stay few (W2 with 4 worker processes on two cores shared with the server: a tenth
    less CPU than with two, in fewer and larger transactions). More can help a process with few
    jobs in flight on a distant server, where a second job's write need not wait for the first
    one's commit. ``max_batch``: the most operations in one of them. ``connect_timeout``: seconds
    to wait for the pool to open.
    """

    claims_in_batches = True
    """Concurrent claims share one transaction: the worker sends them in rounds."""

    def __init__(
        self,
        url: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_size: int = 1,
        max_size: int = 10,
        writers: int = 1,
        max_batch: int = 500,
        claim_batch: int = 64,
        connect_timeout: float = 30.0,
    ) -> None:
        conninfo, options = split_url(url) if "://" in url else (url, {})
        try:
            schema = options.get("schema", schema)
            min_size = int(options.get("min_size", min_size))
            max_size = int(options.get("max_size", max_size))
            writers = int(options.get("writers", writers))
            max_batch = int(options.get("max_batch", max_batch))
            claim_batch = int(options.get("claim_batch", claim_batch))
        except ValueError as exc:
            raise UsageError(f"PostgreSQL store: bad option in the URL: {exc}") from None
        if not 1 <= min_size <= max_size or writers < 1 or max_batch < 1 or claim_batch < 1:
            raise UsageError(
                f"PostgreSQL store: need 1 <= min_size <= max_size and writers, max_batch, claim_batch"
                f" >= 1 (got min_size={min_size}, max_size={max_size}, writers={writers},"
                f" max_batch={max_batch}, claim_batch={claim_batch})"
            )
        self.conninfo = conninfo
        self.schema = schema
        self.min_size = min_size
        self.max_size = max_size
        self.writers = min(writers, max_size)
        self.max_batch = max_batch
        self.claim_batch = claim_batch
        self._claims: dict[tuple[str, float, float], builtins.list[asyncio.Future[Job | None]]] = {}
        self.connect_timeout = connect_timeout
        s = quote_schema(schema)
        self._where = _location(conninfo)
        self._sql = _Statements(s)
        self._pool: Any = None
        self._writer: GroupCommitWriter | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Lock | None = None
        self._closed = False

    @classmethod
    async def open(cls, url: str, **options: Any) -> PostgresStore:
        """Construct the store and open it now (pool, schema), so that errors surface here."""
        store = cls(url, **options)
        await store._ready()
        return store

    async def __aenter__(self) -> PostgresStore:
        await self._ready()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def writer(self) -> GroupCommitWriter | None:
        """The group-commit writer once open (its ``batches`` and ``operations`` show batching)."""
        return self._writer

    # -- plumbing ---------------------------------------------------------------------------------

    def _read_error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(f"PostgreSQL store {self._where} (schema {self.schema}): {what}: {exc!r}")

    def _describe(self, job_id: str, exc: BaseException) -> str:
        return f"PostgreSQL store {self._where} (schema {self.schema}): job {job_id}: {exc!r}"

    async def _ready(self) -> GroupCommitWriter:
        """Open the pool and migrate the schema on first use."""
        writer = self._writer
        loop = asyncio.get_running_loop()
        if writer is not None and self._loop is loop:
            return writer
        if self._closed:
            raise StoreError(f"PostgreSQL store {self._where}: used after close()")
        if self._loop is not None and self._loop is not loop:
            raise StoreError(
                f"PostgreSQL store {self._where}: opened on another event loop; use one store per loop"
            )
        self._loop = loop
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._writer is None:
                self._writer = await self._open_pool()
        return self._writer

    async def _open_pool(self) -> GroupCommitWriter:
        import psycopg
        from psycopg_pool import AsyncConnectionPool

        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.conninfo,
            min_size=self.min_size,
            max_size=self.max_size,
            open=False,
            kwargs=self._connection_options(),
            configure=_configure,
            name=f"expert-jobs-{self.schema}",
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
            async with pool.connection() as conn:
                await migrate(conn, self.schema)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"PostgreSQL store {self._where}: cannot open: {exc!r}") from exc
        except BaseException:
            await pool.close()
            raise
        self._pool = pool
        return GroupCommitWriter(
            pool, self._sql.bulk, writers=self.writers, max_batch=self.max_batch, describe=self._describe
        )

    def _connection_options(self) -> dict[str, Any]:
        from psycopg.conninfo import conninfo_to_dict

        options: dict[str, Any] = {"autocommit": True, "context": _adapters()}
        if "application_name" not in conninfo_to_dict(self.conninfo):
            options["application_name"] = "expert-jobs"  # what pg_stat_activity shows
        return options

    async def _write(
        self, kind: str, job_id: str, values: Sequence[Any], checkpoint: Sequence[Any] | None = None
    ) -> Row | None:
        """Queue one write with the group-commit writer; the job's returned row once committed."""
        writer = self._writer
        if writer is None or self._loop is not asyncio.get_running_loop():
            writer = await self._ready()
        return await writer.submit(kind, job_id, values, checkpoint)

    async def _fetch(
        self, sql: str, params: Sequence[Any], *, what: str, retry: bool = True
    ) -> builtins.list[Row]:
        """Run one statement on a pooled connection (a read, or a claim with ``retry=False``). The
        statement (one of :class:`_Statements`, or one of the few shapes of :meth:`list`'s count) is
        prepared on the connection at first use, not after psycopg's five."""

        async def run(conn: Any) -> builtins.list[Row]:
            cur = await conn.execute(sql, params, prepare=True)
            rows: builtins.list[Row] = await cur.fetchall()
            return rows

        return await self._on_connection(run, what=what, retry=retry)

    async def _fetch_two(
        self, first: tuple[str, Sequence[Any]], second: tuple[str, Sequence[Any]], *, what: str
    ) -> tuple[builtins.list[Row], builtins.list[Row]]:
        """Two read-only statements on one snapshot (a page and its total)."""

        async def run(conn: Any) -> tuple[builtins.list[Row], builtins.list[Row]]:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                page = await (await conn.execute(*first)).fetchall()
                count = await (await conn.execute(*second)).fetchall()
            return page, count

        return await self._on_connection(run, what=what, retry=True)

    async def _on_connection(self, run: Callable[[Any], Awaitable[_T]], *, what: str, retry: bool) -> _T:
        """``run`` on a pooled connection. A broken connection (the server restarted, a network
        cut) makes the pool check its idle connections; a read is then tried once more."""
        import psycopg

        await self._ready()
        for attempt in (1, 2):
            try:
                async with self._pool.connection() as conn:
                    return await run(conn)
            except psycopg.OperationalError as exc:
                await self._pool.check()
                if not retry or attempt == 2:
                    raise self._read_error(what, exc) from exc
            except psycopg.Error as exc:
                raise self._read_error(what, exc) from exc
        raise AssertionError("unreachable")

    # -- jobs -------------------------------------------------------------------------------------

    async def create(self, job: Job, checkpoint: Checkpoint | None = None) -> None:
        """Insert a new job at version 0, with its first checkpoint if given (``StoreError`` if the id
        exists)."""
        values = _insert_values(job)
        stored = None if checkpoint is None else _checkpoint_values(checkpoint)
        if await self._write("create", job.id, values, stored) is None:
            raise StoreError(f"job {job.id} already exists")
        job.version = 0

    async def get(self, job_id: str) -> Job | None:
        """A copy of the job, or ``None``."""
        rows = await self._fetch(self._sql.get, (job_id,), what=f"get job {job_id}")
        return job_from_row(rows[0]) if rows else None

    async def save(
        self,
        job: Job,
        *,
        expected_version: int,
        checkpoint: Checkpoint | None = None,
        release_for: str | None = None,
    ) -> None:
        """Append ``checkpoint`` and write ``job`` in one statement if the stored version matches
        (dropping ``release_for``'s lease in the same update, if given and held)."""
        job_id = job.id
        values = [job_id, expected_version, release_for, *update_values(job)]
        stored = None if checkpoint is None else _checkpoint_values(checkpoint)
        row = await self._write("save", job_id, values, stored)
        if row is None:
            found = await self._fetch(self._sql.version, (job_id,), what=f"read version of job {job_id}")
            if not found:
                raise StoreError(f"job {job_id} does not exist")
            raise StaleJobVersion(job_id, expected_version, found[0][0])
        job.lease_owner, job.lease_expires_at = row[1], row[2]
        job.version = expected_version + 1

    async def list(self, query: JobQuery) -> tuple[builtins.list[Job], int]:
        """One page of the application's jobs (filtered, sorted; ties on id) and the total matching."""
        where = ["application_id = %s"]
        params: builtins.list[Any] = [query.application_id]
        if query.filter and "\x00" in query.filter:
            return [], 0  # no expert key holds NUL, and PostgreSQL text cannot take it
        if query.filter:
            where.append("strpos(search_key, %s) > 0")
            params.append(query.filter.lower())
        if query.statuses is not None:
            if not query.statuses:
                return [], 0
            where.append(f"status = ANY({status_array(tuple(query.statuses))})")
        column = "updated_at" if query.sort == "updatedAt" else "created_at"
        direction = "ASC" if query.order == "asc" else "DESC"
        condition = " AND ".join(where)
        count_sql = f"SELECT count(*) FROM {self._sql.jobs} WHERE {condition}"
        take, skip = clamp_page(query.take, query.skip)
        if take == 0:
            # Only the total (a poll for progress): one statement, no page, no snapshot transaction.
            count = await self._fetch(count_sql, params, what="count jobs")
            return [], int(count[0][0])
        page_sql = (
            f"SELECT {_COLS} FROM {self._sql.jobs} WHERE {condition}"
            f" ORDER BY {column} {direction}, id {direction} LIMIT %s OFFSET %s"
        )
        rows, count = await self._fetch_two(
            (page_sql, (*params, take, skip)), (count_sql, params), what="list jobs"
        )
        return [job_from_row(row) for row in rows], int(count[0][0])

    # -- leases -----------------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, *, now: float, lease_seconds: float, job_id: str | None = None
    ) -> Job | None:
        """Lease the longest-waiting claimable queued job (or exactly ``job_id``) to ``worker_id``.

        Without ``job_id`` this is one statement that locks its candidate ``FOR UPDATE SKIP
        LOCKED``: concurrent claims from any number of processes each take a different job.
        """
        expires = now + lease_seconds
        if job_id is not None:
            params = (worker_id, expires, job_id, worker_id, now)
            rows = await self._fetch(self._sql.claim_id, params, what=f"claim job {job_id}", retry=False)
            return job_from_row(rows[0]) if rows else None
        return await self._claim_next(worker_id, now, lease_seconds)

    async def _claim_next(self, worker_id: str, now: float, lease_seconds: float) -> Job | None:
        """One claim, merged with the claims the same worker makes at the same moment.

        The first claim of a moment waits one event-loop turn for others (``Worker`` sends its
        claims in concurrent rounds), then one statement leases up to that many jobs and hands one
        to each caller, oldest first. Nothing is claimed that no caller asked for.
        """
        key = (worker_id, now, lease_seconds)
        joining = self._claims.get(key)
        if joining is not None and len(joining) + 1 < self.claim_batch:
            future: asyncio.Future[Job | None] = asyncio.get_running_loop().create_future()
            joining.append(future)
            return await future
        followers: builtins.list[asyncio.Future[Job | None]] = []
        self._claims[key] = followers
        jobs: builtins.list[Job] = []
        try:
            await asyncio.sleep(0)  # let the claims of this moment join
            if self._claims.get(key) is followers:
                del self._claims[key]
            rows = await self._fetch(
                self._sql.claim_next,
                (worker_id, now + lease_seconds, now, 1 + len(followers)),
                what=f"claim for worker {worker_id}",
                retry=False,
            )
            jobs = sorted((job_from_row(row) for row in rows), key=_claim_order)
        except BaseException as exc:
            for follower in followers:
                if follower.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    follower.cancel()
                else:
                    follower.set_exception(exc)
            raise
        finally:
            if self._claims.get(key) is followers:
                del self._claims[key]
        mine = jobs[0] if jobs else None
        for follower, job in zip_longest(followers, jobs[1:]):
            if follower is not None and not follower.done():
                follower.set_result(job)
            # A follower cancelled meanwhile leaves its job leased: it lapses and is recovered.
        return mine

    async def renew_lease(self, job_id: str, worker_id: str, *, now: float, lease_seconds: float) -> bool:
        """Extend the worker's lease; ``False`` if it no longer holds it."""
        return await self._write("renew", job_id, (job_id, worker_id, now + lease_seconds)) is not None

    async def release(self, job_id: str, worker_id: str) -> None:
        """Drop the worker's lease on the job (no-op if it does not hold it)."""
        await self._write("release", job_id, (job_id, worker_id))

    async def held_by(self, worker_id: str) -> builtins.list[Job]:
        """Jobs whose lease ``worker_id`` holds, live or lapsed."""
        rows = await self._fetch(self._sql.held_by, (worker_id,), what=f"jobs held by {worker_id}")
        return [job_from_row(row) for row in rows]

    async def lapsed_leases(self, *, now: float, limit: int = 100) -> builtins.list[Job]:
        """Jobs whose lease lapsed at or before ``now``, earliest lapse first."""
        rows = await self._fetch(self._sql.lapsed, (now, limit), what="lapsed leases")
        return [job_from_row(row) for row in rows]

    async def waiting_since_before(
        self, statuses: Sequence[JobStatus], cutoff: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        """Unleased jobs in ``statuses`` with ``waiting_since < cutoff``, longest waiting first."""
        if not statuses:
            return []
        sql = self._sql.waiting(statuses)
        rows = await self._fetch(sql, (cutoff, limit), what="waiting jobs")
        return [job_from_row(row) for row in rows]

    # -- checkpoints --------------------------------------------------------------------------------

    async def get_checkpoint(self, job_id: str, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint of the job, or ``None``."""
        rows = await self._fetch(
            self._sql.get_checkpoint, (checkpoint_id, job_id), what=f"checkpoint {checkpoint_id}"
        )
        return _checkpoint_from_row(*rows[0]) if rows else None

    async def list_checkpoints(
        self, job_id: str, *, take: int = 100, skip: int = 0, after_seq: int | None = None
    ) -> tuple[builtins.list[Checkpoint], int]:
        """The job's checkpoints in ``seq`` order (after ``after_seq`` if given) and their total."""
        after = -1 if after_seq is None else clamp_seq(after_seq)
        take, skip = clamp_page(take, skip)
        cps = self._sql.checkpoints
        rows, count = await self._fetch_two(
            (
                f"SELECT data, messages FROM {cps} WHERE job_id = %s AND seq > %s"
                " ORDER BY seq LIMIT %s OFFSET %s",
                (job_id, after, take, skip),
            ),
            (f"SELECT count(*) FROM {cps} WHERE job_id = %s AND seq > %s", (job_id, after)),
            what=f"checkpoints of job {job_id}",
        )
        return [_checkpoint_from_row(*row) for row in rows], int(count[0][0])

    async def latest_checkpoints(self, job_id: str) -> dict[str, Checkpoint]:
        """The latest checkpoint of every run of the job, by run id."""
        rows = await self._fetch(self._sql.latest, (job_id,), what=f"latest checkpoints of job {job_id}")
        return {row[0]: _checkpoint_from_row(row[1], row[2]) for row in rows}

    async def load_history(
        self, job_id: str, run_id: str, *, upto_seq: int | None = None
    ) -> builtins.list[Message]:
        """A run's messages: its checkpoints' deltas concatenated, up to and including ``upto_seq``."""
        limit = (1 << 62) if upto_seq is None else upto_seq
        rows = await self._fetch(
            self._sql.history, (job_id, run_id, limit), what=f"history of run {run_id} of job {job_id}"
        )
        return [message_from_data(data) for (delta,) in rows for data in delta]

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close the pool."""
        self._closed = True
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class _Statements:
    """The store's SQL, with the schema's tables spelled out."""

    def __init__(self, s: str) -> None:
        jobs = self.jobs = f"{s}.jobs"
        cps = self.checkpoints = f"{s}.checkpoints"
        # Writes: set-based statements over arrays, one per kind of operation (see _pg_writer).
        insert_columns = INSERT_COLUMNS
        names = ", ".join(insert_columns)
        add_checkpoints = (
            f"c AS (INSERT INTO {cps} (job_id, seq, id, run_id, data, messages)"
            " SELECT cp.job_id, cp.seq, cp.id, cp.run_id, cp.data, cp.messages"
            " FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::text[], %b::json[], %b::json[])"
            " AS cp(job_id, seq, id, run_id, data, messages)"
        )
        create = (
            f"WITH v AS (SELECT * FROM unnest({_arrays(insert_columns)}) AS v({names})),"
            f" j AS (INSERT INTO {jobs} ({names}) SELECT {names} FROM v"
            " ON CONFLICT (id) DO NOTHING RETURNING id),"
            f" {add_checkpoints} JOIN j ON j.id = cp.job_id)"
            " SELECT id FROM j"
        )
        save_columns = ("id", "expected", "release_for", *UPDATE_COLUMNS)
        save = (
            f"WITH v AS (SELECT * FROM unnest({_arrays(save_columns)}) AS v({', '.join(save_columns)})),"
            f" u AS (UPDATE {jobs} AS t SET {', '.join(f'{c} = v.{c}' for c in UPDATE_COLUMNS)},"
            " lease_owner = CASE WHEN t.lease_owner = v.release_for THEN NULL ELSE t.lease_owner END,"
            " lease_expires_at = CASE WHEN t.lease_owner = v.release_for THEN NULL"
            " ELSE t.lease_expires_at END,"
            " version = v.expected + 1 FROM v WHERE t.id = v.id AND t.version = v.expected"
            " RETURNING t.id, t.lease_owner, t.lease_expires_at),"
            f" {add_checkpoints} JOIN u ON u.id = cp.job_id)"
            " SELECT id, lease_owner, lease_expires_at FROM u"
        )
        renew = (
            f"UPDATE {jobs} AS t SET lease_expires_at = v.expires"
            " FROM unnest(%b::text[], %b::text[], %b::float8[]) AS v(id, owner, expires)"
            " WHERE t.id = v.id AND t.lease_owner = v.owner RETURNING t.id"
        )
        release = (
            f"UPDATE {jobs} AS t SET lease_owner = NULL, lease_expires_at = NULL"
            " FROM unnest(%b::text[], %b::text[]) AS v(id, owner)"
            " WHERE t.id = v.id AND t.lease_owner = v.owner RETURNING t.id"
        )
        checkpoint_types = ("text", "bigint", "text", "text", "json", "json")
        self.bulk: dict[str, BulkStatement] = {
            "create": BulkStatement(create, _types(insert_columns), checkpoint_types),
            "save": BulkStatement(save, _types(save_columns), checkpoint_types),
            "renew": BulkStatement(renew, ("text", "text", "float8")),
            "release": BulkStatement(release, ("text", "text")),
        }
        # Claims and reads: one statement each, straight on a pooled connection.
        self.version = f"SELECT version FROM {jobs} WHERE id = %s"
        self.get = f"SELECT {_COLS} FROM {jobs} WHERE id = %s"
        claimable = "(lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= %s::float8)"
        # The ids to lease come as one array (an InitPlan), so the update finds its rows through the
        # primary key whatever the plan guesses of the LIMIT: a generic plan (see _configure) costs
        # a parameter LIMIT at a tenth of the queue, and joined to that many rows it would read the
        # whole table (a seq scan per claim once a large backlog builds up).
        self.claim_next = (
            f"UPDATE {jobs} SET lease_owner = %s::text, lease_expires_at = %s::float8"
            f" WHERE id = ANY(ARRAY(SELECT id FROM {jobs} WHERE status = 'queued' AND {claimable}"
            " ORDER BY waiting_since, id LIMIT %s FOR UPDATE SKIP LOCKED))"
            f" RETURNING {_COLS}"
        )
        self.claim_id = (
            f"UPDATE {jobs} SET lease_owner = %s::text, lease_expires_at = %s::float8"
            " WHERE id = %s::text AND status = 'queued' AND (lease_owner IS NULL OR lease_owner = %s::text"
            " OR lease_expires_at IS NULL OR lease_expires_at <= %s::float8)"
            f" RETURNING {_COLS}"
        )
        self.held_by = f"SELECT {_COLS} FROM {jobs} WHERE lease_owner = %s ORDER BY id"
        self.lapsed = (
            f"SELECT {_COLS} FROM {jobs} WHERE lease_owner IS NOT NULL AND lease_expires_at <= %s"
            " ORDER BY lease_expires_at, id LIMIT %s"
        )
        self._waiting = (
            f"SELECT {_COLS} FROM {jobs} WHERE status = ANY({{statuses}}) AND lease_owner IS NULL"
            " AND waiting_since < %s ORDER BY waiting_since, id LIMIT %s"
        )
        self.get_checkpoint = f"SELECT data, messages FROM {cps} WHERE id = %s AND job_id = %s"
        self.latest = (
            f"SELECT DISTINCT ON (run_id) run_id, data, messages FROM {cps} WHERE job_id = %s"
            " ORDER BY run_id, seq DESC"
        )
        self.history = (
            f"SELECT messages FROM {cps} WHERE job_id = %s AND run_id = %s AND seq <= %s ORDER BY seq"
        )

    def waiting(self, statuses: Sequence[str]) -> str:
        """Unleased jobs in ``statuses`` waiting since before a cutoff (parameters: the cutoff, the
        limit)."""
        return self._waiting.format(statuses=status_array(statuses))


def status_array(statuses: Sequence[str]) -> str:
    """Job status values as a SQL array literal (``'{queued,failed}'::text[]``).

    The statuses are written into the statement, not passed as a parameter: a generic plan (see
    :func:`_configure`) then sees them as a custom plan would, and can use the partial indexes on
    ``status = 'queued'``. Only :class:`JobStatus` values (letters only) are written: anything else
    is the ``ValueError`` of ``JobStatus(value)``.
    """
    values = sorted({JobStatus(status).value for status in statuses})
    return f"'{{{','.join(values)}}}'::text[]"


async def _configure(conn: Any) -> None:
    """Set up a new pooled connection: its prepared statements use generic plans.

    Every statement of the store has a fixed shape that one plan serves for any parameters (index
    lookups by id, ``unnest`` arrays joined by id, the claim's ordered index scan). Left to choose,
    PostgreSQL plans a statement anew at each execution for as long as its generic plan looks
    dearer than the custom plans so far: the writer's first batches are small (a worker's first
    claims are 1, 2, 4, ... jobs), so the generic plan of a batch statement, costed for more rows,
    kept losing and every batch was planned again. (A server older than PostgreSQL 12 has no such
    setting and keeps its own choice.)
    """
    import psycopg

    with contextlib.suppress(psycopg.errors.UndefinedObject):
        await conn.execute("SET plan_cache_mode = force_generic_plan")


_ADAPTERS: Any = None


def _adapters() -> Any:
    """psycopg's adapters plus the writer's binary arrays (see ``_pg_writer.encode_array``) and the
    quicker reader of ``json`` columns (``_pg_json``)."""
    global _ADAPTERS
    if _ADAPTERS is None:
        import psycopg
        from psycopg.adapt import AdaptersMap

        adapters = AdaptersMap(psycopg.adapters)
        register_arrays(adapters)
        register_json_loader(adapters)
        _ADAPTERS = adapters
    return _ADAPTERS


def _location(conninfo: str) -> str:
    """Where the store points, for error messages, without any password (``UsageError`` if libpq
    cannot parse the connection string)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(conninfo)
    except psycopg.Error as exc:
        raise UsageError(f"PostgreSQL store: invalid connection string: {exc}") from None
    user = params.get("user", "")
    host = params.get("host", "localhost")
    port = params.get("port", "5432")
    dbname = params.get("dbname", "")
    return f"postgresql://{user}{'@' if user else ''}{host}:{port}/{dbname}"
