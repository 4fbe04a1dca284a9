"""The store contract: every ``JobStore`` passes these tests, whatever keeps its data.

A test module subclasses :class:`StoreContract` and provides a ``store_factory`` fixture: an async
callable returning a fresh, empty store each time it is called. The ``store`` fixture opens one per
test and closes it; the state-machine test opens one per hypothesis example, on its own event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import JobError, StaleJobVersion, StoreError
from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import IDENTITY_FIELDS, STATE_FIELDS, Job, JobQuery
from expert_jobs.domain.status import JobStatus
from expert_jobs.ports.store import JobStore
from tests.stores.factories import (
    T0,
    assistant,
    make_checkpoint,
    make_job,
    make_rich_checkpoint,
    make_rich_job,
    user,
)
from tests.stores.old_rows import OLD_JOB_ERROR_TEXT, assert_reads_old_rows, old_checkpoint_data
from tests.stores.statemachine import run_store_machine

StoreFactory = Callable[[], Awaitable[JobStore]]

S = JobStatus
LEASE = 30.0




async def _created(store: JobStore, **fields: object) -> Job:
    job = make_job(**fields)
    await store.create(job)
    return job


async def _saved(store: JobStore, job: Job, **changes: object) -> Job:
    """Save a copy of ``job`` with ``changes`` at its current version and return it."""
    update = job.copy()
    for name, value in changes.items():
        setattr(update, name, value)
    await store.save(update, expected_version=job.version)
    return update


class StoreContract:
    """The behaviour every job store shares (see ``expert_jobs.ports.store``)."""

    state_machine_examples = 40

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[JobStore]:
        """A fresh, empty store, closed after the test."""
        store = await store_factory()
        try:
            yield store
        finally:
            await store.close()

    # -- create / get -------------------------------------------------------------------------

    async def test_is_a_job_store(self, store: JobStore) -> None:
        assert isinstance(store, JobStore)

    async def test_create_then_get_round_trips_every_field(self, store: JobStore) -> None:
        job = make_rich_job()
        job.version = 7
        await store.create(job)
        assert job.version == 0
        stored = await store.get(job.id)
        assert stored is not None
        assert stored is not job
        assert stored == job
        assert stored.usage == job.usage and stored.files == job.files and stored.error == job.error
        assert stored.interactive_tool_call_result is False
        assert type(stored.status) is JobStatus and type(stored.files) is tuple

    async def test_round_trips_defaults_and_none(self, store: JobStore) -> None:
        job = make_job(query=None, interactive_tool_call_result=True)
        await store.create(job)
        stored = await store.get(job.id)
        assert stored == job
        assert stored is not None and stored.query is None and stored.interactive_tool_call_result is True

    async def test_get_of_an_unknown_id_is_none(self, store: JobStore) -> None:
        assert await store.get("nosuchjob000000000000000") is None

    async def test_create_refuses_an_existing_id(self, store: JobStore) -> None:
        job = await _created(store)
        with pytest.raises(StoreError, match=job.id):
            await store.create(make_job(id=job.id, query="other"))
        stored = await store.get(job.id)
        assert stored is not None and stored.query == "Say hello."

    async def test_the_previous_versions_data_is_kept_and_read_back(self, store: JobStore) -> None:
        # A checkpoint and a job error as the previous version stored them (see old_rows.py);
        # the SQL stores also read those very rows (test_sqlite.py, test_postgres.py).
        job = make_job(checkpoint_seq=1, error=JobError.from_data(json.loads(OLD_JOB_ERROR_TEXT)))
        checkpoint = Checkpoint.from_data(old_checkpoint_data(job, new_id()))
        job.last_checkpoint_id = checkpoint.id
        await store.create(job, checkpoint)
        await assert_reads_old_rows(store, job, checkpoint.id)

    async def test_create_with_a_first_checkpoint(self, store: JobStore) -> None:
        job = make_job(checkpoint_seq=1)
        first = make_checkpoint(job, 1, new_messages=(user("q"), assistant("a")), message_count=2)
        job.last_checkpoint_id = first.id
        await store.create(job, first)
        assert await store.get(job.id) == job
        assert await store.list_checkpoints(job.id) == ([first], 1)
        assert await store.latest_checkpoints(job.id) == {first.run_id: first}
        assert await store.load_history(job.id, first.run_id) == [user("q"), assistant("a")]

    async def test_a_refused_create_writes_no_checkpoint(self, store: JobStore) -> None:
        job = await _created(store)
        again = make_job(id=job.id)
        with pytest.raises(StoreError, match=job.id):
            await store.create(again, make_checkpoint(again, 1))
        assert await store.list_checkpoints(job.id) == ([], 0)

    async def test_jobs_handed_out_are_copies(self, store: JobStore) -> None:
        job = await _created(store)
        job.query = "changed after create"
        first = await store.get(job.id)
        assert first is not None and first.query == "Say hello."
        first.query = "changed after get"
        first.status = S.FAILED
        second = await store.get(job.id)
        assert second is not None and second.query == "Say hello." and second.status is S.QUEUED
        assert second is not first

    # -- save -----------------------------------------------------------------------------------

    async def test_save_writes_the_job_and_bumps_the_version(self, store: JobStore) -> None:
        job = await _created(store)
        job.fire("start")
        job.current_step = 1
        job.updated_at = T0 + 5
        await store.save(job, expected_version=0)
        assert job.version == 1
        stored = await store.get(job.id)
        assert stored == job
        job.fire("complete")
        await store.save(job, expected_version=1)
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 2 and stored.status is S.COMPLETED

    async def test_save_snapshots_the_job_when_called(self, store: JobStore) -> None:
        job = await _created(store)
        job.current_step = 1
        pending = asyncio.ensure_future(store.save(job, expected_version=0))
        await asyncio.sleep(0)  # the save runs up to its first suspension
        job.current_step = 99  # the caller keeps mutating its object while the save is in flight
        await pending
        stored = await store.get(job.id)
        assert stored is not None and stored.current_step == 1 and stored.version == 1

    async def test_a_stale_save_raises_and_writes_nothing(self, store: JobStore) -> None:
        job = await _created(store)
        winner = await _saved(store, job, current_step=1)
        loser = job.copy()
        loser.current_step = 2
        checkpoint = make_checkpoint(loser, 1, new_messages=(user("lost"),), message_count=1)
        with pytest.raises(StaleJobVersion) as raised:
            await store.save(loser, expected_version=0, checkpoint=checkpoint)
        assert (raised.value.job_id, raised.value.expected, raised.value.actual) == (job.id, 0, 1)
        assert loser.version == 0
        assert await store.get(job.id) == winner
        assert await store.get_checkpoint(job.id, checkpoint.id) is None
        assert await store.list_checkpoints(job.id) == ([], 0)
        assert await store.latest_checkpoints(job.id) == {}
        assert await store.load_history(job.id, "run1") == []

    async def test_a_save_ahead_of_the_store_is_stale_too(self, store: JobStore) -> None:
        job = await _created(store)
        with pytest.raises(StaleJobVersion) as raised:
            await store.save(job, expected_version=3)
        assert (raised.value.expected, raised.value.actual) == (3, 0)

    async def test_saving_an_unknown_job_raises_and_writes_no_checkpoint(self, store: JobStore) -> None:
        ghost = make_job()
        checkpoint = make_checkpoint(ghost, 1)
        with pytest.raises(StoreError, match=ghost.id):
            await store.save(ghost, expected_version=0, checkpoint=checkpoint)
        assert await store.get(ghost.id) is None
        assert await store.get_checkpoint(ghost.id, checkpoint.id) is None

    async def test_concurrent_saves_of_one_version_let_exactly_one_win(self, store: JobStore) -> None:
        job = await _created(store)
        attempts = []
        for step in range(1, 9):
            attempt = job.copy()
            attempt.current_step = step
            checkpoint = make_checkpoint(attempt, 1, step=step)
            attempts.append(store.save(attempt, expected_version=0, checkpoint=checkpoint))
        outcomes = await asyncio.gather(*attempts, return_exceptions=True)
        assert sum(outcome is None for outcome in outcomes) == 1
        assert sum(isinstance(outcome, StaleJobVersion) for outcome in outcomes) == 7
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 1
        checkpoints, total = await store.list_checkpoints(job.id)
        assert total == 1 and checkpoints[0].step == stored.current_step

    async def test_concurrent_saves_of_different_jobs_all_succeed(self, store: JobStore) -> None:
        jobs = [await _created(store) for _ in range(20)]
        for job in jobs:
            job.current_step = 1
        await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs)
        )
        for job in jobs:
            stored = await store.get(job.id)
            assert stored is not None and stored.version == 1 and stored.current_step == 1
            assert (await store.list_checkpoints(job.id))[1] == 1

    async def test_save_keeps_the_stored_lease_and_hands_it_back(self, store: JobStore) -> None:
        job = await _created(store)
        claimed = await store.claim("w1", now=T0 + 10, lease_seconds=LEASE)
        assert claimed is not None
        # A copy taken before the claim knows nothing of the lease; saving it keeps the lease.
        job.fire("start")
        await store.save(job, expected_version=0)
        assert (job.lease_owner, job.lease_expires_at) == ("w1", T0 + 10 + LEASE)
        # A save cannot write lease fields either.
        job.lease_owner, job.lease_expires_at = "intruder", T0
        await store.save(job, expected_version=1)
        assert (job.lease_owner, job.lease_expires_at) == ("w1", T0 + 10 + LEASE)
        stored = await store.get(job.id)
        assert stored is not None
        assert (stored.lease_owner, stored.lease_expires_at) == ("w1", T0 + 10 + LEASE)

    async def test_save_writes_every_state_field_and_never_the_identity(self, store: JobStore) -> None:
        job = await _created(store)
        created = job.copy()
        rich = make_rich_job()
        # Everything a run or a continue may change is written...
        for name in STATE_FIELDS:
            setattr(job, name, getattr(rich, name))
        # ...while the job's identity and request stay as created, whatever the caller's copy says.
        for name in IDENTITY_FIELDS:
            setattr(job, name, getattr(rich, name))
        await store.save(job, expected_version=0)
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 1
        assert {n: getattr(stored, n) for n in STATE_FIELDS} == {n: getattr(rich, n) for n in STATE_FIELDS}
        assert {n: getattr(stored, n) for n in IDENTITY_FIELDS} == {
            n: getattr(created, n) for n in IDENTITY_FIELDS
        }

    async def test_a_releasing_save_drops_the_lease_of_its_worker_only(self, store: JobStore) -> None:
        job = await _created(store)
        claimed = await store.claim("w1", now=T0 + 10, lease_seconds=LEASE)
        assert claimed is not None and claimed.id == job.id
        claimed.fire("start")
        await store.save(claimed, expected_version=0, release_for="w2")  # not w2's lease: kept
        assert (claimed.lease_owner, claimed.lease_expires_at) == ("w1", T0 + 10 + LEASE)
        claimed.fire("requeue")
        claimed.waiting_since = T0 + 11
        await store.save(claimed, expected_version=1, release_for="w1")
        assert (claimed.lease_owner, claimed.lease_expires_at) == (None, None)
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 2 and stored.status is S.QUEUED
        assert (stored.lease_owner, stored.lease_expires_at) == (None, None)
        # Released with the write: another worker takes it at once, not after the lease.
        again = await store.claim("w2", now=T0 + 12, lease_seconds=LEASE)
        assert again is not None and again.id == job.id and again.lease_owner == "w2"

    async def test_a_stale_releasing_save_keeps_the_lease(self, store: JobStore) -> None:
        job = await _created(store)
        claimed = await store.claim("w1", now=T0, lease_seconds=LEASE)
        assert claimed is not None
        with pytest.raises(StaleJobVersion):
            await store.save(claimed, expected_version=5, release_for="w1")
        stored = await store.get(job.id)
        assert stored is not None and stored.lease_owner == "w1" and stored.version == 0

    async def test_save_does_not_need_the_lease(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        job.fire("cancel")  # e.g. the service cancels a job a worker holds
        await store.save(job, expected_version=0)
        stored = await store.get(job.id)
        assert stored is not None and stored.status is S.CANCELING and stored.lease_owner == "w1"

    # -- list -----------------------------------------------------------------------------------

    async def _list_fixture(self, store: JobStore) -> list[Job]:
        specs = [
            ("@acme/writer@1.0.0", 3, 10, S.QUEUED),
            ("@acme/Reviewer@1.0.0", 1, 14, S.COMPLETED),
            ("planner@2", 2, 11, S.FAILED),
            ("WRITER@3", 2, 13, S.QUEUED),
            ("@x/re_view%er@1", 5, 12, S.PROCESSING),
            ("@acme/writer@2.0.0", 4, 10, S.COMPLETED),
        ]
        jobs = []
        for key, created, updated, status in specs:
            jobs.append(
                await _created(
                    store, expert_key=key, created_at=T0 + created, updated_at=T0 + updated, status=status
                )
            )
        await _created(store, application_id="app2", expert_key="@acme/writer@1.0.0", created_at=T0 + 9)
        await _created(store, application_id="app2", expert_key="planner@2", created_at=T0)
        return jobs

    @staticmethod
    def _ids(jobs: list[Job]) -> list[str]:
        return [job.id for job in jobs]

    async def test_list_defaults_to_newest_first_within_the_application(self, store: JobStore) -> None:
        jobs = await self._list_fixture(store)
        page, total = await store.list(JobQuery(application_id="app1"))
        assert total == 6
        expected = sorted(jobs, key=lambda j: (j.created_at, j.id), reverse=True)
        assert self._ids(page) == self._ids(expected)
        assert page[0].expert_key == "@x/re_view%er@1"
        assert all(job.application_id == "app1" for job in page)
        assert await store.list(JobQuery(application_id="nobody")) == ([], 0)

    @pytest.mark.parametrize("sort", ["createdAt", "updatedAt"])
    @pytest.mark.parametrize("order", ["asc", "desc"])
    async def test_list_sorts_by_the_field_with_ties_on_id(
        self, store: JobStore, sort: str, order: str
    ) -> None:
        jobs = await self._list_fixture(store)
        page, total = await store.list(JobQuery(application_id="app1", sort=sort, order=order))  # type: ignore[arg-type]
        field = "created_at" if sort == "createdAt" else "updated_at"
        expected = sorted(jobs, key=lambda j: (getattr(j, field), j.id), reverse=order == "desc")
        assert total == 6 and self._ids(page) == self._ids(expected)

    async def test_list_filter_is_a_case_insensitive_substring_of_the_key(self, store: JobStore) -> None:
        jobs = await self._list_fixture(store)
        page, total = await store.list(JobQuery(application_id="app1", filter="wRiTeR", order="asc"))
        assert total == 3
        assert [job.expert_key for job in page] == ["WRITER@3", "@acme/writer@1.0.0", "@acme/writer@2.0.0"]
        # LIKE wildcards are plain characters in a filter.
        page, total = await store.list(JobQuery(application_id="app1", filter="w%ER"))
        assert total == 1 and page[0].expert_key == "@x/re_view%er@1"
        assert await store.list(JobQuery(application_id="app1", filter="%")) == ([page[0]], 1)
        assert (await store.list(JobQuery(application_id="app1", filter="_")))[1] == 1
        assert (await store.list(JobQuery(application_id="app1", filter="er_1")))[1] == 0  # LIKE: 2
        assert (await store.list(JobQuery(application_id="app1", filter="nothing")))[1] == 0
        assert (await store.list(JobQuery(application_id="app1", filter="")))[1] == len(jobs)

    async def test_list_by_statuses(self, store: JobStore) -> None:
        await self._list_fixture(store)
        wanted = frozenset({S.QUEUED, S.PROCESSING})
        page, total = await store.list(JobQuery(application_id="app1", statuses=wanted))
        assert total == 3 and {job.status for job in page} == wanted
        page, total = await store.list(JobQuery(application_id="app1", statuses=frozenset({S.COMPLETED}),
                                                filter="writer"))
        assert total == 1 and page[0].expert_key == "@acme/writer@2.0.0"
        assert await store.list(JobQuery(application_id="app1", statuses=frozenset({S.EXPIRED}))) == ([], 0)

    async def test_list_pages_with_take_and_skip_and_a_total_of_all_matches(self, store: JobStore) -> None:
        jobs = await self._list_fixture(store)
        expected = self._ids(sorted(jobs, key=lambda j: (j.created_at, j.id)))
        seen = []
        for skip in range(0, 6, 4):
            page, total = await store.list(JobQuery(application_id="app1", order="asc", take=4, skip=skip))
            assert total == 6
            seen.extend(self._ids(page))
        assert seen == expected
        assert await store.list(JobQuery(application_id="app1", skip=6)) == ([], 6)
        assert await store.list(JobQuery(application_id="app1", take=0)) == ([], 6)

    async def test_list_returns_current_versions_as_copies(self, store: JobStore) -> None:
        job = await _created(store)
        await _saved(store, job, status=S.PROCESSING, updated_at=T0 + 1)
        page, _ = await store.list(JobQuery(application_id="app1"))
        assert page[0].status is S.PROCESSING and page[0].version == 1
        page[0].status = S.FAILED
        assert (await store.list(JobQuery(application_id="app1")))[0][0].status is S.PROCESSING

    async def test_paging_beyond_what_a_database_holds_and_nul_filters_are_safe(
        self, store: JobStore
    ) -> None:
        """Any take/skip/after_seq (huge or negative) and a filter holding NUL: a page, never an error."""
        jobs = await self._list_fixture(store)
        job, checkpoints = await self._two_runs(store)
        everything = len(jobs) + 1
        for skip in (2**63 - 1, 2**63, 10**30):
            assert await store.list(JobQuery(application_id="app1", skip=skip)) == ([], everything)
            assert await store.list_checkpoints(job.id, skip=skip) == ([], 6)
        page, total = await store.list(JobQuery(application_id="app1", take=2**64, skip=-5))
        assert (len(page), total) == (everything, everything)
        assert await store.list_checkpoints(job.id, take=2**64, skip=-1) == (checkpoints, 6)
        assert await store.list_checkpoints(job.id, after_seq=2**70) == ([], 0)
        assert await store.list_checkpoints(job.id, after_seq=-(2**70)) == (checkpoints, 6)
        assert await store.list(JobQuery(application_id="app1", filter="writer\x00")) == ([], 0)

    # -- checkpoints ------------------------------------------------------------------------------

    async def test_a_checkpoint_round_trips_every_field(self, store: JobStore) -> None:
        job = await _created(store)
        checkpoint = make_rich_checkpoint(job, 1)
        await store.save(job, expected_version=0, checkpoint=checkpoint)
        assert await store.get_checkpoint(job.id, checkpoint.id) == checkpoint
        assert await store.list_checkpoints(job.id) == ([checkpoint], 1)
        assert await store.latest_checkpoints(job.id) == {"run-rich": checkpoint}
        assert await store.load_history(job.id, "run-rich") == list(checkpoint.new_messages)

    async def _two_runs(self, store: JobStore) -> tuple[Job, list[object]]:
        """Job with runs ``a`` (seq 1, 3, 4, 6) and ``b`` (seq 2, 5); returns the checkpoints in order."""
        job = await _created(store)
        plan = [
            ("a", (user("qa"),)),
            ("b", (user("qb"),)),
            ("a", (assistant("a1"), user("more"))),
            ("a", (assistant("a2"),)),
            ("b", (assistant("b1"),)),
            ("a", ()),
        ]
        counts = {"a": 0, "b": 0}
        checkpoints: list[object] = []
        for seq, (run, messages) in enumerate(plan, start=1):
            counts[run] += len(messages)
            checkpoint = make_checkpoint(
                job, seq, run_id=run, new_messages=messages, message_count=counts[run]
            )
            job.current_step = seq
            await store.save(job, expected_version=job.version, checkpoint=checkpoint)
            checkpoints.append(checkpoint)
        return job, checkpoints

    async def test_checkpoints_list_in_seq_order_with_paging(self, store: JobStore) -> None:
        job, checkpoints = await self._two_runs(store)
        assert await store.list_checkpoints(job.id) == (checkpoints, 6)
        assert await store.list_checkpoints(job.id, take=2, skip=1) == (checkpoints[1:3], 6)
        assert await store.list_checkpoints(job.id, after_seq=4) == (checkpoints[4:], 2)
        assert await store.list_checkpoints(job.id, after_seq=2, take=1, skip=1) == ([checkpoints[3]], 4)
        assert await store.list_checkpoints(job.id, after_seq=6) == ([], 0)
        assert await store.list_checkpoints(job.id, after_seq=0) == (checkpoints, 6)
        assert await store.list_checkpoints(job.id, skip=10) == ([], 6)
        assert await store.list_checkpoints("nosuchjob000000000000000") == ([], 0)

    async def test_get_checkpoint_belongs_to_its_job(self, store: JobStore) -> None:
        job, checkpoints = await self._two_runs(store)
        other = await _created(store)
        target = checkpoints[2]
        assert await store.get_checkpoint(job.id, target.id) == target  # type: ignore[attr-defined]
        assert await store.get_checkpoint(other.id, target.id) is None  # type: ignore[attr-defined]
        assert await store.get_checkpoint(job.id, "nosuchcheckpoint00000000") is None

    async def test_latest_checkpoint_of_each_run(self, store: JobStore) -> None:
        job, checkpoints = await self._two_runs(store)
        assert await store.latest_checkpoints(job.id) == {"a": checkpoints[5], "b": checkpoints[4]}
        assert await store.latest_checkpoints("nosuchjob000000000000000") == {}

    async def test_load_history_concatenates_a_runs_deltas_up_to_a_seq(self, store: JobStore) -> None:
        job, _ = await self._two_runs(store)
        full_a = [user("qa"), assistant("a1"), user("more"), assistant("a2")]
        assert await store.load_history(job.id, "a") == full_a
        assert await store.load_history(job.id, "a", upto_seq=6) == full_a
        assert await store.load_history(job.id, "a", upto_seq=4) == full_a
        assert await store.load_history(job.id, "a", upto_seq=3) == full_a[:3]
        assert await store.load_history(job.id, "a", upto_seq=2) == full_a[:1]
        assert await store.load_history(job.id, "a", upto_seq=0) == []
        assert await store.load_history(job.id, "b") == [user("qb"), assistant("b1")]
        assert await store.load_history(job.id, "b", upto_seq=4) == [user("qb")]
        assert await store.load_history(job.id, "c") == []

    # -- claim ------------------------------------------------------------------------------------

    async def test_claim_finds_nothing_without_queued_jobs(self, store: JobStore) -> None:
        assert await store.claim("w1", now=T0, lease_seconds=LEASE) is None
        for status in (S.PROCESSING, S.COMPLETED, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.CANCELING):
            await _created(store, status=status)
        assert await store.claim("w1", now=T0, lease_seconds=LEASE) is None

    async def test_claim_leases_the_job_without_changing_it_otherwise(self, store: JobStore) -> None:
        job = await _created(store)
        claimed = await store.claim("w1", now=T0 + 100, lease_seconds=LEASE)
        assert claimed is not None and claimed.id == job.id
        assert (claimed.lease_owner, claimed.lease_expires_at) == ("w1", T0 + 100 + LEASE)
        assert claimed.status is S.QUEUED and claimed.version == 0
        stored = await store.get(job.id)
        assert stored == claimed
        job.lease_owner, job.lease_expires_at = "w1", T0 + 100 + LEASE
        assert stored == job

    async def test_claim_takes_the_longest_waiting_first_ties_on_id(self, store: JobStore) -> None:
        jobs = [await _created(store, waiting_since=T0 + wait, created_at=T0) for wait in (3, 1, 2, 1, 0.5)]
        expected = sorted(jobs, key=lambda j: (j.waiting_since, j.id))
        claimed = []
        for worker in ("w1", "w2", "w1", "w3", "w1"):
            job = await store.claim(worker, now=T0 + 10, lease_seconds=LEASE)
            assert job is not None
            claimed.append(job.id)
        assert claimed == self._ids(expected)
        assert await store.claim("w4", now=T0 + 10, lease_seconds=LEASE) is None

    async def test_a_requeued_job_waits_behind_older_ones(self, store: JobStore) -> None:
        first = await _created(store, waiting_since=T0)
        second = await _created(store, waiting_since=T0 + 1)
        await _saved(store, first, waiting_since=T0 + 2)
        job = await store.claim("w1", now=T0 + 10, lease_seconds=LEASE)
        assert job is not None and job.id == second.id

    async def test_one_worker_at_a_time(self, store: JobStore) -> None:
        job = await _created(store)
        assert (await store.claim("w1", now=T0, lease_seconds=LEASE)) is not None
        assert await store.claim("w2", now=T0 + 1, lease_seconds=LEASE) is None
        assert await store.claim("w1", now=T0 + 1, lease_seconds=LEASE) is None  # never handed out twice
        assert await store.claim("w2", now=T0 + LEASE - 0.001, lease_seconds=LEASE) is None
        stored = await store.get(job.id)
        assert stored is not None and stored.lease_owner == "w1"

    async def test_a_lapsed_lease_makes_the_job_claimable_again(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        again = await store.claim("w2", now=T0 + LEASE, lease_seconds=LEASE)  # lapses at its expiry
        assert again is not None and again.id == job.id
        assert (again.lease_owner, again.lease_expires_at) == ("w2", T0 + 2 * LEASE)
        assert await store.renew_lease(job.id, "w1", now=T0 + LEASE, lease_seconds=LEASE) is False
        assert await store.held_by("w1") == []

    async def test_a_queued_job_under_a_live_lease_is_skipped(self, store: JobStore) -> None:
        older = await _created(store, waiting_since=T0)
        newer = await _created(store, waiting_since=T0 + 1)
        claimed = await store.claim("w1", now=T0 + 5, lease_seconds=LEASE)
        assert claimed is not None and claimed.id == older.id
        claimed.fire("start")
        await store.save(claimed, expected_version=0)
        claimed.fire("requeue")  # back to queued while w1's lease still runs
        await store.save(claimed, expected_version=1)
        got = await store.claim("w2", now=T0 + 6, lease_seconds=LEASE)
        assert got is not None and got.id == newer.id
        assert await store.claim("w2", now=T0 + 7, lease_seconds=LEASE) is None
        got = await store.claim("w2", now=T0 + 5 + LEASE, lease_seconds=LEASE)
        assert got is not None and got.id == older.id and got.version == 2

    async def test_a_processing_job_with_a_lapsed_lease_is_not_claimed(self, store: JobStore) -> None:
        job = await _created(store)
        claimed = await store.claim("w1", now=T0, lease_seconds=LEASE)
        assert claimed is not None
        await _saved(store, job, status=S.PROCESSING)
        assert await store.claim("w2", now=T0 + 10 * LEASE, lease_seconds=LEASE) is None

    async def test_released_queued_job_is_claimable_at_once(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        await store.release(job.id, "w1")
        again = await store.claim("w2", now=T0 + 1, lease_seconds=LEASE)
        assert again is not None and again.id == job.id and again.lease_owner == "w2"

    async def test_concurrent_claims_hand_each_job_to_one_worker(self, store: JobStore) -> None:
        jobs = [await _created(store, waiting_since=T0 + i) for i in range(10)]
        results = await asyncio.gather(
            *(store.claim(f"w{i}", now=T0 + 20, lease_seconds=LEASE) for i in range(15))
        )
        claimed = [job for job in results if job is not None]
        assert sorted(job.id for job in claimed) == sorted(job.id for job in jobs)
        for job in claimed:
            stored = await store.get(job.id)
            assert stored is not None and stored.lease_owner == job.lease_owner

    async def test_claim_by_id(self, store: JobStore) -> None:
        older = await _created(store, waiting_since=T0)
        newer = await _created(store, waiting_since=T0 + 1)
        got = await store.claim("w1", now=T0 + 2, lease_seconds=LEASE, job_id=newer.id)
        assert got is not None and got.id == newer.id and got.lease_owner == "w1"
        assert await store.claim("w2", now=T0 + 3, lease_seconds=LEASE, job_id=newer.id) is None
        # The holder may claim its own job again by id: that renews the lease.
        got = await store.claim("w1", now=T0 + 3, lease_seconds=LEASE, job_id=newer.id)
        assert got is not None and got.lease_expires_at == T0 + 3 + LEASE
        got = await store.claim("w2", now=T0 + 3 + LEASE, lease_seconds=LEASE, job_id=newer.id)
        assert got is not None and got.lease_owner == "w2"
        # The general claim still finds the other job, and nothing else.
        got = await store.claim("w3", now=T0 + 4, lease_seconds=LEASE)
        assert got is not None and got.id == older.id
        assert await store.claim("w3", now=T0 + 4, lease_seconds=LEASE) is None

    async def test_claim_by_id_needs_a_queued_job(self, store: JobStore) -> None:
        paused = await _created(store, status=S.REQUEST_INTERACTIVE_TOOL_RESULT)
        assert await store.claim("w1", now=T0, lease_seconds=LEASE, job_id=paused.id) is None
        assert await store.claim("w1", now=T0, lease_seconds=LEASE, job_id="nosuchjob000000000000000") is None
        stored = await store.get(paused.id)
        assert stored is not None and stored.lease_owner is None

    # -- leases -------------------------------------------------------------------------------------

    async def test_renew_extends_only_the_holders_lease(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        assert await store.renew_lease(job.id, "w2", now=T0 + 5, lease_seconds=LEASE) is False
        assert await store.renew_lease(job.id, "w1", now=T0 + 5, lease_seconds=60) is True
        stored = await store.get(job.id)
        assert stored is not None and (stored.lease_owner, stored.lease_expires_at) == ("w1", T0 + 65)
        assert stored.version == 0
        assert await store.claim("w2", now=T0 + 64, lease_seconds=LEASE) is None
        assert await store.renew_lease("nosuchjob000000000000000", "w1", now=T0, lease_seconds=LEASE) is False

    async def test_a_lapsed_lease_nobody_took_can_still_be_renewed(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        assert await store.renew_lease(job.id, "w1", now=T0 + 2 * LEASE, lease_seconds=LEASE) is True
        assert await store.claim("w2", now=T0 + 2 * LEASE + 1, lease_seconds=LEASE) is None

    async def test_release_drops_only_the_holders_lease(self, store: JobStore) -> None:
        job = await _created(store)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        await store.release(job.id, "w2")
        stored = await store.get(job.id)
        assert stored is not None and stored.lease_owner == "w1"
        await store.release(job.id, "w1")
        stored = await store.get(job.id)
        assert stored is not None and (stored.lease_owner, stored.lease_expires_at) == (None, None)
        assert stored.version == 0
        await store.release("nosuchjob000000000000000", "w1")  # no error

    async def test_held_by_lists_live_and_lapsed_leases_of_the_worker(self, store: JobStore) -> None:
        first = await _created(store, waiting_since=T0)
        second = await _created(store, waiting_since=T0 + 1)
        third = await _created(store, waiting_since=T0 + 2)
        await store.claim("w1", now=T0, lease_seconds=LEASE)
        await _saved(store, first, status=S.PROCESSING)
        await store.claim("w1", now=T0 + 100, lease_seconds=LEASE)  # first's lease has lapsed by now
        await store.claim("w2", now=T0 + 100, lease_seconds=LEASE)
        held = await store.held_by("w1")
        assert sorted(job.id for job in held) == sorted([first.id, second.id])
        assert {job.status for job in held} == {S.PROCESSING, S.QUEUED}
        assert [job.id for job in await store.held_by("w2")] == [third.id]
        assert await store.held_by("w9") == []

    async def test_lapsed_leases_earliest_first_with_a_limit(self, store: JobStore) -> None:
        jobs = [await _created(store, waiting_since=T0 + i) for i in range(4)]
        await store.claim("w1", now=T0 + 20, lease_seconds=LEASE)  # jobs[0] lapses at T0+50
        await store.claim("w2", now=T0 + 10, lease_seconds=LEASE)  # jobs[1] lapses at T0+40
        await store.claim("w3", now=T0 + 30, lease_seconds=LEASE)  # jobs[2] lapses at T0+60
        assert await store.lapsed_leases(now=T0 + 39) == []
        lapsed = await store.lapsed_leases(now=T0 + 50)
        assert [job.id for job in lapsed] == [jobs[1].id, jobs[0].id]
        assert lapsed[0].lease_owner == "w2"
        limited = await store.lapsed_leases(now=T0 + 100, limit=2)
        assert [job.id for job in limited] == [jobs[1].id, jobs[0].id]
        await store.release(jobs[1].id, "w2")
        assert [job.id for job in await store.lapsed_leases(now=T0 + 100)] == [jobs[0].id, jobs[2].id]

    async def test_waiting_since_before_finds_unleased_waiting_jobs(self, store: JobStore) -> None:
        waiting = (S.QUEUED, S.REQUEST_INTERACTIVE_TOOL_RESULT, S.REQUEST_DELEGATE_RESULT)
        queued = await _created(store, waiting_since=T0 + 2)
        paused = await _created(store, waiting_since=T0 + 1, status=S.REQUEST_INTERACTIVE_TOOL_RESULT)
        tie = await _created(store, waiting_since=T0 + 1, status=S.REQUEST_DELEGATE_RESULT)
        await _created(store, waiting_since=T0 + 5)  # exactly at the cutoff: not before it
        await _created(store, waiting_since=T0, status=S.PROCESSING)
        await _created(store, waiting_since=T0, status=S.COMPLETED)
        leased = await _created(store, waiting_since=T0 - 100)
        await store.claim("w1", now=T0, lease_seconds=LEASE, job_id=leased.id)
        found = await store.waiting_since_before(waiting, T0 + 5)
        assert self._ids(found) == [*self._ids(sorted([paused, tie], key=lambda j: j.id)), queued.id]
        assert len(await store.waiting_since_before(waiting, T0 + 5, limit=2)) == 2
        assert self._ids(await store.waiting_since_before([S.QUEUED], T0 + 5)) == [queued.id]
        assert await store.waiting_since_before(waiting, T0) == []
        await store.release(leased.id, "w1")
        assert self._ids(await store.waiting_since_before([S.QUEUED], T0 + 5)) == [leased.id, queued.id]

    async def test_waiting_since_before_finds_running_jobs_nobody_holds(self, store: JobStore) -> None:
        # The sweeper's second line: a processing job without a lease is a runner's leftover.
        running = (S.PROCESSING, S.REQUEST_DELEGATE_RESULT, S.CANCELING)
        left = await _created(store, waiting_since=T0)
        await store.claim("w1", now=T0, lease_seconds=LEASE, job_id=left.id)
        left = await _saved(store, left, status=S.PROCESSING)
        held = await _created(store, waiting_since=T0)
        await store.claim("w2", now=T0, lease_seconds=LEASE, job_id=held.id)
        await _saved(store, held, status=S.PROCESSING)
        assert await store.waiting_since_before(running, T0 + 5) == []  # both leased
        await store.release(left.id, "w1")
        found = await store.waiting_since_before(running, T0 + 5)
        assert self._ids(found) == [left.id]
        assert (found[0].status, found[0].lease_owner) == (S.PROCESSING, None)
        assert await store.waiting_since_before(running, T0) == []  # queued at the cutoff: not before

    # -- everything together ------------------------------------------------------------------------

    def test_matches_a_simple_model(self, store_factory: StoreFactory) -> None:
        run_store_machine(store_factory, max_examples=self.state_machine_examples)
