"""A hypothesis state machine that drives a store and a plain-Python model side by side.

The model is written from the contract in ``expert_jobs.ports.store`` and nothing else (it is not
``MemoryStore``): dictionaries of job copies and checkpoint lists, claims chosen by sorting. Every
rule does one store call and compares its outcome with the model's; an invariant compares every
job after every step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import StaleJobVersion
from expert_jobs.domain.job import Job, JobQuery
from expert_jobs.domain.messages import Message
from expert_jobs.domain.status import JobStatus
from expert_jobs.ports.store import JobStore
from tests.stores.factories import T0, make_checkpoint, make_job, user

S = JobStatus
T = TypeVar("T")
LEASE = 30.0
APPS = ("app1", "app2")
KEYS = ("@acme/writer@1", "@acme/Reviewer@2", "planner@1", "WRITER@2")
WORKERS = ("w1", "w2", "w3")
RUNS = ("a", "b")
WAITING = (S.QUEUED, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT)
statuses = st.sampled_from(list(JobStatus))


def _claimable(job: Job, worker: str, now: float, *, by_id: bool) -> bool:
    if job.status is not S.QUEUED:
        return False
    if job.lease_owner is None or job.lease_expires_at is None or job.lease_expires_at <= now:
        return True
    return by_id and job.lease_owner == worker


class StoreMachine(RuleBasedStateMachine):
    """One store, one model, one event loop per example."""

    factory: ClassVar[Callable[[], Awaitable[JobStore]]]
    jobs = Bundle("jobs")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        try:
            self.store = self.loop.run_until_complete(self._open())
        except BaseException:
            self.loop.close()
            raise
        self.model: dict[str, Job] = {}
        self.checkpoints: dict[str, list[Checkpoint]] = {}
        self.now = T0 + 100

    async def _open(self) -> JobStore:
        return await self.factory()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one store call to completion on this example's loop."""
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        """Close the store and the loop."""
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()

    # -- writes ------------------------------------------------------------------------------

    @initialize(target=jobs, waits=st.lists(st.integers(0, 3), min_size=2, max_size=4))
    def queue_some(self, waits: list[int]) -> Any:
        ids = []
        for wait in waits:
            job_id = f"q{len(self.model):023d}"
            job = make_job(id=job_id, created_at=T0, waiting_since=T0 + wait, expert_key="@acme/writer@1")
            self.run(self.store.create(job))
            self.model[job_id] = job.copy()
            self.checkpoints[job_id] = []
            ids.append(job_id)
        return multiple(*ids)

    @rule(
        target=jobs,
        app=st.sampled_from(APPS),
        key=st.sampled_from(KEYS),
        created=st.integers(0, 4),
        status=st.sampled_from([S.QUEUED, S.QUEUED, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.COMPLETED]),
        prefix=st.sampled_from("abc"),
    )
    def create(self, app: str, key: str, created: int, status: JobStatus, prefix: str) -> str:
        # Ids decide ties, so they come from the example (reproducible), not from the random source.
        job_id = f"{prefix}{len(self.model):023d}"
        job = make_job(id=job_id, application_id=app, expert_key=key, created_at=T0 + created, status=status)
        self.run(self.store.create(job))
        self.model[job.id] = job.copy()
        self.checkpoints[job.id] = []
        return job.id

    @rule(
        job_id=jobs,
        status=statuses,
        updated=st.integers(0, 4),
        waiting=st.none() | st.integers(0, 4),
        run_id=st.none() | st.sampled_from(RUNS),
        n_messages=st.integers(0, 2),
    )
    def save(
        self,
        job_id: str,
        status: JobStatus,
        updated: int,
        waiting: int | None,
        run_id: str | None,
        n_messages: int,
    ) -> None:
        current = self.model[job_id]
        job = current.copy()
        job.status = status
        job.updated_at = T0 + updated
        job.current_step += 1
        if waiting is not None:
            job.waiting_since = T0 + waiting
        job.lease_owner, job.lease_expires_at = "scribbled", 0.0  # a save never writes these
        checkpoint = self._checkpoint(job, run_id, n_messages) if run_id is not None else None
        self.run(self.store.save(job, expected_version=current.version, checkpoint=checkpoint))
        assert job.version == current.version + 1
        assert (job.lease_owner, job.lease_expires_at) == (current.lease_owner, current.lease_expires_at)
        self.model[job_id] = job.copy()
        if checkpoint is not None:
            self.checkpoints[job_id].append(checkpoint)

    def _checkpoint(self, job: Job, run_id: str, n_messages: int) -> Checkpoint:
        previous = [c for c in self.checkpoints[job.id] if c.run_id == run_id]
        seq = len(self.checkpoints[job.id]) + 1
        messages: tuple[Message, ...] = tuple(user(f"{job.id}/{seq}/{i}") for i in range(n_messages))
        count = (previous[-1].message_count if previous else 0) + n_messages
        return make_checkpoint(job, seq, run_id=run_id, new_messages=messages, message_count=count)

    @rule(job_id=jobs, offset=st.sampled_from([-1, 1, 2]), run_id=st.sampled_from(RUNS))
    def stale_save(self, job_id: str, offset: int, run_id: str) -> None:
        current = self.model[job_id]
        expected = current.version + offset
        if expected < 0:
            expected = current.version + 1
        job = current.copy()
        job.status = S.FAILED
        checkpoint = self._checkpoint(job, run_id, 1)
        with pytest.raises(StaleJobVersion):
            self.run(self.store.save(job, expected_version=expected, checkpoint=checkpoint))
        assert job.version == current.version

    @rule(worker=st.sampled_from(WORKERS))
    def claim(self, worker: str) -> None:
        candidates = [job for job in self.model.values() if _claimable(job, worker, self.now, by_id=False)]
        candidates.sort(key=lambda j: (j.waiting_since, j.id))
        got = self.run(self.store.claim(worker, now=self.now, lease_seconds=LEASE))
        if not candidates:
            assert got is None
            return
        self._leased(candidates[0], worker, got)

    @rule(job_id=jobs, worker=st.sampled_from(WORKERS))
    def claim_by_id(self, job_id: str, worker: str) -> None:
        job = self.model[job_id]
        got = self.run(self.store.claim(worker, now=self.now, lease_seconds=LEASE, job_id=job_id))
        if not _claimable(job, worker, self.now, by_id=True):
            assert got is None
            return
        self._leased(job, worker, got)

    def _leased(self, job: Job, worker: str, got: Job | None) -> None:
        job.lease_owner, job.lease_expires_at = worker, self.now + LEASE
        assert got == job

    @rule(job_id=jobs, worker=st.sampled_from(WORKERS), seconds=st.sampled_from([10.0, 60.0]))
    def renew(self, job_id: str, worker: str, seconds: float) -> None:
        job = self.model[job_id]
        renewed = self.run(self.store.renew_lease(job_id, worker, now=self.now, lease_seconds=seconds))
        assert renewed is (job.lease_owner == worker)
        if renewed:
            job.lease_expires_at = self.now + seconds

    @rule(job_id=jobs, worker=st.sampled_from(WORKERS))
    def release(self, job_id: str, worker: str) -> None:
        self.run(self.store.release(job_id, worker))
        job = self.model[job_id]
        if job.lease_owner == worker:
            job.lease_owner = job.lease_expires_at = None

    @rule(seconds=st.sampled_from([1.0, 10.0, 20.0, 30.0, 60.0]))
    def advance(self, seconds: float) -> None:
        self.now += seconds

    # -- reads ----------------------------------------------------------------------------------

    @rule(
        app=st.sampled_from(APPS),
        needle=st.sampled_from([None, "", "writer", "E", "@acme", "%", "nothing"]),
        sort=st.sampled_from(["createdAt", "updatedAt"]),
        order=st.sampled_from(["asc", "desc"]),
        take=st.integers(0, 4),
        skip=st.integers(0, 4),
        wanted=st.none() | st.frozensets(statuses, min_size=1, max_size=3),
    )
    def list_jobs(
        self,
        app: str,
        needle: str | None,
        sort: Any,
        order: Any,
        take: int,
        skip: int,
        wanted: frozenset[JobStatus] | None,
    ) -> None:
        query = JobQuery(application_id=app, filter=needle, sort=sort, order=order, take=take, skip=skip,
                         statuses=wanted)
        field = "created_at" if sort == "createdAt" else "updated_at"
        matching = [
            job
            for job in self.model.values()
            if job.application_id == app
            and (not needle or needle.lower() in job.expert_key.lower())
            and (wanted is None or job.status in wanted)
        ]
        matching.sort(key=lambda j: (getattr(j, field), j.id), reverse=order == "desc")
        assert self.run(self.store.list(query)) == (matching[skip : skip + take], len(matching))

    @rule(
        wanted=st.lists(st.sampled_from(WAITING), min_size=1, max_size=3, unique=True),
        cutoff=st.integers(0, 5),
        limit=st.integers(1, 4),
    )
    def waiting_since_before(self, wanted: list[JobStatus], cutoff: int, limit: int) -> None:
        expected = [
            job
            for job in self.model.values()
            if job.status in wanted and job.lease_owner is None and job.waiting_since < T0 + cutoff
        ]
        expected.sort(key=lambda j: (j.waiting_since, j.id))
        found = self.run(self.store.waiting_since_before(wanted, T0 + cutoff, limit=limit))
        assert found == expected[:limit]

    @rule(job_id=jobs, take=st.integers(0, 4), skip=st.integers(0, 3), after=st.none() | st.integers(0, 5))
    def list_checkpoints(self, job_id: str, take: int, skip: int, after: int | None) -> None:
        checkpoints = [c for c in self.checkpoints[job_id] if after is None or c.seq > after]
        found = self.run(self.store.list_checkpoints(job_id, take=take, skip=skip, after_seq=after))
        assert found == (checkpoints[skip : skip + take], len(checkpoints))
        for checkpoint in checkpoints[:2]:
            assert self.run(self.store.get_checkpoint(job_id, checkpoint.id)) == checkpoint

    @rule(job_id=jobs, run_id=st.sampled_from(RUNS), upto=st.none() | st.integers(0, 6))
    def load_history(self, job_id: str, run_id: str, upto: int | None) -> None:
        expected = [
            message
            for checkpoint in self.checkpoints[job_id]
            if checkpoint.run_id == run_id and (upto is None or checkpoint.seq <= upto)
            for message in checkpoint.new_messages
        ]
        assert self.run(self.store.load_history(job_id, run_id, upto_seq=upto)) == expected

    @invariant()
    def every_job_matches_the_model(self) -> None:
        for job_id, job in self.model.items():
            assert self.run(self.store.get(job_id)) == job

    @invariant()
    def leases_match_the_model(self) -> None:
        for worker in WORKERS:
            held = self.run(self.store.held_by(worker))
            expected = [job for job in self.model.values() if job.lease_owner == worker]
            assert sorted(held, key=lambda j: j.id) == sorted(expected, key=lambda j: j.id)
        lapsed = [
            job
            for job in self.model.values()
            if job.lease_owner is not None
            and job.lease_expires_at is not None
            and job.lease_expires_at <= self.now
        ]
        lapsed.sort(key=lambda j: (j.lease_expires_at, j.id))
        assert self.run(self.store.lapsed_leases(now=self.now)) == lapsed
        if len(lapsed) > 1:
            assert self.run(self.store.lapsed_leases(now=self.now, limit=1)) == lapsed[:1]

    @invariant()
    def latest_checkpoints_match_the_model(self) -> None:
        for job_id, checkpoints in self.checkpoints.items():
            expected = {checkpoint.run_id: checkpoint for checkpoint in checkpoints}
            assert self.run(self.store.latest_checkpoints(job_id)) == expected


def run_store_machine(factory: Callable[[], Awaitable[JobStore]], *, max_examples: int) -> None:
    """Run :class:`StoreMachine` against stores made by ``factory``."""

    class Machine(StoreMachine):
        pass

    Machine.factory = staticmethod(factory)  # type: ignore[assignment]
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=max_examples,
            stateful_step_count=50,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
