"""The SQLite writer process: the program ``_sqlite_process.ProcessWriter`` runs (stdlib only).

It is started as ``python -E -s _sqlite_child.py READ_FD WRITE_FD`` (by file, not as part of the
package: importing ``expert_jobs`` would cost the child ~0.2 s and nothing of it is needed). The
parent first sends its settings (the path, the pragmas, the SQL text of every statement: the SQL
lives in ``sqlite.py`` and is not repeated here); the child opens the database and answers
``"ready"`` or the reason it could not. Then every message is a pickled list of operations, plain
tuples (``("save", ...)``, ``("create", ...)``...). The child takes every message waiting, runs
their operations in order in one ``BEGIN IMMEDIATE`` transaction, commits (with
``synchronous=FULL`` the WAL is fsynced before ``COMMIT`` returns) and only then answers with one
message: the batch's results in order and its failures by index. ``None`` asks it to finish what
it has and exit.

Failures follow ``_sqlite_writer``'s rules: a refused operation (a stale version, a missing job, a
duplicate id) has written nothing and fails alone; a database error fails the whole batch,
nothing of it written; any other error re-runs the batch's operations one transaction each.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import sqlite3
import struct
import sys
from collections.abc import Callable
from typing import Any

Op = tuple[Any, ...]
Failure = tuple[str, tuple[Any, ...]]
"""Why an operation failed: ``("refused", (job_id, expected, found_version_or_None))``,
``("exists", (job_id,))``, ``("integrity", (message,))`` or ``("batch", (message,))``."""


_HEADER = struct.Struct("!Q")
"""A message on a pipe: its length (8 bytes, big-endian), then its bytes."""


class Pipe:
    """One end of a pipe carrying length-prefixed messages (lighter to import than
    ``multiprocessing.connection``, which would double the child's start-up)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def send(self, message: bytes) -> None:
        """Write one message whole (blocking while the pipe is full)."""
        view = memoryview(_HEADER.pack(len(message)) + message)
        write, fd = os.write, self.fd
        while view:
            view = view[write(fd, view) :]

    def _read(self, size: int) -> bytes:
        chunks, read, fd = [], os.read, self.fd
        while size:
            chunk = read(fd, min(size, 1 << 20))
            if not chunk:
                raise EOFError("the other end closed the pipe")
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def recv(self) -> bytes:
        """Read one message (blocking); ``EOFError`` once the other end is closed."""
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        return self._read(size)

    def ready(self, timeout: float) -> bool:
        """Whether something (a message, or the end of the pipe) can be read within ``timeout``."""
        return bool(select.select([self.fd], [], [], timeout)[0])

    def close(self) -> None:
        """Close this end."""
        os.close(self.fd)


class _Refused(Exception):
    """An operation refused by the data; it wrote nothing."""

    def __init__(self, kind: str, *args: Any) -> None:
        super().__init__(kind, *args)
        self.failure: Failure = (kind, args)


class _Declined(Exception):
    """A grouped write found something to refuse: undo it, run the operations one by one."""


class Child:
    """The writer's connection and the statements it runs."""

    def __init__(self, conn: sqlite3.Connection, sql: dict[str, str], chunk: int) -> None:
        self.conn = conn
        self.sql = sql
        self.chunk = chunk
        self.singles: dict[str, Callable[[Op], Any]] = {
            "save": self.save,
            "create": self.create,
            "claim": self.claim,
            "release": self.release,
            "fetch": self.fetch,
            "count": self.count,
        }
        self.groups: dict[str, Callable[[list[Op]], list[Any] | None]] = {
            "save": self.save_group,
            "create": self.create_group,
            "claim": self.claim_group,
            "release": self.release_group,
        }

    # -- operations ---------------------------------------------------------------------------

    def _refusal(self, job_id: str, expected: int) -> _Refused:
        row = self.conn.execute(self.sql["version"], (job_id,)).fetchone()
        return _Refused("refused", job_id, expected, None if row is None else row[0])

    def save(self, op: Op) -> tuple[Any, Any]:
        """``("save", job_id, expected, update_params, releasing, checkpoint_row | None)``."""
        _, job_id, expected, values, releasing, row = op
        execute = self.conn.execute
        guarded = self.sql["insert_checkpoint_at"]
        if row is not None and execute(guarded, (*row, job_id, expected)).rowcount != 1:
            raise self._refusal(job_id, expected)
        update = self.sql["update_releasing_returning" if releasing else "update_returning"]
        rows = execute(update, values).fetchall()
        if not rows:
            if row is not None:  # cannot happen: the guard saw this version just now
                raise RuntimeError(f"job {job_id}: version moved inside a write transaction")
            raise self._refusal(job_id, expected)
        return rows[0][0], rows[0][1]

    def save_group(self, ops: list[Op]) -> list[Any] | None:
        """Saves of different jobs in one ``executemany`` per statement (see ``sqlite._Save``)."""
        ids = [op[1] for op in ops]
        if len(set(ids)) != len(ids):
            return None
        conn = self.conn
        conn.execute("SAVEPOINT saves")
        try:
            updated = 0
            for update, releasing in ((self.sql["update"], False), (self.sql["update_releasing"], True)):
                values = [op[3] for op in ops if op[4] is releasing]
                if values:
                    updated += conn.executemany(update, values).rowcount
            if updated != len(ops):
                raise _Declined
            checkpoints = [op[5] for op in ops if op[5] is not None]
            if checkpoints:
                conn.executemany(self.sql["insert_checkpoint"], checkpoints)
            leases: dict[str, tuple[Any, Any]] = {}
            for start in range(0, len(ids), self.chunk):
                chunk = ids[start : start + self.chunk]
                sql = self.sql["leases"].replace("?", ", ".join("?" * len(chunk)))
                for job_id, owner, expires in conn.execute(sql, chunk):
                    leases[job_id] = (owner, expires)
        except (_Declined, sqlite3.IntegrityError):
            conn.execute("ROLLBACK TO saves")
            conn.execute("RELEASE saves")
            return None
        conn.execute("RELEASE saves")
        return [leases[job_id] for job_id in ids]

    def create(self, op: Op) -> None:
        """``("create", job_id, insert_params, checkpoint_row | None)``, all or nothing."""
        _, job_id, values, checkpoint = op
        conn = self.conn
        conn.execute("SAVEPOINT create_job")
        try:
            try:
                conn.execute(self.sql["insert_job"], values)
            except sqlite3.IntegrityError:
                raise _Refused("exists", job_id) from None
            if checkpoint is not None:
                conn.execute(self.sql["insert_checkpoint"], checkpoint)
        except BaseException:
            conn.execute("ROLLBACK TO create_job")
            raise
        finally:
            conn.execute("RELEASE create_job")

    def create_group(self, ops: list[Op]) -> list[Any] | None:
        """Creates in one ``executemany`` per table, or ``None`` (nothing written)."""
        conn = self.conn
        checkpoints = [op[3] for op in ops if op[3] is not None]
        conn.execute("SAVEPOINT creates")
        try:
            conn.executemany(self.sql["insert_job"], [op[2] for op in ops])
            if checkpoints:
                conn.executemany(self.sql["insert_checkpoint"], checkpoints)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO creates")
            conn.execute("RELEASE creates")
            return None
        conn.execute("RELEASE creates")
        return [None] * len(ops)

    def claim(self, op: Op) -> Any:
        """``("claim", worker_id, expires, now)``: the claimed row or ``None``."""
        rows = self.conn.execute(self.sql["claim_next"], (*op[1:], 1)).fetchall()
        return rows[0] if rows else None

    def claim_group(self, ops: list[Op]) -> list[Any] | None:
        """One worker's round of claims in one statement."""
        params = ops[0][1:]
        if any(op[1:] != params for op in ops):
            return None
        rows: list[Any] = self.conn.execute(self.sql["claim_next"], (*params, len(ops))).fetchall()
        return rows + [None] * (len(ops) - len(rows))

    def release(self, op: Op) -> None:
        """``("release", job_id, worker_id)``."""
        self.conn.execute(self.sql["release"], op[1:])

    def release_group(self, ops: list[Op]) -> list[Any] | None:
        """Releases in one statement per worker and chunk of jobs."""
        by_worker: dict[str, list[str]] = {}
        for _, job_id, worker_id in ops:
            by_worker.setdefault(worker_id, []).append(job_id)
        for worker_id, job_ids in by_worker.items():
            for start in range(0, len(job_ids), self.chunk):
                chunk = job_ids[start : start + self.chunk]
                sql = self.sql["release_all"].replace("?)", ", ".join("?" * len(chunk)) + ")")
                self.conn.execute(sql, (worker_id, *chunk))
        return [None] * len(ops)

    def fetch(self, op: Op) -> list[Any]:
        """``("fetch", sql, params)``: every row the statement returns."""
        return self.conn.execute(op[1], op[2]).fetchall()

    def count(self, op: Op) -> int:
        """``("count", sql, params)``: the rows the statement changed."""
        return self.conn.execute(op[1], op[2]).rowcount

    # -- batches ------------------------------------------------------------------------------

    def run_one(self, op: Op, index: int, values: list[Any], failures: list[tuple[int, Failure]]) -> None:
        try:
            values.append(self.singles[op[0]](op))
        except _Refused as exc:
            values.append(None)
            failures.append((index, exc.failure))
        except sqlite3.IntegrityError as exc:
            values.append(None)
            failures.append((index, ("integrity", (str(exc),))))

    def commit(self, batch: list[Op]) -> tuple[list[Any], list[tuple[int, Failure]]]:
        """Run ``batch`` in one transaction: its values in order and its failures by index."""
        conn = self.conn
        values: list[Any] = []
        failures: list[tuple[int, Failure]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            index, size = 0, len(batch)
            while index < size:
                kind = batch[index][0]
                end = index + 1
                group = self.groups.get(kind)
                if group is not None:
                    while end < size and batch[end][0] == kind:
                        end += 1
                results = group(batch[index:end]) if group is not None and end - index > 1 else None
                if results is not None:
                    values.extend(results)
                else:
                    for position in range(index, end):
                        self.run_one(batch[position], position, values, failures)
                index = end
            conn.execute("COMMIT")
        except Exception as exc:  # the batch as a whole failed: nothing of it was written
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if len(batch) > 1 and not isinstance(exc, sqlite3.OperationalError):
                # One operation misbehaved (not the database): run each alone, so it fails alone.
                values, failures = [], []
                for position, op in enumerate(batch):
                    one_values, one_failures = self.commit([op])
                    values.extend(one_values)
                    failures.extend((position, failure) for _, failure in one_failures)
                return values, failures
            failure: Failure = ("batch", (repr(exc),))
            return [None] * len(batch), [(index, failure) for index in range(len(batch))]
        return values, failures


def _open(settings: dict[str, Any]) -> sqlite3.Connection:
    conn = sqlite3.connect(
        settings["path"],
        timeout=settings["busy_timeout"],
        isolation_level=None,
        check_same_thread=False,
        cached_statements=128,
    )
    for pragma in settings["pragmas"]:
        conn.execute(pragma)
    return conn


def serve(inbox: Pipe, outbox: Pipe) -> None:
    """Answer the parent until it sends ``None`` or goes away."""
    settings = pickle.loads(inbox.recv())
    try:
        conn = _open(settings)
    except sqlite3.Error as exc:
        outbox.send(pickle.dumps(("failed", repr(exc))))
        return
    outbox.send(pickle.dumps(("ready", None)))
    child = Child(conn, settings["sql"], settings["chunk"])
    max_batch: int = settings["max_batch"]
    loads, dumps, send = pickle.loads, pickle.dumps, outbox.send
    recv, poll = inbox.recv, inbox.ready
    try:
        stop = False
        while not stop:
            try:
                first = loads(recv())
            except EOFError:
                break  # the parent is gone: nobody waits for anything any more
            if first is None:
                break
            batch: list[Op] = first
            while len(batch) < max_batch and poll(0):
                more = loads(recv())
                if more is None:
                    stop = True
                    break
                batch.extend(more)
            send(dumps(child.commit(batch), pickle.HIGHEST_PROTOCOL))
    finally:
        conn.close()


def main(argv: list[str]) -> None:
    """``_sqlite_child.py READ_FD WRITE_FD``."""
    serve(Pipe(int(argv[1])), Pipe(int(argv[2])))


if __name__ == "__main__":
    main(sys.argv)
