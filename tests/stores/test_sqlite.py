"""The store contract against ``SQLiteStore`` (files and ``:memory:``), plus SQLite specifics:
durability settings, migrations, group commit, clear errors for bad paths."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from expert_jobs.domain.errors import StaleJobVersion, StoreError, UsageError
from expert_jobs.ports.store import JobStore
from expert_jobs.stores import _sqlite_schema
from expert_jobs.stores import sqlite as sqlite_module
from expert_jobs.stores.sqlite import SQLiteStore
from tests.stores.contract import StoreContract, StoreFactory
from tests.stores.factories import T0, make_checkpoint, make_job, user
from tests.stores.old_rows import OLD_JOB_ERROR_TEXT, assert_reads_old_rows, old_checkpoint_text


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    """Fresh SQLite files in the test's temporary directory."""
    counter = itertools.count()

    async def open_store() -> JobStore:
        return await SQLiteStore.open(tmp_path / f"store-{next(counter)}.db")

    return open_store


class TestSQLiteStore(StoreContract):
    """Every contract test, against SQLite files (WAL, synchronous=FULL, group commit)."""

    state_machine_examples = 25


class TestSQLiteMemoryStore(StoreContract):
    """Every contract test, against ``:memory:`` (reads go through the writer thread)."""

    state_machine_examples = 10

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Fresh in-memory SQLite databases."""

        async def open_store() -> JobStore:
            return await SQLiteStore.open(":memory:")

        return open_store


# -- durability settings ------------------------------------------------------------------------


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


async def test_a_file_store_runs_in_wal_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = await SQLiteStore.open(path)
    try:
        assert store.synchronous == "FULL"
        assert _pragma(path, "journal_mode") == "wal"  # WAL is a property of the file
        sync = await store.writer.submit(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0])
        assert sync == 2  # FULL
    finally:
        await store.close()


async def test_a_bad_synchronous_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="synchronous"):
        SQLiteStore(tmp_path / "jobs.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


async def test_saved_work_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = await SQLiteStore.open(path)
    job = make_job()
    await store.create(job)
    job.current_step = 1
    checkpoint = make_checkpoint(job, 1, new_messages=(user("hi"),), message_count=1)
    await store.save(job, expected_version=0, checkpoint=checkpoint)
    await store.close()
    again = await SQLiteStore.open(path)
    try:
        assert again.migrated_from == _sqlite_schema.SCHEMA_VERSION
        assert await again.get(job.id) == job
        assert await again.list_checkpoints(job.id) == ([checkpoint], 1)
    finally:
        await again.close()


async def test_two_stores_on_one_file_keep_optimistic_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first, second = await SQLiteStore.open(path), await SQLiteStore.open(path)
    try:
        job = make_job()
        await first.create(job)
        other = await second.get(job.id)
        assert other is not None
        await first.save(job, expected_version=0)
        with pytest.raises(StaleJobVersion):
            await second.save(other, expected_version=0)
        assert await second.claim("w2", now=T0, lease_seconds=30) is not None
        assert await first.claim("w1", now=T0, lease_seconds=30) is None
    finally:
        await first.close()
        await second.close()


# -- migrations -----------------------------------------------------------------------------------


async def test_a_new_file_is_migrated_from_version_zero(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = await SQLiteStore.open(path)
    await store.close()
    assert store.migrated_from == 0
    assert _pragma(path, "user_version") == _sqlite_schema.SCHEMA_VERSION


async def test_an_old_version_file_is_migrated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "old.db"
    v1 = _sqlite_schema.MIGRATIONS[0]
    with sqlite3.connect(path) as conn:  # a file written by the version-1 library, with one job in it
        for statement in v1:
            conn.execute(statement)
        conn.execute("PRAGMA user_version = 1")
    old = SQLiteStore(path)
    job = make_job()
    await old.create(job)
    await old.close()
    # A later library adds a column and an index: version 2.
    v2 = (
        "ALTER TABLE jobs ADD COLUMN note TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX jobs_note ON jobs (note)",
    )
    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", (v1, v2))
    monkeypatch.setattr(_sqlite_schema, "SCHEMA_VERSION", 2)
    store = await SQLiteStore.open(path)
    try:
        assert store.migrated_from == 1
        assert _pragma(path, "user_version") == 2
        assert await store.get(job.id) == job  # the old rows survive and read back
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT note FROM jobs WHERE id = ?", (job.id,)).fetchone() == ("",)
            indexes = {row[1] for row in conn.execute("PRAGMA index_list(jobs)")}
        assert "jobs_note" in indexes
    finally:
        await store.close()


async def test_a_failed_migration_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "jobs.db"
    await (await SQLiteStore.open(path)).close()
    v1 = _sqlite_schema.MIGRATIONS[0]
    broken = ("ALTER TABLE jobs ADD COLUMN x TEXT", "BOGUS SQL")
    monkeypatch.setattr(_sqlite_schema, "MIGRATIONS", (v1, broken))
    monkeypatch.setattr(_sqlite_schema, "SCHEMA_VERSION", 2)
    with pytest.raises(StoreError, match=r"jobs\.db: cannot open or migrate.*BOGUS"):
        SQLiteStore(path)
    assert _pragma(path, "user_version") == 1
    with sqlite3.connect(path) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    assert "x" not in columns


async def test_a_file_from_a_newer_library_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {_sqlite_schema.SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer than this library"):
        SQLiteStore(path)


def test_the_schema_has_indexes_for_the_list_and_claim_queries(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    asyncio.run(SQLiteStore(path).close())
    with sqlite3.connect(path) as conn:

        def plan(sql: str, *params: object) -> str:
            return " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

        claim = plan(
            "SELECT id FROM jobs WHERE status = 'queued' AND (lease_owner IS NULL OR lease_expires_at <= ?)"
            " ORDER BY waiting_since, id LIMIT 1",
            T0,
        )
        assert "jobs_status_waiting" in claim and "TEMP B-TREE" not in claim
        listing = plan(
            "SELECT id FROM jobs WHERE application_id = ? ORDER BY created_at DESC, id DESC LIMIT 10", "app1"
        )
        assert "jobs_app_created" in listing and "TEMP B-TREE" not in listing
        updated = plan("SELECT id FROM jobs WHERE application_id = ? ORDER BY updated_at, id LIMIT 10", "a")
        assert "jobs_app_updated" in updated and "TEMP B-TREE" not in updated
        assert "jobs_lease_owner" in plan("SELECT id FROM jobs WHERE lease_owner = ?", "w1")


# -- bad paths --------------------------------------------------------------------------------------


def test_a_missing_directory_is_a_clear_store_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "jobs.db"
    with pytest.raises(StoreError, match=r"jobs\.db.*directory .* does not exist"):
        SQLiteStore(missing)


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="it is a directory"):
        SQLiteStore(tmp_path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database" * 100)
    with pytest.raises(StoreError, match=r"notes\.db.*not a database"):
        SQLiteStore(path)


async def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.create(make_job())


# -- group commit -----------------------------------------------------------------------------------


def _count_groups(monkeypatch: pytest.MonkeyPatch, operation: type[Any]) -> list[int]:
    """The sizes of the groups ``operation.run_group`` ran together (declined groups left out)."""
    grouped: list[int] = []
    run_group = operation.run_group

    def counting(conn: sqlite3.Connection, operations: list[object]) -> list[object] | None:
        values: list[object] | None = run_group(conn, operations)
        if values is not None:
            grouped.append(len(values))
        return values

    monkeypatch.setattr(operation, "run_group", counting)
    return grouped


async def test_concurrent_saves_share_transactions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grouped = _count_groups(monkeypatch, sqlite_module._Save)
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        jobs = [make_job() for _ in range(300)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        before_batches, before_ops = store.writer.batches, store.writer.operations
        for job in jobs:
            job.current_step = 1
        await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs)
        )
        batches = store.writer.batches - before_batches
        assert store.writer.operations - before_ops == 300
        assert batches < 100, f"{batches} commits for 300 concurrent saves: no group commit"
        assert sum(grouped) > 150, grouped  # most of them as one executemany per statement
        for job in jobs[::37]:
            stored = await store.get(job.id)
            assert stored is not None and stored.version == 1
    finally:
        await store.close()


async def test_concurrent_creates_share_statements_and_a_refused_one_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grouped = _count_groups(monkeypatch, sqlite_module._Create)
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        existing = make_job()
        first = make_checkpoint(existing, 1)
        await store.create(existing, first)
        jobs = [make_job() for _ in range(200)]
        await asyncio.gather(*(store.create(job, make_checkpoint(job, 1)) for job in jobs[:100]))
        await asyncio.gather(*(store.create(job) for job in jobs[100:]))
        assert sum(grouped) > 100, grouped  # most of them as one executemany per table
        # A group holding a duplicate id and a refused checkpoint: those two fail, alone.
        more = [make_job() for _ in range(20)]
        twin = make_job(id=existing.id)
        clash = more[5]
        outcomes = await asyncio.gather(
            *(store.create(job, make_checkpoint(job, 1)) for job in more[:5]),
            store.create(twin),
            store.create(clash, make_checkpoint(clash, 1, id=first.id)),
            *(store.create(job) for job in more[6:]),
            return_exceptions=True,
        )
        assert isinstance(outcomes[5], StoreError) and "already exists" in str(outcomes[5])
        assert isinstance(outcomes[6], StoreError) and "UNIQUE" in str(outcomes[6])
        assert [i for i, outcome in enumerate(outcomes) if outcome is not None] == [5, 6]
        assert await store.get(clash.id) is None  # all or nothing: no job without its checkpoint
        assert await store.get(existing.id) == existing
        for job in jobs + more[:5] + more[6:]:
            stored = await store.get(job.id)
            assert stored is not None and stored.version == 0 and job.version == 0
        for job in jobs[:100] + more[:5]:
            assert (await store.list_checkpoints(job.id))[1] == 1
    finally:
        await store.close()


async def test_concurrent_claims_of_a_round_take_distinct_jobs_in_one_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grouped = _count_groups(monkeypatch, sqlite_module._ClaimNext)
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        jobs = [make_job(waiting_since=T0 + i) for i in range(5)]
        for job in jobs:
            await store.create(job)
        # One round of one worker (one clock reading), asking for more jobs than are queued.
        claims = await asyncio.gather(*(store.claim("w1", now=T0 + 10, lease_seconds=30) for _ in range(8)))
        claimed = [job for job in claims if job is not None]
        assert sorted(job.id for job in claimed) == sorted(job.id for job in jobs)
        assert all((job.lease_owner, job.lease_expires_at) == ("w1", T0 + 40) for job in claimed)
        assert claims.count(None) == 3
        assert grouped and max(grouped) > 1, grouped
        # Claims of different workers or clock readings in one batch are served one by one, each
        # taking the longest-waiting job still free.
        for job in claimed:
            await store.release(job.id, "w1")
        mixed = await asyncio.gather(
            store.claim("w1", now=T0 + 20, lease_seconds=30),
            store.claim("w2", now=T0 + 20, lease_seconds=30),
            store.claim("w2", now=T0 + 21, lease_seconds=30),
        )
        assert [(job.id, job.lease_owner) for job in mixed if job is not None] == [
            (jobs[0].id, "w1"),
            (jobs[1].id, "w2"),
            (jobs[2].id, "w2"),
        ]
    finally:
        await store.close()


async def test_concurrent_releases_drop_only_the_leases_their_workers_hold(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        jobs = [make_job(waiting_since=T0 + i) for i in range(6)]
        for job in jobs:
            await store.create(job)
        for i in range(6):
            assert await store.claim("w1" if i < 4 else "w2", now=T0 + 10, lease_seconds=30) is not None
        await asyncio.gather(
            *(store.release(job.id, "w1") for job in jobs[:3]),
            store.release(jobs[4].id, "w1"),  # held by w2: stays
            store.release(jobs[5].id, "w2"),
        )
        owners = [(await store.get(job.id)).lease_owner for job in jobs]  # type: ignore[union-attr]
        assert owners == [None, None, None, "w1", "w2", None]
    finally:
        await store.close()


async def test_a_failing_operation_fails_alone_in_its_batch(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        good, bad = make_job(), make_job()
        await store.create(bad)

        def half_then_boom(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE jobs SET query = 'half-written' WHERE id = ?", (bad.id,))
            raise ValueError("a bug in the middle of an operation")

        outcomes = await asyncio.gather(
            store.writer.submit(half_then_boom), store.create(good), return_exceptions=True
        )
        assert isinstance(outcomes[0], StoreError) and "half-written" not in str(outcomes[0])
        assert isinstance(outcomes[0].__cause__, ValueError)
        assert outcomes[1] is None
        stored = await store.get(bad.id)
        assert stored is not None and stored.query == "Say hello."  # undone to its savepoint
        assert await store.get(good.id) == good
    finally:
        await store.close()


async def test_the_event_loop_does_not_wait_for_the_disk(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        gate = threading.Event()
        blocked = store.writer.submit(lambda conn: gate.wait(5))  # the writer is stuck on "disk"
        ticks = 0
        for _ in range(5):
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 5 and not blocked.done()
        gate.set()
        assert await blocked is True
    finally:
        await store.close()


async def test_a_save_whose_checkpoint_is_refused_writes_nothing(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        job, other = make_job(), make_job()
        await store.create(job)
        await store.create(other)
        first = make_checkpoint(job, 1)
        await store.save(job, expected_version=0, checkpoint=first)
        job.current_step = 5
        duplicate = make_checkpoint(job, 2, id=first.id)  # a checkpoint id that exists already
        other.current_step = 1
        outcomes = await asyncio.gather(
            store.save(job, expected_version=1, checkpoint=duplicate),
            store.save(other, expected_version=0, checkpoint=make_checkpoint(other, 1)),
            return_exceptions=True,
        )
        assert isinstance(outcomes[0], StoreError) and "UNIQUE" in str(outcomes[0])
        assert outcomes[1] is None
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 1 and stored.current_step == 0
        assert await store.list_checkpoints(job.id) == ([first], 1)
        assert (await store.list_checkpoints(other.id))[1] == 1
    finally:
        await store.close()


async def test_a_create_whose_checkpoint_is_refused_creates_nothing(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        job = make_job()
        first = make_checkpoint(job, 1)
        await store.create(job, first)
        twin = make_job()
        with pytest.raises(StoreError, match="UNIQUE"):
            await store.create(twin, make_checkpoint(twin, 1, id=first.id))
        assert await store.get(twin.id) is None
    finally:
        await store.close()


async def test_a_stale_save_among_grouped_saves_fails_alone(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        jobs = [make_job() for _ in range(30)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        await store.claim("w1", now=T0, lease_seconds=30, job_id=jobs[3].id)
        stale = jobs[7]
        await store.save(stale.copy(), expected_version=0)  # someone else moved it: now at version 1
        outcomes = await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs),
            return_exceptions=True,
        )
        assert isinstance(outcomes[7], StaleJobVersion) and outcomes[7].actual == 1
        assert all(outcome is None for i, outcome in enumerate(outcomes) if i != 7)
        assert (jobs[3].lease_owner, jobs[3].lease_expires_at) == ("w1", T0 + 30)  # handed back
        assert all(job.lease_owner is None for i, job in enumerate(jobs) if i != 3)
        assert await store.list_checkpoints(stale.id) == ([], 0)
        for job in jobs[:7] + jobs[8:]:
            assert (await store.list_checkpoints(job.id))[1] == 1
            stored = await store.get(job.id)
            assert stored is not None and stored.version == 1
    finally:
        await store.close()


def test_usage_json_is_the_wire_form() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from expert_jobs.domain.usage import Usage
    from expert_jobs.stores._rows import dumps, usage_json

    @given(st.integers(0, 10**12), st.integers(0, 10**12))
    def check(inputs: int, outputs: int) -> None:
        usage = Usage.of(inputs, outputs)
        assert usage_json(usage) == dumps(usage.to_wire())

    check()


# -- reading rows -------------------------------------------------------------------------------


async def test_a_whole_temperature_reads_back_as_a_float_from_update_returning(tmp_path: Path) -> None:
    # SQLite's UPDATE ... RETURNING hands a REAL column's 0.0 back as the integer 0 (a SELECT
    # gives 0.0): both claims read the job that way.
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        for temperature in (0.0, 1.0):
            job = make_job(temperature=temperature)
            await store.create(job)
            claimed = await store.claim("w1", now=T0, lease_seconds=30.0, job_id=job.id)
            assert claimed is not None and claimed.temperature == temperature
            assert type(claimed.temperature) is float
        third = make_job(temperature=0.0, waiting_since=T0 - 1)
        await store.create(third)
        claimed = await store.claim("w2", now=T0, lease_seconds=30.0)
        assert claimed is not None and claimed.id == third.id
        assert type(claimed.temperature) is float
        assert claimed.to_wire()["temperature"] == 0.0
    finally:
        await store.close()


async def test_rows_written_by_the_previous_version_read_unchanged(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db")
    try:
        job = make_job(checkpoint_seq=1)
        first = make_checkpoint(job, 1)
        job.last_checkpoint_id = first.id
        await store.create(job, first)

        def rewrite(conn: sqlite3.Connection) -> None:
            data = old_checkpoint_text(job, first.id)
            conn.execute("UPDATE checkpoints SET data = ? WHERE id = ?", (data, first.id))
            conn.execute("UPDATE jobs SET error = ? WHERE id = ?", (OLD_JOB_ERROR_TEXT, job.id))

        await store.writer.submit(rewrite)
        await assert_reads_old_rows(store, job, first.id)
    finally:
        await store.close()
