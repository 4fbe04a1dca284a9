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
retried alone, so the error reaches only its own caller (so is a batch holding a value psycopg
cannot send). If the connection breaks instead, whether the commit happened is unknown: every
operation of the batch fails with ``StoreError``.

Server work per batch is kept small: the arrays go in PostgreSQL's binary format with their exact
types (:func:`encode_array`: no casts, JSON parsed once), and every statement is prepared on its
connection at first use (parsed and analysed once per connection, not per batch).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap, Dumper
from psycopg.pq import Format
from psycopg_pool import AsyncConnectionPool

from expert_jobs.domain.errors import StoreError

__all__ = ["BulkStatement", "GroupCommitWriter", "Op", "Row", "encode_array", "register_arrays"]

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

    ``sql`` takes one array per job-side value (of the SQL types ``types``), then one array per
    checkpoint value (``checkpoint_types``), and returns one row per job it wrote, the job id first.
    """

    sql: str
    types: tuple[str, ...]
    checkpoint_types: tuple[str, ...] = ()

    def params(self, ops: Sequence[Op]) -> list[Any]:
        """The array parameters: the operations' values, column by column, each array already in
        PostgreSQL's binary format where it can be (see :func:`encode_array`)."""
        columns = list(zip(*(op.values for op in ops), strict=True))
        params = [
            encode_array(sql_type, column) for sql_type, column in zip(self.types, columns, strict=True)
        ]
        if self.checkpoint_types:
            checkpoints = [op.checkpoint for op in ops if op.checkpoint is not None]
            if checkpoints:
                columns = list(zip(*checkpoints, strict=True))
            else:
                columns = [()] * len(self.checkpoint_types)
            params += [
                encode_array(sql_type, column)
                for sql_type, column in zip(self.checkpoint_types, columns, strict=True)
            ]
        return params


# -- arrays in PostgreSQL's binary format ----------------------------------------------------------
#
# psycopg dumps a list element by element in Python (a dumper lookup and a struct call each), and
# a list of str goes as text[], which the statement then casts to json[] (PostgreSQL parses every
# element twice over). Here a column becomes one bytes object of the exact array type with a few
# C-level calls; the statement's casts are then no-ops. A value this fast path cannot take (an
# int out of range, a float in an integer column, a non-str in a text column) leaves the whole
# column to psycopg as before: the plain list, cast by the statement.


class _Array:
    """An array parameter already in PostgreSQL's binary array format (one subclass per array type,
    each with its dumper: psycopg picks dumpers by class)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _TextArray(_Array):
    __slots__ = ()


class _JsonArray(_Array):
    __slots__ = ()


class _Int8Array(_Array):
    __slots__ = ()


class _Int4Array(_Array):
    __slots__ = ()


class _Float8Array(_Array):
    __slots__ = ()


class _BoolArray(_Array):
    __slots__ = ()


_I4 = struct.Struct(">i").pack
_HEADER = struct.Struct(">iiiii").pack  # dimensions (1), has nulls, element oid, length, lower bound (1)
_EMPTY = struct.Struct(">iii").pack  # dimensions (0), has nulls (0), element oid
_NULL = _I4(-1)


@dataclass(frozen=True, slots=True)
class _ArrayType:
    cls: type[_Array]
    oid: int  # of the array type
    element_oid: int
    code: str  # struct code of a fixed-size element ("" for text)
    size: int


_ARRAY_TYPES: dict[str, _ArrayType] = {
    "text": _ArrayType(_TextArray, 1009, 25, "", 0),
    "json": _ArrayType(_JsonArray, 199, 114, "", 0),
    "bigint": _ArrayType(_Int8Array, 1016, 20, "q", 8),
    "integer": _ArrayType(_Int4Array, 1007, 23, "i", 4),
    "float8": _ArrayType(_Float8Array, 1022, 701, "d", 8),
    "boolean": _ArrayType(_BoolArray, 1000, 16, "?", 1),
}

_packers: dict[tuple[str, int], Callable[..., bytes]] = {}


def _fixed_packer(code: str, count: int) -> Callable[..., bytes]:
    packer = _packers.get((code, count))
    if packer is None:
        if len(_packers) > 4096:
            _packers.clear()
        packer = _packers[(code, count)] = struct.Struct(">iiiii" + f"i{code}" * count).pack
    return packer


def _encode(array: _ArrayType, column: Sequence[Any]) -> bytes:
    count = len(column)
    element = array.element_oid
    if not count:
        return _EMPTY(0, 0, element)
    nulls = column.count(None)
    if nulls == count:
        return _HEADER(1, 1, element, count, 1) + _NULL * count
    code = array.code
    if code == "?" and any(type(value) is not bool for value in column if value is not None):
        raise TypeError("not a bool")  # struct would take any value as a boolean
    if nulls:
        if code:
            pack = struct.Struct(f">i{code}").pack
            size = array.size
            items = [_NULL if value is None else pack(size, value) for value in column]
        else:
            items = [_NULL if value is None else _I4(len(data := value.encode())) + data for value in column]
        return _HEADER(1, 1, element, count, 1) + b"".join(items)
    if code:
        values = chain.from_iterable(zip(repeat(array.size), column))
        return _fixed_packer(code, count)(1, 0, element, count, 1, *values)
    encoded = list(map(str.encode, column))
    lengths = map(_I4, map(len, encoded))
    return _HEADER(1, 0, element, count, 1) + b"".join(
        chain.from_iterable(zip(lengths, encoded, strict=True))
    )


def encode_array(sql_type: str, column: Sequence[Any]) -> Any:
    """``column`` as a one-dimensional array of ``sql_type`` (a key of the store's column types:
    ``text``, ``json``, ``bigint``, ``integer``, ``float8``, ``boolean``) in PostgreSQL's binary
    format, or the plain list if a value does not fit that format (psycopg then sends it as before
    and the statement's cast converts it, or the server refuses it)."""
    array = _ARRAY_TYPES[sql_type]
    try:
        return array.cls(_encode(array, column))
    except (TypeError, ValueError, OverflowError, struct.error):
        return list(column)


def register_arrays(adapters: AdaptersMap) -> None:
    """Teach ``adapters`` to send the arrays :func:`encode_array` made as they are."""
    for array in _ARRAY_TYPES.values():
        dumper = type(f"{array.cls.__name__}Dumper", (_ArrayDumper,), {"oid": array.oid})
        adapters.register_dumper(array.cls, dumper)


class _ArrayDumper(Dumper):
    format = Format.BINARY

    def dump(self, obj: Any) -> Buffer:
        data: bytes = obj.data
        return data


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
            statements = [
                (self._sql(kind), self._statements[kind].params(ops)) for kind, ops in groups.items()
            ]
            async with self._pool.connection() as conn:
                if len(statements) == 1:
                    cur = await conn.execute(*statements[0], prepare=True)
                    results = [await cur.fetchall()]
                else:
                    cursors = []
                    async with conn.pipeline(), conn.transaction():
                        for sql, params in statements:
                            cursors.append(await conn.execute(sql, params, prepare=True))
                    results = [await cur.fetchall() for cur in cursors]
        except _UNSENDABLE as exc:
            # A value psycopg cannot send (a lone surrogate in a text): refused before its statement
            # left, so nothing of the batch was written. Each operation alone: only its owner fails.
            if len(batch) == 1:
                _fail(batch[0], StoreError(self._describe(batch[0].job_id, exc)))
                return
            for op in batch:
                await self._run_alone(op)
            return
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
            params = self._statements[op.kind].params([op])
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._sql(op.kind), params, prepare=True)
                rows = await cur.fetchall()
        except _UNSENDABLE as exc:
            _fail(op, StoreError(self._describe(op.job_id, exc)))
            return
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


_UNSENDABLE = (ValueError, TypeError, OverflowError)
"""What psycopg raises, before sending anything, for a value it cannot send."""


def _fail(op: Op, error: BaseException) -> None:
    if not op.future.done():
        op.future.set_exception(error)
