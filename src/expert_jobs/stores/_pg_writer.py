"""Group commit for PostgreSQL: the writes of many concurrent jobs share one transaction.

Every write of a :class:`~expert_jobs.stores.postgres.PostgresStore` (create, save, renew, release)
is queued here as an operation on one job. A few flusher tasks each take what is queued (up to
``max_batch`` operations, at most one per job), turn every kind of operation into one set-based
statement over arrays (``UPDATE ... FROM unnest(...)``, with the checkpoints' ``INSERT`` in the same
statement), send those statements in one pipelined transaction (one network round trip, one
commit, one WAL flush) and resolve every caller's future once the commit returned. With a thousand
jobs in flight, a thousand checkpoints cost a handful of statements and commits, not a thousand.

Each operation is atomic on its own: a save's version check, job update and checkpoint insert are
one statement, and an operation that matches nothing (a stale version, a lease someone else holds)
is simply absent from the statement's result, not an error. A job with an operation in flight gets
no second one before the first committed, so one job's writes keep their order and two batches of
one process never wait on each other's row locks. If the server refuses a statement (a duplicate
checkpoint id, a deadlock it broke) the batch rolls back as a whole and each of its operations is
retried alone, so the error reaches only its own caller. If the connection breaks instead, whether
the commit happened is unknown: every operation of the batch fails with ``StoreError``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from expert_jobs.domain.errors import StoreError

__all__ = ["BulkStatement", "GroupCommitWriter", "Op", "Row"]

_log = logging.getLogger("expert_jobs.stores.postgres")

Row = tuple[Any, ...]
"""One row a statement returned (the job id first, for the writes)."""


@dataclass(slots=True)
class Op:
    """One queued write: its kind, its job, the job-side values and the checkpoint's, if any."""

    kind: str
    job_id: str
    values: Sequence[Any]
    checkpoint: Sequence[Any] | None
    future: asyncio.Future[Row | None] = field(repr=False)


@dataclass(frozen=True, slots=True)
class BulkStatement:
    """A set-based statement for many operations of one kind.

    ``sql`` takes one array per job-side value, then (if ``checkpoint_width``) one array per
    checkpoint value, and returns one row per job it wrote, the job id first.
    """

    sql: str
    width: int
    checkpoint_width: int = 0

    def params(self, ops: Sequence[Op]) -> list[list[Any]]:
        """The array parameters: the operations' values, column by column."""
        columns: list[list[Any]] = [[op.values[i] for op in ops] for i in range(self.width)]
        if self.checkpoint_width:
            checkpoints = [op.checkpoint for op in ops if op.checkpoint is not None]
            columns += [[cp[i] for cp in checkpoints] for i in range(self.checkpoint_width)]
        return columns


class GroupCommitWriter:
    """Runs queued operations in shared transactions on up to ``writers`` pooled connections.

    ``describe`` turns a database error into the text of the :class:`StoreError` its caller gets.
    Counters: ``batches`` (transactions committed) and ``operations`` (operations in them).
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[Any],
        statements: Mapping[str, BulkStatement],
        *,
        writers: int,
        max_batch: int,
        describe: Callable[[str, BaseException], str],
    ) -> None:
        self._pool = pool
        self._statements = statements
        self._max_batch = max_batch
        self._describe = describe
        self._pending: list[Op] = []
        self._busy: set[str] = set()
        self._wake = asyncio.Event()
        self._closing = False
        self._flushers = [
            asyncio.create_task(self._flush_loop(), name=f"expert-jobs-pg-writer-{i}") for i in range(writers)
        ]
        self.batches = 0
        self.operations = 0

    def submit(
        self, kind: str, job_id: str, values: Sequence[Any], checkpoint: Sequence[Any] | None = None
    ) -> asyncio.Future[Row | None]:
        """Queue one operation; its future resolves once committed, with the row the statement
        returned for the job (``None``: the operation matched nothing)."""
        if self._closing:
            raise StoreError(f"PostgreSQL store is closed (job {job_id})")
        future: asyncio.Future[Row | None] = asyncio.get_running_loop().create_future()
        self._pending.append(Op(kind, job_id, values, checkpoint, future))
        self._wake.set()
        return future

    def _take(self) -> list[Op]:
        """Up to ``max_batch`` queued operations, at most one per job and none of a busy job."""
        batch: list[Op] = []
        left: list[Op] = []
        taken = self._busy
        for op in self._pending:
            if len(batch) < self._max_batch and op.job_id not in taken:
                taken.add(op.job_id)
                batch.append(op)
            else:
                left.append(op)
        self._pending = left
        return batch

    async def _flush_loop(self) -> None:
        while True:
            batch = self._take() if self._pending else []
            if not batch:
                if self._closing and not self._pending:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self._pending:
                self._wake.set()  # more for another flusher
            try:
                await self._flush(batch)
            except BaseException as exc:  # cancellation, or a bug: never leave a caller hanging
                for op in batch:
                    _fail(op, StoreError(self._describe(op.job_id, exc)))
                if isinstance(exc, asyncio.CancelledError):
                    raise
                _log.exception("PostgreSQL writer failed")
            finally:
                for op in batch:
                    self._busy.discard(op.job_id)
                if self._pending:
                    self._wake.set()  # operations that waited for these jobs

    async def _flush(self, batch: list[Op]) -> None:
        groups: dict[str, list[Op]] = {}
        for op in batch:
            groups.setdefault(op.kind, []).append(op)
        try:
            async with self._pool.connection() as conn:
                if len(groups) == 1:
                    ((kind, ops),) = groups.items()
                    cur = await conn.execute(self._sql(kind), self._statements[kind].params(ops))
                    results = [await cur.fetchall()]
                else:
                    cursors = []
                    async with conn.pipeline(), conn.transaction():
                        for kind, ops in groups.items():
                            params = self._statements[kind].params(ops)
                            cursors.append(await conn.execute(self._sql(kind), params))
                    results = [await cur.fetchall() for cur in cursors]
        except psycopg.Error as exc:
            if exc.sqlstate is None:
                # No answer from the server (the connection broke): whether the commit happened is
                # unknown, so tell every caller, and have the pool drop its other broken connections.
                for op in batch:
                    _fail(op, StoreError(self._describe(op.job_id, exc)))
                await self._pool.check()
                return
            if isinstance(exc, psycopg.OperationalError):
                await self._pool.check()  # e.g. the server was restarting: drop dead connections
            if len(batch) == 1:
                raise
            # The server refused a statement (a duplicate id, a deadlock it broke) and rolled the
            # batch back: run each operation alone, so that only the culprit fails. (Should a commit
            # have landed unseen, the writes are conditional: a retried save finds the new version and
            # reports StaleJobVersion, a retried create reports the id exists; nothing is doubled.)
            for op in batch:
                await self._run_alone(op)
            return
        self.batches += 1
        self.operations += len(batch)
        rows = {row[0]: row for result in results for row in result}
        for op in batch:
            if not op.future.done():
                op.future.set_result(rows.get(op.job_id))

    async def _run_alone(self, op: Op) -> None:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._sql(op.kind), self._statements[op.kind].params([op]))
                rows = await cur.fetchall()
        except psycopg.Error as exc:
            _fail(op, StoreError(self._describe(op.job_id, exc)))
            if exc.sqlstate is None:
                await self._pool.check()
            return
        self.batches += 1
        self.operations += 1
        if not op.future.done():
            op.future.set_result(rows[0] if rows else None)

    def _sql(self, kind: str) -> str:
        return self._statements[kind].sql

    async def close(self) -> None:
        """Commit what is queued, then stop the flushers."""
        self._closing = True
        self._wake.set()
        await asyncio.gather(*self._flushers, return_exceptions=True)



def _fail(op: Op, error: BaseException) -> None:
    if not op.future.done():
        op.future.set_exception(error)
