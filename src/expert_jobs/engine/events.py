"""The event bus: subscribers and per-job async streams. A failing subscriber is logged and never
breaks a job; nothing is allocated when nobody listens (check :attr:`EventBus.active`)."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.status import JobStatus

__all__ = ["RESTING_STATUSES", "EventBus", "Subscriber"]

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


class EventBus:
    """Fans events out to subscribers (sync or async callables) and to per-job streams."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._streams: dict[str, list[asyncio.Queue[JobEvent]]] = {}
        self._background: set[asyncio.Future[None]] = set()
        self.active = False

    def _refresh(self) -> None:
        self.active = bool(self._subscribers or self._streams)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every event; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        self._refresh()

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)
                self._refresh()

        return unsubscribe

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

    def open_stream(self, job_id: str) -> asyncio.Queue[JobEvent]:
        """Start buffering ``job_id``'s events (pair with :meth:`close_stream`)."""
        queue: asyncio.Queue[JobEvent] = asyncio.Queue()
        self._streams.setdefault(job_id, []).append(queue)
        self._refresh()
        return queue

    def close_stream(self, job_id: str, queue: asyncio.Queue[JobEvent]) -> None:
        """Stop buffering into ``queue``."""
        queues = self._streams.get(job_id)
        if queues and queue in queues:
            queues.remove(queue)
            if not queues:
                del self._streams[job_id]
        self._refresh()

    async def stream(self, job_id: str, *, until_resting: bool = True) -> AsyncIterator[JobEvent]:
        """Yield ``job_id``'s events as they happen; with ``until_resting`` stop after a transition
        into a resting status (completed, paused for a person, failed, canceled...)."""
        queue = self.open_stream(job_id)
        try:
            while True:
                event = await queue.get()
                yield event
                if until_resting and event.kind == "transition" and event.status in RESTING_STATUSES:
                    return
        finally:
            self.close_stream(job_id, queue)
