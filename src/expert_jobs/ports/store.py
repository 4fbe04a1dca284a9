"""The job store port. ``MemoryStore``, ``SQLiteStore`` and ``PostgresStore`` implement it and all
pass the same contract suite (``tests/stores/contract.py``).

Rules every store keeps:

- Jobs handed out are copies: mutating one never changes the store.
- :meth:`JobStore.save` is atomic and conditional: it appends the checkpoint (if any) and writes
  the job only if the stored version equals ``expected_version``; then the stored version (and the
  caller's ``job.version``) becomes ``expected_version + 1``. Otherwise it raises
  ``StaleJobVersion`` and writes nothing. The checkpoint is durable no later than the job change.
- Lease fields (``lease_owner``, ``lease_expires_at``) are written only by claim / renew / release;
  ``save`` keeps the stored ones (and sets them on the caller's job) and does not depend on them.
- Leases: :meth:`JobStore.claim` hands a queued job to one worker at a time;
  :meth:`JobStore.renew_lease` keeps it; a lease that lapses makes the job claimable/recoverable.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.messages import Message
from expert_jobs.domain.status import JobStatus

__all__ = ["JobStore"]


@runtime_checkable
class JobStore(Protocol):
    """Where jobs and their checkpoints live."""

    async def create(self, job: Job, checkpoint: Checkpoint | None = None) -> None:
        """Insert a new job (version 0), with its first checkpoint if given, atomically.

        Raises ``StoreError`` if the id exists.
        """
        ...

    async def get(self, job_id: str) -> Job | None:
        """A copy of the job, or ``None``."""
        ...

    async def save(
        self,
        job: Job,
        *,
        expected_version: int,
        checkpoint: Checkpoint | None = None,
        release_for: str | None = None,
    ) -> None:
        """Atomically append ``checkpoint`` and write ``job`` if the stored version matches.

        A save writes the job's state: status, counters, usage, error, the waiting time, the
        checkpoint bookkeeping and the model settings a continue may change. The job's identity
        and request (organization, application, expert key and digest, query, files, creation
        time) are fixed by :meth:`create` and never rewritten; the lease fields belong to
        :meth:`claim`, :meth:`renew_lease` and :meth:`release`, and a save hands the stored lease
        back on ``job``. With ``release_for`` (a worker id), the same write also drops that
        worker's lease if it holds it, as :meth:`release` would (a runner's last write).
        """
        ...

    async def list(self, query: JobQuery) -> tuple[builtins.list[Job], int]:
        """One page of the application's jobs (filtered, sorted) and the total matching."""
        ...

    async def get_checkpoint(self, job_id: str, checkpoint_id: str) -> Checkpoint | None:
        """One checkpoint of the job, or ``None``."""
        ...

    async def list_checkpoints(
        self, job_id: str, *, take: int = 100, skip: int = 0, after_seq: int | None = None
    ) -> tuple[builtins.list[Checkpoint], int]:
        """The job's checkpoints in ``seq`` order (only those after ``after_seq`` if given) and the total."""
        ...

    async def latest_checkpoints(self, job_id: str) -> dict[str, Checkpoint]:
        """The latest checkpoint of every run of the job, by run id."""
        ...

    async def load_history(
        self, job_id: str, run_id: str, *, upto_seq: int | None = None
    ) -> builtins.list[Message]:
        """A run's messages, rebuilt from its checkpoints' deltas (up to and including ``upto_seq``)."""
        ...

    async def claim(
        self, worker_id: str, *, now: float, lease_seconds: float, job_id: str | None = None
    ) -> Job | None:
        """Lease the oldest claimable queued job (or exactly ``job_id``) to ``worker_id``, or ``None``.

        Claimable: status ``queued`` and no live lease (none, or one that lapsed at or before
        ``now``); oldest: smallest ``waiting_since``, ties broken by id. With ``job_id``, a live
        lease that ``worker_id`` itself holds does not prevent the claim (it is renewed); without
        it, a job the worker already holds is never handed out again (:meth:`held_by` finds
        those). Claiming never changes the job's ``version``. The status is not
        changed (the engine fires ``start`` and saves). ``save`` snapshots the job synchronously
        when called, before any await, so callers may keep mutating their object afterwards.

        A store whose concurrent claims share one transaction says so with a class attribute
        ``claims_in_batches = True`` (optional; read with ``getattr``): the engine's worker then
        sends its claims in concurrent rounds.
        """
        ...

    async def renew_lease(self, job_id: str, worker_id: str, *, now: float, lease_seconds: float) -> bool:
        """Extend the worker's lease; ``False`` if the worker no longer holds it."""
        ...

    async def release(self, job_id: str, worker_id: str) -> None:
        """Drop the worker's lease on the job (no-op if it does not hold it)."""
        ...

    async def held_by(self, worker_id: str) -> builtins.list[Job]:
        """Jobs whose lease ``worker_id`` holds, live or lapsed (a restarted worker resumes them)."""
        ...

    async def lapsed_leases(self, *, now: float, limit: int = 100) -> builtins.list[Job]:
        """Jobs held by a worker whose lease lapsed at or before ``now``, earliest lapse first."""
        ...

    async def waiting_since_before(
        self, statuses: Sequence[JobStatus], cutoff: float, *, limit: int = 100
    ) -> builtins.list[Job]:
        """Unleased jobs in ``statuses`` with ``waiting_since < cutoff``, longest waiting first."""
        ...

    async def close(self) -> None:
        """Release connections and flush what is pending."""
        ...
