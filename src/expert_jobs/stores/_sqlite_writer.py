"""Group commit for SQLite: one thread owns the write connection and commits queued work in batches.

Callers on any event loop :meth:`GroupCommitWriter.submit` an operation (a function of the
connection) and await a future. The thread takes every operation waiting in the queue (up to
``max_batch``), runs them in order inside one ``BEGIN IMMEDIATE`` transaction and commits once — one
WAL fsync for the whole batch — and only then resolves the futures, with one wake-up per loop per
batch. While it commits, new operations pile up for the next batch, so the batch size follows the
load by itself.

An operation that raises :class:`StoreError` (a stale version, a missing job, a duplicate id) or
``sqlite3.IntegrityError`` must have written nothing (operations check before they write, and a
failing SQLite statement undoes itself; an operation with several writes that may fail wraps them
in its own ``SAVEPOINT``): it fails alone and the rest of the batch commits. Any other exception
(disk full, I/O error, a lock held too long by another process, a bug) rolls the whole batch back;
a database error fails every operation of it with a ``StoreError`` (nothing of it was written),
any other error re-runs the batch's operations one transaction each, so the culprit fails alone.
Savepoints are not taken per operation: they would cost a third of the time of a typical save.
Consecutive :class:`GroupedOperation` of one kind (concurrent saves) may run as one
``executemany``, which spares most of the per-statement Python work.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

from expert_jobs.domain.errors import StoreError

__all__ = ["GroupCommitWriter", "GroupedOperation", "Operation", "deliver"]

T = TypeVar("T")
Operation = Callable[[sqlite3.Connection], Any]
"""Work done inside the writer's transaction; its return value resolves the caller's future."""



class GroupedOperation:
    """An operation that can also run together with its like, in fewer statements.

    A run of consecutive operations of the same subclass in one batch is handed to
    :meth:`run_group`; if that declines (``None``), having written nothing, each runs alone.
    """

    __slots__ = ()

    def __call__(self, conn: sqlite3.Connection) -> Any:
        """Run this operation alone."""
        raise NotImplementedError

    @classmethod
    def run_group(cls, conn: sqlite3.Connection, operations: list[Any]) -> list[Any] | None:
        """Run ``operations`` at once and return their values in order, or ``None`` (nothing
        written) to have them run one by one."""
        return None


_Item = tuple[Operation, "asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Outcome = tuple["asyncio.Future[Any]", BaseException | None, Any]
_STOP = None


def deliver(outcomes: list[_Outcome]) -> None:
    """Settle each caller's future with its outcome (on the caller's loop: a ``call_soon_threadsafe``
    target); a future whose caller gave up is left alone."""
    for future, error, value in outcomes:
        if future.done():  # the caller gave up (cancelled); the work may still have been committed
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class GroupCommitWriter:
    """The single writer of one SQLite database (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, *, path: str, max_batch: int = 1000) -> None:
        self._conn = conn
        self._path = path
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._closed = False
        self.batches = 0
        """Transactions committed so far (for benchmarks and tests)."""
        self.operations = 0
        """Operations run so far."""
        self._thread = threading.Thread(
            target=self._run, name=f"expert-jobs-sqlite-writer:{path}", daemon=True
        )
        self._thread.start()

    def submit(self, operation: Operation) -> asyncio.Future[Any]:
        """Queue ``operation`` for the next batch; the future resolves after its batch commits."""
        if self._closed:
            raise StoreError(f"SQLite store {self._path} is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((operation, future, loop))
        return future

    async def close(self) -> None:
        """Finish the queued work, stop the thread and close the connection."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        try:
            while True:
                first = get()
                if first is None:
                    break
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    batch.append(item)
                self._commit(batch)
                if stop:
                    break
        finally:
            self._conn.close()

    def _batch_failure(self, exc: Exception) -> StoreError:
        failure = StoreError(f"SQLite store {self._path}: write failed, batch rolled back: {exc!r}")
        failure.__cause__ = exc
        return failure

    def _commit(self, batch: list[_Item]) -> None:
        conn = self._conn
        execute = conn.execute
        outcomes: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, BaseException | None, Any]] = []
        try:
            execute("BEGIN IMMEDIATE")
            index, size = 0, len(batch)
            while index < size:
                operation = batch[index][0]
                kind = type(operation)
                end = index + 1
                if isinstance(operation, GroupedOperation):
                    while end < size and type(batch[end][0]) is kind:
                        end += 1
                group = batch[index:end]
                values = None
                if end - index > 1:
                    values = cast(type[GroupedOperation], kind).run_group(conn, [item[0] for item in group])
                if values is not None:
                    outcomes.extend((f, lp, None, v) for (_, f, lp), v in zip(group, values, strict=True))
                else:
                    for item in group:
                        outcomes.append(self._run_one(conn, item))
                index = end
            execute("COMMIT")
        except Exception as exc:  # the batch as a whole failed: nothing of it was written
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    execute("ROLLBACK")
            if len(batch) > 1 and not isinstance(exc, sqlite3.OperationalError):
                # One operation misbehaved (not the database): run each alone, so it fails alone.
                for item in batch:
                    self._commit([item])
                return
            outcomes = [(future, loop, self._batch_failure(exc), None) for _, future, loop in batch]
        self.batches += 1
        self.operations += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for future, loop, error, value in outcomes:
            by_loop.setdefault(loop, []).append((future, error, value))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(deliver, results)

    def _run_one(
        self, conn: sqlite3.Connection, item: _Item
    ) -> tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, BaseException | None, Any]:
        operation, future, loop = item
        try:
            value = operation(conn)
        except StoreError as exc:
            return future, loop, exc, None
        except sqlite3.IntegrityError as exc:
            return future, loop, self._operation_failure(exc), None
        return future, loop, None, value

    def _operation_failure(self, exc: Exception) -> StoreError:
        failure = StoreError(f"SQLite store {self._path}: write refused: {exc}")
        failure.__cause__ = exc
        return failure
