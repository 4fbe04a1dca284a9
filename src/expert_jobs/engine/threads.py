"""The threads sync tools run in: a bounded pool of reused daemon threads, owned by the runtime.

A sync tool that hangs holds its thread until it returns, and Python cannot kill a thread. So the
pool never grows past ``max_threads``: when every thread is busy (hung tools included), new calls
wait in the queue, where the tool timeout still applies (a call that times out while queued is
dropped without ever running). The threads are daemon threads, so a hung tool neither blocks
:meth:`ToolThreads.shutdown` (unless asked to wait) nor keeps the process from exiting; a pool
that is shut down or garbage collected lets its idle threads end.
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from expert_jobs.domain.errors import UsageError

__all__ = ["ToolThreads"]

P = ParamSpec("P")
T = TypeVar("T")

_Work = tuple["Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class ToolThreads(Executor):
    """A thread pool of at most ``max_threads`` daemon threads, started on demand and reused.

    Use it as any :class:`concurrent.futures.Executor` (``loop.run_in_executor(threads, fn)``).
    :attr:`started` counts the threads it ever started (at most ``max_threads``).
    """

    def __init__(self, max_threads: int, *, name: str = "expert-jobs-tool") -> None:
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads < 1:
            raise UsageError(f"tool_threads must be an integer >= 1, got {max_threads!r}")
        self.max_threads = max_threads
        self._name = name
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one permit per thread waiting for work
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutdown = False
        # The threads hold the queue, never the pool: a pool nobody uses any more is collected,
        # and its threads end (like concurrent.futures.ThreadPoolExecutor's).
        weakref.finalize(self, self._queue.put, None)

    @property
    def started(self) -> int:
        """How many threads the pool has started (never more than ``max_threads``)."""
        return len(self._threads)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Queue ``fn(*args, **kwargs)``; a free thread runs it, or a new one if the pool may grow."""
        future: Future[T] = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot run a tool after the runtime's tool threads were shut down")
            self._queue.put((future, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=_work,
                    args=(self._queue, self._idle),
                    name=f"{self._name}-{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new calls; with ``cancel_futures``, drop the queued ones (their futures are
        cancelled); with ``wait``, join the threads (which waits for hung tools: the runtime does not).
        """
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while True:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is not None:
                        item[0].cancel()
            self._queue.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()


def _work(work: queue.SimpleQueue[_Work | None], idle: threading.Semaphore) -> None:
    """A pool thread: run queued calls until the ``None`` sentinel (passed on to the next thread)."""
    while True:
        item = work.get()
        if item is None:
            work.put(None)
            return
        future, fn, args, kwargs = item
        del item
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)
        del future, fn, args, kwargs
        idle.release()
