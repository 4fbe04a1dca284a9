"""The event bus: subscribers and per-job async streams. A failing subscriber is logged and never
breaks a job; nothing is allocated when nobody listens (check :attr:`EventBus.active`).

Delta events (``kind == "delta"``: the pieces of a generation as it streams) go only to the
listeners that asked for them: ``subscribe(fn, deltas=True)`` or ``stream(job_id, deltas=True)``.
While one is registered, :attr:`EventBus.deltas` is true and the engine streams the generations
of the jobs they follow (:meth:`EventBus.wants_deltas`); otherwise it calls ``generate``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.status import JobStatus

__all__ = ["DELTA_BACKLOG", "RESTING_STATUSES", "EventBus", "Subscriber"]

_log = logging.getLogger("expert_jobs.events")

Subscriber = Callable[[JobEvent], Awaitable[None] | None]

RESTING_STATUSES = frozenset(
    {
        JobStatus.COMPLETED,
        JobStatus.EXCEEDED_MAX_STEPS,
        JobStatus.FAILED,
        JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT,
        JobStatus.CANCELED,
        JobStatus.EXPIRED,
    }
)
"""Statuses in which no worker acts on the job until someone continues it (a stream ends there)."""

DELTA_BACKLOG = 10_000
"""The most events a per-job stream may hold unread before it stops taking deltas (a reader that
falls that far behind loses deltas until it catches up, never any other event)."""


class EventBus:
    """Fans events out to subscribers (sync or async callables) and to per-job streams."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._streams: dict[str, list[asyncio.Queue[JobEvent]]] = {}
        # The listeners that asked for deltas too (each also in _subscribers / _streams).
        self._delta_subscribers: list[Subscriber] = []
        self._delta_streams: dict[str, list[asyncio.Queue[JobEvent]]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self.active = False
        self.deltas = False
        """Whether some listener asked for deltas (the engine's one check before it streams)."""

    def _refresh(self) -> None:
        self.active = bool(self._subscribers or self._streams)
        self.deltas = bool(self._delta_subscribers or self._delta_streams)

    def subscribe(self, subscriber: Subscriber, *, deltas: bool = False) -> Callable[[], None]:
        """Call ``subscriber`` with every event (with ``deltas``, the delta events of every job
        too); returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        if deltas:
            self._delta_subscribers.append(subscriber)
        self._refresh()

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
                if deltas and subscriber in self._delta_subscribers:
                    self._delta_subscribers.remove(subscriber)
                self._refresh()

        return unsubscribe

    def wants_deltas(self, job_id: str) -> bool:
        """Whether some listener takes ``job_id``'s delta events."""
        return bool(self._delta_subscribers) or job_id in self._delta_streams

    def publish_delta(self, event: JobEvent) -> None:
        """Deliver a delta event to the listeners that asked for deltas (never stored, never sent
        to the others); a stream's reader more than :data:`DELTA_BACKLOG` events behind misses it."""
        for subscriber in self._delta_subscribers:
            try:
                result = subscriber(event)
                if result is not None and inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._done)
            except Exception:
                _log.exception("event subscriber %r failed on a delta of job %s", subscriber, event.job_id)
        queues = self._delta_streams.get(event.job_id)
        if queues:
            for queue in queues:
                if queue.qsize() < DELTA_BACKLOG:
                    queue.put_nowait(event)

    def publish(self, event: JobEvent) -> None:
        """Deliver ``event``; exceptions from subscribers are logged, never raised."""
        for subscriber in self._subscribers:
            try:
                result = subscriber(event)
                if inspect.isawaitable(result):
                    task = asyncio.ensure_future(result)
                    self._background.add(task)
                    task.add_done_callback(self._done)
            except Exception:
                _log.exception(
                    "event subscriber %r failed on %s event of job %s", subscriber, event.kind, event.job_id
                )
        queues = self._streams.get(event.job_id)
        if queues:
            for queue in queues:
                queue.put_nowait(event)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("async event subscriber failed", exc_info=task.exception())

    def open_stream(self, job_id: str, *, deltas: bool = False) -> asyncio.Queue[JobEvent]:
        """Start buffering ``job_id``'s events (with ``deltas``, its delta events too; pair with
        :meth:`close_stream`)."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._streams.setdefault(job_id, []).append(queue)
        if deltas:
            self._delta_streams.setdefault(job_id, []).append(queue)
        self._refresh()
        return queue

    def close_stream(self, job_id: str, queue: asyncio.Queue[JobEvent]) -> None:
        """Stop buffering into ``queue``."""
        for streams in (self._streams, self._delta_streams):
            queues = streams.get(job_id)
            if queues and queue in queues:
                queues.remove(queue)
                if not queues:
                    del streams[job_id]
        self._refresh()

    async def stream(
        self, job_id: str, *, until_resting: bool = True, deltas: bool = False
    ) -> AsyncIterator[JobEvent]:
        """Yield ``job_id``'s events as they happen (with ``deltas``, its delta events too); with
        ``until_resting`` stop after a transition into a resting status (completed, paused for a
        person, failed, canceled...)."""
        queue = self.open_stream(job_id, deltas=deltas)
        try:
            while True:
                event = await queue.get()
                yield event
                if until_resting and event.kind == "transition" and event.status in RESTING_STATUSES:
                    return
        finally:
            self.close_stream(job_id, queue)
