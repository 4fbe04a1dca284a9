"""Group commit in a writer *process*: the SQLite work of every write leaves this process's GIL.

:class:`ProcessWriter` has the thread writer's interface (``submit`` an operation, await its
future, which resolves only after its batch is committed and fsynced), but the operations are
plain tuples (see ``_sqlite_child``) run by a child process with its own connection. Two threads
here move them: the *sender* takes every operation queued, pickles them as one message and
writes it to the child's pipe; the *receiver* reads each committed batch's results and hands
them to the callers' event loops, one wake-up per loop per batch. The child takes every message
waiting when it starts a batch, so while it fsyncs one batch the next one is already on its way:
the event loop, the child's SQLite work and the disk overlap instead of taking turns.

A child that dies (killed, out of memory) closes its pipe: the receiver then fails every
operation still waiting, and every later one, with a :class:`StoreError` naming the exit code —
nobody waits forever. ``close()`` lets the child finish what was queued, then waits for it a
bounded time and kills it if it does not exit.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from typing import Any

from expert_jobs.domain.errors import StaleJobVersion, StoreError
from expert_jobs.stores import _sqlite_child
from expert_jobs.stores._sqlite_child import Pipe
from expert_jobs.stores._sqlite_writer import deliver

__all__ = ["ProcessWriter"]

_CHILD = _sqlite_child.__file__
_STOP = None
_Pending = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop]
_Result = tuple["asyncio.Future[Any]", BaseException | None, Any]


class ProcessWriter:
    """The single writer of one SQLite database, in a child process (see the module docstring).

    ``settings`` go to the child as they are: ``path``, ``busy_timeout``, ``pragmas`` (statements
    run on opening), ``sql`` (the statements by name), ``chunk`` and ``max_batch``.
    ``start_timeout``/``stop_timeout``: seconds to wait for the child to open the database and
    to exit on ``close()``.
    """

    def __init__(
        self, settings: dict[str, Any], *, start_timeout: float = 30.0, stop_timeout: float = 30.0
    ) -> None:
        self._path: str = settings["path"]
        self._stop_timeout = stop_timeout
        self.batches = 0
        """Transactions committed so far (for benchmarks and tests)."""
        self.operations = 0
        """Operations run so far."""
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-E", "-s", _CHILD, str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes),
                stdin=subprocess.DEVNULL,
                # Its own session: a Ctrl-C in the terminal reaches this process, which shuts down
                # gracefully (saving through the writer), not the writer itself.
                start_new_session=True,
            )
        except OSError as exc:
            for fd in (child_reads, parent_writes, parent_reads, child_writes):
                os.close(fd)
            raise StoreError(f"SQLite store {self._path}: cannot start the writer process: {exc}") from exc
        os.close(child_reads)
        os.close(child_writes)
        self._outbox = Pipe(parent_writes)
        self._inbox = Pipe(parent_reads)
        try:
            self._outbox.send(pickle.dumps(settings))
            if not self._inbox.ready(start_timeout):
                raise StoreError(
                    f"SQLite store {self._path}: the writer process did not start in {start_timeout} s"
                )
            state, why = pickle.loads(self._inbox.recv())
            if state != "ready":
                raise StoreError(
                    f"SQLite store {self._path}: the writer process cannot open the database: {why}"
                )
        except (OSError, EOFError) as exc:
            self._abandon()
            raise StoreError(
                f"SQLite store {self._path}: the writer process failed to start: {exc!r}"
            ) from exc
        except BaseException:
            self._abandon()
            raise
        self._queue: queue.SimpleQueue[tuple[Any, asyncio.Future[Any], asyncio.AbstractEventLoop] | None]
        self._queue = queue.SimpleQueue()
        self._pending: collections.deque[_Pending] = collections.deque()
        self._lock = threading.Lock()
        self._broken: StoreError | None = None
        self._closed = False
        self._sender = threading.Thread(
            target=self._send_loop, name=f"expert-jobs-sqlite-sender:{self._path}", daemon=True
        )
        self._receiver = threading.Thread(
            target=self._receive_loop, name=f"expert-jobs-sqlite-receiver:{self._path}", daemon=True
        )
        self._sender.start()
        self._receiver.start()

    @property
    def pid(self) -> int:
        """The writer process's id."""
        return self._process.pid

    def submit(self, operation: tuple[Any, ...]) -> asyncio.Future[Any]:
        """Queue ``operation`` for the next batch; the future resolves after its batch commits."""
        if self._closed:
            raise StoreError(f"SQLite store {self._path} is closed")
        if self._broken is not None:
            raise StoreError(str(self._broken))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((operation, future, loop))
        return future

    async def close(self) -> None:
        """Commit what is queued, stop the child (killing it if it does not exit in time)."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        await asyncio.to_thread(self._finish)

    def _finish(self) -> None:
        self._sender.join(self._stop_timeout)
        try:
            self._process.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            self._kill()
        self._receiver.join(self._stop_timeout)
        self._sender.join(self._stop_timeout)  # a write blocked on a stuck child ends with the kill
        if not self._sender.is_alive():
            with contextlib.suppress(OSError):
                self._outbox.close()

    def _abandon(self) -> None:
        self._kill()
        for pipe in (self._outbox, self._inbox):
            with contextlib.suppress(OSError):
                pipe.close()

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(5.0)

    # -- the two threads ------------------------------------------------------------------------

    def _send_loop(self) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        dumps, send = pickle.dumps, self._outbox.send
        stop = False
        while not stop:
            first = get()
            if first is None:
                break
            items = [first]
            while True:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                items.append(item)
            message = dumps([op for op, _, _ in items], pickle.HIGHEST_PROTOCOL)
            with self._lock:
                broken = self._broken
                if broken is None:
                    self._pending.extend((future, loop) for _, future, loop in items)
            if broken is not None:
                self._fail([(future, loop) for _, future, loop in items], broken)
                continue
            try:
                send(message)
            except OSError:
                # The child is gone: the receiver sees its pipe close and fails what is pending;
                # once it has, everything still queued fails here.
                self._receiver.join()
        with contextlib.suppress(OSError):
            self._outbox.send(dumps(_STOP))

    def _receive_loop(self) -> None:
        recv, loads = self._inbox.recv, pickle.loads
        pending = self._pending
        try:
            while True:
                try:
                    values, failures = loads(recv())
                except (EOFError, OSError):
                    break
                self.batches += 1
                self.operations += len(values)
                errors = {index: self._error(failure) for index, failure in failures}
                by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
                popleft = pending.popleft
                for index, value in enumerate(values):
                    future, loop = popleft()
                    error = errors.get(index) if errors else None
                    by_loop.setdefault(loop, []).append((future, error, value))
                for loop, results in by_loop.items():
                    with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits any more
                        loop.call_soon_threadsafe(deliver, results)
        finally:
            self._inbox.close()
            self._on_exit()

    def _on_exit(self) -> None:
        try:
            code = self._process.wait(self._stop_timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            code = self._process.returncode
        why = "was closed" if self._closed and code == 0 else f"exited with code {code}"
        broken = StoreError(f"SQLite store {self._path}: the writer process {why}; pending writes failed")
        with self._lock:
            self._broken = broken
            waiting = list(self._pending)
            self._pending.clear()
        self._fail(waiting, broken)

    def _fail(self, waiting: list[_Pending], error: StoreError) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Result]] = {}
        for future, loop in waiting:
            by_loop.setdefault(loop, []).append((future, StoreError(str(error)), None))
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(deliver, results)

    def _error(self, failure: tuple[str, tuple[Any, ...]]) -> StoreError:
        kind, args = failure
        if kind == "refused":
            job_id, expected, found = args
            if found is None:
                return StoreError(f"job {job_id} does not exist")
            return StaleJobVersion(job_id, expected, found)
        if kind == "exists":
            return StoreError(f"job {args[0]} already exists")
        if kind == "integrity":
            return StoreError(f"SQLite store {self._path}: write refused: {args[0]}")
        return StoreError(f"SQLite store {self._path}: write failed, batch rolled back: {args[0]}")
