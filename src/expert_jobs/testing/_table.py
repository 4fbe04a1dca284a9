"""The lifecycle table as plain lookups, read straight from ``TRANSITIONS`` (not from the machine).

The test kit checks the shared machine against these, so they must not be derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from expert_jobs.domain.lifecycle import TRANSITIONS, TRIGGERS
from expert_jobs.domain.status import JobStatus

MOVES: Mapping[tuple[JobStatus, str], JobStatus] = {
    (source, trigger): dest for trigger, sources, dest in TRANSITIONS for source in sources
}
"""``(status, trigger) -> new status`` for every legal move."""

ALLOWED: Mapping[JobStatus, tuple[str, ...]] = {
    status: tuple(t for t in TRIGGERS if (status, t) in MOVES) for status in JobStatus
}
"""The triggers allowed from each status, in table order (empty for final statuses)."""

FORBIDDEN: Mapping[JobStatus, tuple[str, ...]] = {
    status: tuple(t for t in TRIGGERS if (status, t) not in MOVES) for status in JobStatus
}
"""The triggers the table does not allow from each status, in table order."""
