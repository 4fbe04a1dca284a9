"""``MemoryStore``: a fast in-process job store for tests, notebooks and benchmarks (not durable)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from heapq import heappop, heappush

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import StaleJobVersion, StoreError
from expert_jobs.domain.job import Job, JobQuery, copy_state
from expert_jobs.domain.messages import Message
from expert_jobs.domain.status import JobStatus

__all__ = ["MemoryStore"]

_QUEUED = JobStatus.QUEUED


def _lease_live(job: Job, now: float) -> bool:
    return job.lease_owner is not None and job.lease_expires_at is not None and job.lease_expires_at > now


class MemoryStore:
    """Keeps jobs and checkpoints in dictionaries. Same contract as the durable stores.

    Claims cost O(log n): queued jobs wait in a heap ordered by ``(waiting_since, id)`` (entries
    that went stale are dropped when they surface), and jobs leased while queued wait in a second
    heap ordered by lease expiry, from which a lapsed lease puts them back in the queue.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._checkpoints: dict[str, builtins.list[Checkpoint]] = {}
        # A checkpoint by id, a run's history and its latest checkpoint are read from the job's
        # checkpoints (only a resumed or inspected job reads them): nothing else kept per step.
        self._queue: list[tuple[float, str]] = []
        self._in_queue: dict[str, float] = {}
        self._leased: list[tuple[float, str]] = []

    def _enqueue(self, job: Job) -> None:
        """Offer a queued job to :meth:`claim` (at most one live heap entry per job)."""
        if self._in_queue.get(job.id) != job.waiting_since:
            self._in_queue[job.id] = job.waiting_since
            heappush(self._queue, (job.waiting_since, job.id))

    def _requeue_lapsed(self, now: float) -> None:
        """Put queued jobs whose lease lapsed by ``now`` back in the claim queue."""
        leased = self._leased
        while leased and leased[0][0] <= now:
            expires, job_id = heappop(leased)
            job = self._jobs.get(job_id)
            if job is not None and job.status is _QUEUED and job.lease_expires_at == expires:
                self._enqueue(job)

    async def create(self, job: Job, checkpoint: Checkpoint | None = None) -> None:
        """Insert a new job at version 0 (with its first checkpoint, if given)."""
        if job.id in self._jobs:
            raise StoreError(f"job {job.id} already exists")
        job.version = 0
        self._jobs[job.id] = job.copy()
        self._checkpoints[job.id] = [] if checkpoint is None else [checkpoint]
        if job.status is _QUEUED:
            self._enqueue(job)

    async def get(self, job_id: str) -> Job | None:
        """A copy of the job, or ``None``."""
        job = self._jobs.get(job_id)
        return None if job is None else job.copy()

    async def save(
        self,
        job: Job,
        *,
        expected_version: int,
        checkpoint: Checkpoint | None = None,
        release_for: str | None = None,
    ) -> None:
        """Append ``checkpoint`` and write ``job`` if the stored version is ``expected_version``
        (dropping ``release_for``'s lease too, if given and held)."""
        stored = self._jobs.get(job.id)
        if stored is None:
            raise StoreError(f"job {job.id} does not exist")
        if stored.version != expected_version:
            raise StaleJobVersion(job.id, expected_version, stored.version)
        if checkpoint is not None:
            self._checkpoints[checkpoint.job_id].append(checkpoint)
        # Only a queued job can be in the claim queue (a job enters it queued, and leaves it when
        # claimed or saved in another status).
        was_queued = stored.status is _QUEUED
        # A save writes the job's state into the stored job, in place; the identity is fixed at
        # creation, and the lease belongs to claim/renew/release (the caller gets it back).
        copy_state(job, stored)
        job.version = stored.version = expected_version + 1
        if release_for is not None and stored.lease_owner == release_for:
            stored.lease_owner = stored.lease_expires_at = None
        job.lease_owner = stored.lease_owner
        job.lease_expires_at = stored.lease_expires_at
        if stored.status is _QUEUED:
            self._enqueue(stored)
        elif was_queued:
            self._in_queue.pop(job.id, None)

    async def list(self, query: JobQuery) -> tuple[builtins.list[Job], int]:
        """One page of the application's jobs and the total matching."""
        needle = query.filter.lower() if query.filter else None
        matching = [
            job
            for job in self._jobs.values()
            if job.application_id == query.application_id
            and (needle is None or needle in job.expert_key.lower())
            and (query.statuses is None or job.status in query.statuses)
        ]
        if query.sort == "updatedAt":
            matching.sort(key=lambda j: (j.updated_at, j.id), reverse=query.order == "desc")
        else:
            matching.sort(key=lambda j: (j.created_at, j.id), reverse=query.order == "desc")
        skip, take = max(query.skip, 0), max(query.take, 0)
        page = matching[skip : skip + take]
        return [job.copy() for job in page], len(matching)

    async def get_checkpoint(self, job_id: str, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint of the job, or ``None``."""
        checkpoints = self._checkpoints.get(job_id, [])
        for index in range(len(checkpoints) - 1, -1, -1):  # the latest ones are asked most
            if checkpoints[index].id == checkpoint_id:
                return checkpoints[index]
        return None

    async def list_checkpoints(
        self, job_id: str, *, take: int = 100, skip: int = 0, after_seq: int | None = None
    ) -> tuple[builtins.list[Checkpoint], int]:
        """The job's checkpoints in ``seq`` order and their total."""
        checkpoints = self._checkpoints.get(job_id, [])
        if after_seq is not None:
            checkpoints = [c for c in checkpoints if c.seq > after_seq]
        skip, take = max(skip, 0), max(take, 0)
        return checkpoints[skip : skip + take], len(checkpoints)

    async def latest_checkpoints(self, job_id: str) -> dict[str, Checkpoint]:
        """The latest checkpoint of every run of the job."""
        return {checkpoint.run_id: checkpoint for checkpoint in self._checkpoints.get(job_id, ())}

    async def load_history(
        self, job_id: str, run_id: str, *, upto_seq: int | None = None
    ) -> builtins.list[Message]:
        """A run's messages up to and including checkpoint ``upto_seq`` (all if ``None``)."""
        checkpoints = self._checkpoints.get(job_id, [])
        # The run's checkpoints' new messages, in the order they were saved.
        history = [m for c in checkpoints if c.run_id == run_id for m in c.new_messages]
        if upto_seq is None:
            return history
        count = 0
        for checkpoint in checkpoints:
            if checkpoint.seq > upto_seq:
                break
            if checkpoint.run_id == run_id:
                count = checkpoint.message_count
        return history[:count]

    async def claim(
        self, worker_id: str, *, now: float, lease_seconds: float, job_id: str | None = None
    ) -> Job | None:
        """Lease the oldest claimable queued job (or exactly ``job_id``) to ``worker_id``."""
        if job_id is not None:
            job = self._jobs.get(job_id)
            if job is None or job.status is not _QUEUED:
                return None
            if job.lease_owner != worker_id and _lease_live(job, now):
                return None
            self._in_queue.pop(job_id, None)
            return self._lease(job, worker_id, now + lease_seconds)
        leased = self._leased
        if leased and leased[0][0] <= now:
            self._requeue_lapsed(now)
        queue = self._queue
        in_queue = self._in_queue
        while queue:
            waiting_since, queued_id = heappop(queue)
            if in_queue.get(queued_id) != waiting_since:
                continue  # stale entry: the job left the queue or was queued again since
            del in_queue[queued_id]
            job = self._jobs[queued_id]
            if _lease_live(job, now):
                # Leased (by anyone): it comes back when the lease lapses or is released.
                heappush(self._leased, (job.lease_expires_at or now, queued_id))
                continue
            return self._lease(job, worker_id, now + lease_seconds)
        return None

    def _lease(self, job: Job, worker_id: str, expires_at: float) -> Job:
        job.lease_owner = worker_id
        job.lease_expires_at = expires_at
        heappush(self._leased, (expires_at, job.id))
        return job.copy()

    async def renew_lease(self, job_id: str, worker_id: str, *, now: float, lease_seconds: float) -> bool:
        """Extend the worker's lease if it still holds it."""
        job = self._jobs.get(job_id)
        if job is None or job.lease_owner != worker_id:
            return False
        job.lease_expires_at = now + lease_seconds
        if job.status is _QUEUED and job.id not in self._in_queue:
            heappush(self._leased, (job.lease_expires_at, job.id))
        return True

    async def release(self, job_id: str, worker_id: str) -> None:
        """Drop the worker's lease on the job."""
        job = self._jobs.get(job_id)
        if job is not None and job.lease_owner == worker_id:
            job.lease_owner = None
            job.lease_expires_at = None
            if job.status is _QUEUED:
                self._enqueue(job)

    async def held_by(self, worker_id: str) -> builtins.list[Job]:
        """Jobs whose lease ``worker_id`` holds (a restarted worker resumes them)."""
        return [job.copy() for job in self._jobs.values() if job.lease_owner == worker_id]

    async def lapsed_leases(self, *, now: float, limit: int = 100) -> builtins.list[Job]:
        """Jobs whose worker's lease has lapsed, earliest lapse first."""
        lapsed = [
            job
            for job in self._jobs.values()
            if job.lease_owner is not None and not _lease_live(job, now) and job.lease_expires_at is not None
        ]
        lapsed.sort(key=lambda j: (j.lease_expires_at, j.id))
        return [job.copy() for job in lapsed[:limit]]

    async def waiting_since_before(
        self, statuses: Sequence[JobStatus], cutoff: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        """Unleased jobs in ``statuses`` waiting since before ``cutoff``."""
        wanted = set(statuses)
        found = [
            job
            for job in self._jobs.values()
            if job.status in wanted and job.lease_owner is None and job.waiting_since < cutoff
        ]
        found.sort(key=lambda j: (j.waiting_since, j.id))
        return [job.copy() for job in found[:limit]]

    async def close(self) -> None:
        """Nothing to release."""
