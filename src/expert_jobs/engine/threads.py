"""The threads sync tools run in: a bounded pool of reused daemon threads, owned by the runtime.

A sync tool that hangs holds its thread until it returns, and Python cannot kill a thread. So the
pool never grows past ``max_threads``: when every thread is busy (hung tools included), new calls
wait in the queue, where the tool timeout still applies (a call that times out while queued is
dropped without ever running). The threads are daemon threads, so a hung tool neither blocks
:meth:`ToolThreads.shutdown` (unless asked to wait) nor keeps the process from exiting; a pool
that is shut down or garbage collected lets its idle threads end.

The engine's calls take a leaner way than :meth:`ToolThreads.submit`: :meth:`ToolThreads.call_soon`
answers with an ``asyncio`` future, settled on its loop without a ``concurrent.futures.Future``
in between, and calls that finish close together share one wake-up of the loop (one
``call_soon_threadsafe`` for every answer waiting, not one each).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from expert_jobs.domain.errors import UsageError

__all__ = ["ToolThreads"]

P = ParamSpec("P")
T = TypeVar("T")

# (the future to settle, the function, its positional and keyword arguments, and for an asyncio
# future the inbox of its loop; None for a concurrent.futures.Future)
_Work = tuple[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any], "_Inbox | None"]


class _Inbox:
    """The answers of one event loop's calls, waiting to be settled on that loop: a pool thread
    appends one and wakes the loop only if no wake-up is pending already."""

    __slots__ = ("_answers", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._answers: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._scheduled = False

    def deliver(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """In a pool thread: queue an answer and make sure the loop will settle it."""
        self._answers.append((future, result, error))
        if not self._scheduled:
            self._scheduled = True
            try:
                self._loop.call_soon_threadsafe(self._settle)
            except RuntimeError:  # the loop is closed: nobody waits for these answers any more
                self._answers.clear()
                self._scheduled = False

    def _settle(self) -> None:
        """On the loop: settle every answer waiting (those of cancelled calls are dropped)."""
        self._scheduled = False  # first: an answer appended from now on schedules another pass
        answers = self._answers
        while answers:
            future, result, error = answers.popleft()
            if future.done():  # cancelled: the call timed out, or its job was cancelled
                continue
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)


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
        self._inbox: _Inbox | None = None  # the inbox of the loop that called last
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
            self._queue.put((future, fn, args, kwargs, None))
            if not self._idle.acquire(blocking=False):
                self._wake_or_grow()
        return future

    def call_soon(self, fn: Callable[..., T], kwargs: dict[str, Any]) -> asyncio.Future[T]:
        """Queue ``fn(**kwargs)`` (in a copy of the caller's context, as ``asyncio.to_thread``
        does) and return an ``asyncio`` future of the running loop settled with its answer.

        Cancelling the future abandons the call: dropped if it has not started yet, else its
        answer is thrown away when it comes (the thread is not interrupted).
        """
        loop = asyncio.get_running_loop()
        inbox = self._inbox
        if inbox is None or inbox._loop is not loop:
            inbox = self._inbox = _Inbox(loop)
        future: asyncio.Future[T] = loop.create_future()
        context = contextvars.copy_context()
        if self._shutdown:
            raise RuntimeError("cannot run a tool after the runtime's tool threads were shut down")
        self._queue.put((future, context.run, (fn,), kwargs, inbox))
        # A thread waiting for work takes it (no lock needed); else start one under the lock.
        if not self._idle.acquire(blocking=False):
            with self._lock:
                self._wake_or_grow()
        return future

    def _wake_or_grow(self) -> None:
        """Start a thread for the work just queued, unless a thread is idle (it was told by the
        caller's ``_idle`` permit) or the pool is full (the work waits for a thread)."""
        if len(self._threads) < self.max_threads:
            thread = threading.Thread(
                target=_work,
                args=(self._queue, self._idle),
                name=f"{self._name}-{len(self._threads)}",
                daemon=True,
            )
            self._threads.append(thread)
            thread.start()

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
                        _cancel(item[0], item[4])
            self._queue.put(None)
        if wait:
            for thread in list(self._threads):
                thread.join()


def _cancel(future: Any, inbox: _Inbox | None) -> None:
    """Cancel a queued call's future (an asyncio one on its own loop)."""
    if inbox is None:
        future.cancel()
        return
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is inbox._loop:
        future.cancel()
        return
    with contextlib.suppress(RuntimeError):  # its loop is closed: nobody waits for it
        inbox._loop.call_soon_threadsafe(future.cancel)


def _work(work: queue.SimpleQueue[_Work | None], idle: threading.Semaphore) -> None:
    """A pool thread: run queued calls until the ``None`` sentinel (passed on to the next thread)."""
    while True:
        item = work.get()
        if item is None:
            work.put(None)
            return
        future, fn, args, kwargs, inbox = item
        del item
        if inbox is not None:
            # An engine call: its asyncio future is only read here (cancelled: the call was
            # abandoned before it started), and settled on its loop through the inbox.
            if not future.done():
                try:
                    inbox.deliver(future, fn(*args, **kwargs), None)
                except BaseException as exc:
                    if isinstance(exc, StopIteration):  # an asyncio future refuses it
                        exc = RuntimeError(f"the tool raised StopIteration: {exc}")
                    inbox.deliver(future, None, exc)
        elif future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)
        del future, fn, args, kwargs, inbox
        idle.release()
