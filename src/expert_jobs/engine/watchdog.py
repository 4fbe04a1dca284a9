"""Timeouts of generations and tool calls, for many concurrent calls at the cost of a dict entry
each.

``asyncio.timeout`` schedules and cancels a timer per call (several µs on the hot path); the
watchdog instead keeps one deadline per in-flight call and one task that wakes every ``period``
(at most 1 s, at most a quarter of the timeout) to cancel the calls that overran. A timeout is
therefore enforced within one period of its deadline. Deadlines are read on ``time.monotonic``.
"""

from __future__ import annotations

import asyncio
import time

_now = time.monotonic

__all__ = ["Watchdog"]


class Watchdog:
    """Cancels tasks whose call (a generation, a tool) overran its deadline; see :meth:`fired` to
    tell why. A task has one deadline at a time."""

    def __init__(self) -> None:
        self._deadlines: dict[asyncio.Task[object], float] = {}
        self._fired: set[asyncio.Task[object]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._watching: asyncio.AbstractEventLoop | None = None  # the watcher's loop, while it runs
        self._period = 1.0
        self._shortest = 4.0  # the shortest timeout the current period serves (four periods)

    def arm(self, task: asyncio.Task[object], timeout: float) -> None:
        """Cancel ``task`` if it is still armed ``timeout`` seconds from now."""
        self._deadlines[task] = _now() + timeout
        loop = task.get_loop()
        if loop is not self._watching or timeout < self._shortest:
            self._watch_for(loop, timeout)

    def _watch_for(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Start a watcher on ``loop`` waking often enough for ``timeout`` (replacing one that
        wakes too seldom)."""
        watcher = self._watcher
        if watcher is not None and not watcher.done() and watcher.get_loop() is loop:
            if timeout >= self._shortest:
                self._watching = loop
                return
            watcher.cancel()
        self._period = min(1.0, timeout / 4)
        self._shortest = self._period * 4
        self._watching = loop
        self._watcher = loop.create_task(self._watch(), name="expert-jobs-watchdog")

    def disarm(self, task: asyncio.Task[object]) -> bool:
        """The call ended (either way) before its deadline, or is being handled; ``False`` when
        ``task`` had no deadline left (never armed, or the watchdog fired)."""
        return self._deadlines.pop(task, None) is not None

    def fired(self, task: asyncio.Task[object]) -> bool:
        """Whether the watchdog cancelled ``task`` (and forget it)."""
        if task in self._fired:
            self._fired.discard(task)
            return True
        return False

    async def _watch(self) -> None:
        try:
            while self._deadlines:
                await asyncio.sleep(self._period)
                now = _now()
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[task]
                        if not task.done():
                            self._fired.add(task)
                            task.cancel("expert-jobs: deadline passed")
        finally:
            try:
                current = asyncio.current_task()
            except RuntimeError:  # closed by the collector after its loop is gone
                current = None
            if current is None or self._watcher is current:
                self._watching = None
