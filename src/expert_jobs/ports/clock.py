"""Time as a port: the engine reads the clock and sleeps only through a :class:`Clock`, so tests
replace it and never wait for real."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Wall time (epoch seconds), a monotonic reading, and an async sleep."""

    def now(self) -> float:
        """Seconds since the epoch (for timestamps, leases and expiry)."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in seconds (for durations)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that only moves when told to, or when someone sleeps on it (instantly).

    ``sleeps`` records every requested sleep, so tests can assert backoff delays.
    """

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self._now = start
        self._mono = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        """The fake wall time."""
        return self._now

    def monotonic(self) -> float:
        """The fake monotonic reading."""
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both readings forward."""
        self._now += seconds
        self._mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the sleep, advance time at once and yield to the loop."""
        self.sleeps.append(seconds)
        self.advance(seconds)
        await asyncio.sleep(0)
