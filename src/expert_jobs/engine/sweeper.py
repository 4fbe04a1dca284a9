"""The sweeper: recovers jobs whose worker died (lapsed leases) or whose runner let go of them
without stopping them (no lease at all), and expires jobs that waited too long in ``queued`` or
in a pause."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from expert_jobs.domain.errors import IllegalTransition, StaleJobVersion
from expert_jobs.domain.job import Job
from expert_jobs.domain.status import JobStatus

if TYPE_CHECKING:
    from expert_jobs.engine.runtime import Runtime

__all__ = ["SweepReport", "recover_stalled", "sweep"]

_log = logging.getLogger("expert_jobs.sweeper")
S = JobStatus
_RECOVERY = {S.PROCESSING: "requeue", S.REQUEST_DELEGATE_RESULT: "resume", S.CANCELING: "finish_cancel"}
# Statuses in which some worker must be at the job: with no lease at all, nobody is.
_UNHELD = [S.PROCESSING, S.REQUEST_DELEGATE_RESULT, S.CANCELING]


@dataclass(slots=True)
class SweepReport:
    """What one sweep did, by job id."""

    recovered: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)


async def recover_stalled(runtime: Runtime, job: Job) -> bool:
    """Hand a job whose worker is gone back to the queue (``processing -> queued``,
    ``requestDelegateResult -> queued``) or finish its cancellation; then drop the dead lease."""
    owner = job.lease_owner
    trigger = _RECOVERY.get(job.status)
    try:
        if trigger == "finish_cancel":
            await runtime.apply_trigger(job, trigger)
        elif trigger is not None:
            before = job.status
            job.fire(trigger)
            job.waiting_since = job.updated_at = runtime.clock.now()
            await runtime.store.save(job, expected_version=job.version)
            runtime._publish_transition(job, before, trigger)
    except (StaleJobVersion, IllegalTransition):
        return False
    if owner is not None:
        await runtime.store.release(job.id, owner)
    runtime._wake()
    return True


async def sweep(runtime: Runtime) -> SweepReport:
    """One pass: recover stalled jobs, then expire jobs that waited too long.

    Stalled: a job whose lease lapsed (its worker died), and a ``processing``,
    ``requestDelegateResult`` or ``canceling`` job with no lease at all (its runner failed and could
    not record it; no worker ever holds such a job) that entered the queue at least ``lease_seconds``
    ago. A job a runner of this process drives is left alone.
    """
    store = runtime.store
    now = runtime.clock.now()
    report = SweepReport()
    lapsed = await store.lapsed_leases(now=now)
    unheld = await store.waiting_since_before(_UNHELD, now - runtime.settings.lease_seconds)
    for job in (*lapsed, *unheld):
        if runtime.runner(job.id) is not None:
            continue
        if await recover_stalled(runtime, job):
            report.recovered.append(job.id)
    settings = runtime.settings
    groups: list[tuple[list[JobStatus], float | None]] = [
        ([S.QUEUED], settings.queued_expiry_seconds),
        ([S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT], settings.paused_expiry_seconds),
    ]
    for statuses, limit in groups:
        if limit is None:
            continue
        for job in await store.waiting_since_before(statuses, now - limit):
            try:
                await runtime.apply_trigger(job, "expire")
            except (StaleJobVersion, IllegalTransition):
                continue
            report.expired.append(job.id)
    if report.recovered or report.expired:
        _log.info("sweep: recovered %s, expired %s", report.recovered, report.expired)
    return report
