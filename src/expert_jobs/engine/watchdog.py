"""Timeouts of generations and tool calls, for many concurrent calls at the cost of a dict entry
each.

``asyncio.timeout`` schedules and cancels a timer per call (several µs on the hot path); the
watchdog instead keeps one deadline per in-flight call and one task that wakes every ``period``
(at most 1 s, at most a quarter of the timeout) to cancel the calls that overran. A timeout is
therefore enforced within one period of its deadline. Deadlines are read on ``time.monotonic``.

The engine's hot path arms without a call (a Python frame is most of what :meth:`Watchdog.arm`
costs), by the same three steps, in the same order::

    watchdog.deadlines[task] = deadline_clock() + timeout
    if timeout < watchdog.shortest or watchdog.watching is not loop:  # loop = task.get_loop()
        watchdog.watch(loop, timeout)

and disarms with ``watchdog.deadlines.pop(task, None)`` (``None``: the watchdog fired first, or
the task was never armed).
"""

from __future__ import annotations

import asyncio
import time

deadline_clock = time.monotonic
"""The clock deadlines are read on (what the inline form of :meth:`Watchdog.arm` adds to)."""
_now = deadline_clock

__all__ = ["Watchdog", "deadline_clock"]


class Watchdog:
    """Cancels tasks whose call (a generation, a tool) overran its deadline; see :meth:`fired` to
    tell why. A task has one deadline at a time."""

    def __init__(self) -> None:
        self.deadlines: dict[asyncio.Task[object], float] = {}
        """Each armed task's deadline (``time.monotonic``); see the module's docstring."""
        self.watching: asyncio.AbstractEventLoop | None = None
        """The loop the watcher runs on, while it runs."""
        self.shortest = 4.0
        """The shortest timeout the watcher's period serves (four periods)."""
        self._fired: set[asyncio.Task[object]] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._period = 1.0

    def arm(self, task: asyncio.Task[object], timeout: float) -> None:
        """Cancel ``task`` if it is still armed ``timeout`` seconds from now."""
        self.deadlines[task] = _now() + timeout
        loop = task.get_loop()
        if timeout < self.shortest or self.watching is not loop:
            self.watch(loop, timeout)

    def watch(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        """Have a watcher run on ``loop``, waking often enough for ``timeout`` (replacing one that
        wakes too seldom, or runs on another loop)."""
        watcher = self._watcher
        if watcher is not None and not watcher.done() and watcher.get_loop() is loop:
            if timeout >= self.shortest:
                self.watching = loop
                return
            watcher.cancel()
        self._period = min(1.0, timeout / 4)
        self.shortest = self._period * 4
        self.watching = loop
        self._watcher = loop.create_task(self._watch(), name="expert-jobs-watchdog")

    def disarm(self, task: asyncio.Task[object]) -> bool:
        """The call ended (either way) before its deadline, or is being handled; ``False`` when
        ``task`` had no deadline left (never armed, or the watchdog fired)."""
        return self.deadlines.pop(task, None) is not None

    def fired(self, task: asyncio.Task[object]) -> bool:
        """Whether the watchdog cancelled ``task`` (and forget it)."""
        if task in self._fired:
            self._fired.discard(task)
            return True
        return False

    async def _watch(self) -> None:
        try:
            while self.deadlines:
                await asyncio.sleep(self._period)
                now = _now()
                deadlines = self.deadlines  # (read again: a public attribute may be replaced)
                for task, deadline in list(deadlines.items()):
                    if deadline <= now:
                        del deadlines[task]
                        if not task.done():
                            self._fired.add(task)
                            task.cancel("expert-jobs: deadline passed")
        finally:
            try:
                current = asyncio.current_task()
            except RuntimeError:  # closed by the collector after its loop is gone
                current = None
            if current is None or self._watcher is current:
                self.watching = None
