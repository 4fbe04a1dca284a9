"""``SQLiteStore``: the embedded default. One file, durable, and the event loop never waits on disk.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every commit fsyncs the
write-ahead log before it returns, and a save's future resolves only after its commit: a save
that returned survives ``kill -9`` *and* power loss. (``NORMAL`` would skip that fsync and survive
only application crashes: the last commits could vanish with the power.) A crash at any moment
leaves the last committed state; uncommitted batches are rolled back by SQLite on the next open.

Throughput: all writes go through one writer with group commit (see ``_sqlite_writer``; with
``writer="process"`` it is a child process, ``_sqlite_process``, with the same rules): the saves
of a thousand concurrent jobs share one transaction and one fsync per batch, and concurrent saves
(or creates) of different jobs run as one ``executemany`` per statement. Reads run on a small
pool of reader threads with their own connections (WAL readers never block the writer nor wait
for it). ``sqlite:///:memory:`` uses one private in-memory database; its reads go through the
writer thread too (no durability, handy for tests).

Several processes may open the same file (an API server and a worker): each write batch takes
SQLite's write lock (``BEGIN IMMEDIATE``, waiting up to ``busy_timeout``), and saves re-check the
stored version inside it, so optimistic concurrency holds across processes.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import StaleJobVersion, StoreError, UsageError
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.messages import Message, message_from_data
from expert_jobs.domain.status import JobStatus
from expert_jobs.stores._rows import (
    INSERT_COLUMNS,
    JOB_COLUMNS,
    UPDATE_COLUMNS,
    checkpoint_from_json,
    checkpoint_json,
    clamp_page,
    clamp_seq,
    insert_values,
    job_from_row,
    update_values,
)
from expert_jobs.stores._sqlite_process import ProcessWriter
from expert_jobs.stores._sqlite_schema import migrate
from expert_jobs.stores._sqlite_writer import GroupCommitWriter, GroupedOperation

__all__ = ["SQLiteStore"]

T = TypeVar("T")
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
WriterKind = Literal["thread", "process"]
_WRITER_KINDS = ("thread", "process")
_SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

_COLS = ", ".join(JOB_COLUMNS)
_INSERT_JOB = (
    f"INSERT INTO jobs ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join('?' * len(INSERT_COLUMNS))})"
)
_SET_STATE = ", ".join(f"{c} = ?" for c in UPDATE_COLUMNS)
_UPDATE_JOB_AT = f"UPDATE jobs SET {_SET_STATE}, version = ? WHERE id = ? AND version = ?"
# A runner's last save also drops its lease (the right-hand sides see the row as it was).
_UPDATE_JOB_RELEASING_AT = (
    f"UPDATE jobs SET {_SET_STATE},"
    " lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END,"
    " lease_expires_at = CASE WHEN lease_owner = ? THEN NULL ELSE lease_expires_at END,"
    " version = ? WHERE id = ? AND version = ?"
)
_RETURNING_LEASE = " RETURNING lease_owner, lease_expires_at"
_VERSION = "SELECT version FROM jobs WHERE id = ?"
_INSERT_CHECKPOINT = "INSERT INTO checkpoints (job_id, seq, id, run_id, data) VALUES (?, ?, ?, ?, ?)"
# A save's checkpoint goes in only if the job is at the expected version (one statement, no read).
_INSERT_CHECKPOINT_AT = (
    "INSERT INTO checkpoints (job_id, seq, id, run_id, data)"
    " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ? AND version = ?)"
)
_LAPSED = "(lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= ?)"
_CLAIM_NEXT = (
    f"UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id IN ("
    f"SELECT id FROM jobs WHERE status = 'queued' AND {_LAPSED} ORDER BY waiting_since, id LIMIT ?"
    f") RETURNING {_COLS}"
)
_CLAIM_ID = (
    "UPDATE jobs SET lease_owner = ?, lease_expires_at = ? WHERE id = ? AND status = 'queued'"
    " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at IS NULL OR lease_expires_at <= ?)"
    f" RETURNING {_COLS}"
)
_RENEW = "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ?"
_RELEASE = "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?"
_GET = f"SELECT {_COLS} FROM jobs WHERE id = ?"


def _snapshot(conn: sqlite3.Connection, read: Callable[[sqlite3.Connection], T]) -> T:
    """Run several queries on one consistent snapshot (already so inside the writer's transaction)."""
    if conn.in_transaction:
        return read(conn)
    conn.execute("BEGIN")
    try:
        return read(conn)
    finally:
        conn.execute("COMMIT")


def _open_failure(path: str, exc: sqlite3.Error) -> StoreError:
    """A clear error for a database that cannot be opened (missing directory, not a database...)."""
    directory = os.path.dirname(os.path.abspath(path))
    if path != ":memory:" and not os.path.isdir(directory):
        why = f"directory {directory} does not exist"
    elif os.path.isdir(path):
        why = "it is a directory"
    else:
        why = str(exc)
    return StoreError(f"SQLite store {path}: cannot open or migrate the database: {why}")


def _refusal(conn: sqlite3.Connection, job_id: str, expected_version: int) -> StoreError:
    """Why a guarded write found nothing: the job is missing, or at another version."""
    row = conn.execute(_VERSION, (job_id,)).fetchone()
    if row is None:
        return StoreError(f"job {job_id} does not exist")
    return StaleJobVersion(job_id, expected_version, row[0])


def _checkpoint_row(checkpoint: Checkpoint) -> tuple[str, int, str, str, str]:
    return checkpoint.job_id, checkpoint.seq, checkpoint.id, checkpoint.run_id, checkpoint_json(checkpoint)


def _connect(path: str, *, timeout: float, uri: bool = False) -> sqlite3.Connection:
    return sqlite3.connect(
        path, timeout=timeout, isolation_level=None, check_same_thread=False, cached_statements=128, uri=uri
    )


def _save_params(values: list[Any], job_id: str, expected: int, release_for: str | None) -> list[Any]:
    """The parameters of the guarded update (``_UPDATE_JOB_AT`` or ``_UPDATE_JOB_RELEASING_AT``)."""
    if release_for is not None:
        values += (release_for, release_for)
    values += (expected + 1, job_id, expected)
    return values


class _Save(GroupedOperation):
    """One save: the checkpoint insert guarded by the version, then the job update guarded by it
    too (returning the stored lease). A checkpoint that cannot go in (a duplicate id or seq)
    fails the save before the job is touched. Concurrent saves of different jobs run as one
    ``executemany`` per statement (:meth:`run_group`): there the guarded job updates go first and
    the checkpoints follow with an unguarded insert, all inside one savepoint."""

    __slots__ = ("expected", "job_id", "releasing", "row", "values")

    def __init__(
        self,
        job_id: str,
        expected: int,
        values: list[Any],
        checkpoint: Checkpoint | None,
        release_for: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.expected = expected
        self.releasing = release_for is not None
        self.values = _save_params(values, job_id, expected, release_for)
        self.row = None if checkpoint is None else _checkpoint_row(checkpoint)

    def __call__(self, conn: sqlite3.Connection) -> tuple[str | None, float | None]:
        """Run this save alone."""
        job_id, expected = self.job_id, self.expected
        row = self.row
        if row is not None and conn.execute(_INSERT_CHECKPOINT_AT, (*row, job_id, expected)).rowcount != 1:
            raise _refusal(conn, job_id, expected)
        update = _UPDATE_JOB_RELEASING_AT if self.releasing else _UPDATE_JOB_AT
        rows = conn.execute(update + _RETURNING_LEASE, self.values).fetchall()
        if not rows:
            if row is not None:  # cannot happen: the guard saw this version just now
                raise RuntimeError(f"job {job_id}: version moved inside a write transaction")
            raise _refusal(conn, job_id, expected)
        owner, expires = rows[0]
        return owner, expires

    @classmethod
    def run_group(cls, conn: sqlite3.Connection, operations: list[Any]) -> list[Any] | None:
        """All the saves at once, if they are of different jobs and every guard holds; else
        ``None`` with nothing written (they then run one by one and fail one by one)."""
        saves: list[_Save] = operations
        ids = [save.job_id for save in saves]
        if len(set(ids)) != len(ids):
            return None
        # The version guards are checked by the updates (all or nothing: a miss declines the
        # group), so the checkpoints then go in with a plain insert, without a per-row guard.
        checkpoints = [save.row for save in saves if save.row is not None]
        conn.execute("SAVEPOINT saves")
        try:
            updated = 0
            for update, releasing in ((_UPDATE_JOB_AT, False), (_UPDATE_JOB_RELEASING_AT, True)):
                values = [save.values for save in saves if save.releasing is releasing]
                if values:
                    updated += conn.executemany(update, values).rowcount
            if updated != len(saves):
                raise _Declined
            if checkpoints:
                conn.executemany(_INSERT_CHECKPOINT, checkpoints)
            leases: dict[str, tuple[str | None, float | None]] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                for job_id, owner, expires in conn.execute(_leases_of(len(chunk)), chunk):
                    leases[job_id] = (owner, expires)
        except (_Declined, sqlite3.IntegrityError):
            conn.execute("ROLLBACK TO saves")
            conn.execute("RELEASE saves")
            return None
        conn.execute("RELEASE saves")
        return [leases[job_id] for job_id in ids]


class _Create(GroupedOperation):
    """One new job (with its first checkpoint, if any), all or nothing. Concurrent creates run
    as one ``executemany`` per table (:meth:`run_group`)."""

    __slots__ = ("checkpoint", "job_id", "values")

    def __init__(self, job: Job, checkpoint: Checkpoint | None) -> None:
        self.job_id = job.id
        self.values = insert_values(job)
        self.checkpoint = None if checkpoint is None else _checkpoint_row(checkpoint)

    def __call__(self, conn: sqlite3.Connection) -> None:
        """Create this job alone; ``StoreError`` (nothing written) if its id exists."""
        if self.checkpoint is None:
            try:
                conn.execute(_INSERT_JOB, self.values)
            except sqlite3.IntegrityError:
                raise StoreError(f"job {self.job_id} already exists") from None
            return
        # Two inserts that may each be refused: all or nothing, inside a savepoint.
        conn.execute("SAVEPOINT create_job")
        try:
            try:
                conn.execute(_INSERT_JOB, self.values)
            except sqlite3.IntegrityError:
                raise StoreError(f"job {self.job_id} already exists") from None
            conn.execute(_INSERT_CHECKPOINT, self.checkpoint)
        except BaseException:
            conn.execute("ROLLBACK TO create_job")
            raise
        finally:
            conn.execute("RELEASE create_job")

    @classmethod
    def run_group(cls, conn: sqlite3.Connection, operations: list[Any]) -> list[Any] | None:
        """All the creates at once, or ``None`` with nothing written if any is refused (they
        then run one by one and fail one by one)."""
        creates: list[_Create] = operations
        checkpoints = [create.checkpoint for create in creates if create.checkpoint is not None]
        conn.execute("SAVEPOINT creates")
        try:
            conn.executemany(_INSERT_JOB, [create.values for create in creates])
            if checkpoints:
                conn.executemany(_INSERT_CHECKPOINT, checkpoints)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO creates")
            conn.execute("RELEASE creates")
            return None
        conn.execute("RELEASE creates")
        return [None] * len(creates)


_CHUNK = 500
"""The most job ids in one ``IN (...)`` list."""


@functools.lru_cache(maxsize=64)
def _leases_of(count: int) -> str:
    return f"SELECT id, lease_owner, lease_expires_at FROM jobs WHERE id IN ({', '.join('?' * count)})"


class _ClaimNext(GroupedOperation):
    """One claim of the longest-waiting claimable job. Concurrent claims of one worker's round
    (same worker, same clock reading) take their jobs in one statement (:meth:`run_group`)."""

    __slots__ = ("params",)

    def __init__(self, worker_id: str, expires: float, now: float) -> None:
        self.params = (worker_id, expires, now)

    def __call__(self, conn: sqlite3.Connection) -> Any:
        """Claim one job alone: its row, or ``None``."""
        rows = conn.execute(_CLAIM_NEXT, (*self.params, 1)).fetchall()
        return rows[0] if rows else None

    @classmethod
    def run_group(cls, conn: sqlite3.Connection, operations: list[Any]) -> list[Any] | None:
        """Claim up to one job per operation at once (``None`` for those left without)."""
        claims: list[_ClaimNext] = operations
        params = claims[0].params
        if any(claim.params != params for claim in claims):
            return None
        rows: list[Any] = conn.execute(_CLAIM_NEXT, (*params, len(claims))).fetchall()
        return rows + [None] * (len(claims) - len(rows))


class _Release(GroupedOperation):
    """Dropping a lease; the releases queued together go in one ``UPDATE`` per worker
    (:meth:`run_group`)."""

    __slots__ = ("params",)

    def __init__(self, job_id: str, worker_id: str) -> None:
        self.params = (job_id, worker_id)

    def __call__(self, conn: sqlite3.Connection) -> None:
        """Release alone."""
        conn.execute(_RELEASE, self.params)

    @classmethod
    def run_group(cls, conn: sqlite3.Connection, operations: list[Any]) -> list[Any] | None:
        """Release them all (a release of a lease not held changes nothing): one statement per
        worker and chunk of jobs, so the writer gives the GIL up and takes it back once for
        them, not once per job."""
        releases: list[_Release] = operations
        by_worker: dict[str, list[str]] = {}
        for job_id, worker_id in (release.params for release in releases):
            by_worker.setdefault(worker_id, []).append(job_id)
        for worker_id, job_ids in by_worker.items():
            for start in range(0, len(job_ids), _CHUNK):
                chunk = job_ids[start : start + _CHUNK]
                conn.execute(_release_all(len(chunk)), (worker_id, *chunk))
        return [None] * len(releases)


@functools.lru_cache(maxsize=64)
def _release_all(count: int) -> str:
    return (
        "UPDATE jobs SET lease_owner = NULL, lease_expires_at = NULL"
        f" WHERE lease_owner = ? AND id IN ({', '.join('?' * count)})"
    )


_PROCESS_SQL = {
    "version": _VERSION,
    "insert_checkpoint_at": _INSERT_CHECKPOINT_AT,
    "insert_checkpoint": _INSERT_CHECKPOINT,
    "insert_job": _INSERT_JOB,
    "update": _UPDATE_JOB_AT,
    "update_releasing": _UPDATE_JOB_RELEASING_AT,
    "update_returning": _UPDATE_JOB_AT + _RETURNING_LEASE,
    "update_releasing_returning": _UPDATE_JOB_RELEASING_AT + _RETURNING_LEASE,
    "leases": _leases_of(1),
    "claim_next": _CLAIM_NEXT,
    "release": _RELEASE,
    "release_all": _release_all(1),
}
"""The writer process's statements (``_sqlite_child`` widens the one-id ``IN (?)`` lists)."""


class _Declined(Exception):
    """A grouped write found something to refuse: undo it and run the operations one by one."""


class SQLiteStore:
    """A :class:`~expert_jobs.ports.store.JobStore` in one SQLite file (see the module docstring).

    ``path``: the database file (created with its schema if missing) or ``":memory:"``.
    ``synchronous``: SQLite's ``synchronous`` level; ``FULL`` (the default) makes every commit
    survive power loss, ``NORMAL`` only process crashes. ``readers``: reader threads.
    ``busy_timeout``: seconds to wait for another process's write lock. ``max_batch``: the most
    operations committed in one transaction. ``writer``: ``"thread"`` (the default) commits from
    a thread of this process; ``"process"`` from a child process (POSIX only; see
    ``_sqlite_process``), which takes the SQLite work off this process's GIL: the same
    durability, one more process per store, up to ≈ 0.1 s more to open. ``:memory:`` always uses a
    thread.

    The constructor opens and migrates the file (blocking briefly); in async code prefer
    ``await SQLiteStore.open(path)``.
    """

    claims_in_batches = True
    """Concurrent claims share one transaction: the worker sends them in rounds."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        readers: int = 2,
        busy_timeout: float = 10.0,
        max_batch: int = 1000,
        writer: WriterKind = "thread",
    ) -> None:
        self.path = os.fspath(path)
        self.in_memory = self.path == ":memory:"
        self._timeout = busy_timeout
        level = str(synchronous).upper()
        if level not in _SYNCHRONOUS_LEVELS:
            raise UsageError(
                f"SQLite store {self.path}: synchronous must be one of {', '.join(_SYNCHRONOUS_LEVELS)},"
                f" got {synchronous!r}"
            )
        self.synchronous = level
        if writer not in _WRITER_KINDS:
            raise UsageError(
                f"SQLite store {self.path}: writer must be one of {', '.join(_WRITER_KINDS)}, got {writer!r}"
            )
        if writer == "process" and os.name != "posix":
            raise UsageError(f"SQLite store {self.path}: writer='process' needs a POSIX system (pipes by fd)")
        # An in-memory database lives in one connection: its writer stays a thread.
        self.writer_kind: WriterKind = "thread" if self.in_memory else writer
        """Where the writes run: ``"thread"`` (in this process) or ``"process"`` (a child process)."""
        if readers < 1 or max_batch < 1:
            raise UsageError(
                f"SQLite store {self.path}: readers and max_batch must be >= 1, got {readers} and {max_batch}"
            )
        try:
            writer_conn = _connect(self.path, timeout=busy_timeout)
        except sqlite3.Error as exc:
            raise _open_failure(self.path, exc) from exc
        try:
            if not self.in_memory:
                mode = writer_conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"SQLite store {self.path}: cannot switch to WAL (journal_mode={mode})")
            for pragma in self._writer_pragmas():
                writer_conn.execute(pragma)
            found = migrate(writer_conn, self.path)
        except sqlite3.Error as exc:
            writer_conn.close()
            raise _open_failure(self.path, exc) from exc
        except BaseException:
            writer_conn.close()
            raise
        self.migrated_from = found
        """The schema version found on opening (0: a new file), before migrating it."""
        self._writer: GroupCommitWriter | ProcessWriter
        if self.writer_kind == "process":
            writer_conn.close()
            settings = {
                "path": self.path,
                "busy_timeout": busy_timeout,
                "pragmas": self._writer_pragmas(),
                "sql": _PROCESS_SQL,
                "chunk": _CHUNK,
                "max_batch": max_batch,
            }
            self._writer = ProcessWriter(settings)
        else:
            self._writer = GroupCommitWriter(writer_conn, path=self.path, max_batch=max_batch)
        self._process = self.writer_kind == "process"
        # Either writer's submit: a GroupedOperation or function for the thread, a tuple for the process.
        self._submit: Callable[[Any], asyncio.Future[Any]] = self._writer.submit
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._readers = (
            None
            if self.in_memory
            else ThreadPoolExecutor(max_workers=readers, thread_name_prefix="expert-jobs-sqlite-reader")
        )

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **options: Any) -> SQLiteStore:
        """Open (and create or migrate) the store without blocking the event loop."""
        return await asyncio.to_thread(cls, path, **options)

    async def __aenter__(self) -> SQLiteStore:
        """``async with await SQLiteStore.open(path) as store:`` closes the store on the way out."""
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the store."""
        await self.close()

    @property
    def writer(self) -> GroupCommitWriter | ProcessWriter:
        """The group-commit writer (its ``batches`` and ``operations`` counters show batching)."""
        return self._writer

    def _writer_pragmas(self) -> list[str]:
        return [
            f"PRAGMA synchronous = {self.synchronous}",
            "PRAGMA temp_store = MEMORY",
            "PRAGMA cache_size = -16384",
            "PRAGMA journal_size_limit = 67108864",
        ]

    # -- plumbing ---------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, timeout=self._timeout)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA cache_size = -8192")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    def _run_read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return read(self._reader())
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: read failed: {exc!r}") from exc

    async def _read(self, read: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            result: T = await self._submit(read)
            return result
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, read)

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        result: T = await self._submit(operation)
        return result

    # -- jobs -------------------------------------------------------------------------------------

    async def create(self, job: Job, checkpoint: Checkpoint | None = None) -> None:
        """Insert a new job at version 0, with its first checkpoint if given, atomically.

        Raises ``StoreError`` if the id exists (and then writes nothing).
        """
        if self._process:
            row = None if checkpoint is None else _checkpoint_row(checkpoint)
            await self._submit(("create", job.id, insert_values(job), row))
        else:
            await self._submit(_Create(job, checkpoint))
        job.version = 0

    async def get(self, job_id: str) -> Job | None:
        """A copy of the job, or ``None``."""
        rows = await self._read(lambda conn: conn.execute(_GET, (job_id,)).fetchall())
        return job_from_row(rows[0]) if rows else None

    async def save(
        self,
        job: Job,
        *,
        expected_version: int,
        checkpoint: Checkpoint | None = None,
        release_for: str | None = None,
    ) -> None:
        """Append ``checkpoint`` and write ``job`` in one transaction if the stored version matches
        (dropping ``release_for``'s lease in the same update, if given and held).

        Two statements on the writer thread: the checkpoint insert guarded by the version, then
        the job update guarded by it too (returning the stored lease). A checkpoint that cannot go
        in (a duplicate id or seq) fails the save before the job is touched.
        """
        if self._process:
            params = _save_params(update_values(job), job.id, expected_version, release_for)
            row = None if checkpoint is None else _checkpoint_row(checkpoint)
            save: Any = ("save", job.id, expected_version, params, release_for is not None, row)
        else:
            save = _Save(job.id, expected_version, update_values(job), checkpoint, release_for)
        job.lease_owner, job.lease_expires_at = await self._submit(save)
        job.version = expected_version + 1

    # -- leases -----------------------------------------------------------------------------------

    async def claim(
        self, worker_id: str, *, now: float, lease_seconds: float, job_id: str | None = None
    ) -> Job | None:
        """Lease the longest-waiting claimable queued job (or exactly ``job_id``) to ``worker_id``."""
        expires = now + lease_seconds
        if job_id is None:
            claim: Any = ("claim", worker_id, expires, now)
            row = await self._submit(claim if self._process else _ClaimNext(*claim[1:]))
            return None if row is None else job_from_row(row)
        params = (worker_id, expires, job_id, worker_id, now)
        if self._process:
            rows = await self._submit(("fetch", _CLAIM_ID, params))
        else:
            rows = await self._write(lambda conn: conn.execute(_CLAIM_ID, params).fetchall())
        return job_from_row(rows[0]) if rows else None

    async def renew_lease(self, job_id: str, worker_id: str, *, now: float, lease_seconds: float) -> bool:
        """Extend the worker's lease; ``False`` if it no longer holds it."""
        params = (now + lease_seconds, job_id, worker_id)
        renewed: int
        if self._process:
            renewed = await self._submit(("count", _RENEW, params))
        else:
            renewed = await self._write(lambda conn: conn.execute(_RENEW, params).rowcount)
        return renewed == 1

    async def release(self, job_id: str, worker_id: str) -> None:
        """Drop the worker's lease on the job (no-op if it does not hold it)."""
        release = ("release", job_id, worker_id) if self._process else _Release(job_id, worker_id)
        await self._submit(release)

    async def held_by(self, worker_id: str) -> builtins.list[Job]:
        """Jobs whose lease ``worker_id`` holds, live or lapsed."""
        sql = f"SELECT {_COLS} FROM jobs WHERE lease_owner = ? ORDER BY id"
        rows = await self._read(lambda conn: conn.execute(sql, (worker_id,)).fetchall())
        return [job_from_row(row) for row in rows]

    async def lapsed_leases(self, *, now: float, limit: int = 100) -> builtins.list[Job]:
        """Jobs whose lease lapsed at or before ``now``, earliest lapse first."""
        sql = (
            f"SELECT {_COLS} FROM jobs WHERE lease_owner IS NOT NULL AND lease_expires_at <= ?"
            " ORDER BY lease_expires_at, id LIMIT ?"
        )
        rows = await self._read(lambda conn: conn.execute(sql, (now, limit)).fetchall())
        return [job_from_row(row) for row in rows]

    async def waiting_since_before(
        self, statuses: Sequence[JobStatus], cutoff: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        """Unleased jobs in ``statuses`` with ``waiting_since < cutoff``, longest waiting first."""
        wanted = [JobStatus(status).value for status in statuses]
        if not wanted:
            return []
        sql = (
            f"SELECT {_COLS} FROM jobs WHERE status IN ({', '.join('?' * len(wanted))})"
            " AND lease_owner IS NULL AND waiting_since < ? ORDER BY waiting_since, id LIMIT ?"
        )
        rows = await self._read(lambda conn: conn.execute(sql, (*wanted, cutoff, limit)).fetchall())
        return [job_from_row(row) for row in rows]

    # -- checkpoints --------------------------------------------------------------------------------

    async def get_checkpoint(self, job_id: str, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint of the job, or ``None``."""
        sql = "SELECT data FROM checkpoints WHERE id = ? AND job_id = ?"
        rows = await self._read(lambda conn: conn.execute(sql, (checkpoint_id, job_id)).fetchall())
        return checkpoint_from_json(rows[0][0]) if rows else None

    async def list_checkpoints(
        self, job_id: str, *, take: int = 100, skip: int = 0, after_seq: int | None = None
    ) -> tuple[builtins.list[Checkpoint], int]:
        """The job's checkpoints in ``seq`` order (after ``after_seq`` if given) and their total."""
        take, skip = clamp_page(take, skip)
        where = "job_id = ?" if after_seq is None else "job_id = ? AND seq > ?"
        params: tuple[Any, ...] = (job_id,) if after_seq is None else (job_id, clamp_seq(after_seq))
        page_sql = f"SELECT data FROM checkpoints WHERE {where} ORDER BY seq LIMIT ? OFFSET ?"
        count_sql = f"SELECT count(*) FROM checkpoints WHERE {where}"

        def read(conn: sqlite3.Connection) -> tuple[builtins.list[Any], int]:
            rows = conn.execute(page_sql, (*params, take, skip)).fetchall()
            total: int = conn.execute(count_sql, params).fetchall()[0][0]
            return rows, total

        rows, total = await self._read(lambda conn: _snapshot(conn, read))
        return [checkpoint_from_json(row[0]) for row in rows], total

    async def latest_checkpoints(self, job_id: str) -> dict[str, Checkpoint]:
        """The latest checkpoint of every run of the job, by run id."""
        # SQLite documents that bare columns next to max() come from the row holding the maximum.
        sql = "SELECT run_id, data, max(seq) FROM checkpoints WHERE job_id = ? GROUP BY run_id"
        rows = await self._read(lambda conn: conn.execute(sql, (job_id,)).fetchall())
        return {row[0]: checkpoint_from_json(row[1]) for row in rows}

    async def load_history(
        self, job_id: str, run_id: str, *, upto_seq: int | None = None
    ) -> builtins.list[Message]:
        """A run's messages: its checkpoints' deltas concatenated, up to and including ``upto_seq``."""
        sql = (
            "SELECT json_extract(data, '$.new_messages') FROM checkpoints"
            " WHERE job_id = ? AND run_id = ? AND seq <= ? ORDER BY seq"
        )
        limit = (1 << 62) if upto_seq is None else upto_seq
        rows = await self._read(lambda conn: conn.execute(sql, (job_id, run_id, limit)).fetchall())
        history: builtins.list[Message] = []
        for (delta,) in rows:
            if delta != "[]":
                history.extend(message_from_data(data) for data in json.loads(delta))
        return history

    # -- listing ------------------------------------------------------------------------------------

    async def list(self, query: JobQuery) -> tuple[builtins.list[Job], int]:
        """One page of the application's jobs (filtered, sorted; ties on id) and the total matching."""
        where = ["application_id = ?"]
        params: builtins.list[Any] = [query.application_id]
        if query.filter and "\x00" in query.filter:
            return [], 0  # no expert key holds NUL (and SQLite text functions stop at one)
        if query.filter:
            where.append("instr(search_key, ?) > 0")
            params.append(query.filter.lower())
        if query.statuses is not None:
            if not query.statuses:
                return [], 0
            where.append(f"status IN ({', '.join('?' * len(query.statuses))})")
            params.extend(sorted(status.value for status in query.statuses))
        column = "updated_at" if query.sort == "updatedAt" else "created_at"
        direction = "ASC" if query.order == "asc" else "DESC"
        condition = " AND ".join(where)
        page_sql = (
            f"SELECT {_COLS} FROM jobs WHERE {condition}"
            f" ORDER BY {column} {direction}, id {direction} LIMIT ? OFFSET ?"
        )
        count_sql = f"SELECT count(*) FROM jobs WHERE {condition}"
        take, skip = clamp_page(query.take, query.skip)

        def read(conn: sqlite3.Connection) -> tuple[builtins.list[Any], int]:
            rows = conn.execute(page_sql, (*params, take, skip)).fetchall()
            total: int = conn.execute(count_sql, params).fetchall()[0][0]
            return rows, total

        rows, total = await self._read(lambda conn: _snapshot(conn, read))
        return [job_from_row(row) for row in rows], total

    async def close(self) -> None:
        """Commit what is queued, stop the writer and close every connection."""
        await self._writer.close()
        if self._readers is not None:
            readers = self._readers
            self._readers = None
            await asyncio.to_thread(readers.shutdown, wait=True)
            with self._reader_lock:
                for conn in self._reader_conns:
                    conn.close()
                self._reader_conns.clear()
