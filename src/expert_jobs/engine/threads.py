"""The threads sync tools run in: a bounded pool of reused daemon threads, owned by the runtime.

A sync tool that hangs holds its thread until it returns, and Python cannot kill a thread. So the
pool never grows past ``max_threads``: when every thread is busy (hung tools included), new calls
wait in the queue, where the tool timeout still applies (a call that times out while queued is
dropped without ever running). The threads are daemon threads, so a hung tool neither blocks
:meth:`ToolThreads.shutdown` (unless asked to wait) nor keeps the process from exiting; a pool
that is shut down or garbage collected lets its idle threads end.

A call's cost is its two thread wake-ups (the pool thread's, then the event loop's), so both are
made as cheap as the platform allows:

- An idle thread sleeps in a blocking ``recv`` on its own socket pair (its "bell"), without the
  GIL; a call rings exactly one idle thread, and a busy thread takes the next queued call without
  sleeping. (Waking a thread through a lock or a ``queue.SimpleQueue`` measured about twice as
  slow a round trip on a 2-core VM.) The loop rings from its next pass rather than at once:
  ``send`` lets go of the GIL, and the woken thread would take it while the loop still has work
  (with many calls at once that doubled the cost of each).
- :meth:`ToolThreads.call_soon`, the engine's way in, answers with an ``asyncio`` future settled
  on its loop without a ``concurrent.futures.Future`` in between; the answers of one loop wait in
  its :class:`_Inbox`, and calls that finish close together share one wake-up of the loop: one
  byte on a socket the loop watches (``add_reader``), or one ``call_soon_threadsafe`` where the
  loop cannot watch sockets.
- A thread rings the loop as its last act before it sleeps or takes the next call, so the loop
  does not wake only to wait for the GIL that thread still holds.

With ``on_loop_cpu`` (``RuntimeSettings.tool_threads_on_loop_cpu``), the first call from a loop
keeps that loop's thread and every pool thread on the CPU the loop runs on (engine/affinity.py):
each wake-up is then a switch between two threads of one CPU, not a sleeping CPU's wake-up.
:meth:`ToolThreads.shutdown` gives the loop threads their CPUs back.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, ParamSpec, TypeVar

from expert_jobs.domain.errors import UsageError
from expert_jobs.engine import affinity

__all__ = ["ToolThreads"]

_log = logging.getLogger("expert_jobs.engine")

P = ParamSpec("P")
T = TypeVar("T")

# (the future to settle, the function, its positional and keyword arguments, and for an asyncio
# future the inbox of its loop; None for a concurrent.futures.Future)
_Work = tuple[Any, Callable[..., Any], tuple[Any, ...], dict[str, Any], "_Inbox | None"]


class _Inbox:
    """The answers of one event loop's calls, waiting to be settled on that loop: a pool thread
    appends one and wakes the loop only if no wake-up is pending already."""

    __slots__ = ("__weakref__", "_answers", "_loop", "_receiver", "_scheduled", "_sender", "taken")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        # The bells of idle threads this loop's calls took, to be rung in its next pass (only this
        # loop's thread touches the list, or anyone once the loop is closed).
        self.taken: list[socket.socket] = []
        self._answers: deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = deque()
        self._scheduled = False
        self._receiver: socket.socket | None = None
        self._sender: socket.socket | None = None
        receiver, sender = socket.socketpair()
        receiver.setblocking(False)
        try:
            loop.add_reader(receiver.fileno(), self._take)
        except NotImplementedError:  # a loop that cannot watch sockets (Windows' proactor)
            _close_pair(receiver, sender)
        else:
            self._receiver, self._sender = receiver, sender
            weakref.finalize(self, _close_pair, receiver, sender)

    def deliver(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """In a pool thread: queue an answer and make sure the loop will settle it."""
        self._answers.append((future, result, error))
        if not self._scheduled:
            self._scheduled = True
            try:
                if self._sender is None:
                    self._call_soon()
                else:
                    self._sender.send(b"\0")
            except (RuntimeError, OSError):  # the loop is closed: nobody waits for these answers
                self._answers.clear()
                self._scheduled = False

    def _call_soon(self) -> None:
        self._loop.call_soon_threadsafe(self._settle)

    def ring(self, shared: _Shared) -> None:
        """On the loop, the pass after a call took an idle thread's bell: ring it."""
        with contextlib.suppress(IndexError):  # given back meanwhile (a shutdown)
            shared.ring(self.taken.pop())

    def _take(self) -> None:
        """On the loop, when the socket is readable: empty it, then settle the answers."""
        assert self._receiver is not None
        with contextlib.suppress(BlockingIOError, InterruptedError):
            self._receiver.recv(4096)
        self._settle()

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

    def close(self) -> None:
        """Stop watching the socket (on the loop's thread, or once the loop is closed)."""
        if self._receiver is None:
            return
        if not self._loop.is_closed():
            self._loop.remove_reader(self._receiver.fileno())
        _close_pair(self._receiver, self._sender)
        self._answers.clear()


def _close_pair(*sockets: socket.socket | None) -> None:
    for sock in sockets:
        if sock is not None:
            sock.close()


class _Shared:
    """What the pool's threads share with the pool (never the pool itself, so that a pool nobody
    holds any more is collected and its threads end): the queue, the bells of the idle threads,
    and whether the pool is stopping."""

    __slots__ = ("cpus", "idle", "stopping", "work")

    def __init__(self) -> None:
        self.work: deque[_Work] = deque()
        # The bells of the threads waiting for work; the caller pops one and rings it. A list's
        # append, pop and remove are atomic, so neither side takes a lock.
        self.idle: list[socket.socket] = []
        self.stopping = False
        # The CPUs a new thread keeps to (on_loop_cpu, once a loop called), else None.
        self.cpus: frozenset[int] | None = None

    def ring(self, bell: socket.socket) -> None:
        """Wake the idle thread of ``bell``, unless the queue is empty by now (a busy thread took
        the work): then the thread stays idle."""
        if self.work or self.stopping:
            bell.send(b"\0")
        else:
            self.idle.append(bell)

    def stop(self) -> None:
        """Tell every thread to end once the queue is empty; wake the idle ones."""
        self.stopping = True
        while True:
            try:
                bell = self.idle.pop()
            except IndexError:
                return
            with contextlib.suppress(OSError):
                bell.send(b"\0")


class ToolThreads(Executor):
    """A thread pool of at most ``max_threads`` daemon threads, started on demand and reused.

    Use it as any :class:`concurrent.futures.Executor` (``loop.run_in_executor(threads, fn)``).
    :attr:`started` counts the threads it ever started (at most ``max_threads``). With
    ``on_loop_cpu``, the threads and the thread of each loop that calls :meth:`call_soon` keep to
    the CPU that loop ran on at its first call (Linux; elsewhere a warning, and no pinning).
    """

    def __init__(
        self, max_threads: int, *, name: str = "expert-jobs-tool", on_loop_cpu: bool = False
    ) -> None:
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads < 1:
            raise UsageError(f"tool_threads must be an integer >= 1, got {max_threads!r}")
        if on_loop_cpu and not affinity.supported():
            _log.warning("tool_threads_on_loop_cpu: this platform cannot keep threads on a CPU; ignored")
            on_loop_cpu = False
        self.max_threads = max_threads
        self.on_loop_cpu = on_loop_cpu
        self._name = name
        self._shared = _Shared()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutdown = False
        self._inbox: _Inbox | None = None  # the inbox of the loop that called last
        # The loop threads kept on a CPU (on_loop_cpu): their native ids and the CPUs they had.
        self._pinned: dict[int, frozenset[int]] = {}
        weakref.finalize(self, self._shared.stop)

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
            self._shared.work.append((future, fn, args, kwargs, None))
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
            inbox = self._new_inbox(loop)
        if self._shutdown:
            raise RuntimeError("cannot run a tool after the runtime's tool threads were shut down")
        future: asyncio.Future[T] = loop.create_future()
        shared = self._shared
        shared.work.append((future, contextvars.copy_context().run, (fn,), kwargs, inbox))
        try:
            bell = shared.idle.pop()
        except IndexError:
            with self._lock:
                self._wake_or_grow()
        else:
            # Rung from the loop's next pass, not now: ``send`` lets go of the GIL, which the
            # woken thread would take while the loop still has this pass's work to do. Until
            # then the inbox holds the bell (given back if that pass never comes: _new_inbox).
            inbox.taken.append(bell)
            loop.call_soon(inbox.ring, shared)
        return future

    def _new_inbox(self, loop: asyncio.AbstractEventLoop) -> _Inbox:
        """The inbox of ``loop``, the loop calling now; the last loop's is closed if that loop is."""
        old = self._inbox
        if old is not None and old._loop.is_closed():
            self._give_back(old)
            old.close()
        inbox = self._inbox = _Inbox(loop)
        if self.on_loop_cpu:
            self._keep_on_loop_cpu()
        return inbox

    def _keep_on_loop_cpu(self) -> None:
        """Keep the calling loop's thread, and every pool thread, on the CPU the loop runs on."""
        cpu = affinity.current_cpu()
        me = threading.get_native_id()
        before = self._pinned.get(me) or affinity.thread_cpus()
        if cpu is None or before is None:
            return
        cpus = frozenset((cpu,))
        if not affinity.pin(0, cpus):
            return
        self._pinned[me] = before
        with self._lock:
            self._shared.cpus = cpus
            for thread in self._threads:
                if thread.native_id is not None and thread.is_alive():
                    affinity.pin(thread.native_id, cpus)

    def _give_back(self, inbox: _Inbox) -> None:
        """Ring the bells ``inbox`` took and never rang (its loop closed first): their threads
        take any queued work, or go back to the idle ones."""
        taken = inbox.taken
        while True:
            try:
                bell = taken.pop()
            except IndexError:
                return
            self._shared.ring(bell)

    def _wake_or_grow(self) -> None:
        """Under the lock, for the work just queued: ring an idle thread if there is one, else
        start a thread if the pool may grow (else the work waits for a busy thread)."""
        shared = self._shared
        try:
            bell = shared.idle.pop()
        except IndexError:
            pass
        else:
            bell.send(b"\0")
            return
        if len(self._threads) < self.max_threads:
            bell, own = socket.socketpair()
            thread = threading.Thread(
                target=_work,
                args=(shared, bell, own),
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
                work = self._shared.work
                while True:
                    try:
                        item = work.popleft()
                    except IndexError:
                        break
                    _cancel(item[0], item[4])
            if self._inbox is not None:
                self._give_back(self._inbox)
            self._shared.stop()
            pinned, self._pinned = self._pinned, {}
        for native_id, cpus in pinned.items():
            affinity.pin(native_id, cpus, warn=False)  # that thread may have ended: nothing to give back
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


def _work(shared: _Shared, bell: socket.socket, own: socket.socket) -> None:
    """A pool thread: run queued calls; when there are none, put ``bell`` among the idle ones and
    sleep until it rings (``own`` is its other end). Ends when the pool stops and nothing is queued."""
    work = shared.work
    idle = shared.idle
    wait = own.recv
    if shared.cpus is not None:  # started by a thread other than the pinned loop's
        affinity.pin(0, shared.cpus)

    def rest() -> None:
        """Sleep until rung, ``bell`` being among the idle ones already; not at all if work was
        queued (or the pool stopped) before this thread showed as idle."""
        if work or shared.stopping:
            try:
                idle.remove(bell)
            except ValueError:  # a caller took the bell already: its ring is on the way
                wait(1)
        else:
            wait(1)

    try:
        while True:
            try:
                future, fn, args, kwargs, inbox = work.popleft()
            except IndexError:
                if shared.stopping:
                    return
                idle.append(bell)
                rest()
                continue
            if inbox is None:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args, **kwargs))
                    except BaseException as exc:
                        future.set_exception(exc)
                del future, fn, args, kwargs
                continue
            # An engine call: its asyncio future is only read here (cancelled: the call was
            # abandoned before it started), and settled on its loop through the inbox.
            if future.done():
                continue
            error: BaseException | None = None
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                result = None
                error = (
                    RuntimeError(f"the tool raised StopIteration: {exc}")
                    if isinstance(exc, StopIteration)
                    else exc
                )
            del fn, args, kwargs
            if work or shared.stopping:
                inbox.deliver(future, result, error)
                del future, inbox, result, error
                continue
            # Most likely idle next: shown as idle first, so that the answer's wake-up of the loop
            # is this thread's last act before it sleeps (the loop, woken, finds the GIL free).
            idle.append(bell)
            inbox.deliver(future, result, error)
            del future, inbox, result, error
            rest()
    finally:
        _close_pair(bell, own)
