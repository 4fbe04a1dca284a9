"""Keeping threads on one CPU (Linux's ``sched_setaffinity``), for ``tool_threads_on_loop_cpu``.

On a machine whose idle CPUs sleep (a VM's vCPU halts), waking a thread that sleeps on another
CPU costs tens of µs; a thread woken on the CPU of the thread that wakes it is a context switch.
A sync tool's call is two such wake-ups (the tool thread's, then the event loop's), so running the
loop's thread and the tool threads on one CPU makes a quick sync tool several times cheaper.

Every function here fails soft: where the platform cannot pin threads (no ``sched_setaffinity``)
or refuses (a CPU outside the process's cgroup), it says so by its result and changes nothing.
"""

from __future__ import annotations

import logging
import os

__all__ = ["current_cpu", "pin", "supported", "thread_cpus"]

_log = logging.getLogger("expert_jobs.engine")


def supported() -> bool:
    """Whether this platform can pin threads to CPUs (Linux)."""
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def current_cpu() -> int | None:
    """The CPU the calling thread runs on (``/proc/thread-self/stat``'s ``processor``), else the
    lowest CPU it may run on; ``None`` where the platform cannot tell."""
    if not supported():
        return None
    try:
        with open("/proc/thread-self/stat", "rb") as stat:
            # The fields after the command name (which may hold spaces), "processor" being the 39th
            # field of the line: the 37th after the name.
            fields = stat.read().rsplit(b")", 1)[1].split()
        return int(fields[36])
    except (OSError, IndexError, ValueError):
        pass
    try:
        return min(os.sched_getaffinity(0))
    except (OSError, ValueError):
        return None


def thread_cpus(native_id: int = 0) -> frozenset[int] | None:
    """The CPUs thread ``native_id`` (``0``: the calling thread) may run on; ``None`` if unknown."""
    if not supported():
        return None
    try:
        return frozenset(os.sched_getaffinity(native_id))
    except OSError:
        return None


def pin(native_id: int, cpus: frozenset[int], *, warn: bool = True) -> bool:
    """Let thread ``native_id`` (``0``: the calling thread) run only on ``cpus``; ``False`` (and,
    with ``warn``, a warning logged) where the platform cannot or refuses. A thread started later
    by a pinned thread inherits its CPUs."""
    if not supported():
        return False
    try:
        os.sched_setaffinity(native_id, cpus)
    except (OSError, ValueError) as exc:  # a thread that ended, a CPU the cgroup does not allow
        if warn:
            _log.warning(
                "could not keep thread %s on CPUs %s: %s", native_id or "(this one)", sorted(cpus), exc
            )
        return False
    return True
