"""The store contract against ``PostgresStore`` on the real server, plus PostgreSQL specifics.

Every store opened here lives in a fresh schema with a unique name, dropped after the test. The
server is ``EXPERT_JOBS_TEST_POSTGRES_URL`` or the local one (see ``conftest.py``); the tests are
skipped, saying why, only when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from expert_jobs.domain.errors import JobError, StaleJobVersion, StoreError, UsageError
from expert_jobs.domain.job import JobQuery
from expert_jobs.domain.messages import ToolResult, ToolResultsMessage
from expert_jobs.ports.store import JobStore
from expert_jobs.stores._pg_schema import SCHEMA_VERSION
from expert_jobs.stores.postgres import PostgresStore, split_url
from tests.stores.contract import LEASE, StoreContract, StoreFactory
from tests.stores.factories import T0, make_checkpoint, make_job, user
from tests.stores.old_rows import (
    OLD_JOB_ERROR_TEXT,
    assert_reads_old_rows,
    old_checkpoint_text,
    old_messages_text,
)


def _drop(url: str, schemas: list[str]) -> None:
    if not schemas:
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[list[str]]:
    """Names of the schemas the test created; all dropped afterwards."""
    created: list[str] = []
    yield created
    _drop(postgres_url, created)


def _new_schema(created: list[str]) -> str:
    name = f"ej_test_{os.getpid()}_{uuid.uuid4().hex[:12]}"
    created.append(name)
    return name


@pytest.fixture
def store_factory(postgres_url: str, schemas: list[str]) -> StoreFactory:
    """Fresh PostgreSQL stores, each in its own new schema."""

    async def open_store() -> JobStore:
        return await PostgresStore.open(postgres_url, schema=_new_schema(schemas), max_size=4)

    return open_store


class TestPostgresStore(StoreContract):
    """Every contract test, against PostgreSQL (group commit, ``FOR UPDATE SKIP LOCKED`` claims)."""

    state_machine_examples = 20


# -- PostgreSQL specifics -----------------------------------------------------------------------------


async def test_the_constructor_does_no_io_and_the_first_call_opens_the_store(
    postgres_url: str, schemas: list[str]
) -> None:
    schema = _new_schema(schemas)
    store = PostgresStore(postgres_url, schema=schema)
    assert store.writer is None
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT to_regnamespace(%s)", (schema,)).fetchone() == (None,)
    job = make_job()
    await store.create(job)
    assert store.writer is not None
    assert await store.get(job.id) == job
    await store.close()
    with pytest.raises(StoreError, match="after close"):
        await store.get(job.id)


async def test_url_options_choose_the_schema_and_pool(postgres_url: str, schemas: list[str]) -> None:
    schema = _new_schema(schemas)
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}schema={schema}&max_size=3&writers=1&connect_timeout=5"
    assert split_url(url)[1] == {"schema": schema, "max_size": "3", "writers": "1"}
    assert split_url(postgres_url) == (postgres_url, {})
    spaced = split_url("postgresql://u@h/db?options=-c%20search_path%3Dx&schema=s")[0]
    assert spaced == "postgresql://u@h/db?options=-c%20search_path%3Dx"
    assert "connect_timeout=5" in split_url(url)[0] and "schema" not in split_url(url)[0]
    async with PostgresStore(url) as store:
        assert (store.schema, store.max_size, store.writers) == (schema, 3, 1)
        await store.create(make_job())
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone() == (1,)


def test_bad_options_are_usage_errors_at_construction() -> None:
    with pytest.raises(UsageError, match="schema"):
        PostgresStore("postgresql://u@h/db", schema="x; DROP TABLE y")
    with pytest.raises(UsageError, match="max_size"):
        PostgresStore("postgresql://u@h/db", min_size=5, max_size=2)
    with pytest.raises(UsageError, match="bad option"):
        PostgresStore("postgresql://u@h/db?max_size=many")
    with pytest.raises(UsageError, match="invalid connection string"):
        PostgresStore("postgresql://u@h/db?no_such_libpq_option=1")


async def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password() -> None:
    store = PostgresStore("postgresql://someone:secret@127.0.0.1:1/nodb", connect_timeout=1)
    with pytest.raises(StoreError, match=r"127\.0\.0\.1:1/nodb") as raised:
        await store.get("x")
    assert "secret" not in str(raised.value)
    await store.close()


async def test_a_store_is_bound_to_the_event_loop_that_opened_it(
    postgres_url: str, schemas: list[str]
) -> None:
    store = await PostgresStore.open(postgres_url, schema=_new_schema(schemas))
    try:

        def elsewhere() -> None:
            asyncio.run(store.get("x"))

        with pytest.raises(StoreError, match="another event loop"):
            await asyncio.to_thread(elsewhere)
    finally:
        await store.close()


async def test_text_with_nul_characters_round_trips(postgres_url: str, schemas: list[str]) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas)) as store:
        error = JobError("internal", "nul \x00 here", exception="E\x00")
        job = make_job(query="before\x00after", error=error)
        await store.create(job)
        assert await store.get(job.id) == job
        result = ToolResult("c1", "t", "out\x00put", is_error=False)
        messages = (user("a\x00b"), ToolResultsMessage((result,)))
        checkpoint = make_checkpoint(job, 1, new_messages=messages, message_count=2)
        await store.save(job, expected_version=0, checkpoint=checkpoint)
        assert await store.get_checkpoint(job.id, checkpoint.id) == checkpoint
        assert await store.load_history(job.id, "run1") == list(messages)


async def test_concurrent_writes_share_transactions(postgres_url: str, schemas: list[str]) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas), writers=1) as store:
        jobs = [make_job() for _ in range(200)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        for job in jobs:
            job.current_step = 1
        await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs)
        )
        writer = store.writer
        assert writer is not None and writer.operations == 400
        assert writer.batches < 50  # one transaction per batch, not per write
        page, total = await store.list(JobQuery(application_id="app1", take=500))
        assert total == 200 and all(job.version == 1 and job.current_step == 1 for job in page)


async def test_a_failing_write_in_a_batch_fails_alone(postgres_url: str, schemas: list[str]) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas), writers=1) as store:
        jobs = [make_job() for _ in range(6)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        reused = make_checkpoint(jobs[0], 1)
        await store.save(jobs[0], expected_version=0, checkpoint=reused)
        # jobs[1] reuses a checkpoint id: a unique violation inside a batch of otherwise good saves.
        bad = make_checkpoint(jobs[1], 1)
        bad = bad._replace(id=reused.id)
        saves = [store.save(jobs[1], expected_version=0, checkpoint=bad)]
        saves += [store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs[2:]]
        saves.append(store.save(jobs[0], expected_version=0))  # stale: already at version 1
        outcomes = await asyncio.gather(*saves, return_exceptions=True)
        assert isinstance(outcomes[0], StoreError) and not isinstance(outcomes[0], StaleJobVersion)
        assert jobs[1].id in str(outcomes[0])
        assert outcomes[1:5] == [None] * 4
        assert isinstance(outcomes[5], StaleJobVersion) and outcomes[5].actual == 1
        stored = await store.get(jobs[1].id)
        assert stored is not None and stored.version == 0
        assert (await store.list_checkpoints(jobs[1].id))[1] == 0
        for job in jobs[2:]:
            assert (await store.list_checkpoints(job.id))[1] == 1


async def test_claims_from_many_connections_hand_each_job_out_once(
    postgres_url: str, schemas: list[str]
) -> None:
    schema = _new_schema(schemas)
    stores = [await PostgresStore.open(postgres_url, schema=schema, max_size=3) for _ in range(4)]
    try:
        jobs = [make_job(waiting_since=T0 + i) for i in range(60)]
        await asyncio.gather(*(stores[0].create(job) for job in jobs))
        claims = [stores[i % 4].claim(f"w{i % 4}", now=T0 + 100, lease_seconds=LEASE) for i in range(80)]
        claimed = [job for job in await asyncio.gather(*claims) if job is not None]
        assert sorted(job.id for job in claimed) == sorted(job.id for job in jobs)
        for job in claimed:
            stored = await stores[0].get(job.id)
            assert stored is not None and stored.lease_owner == job.lease_owner
    finally:
        for store in stores:
            await store.close()


def _open_in_a_process(url: str, schema: str) -> int:
    async def main() -> int:
        async with PostgresStore(url, schema=schema, max_size=2) as store:
            await store.create(make_job())
            return SCHEMA_VERSION

    return asyncio.run(main())


def test_concurrent_first_opens_migrate_once(postgres_url: str, schemas: list[str]) -> None:
    schema = _new_schema(schemas)
    context = multiprocessing.get_context("spawn")
    with context.Pool(4) as pool:
        results = pool.starmap(_open_in_a_process, [(postgres_url, schema)] * 4)
    assert results == [SCHEMA_VERSION] * 4
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY version').fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert conn.execute(f'SELECT count(*) FROM "{schema}".jobs').fetchone() == (4,)


async def test_a_schema_from_a_newer_library_is_refused(postgres_url: str, schemas: list[str]) -> None:
    schema = _new_schema(schemas)
    async with PostgresStore(postgres_url, schema=schema) as store:
        await store.create(make_job())
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".schema_version (version) VALUES (%s)', (SCHEMA_VERSION + 1,))
    store = PostgresStore(postgres_url, schema=schema)
    with pytest.raises(StoreError, match="newer"):
        await store.get("x")
    await store.close()


# -- claim_batch: concurrent claims of one worker share one statement -------------------------------


async def test_concurrent_claims_of_one_worker_share_a_statement(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas), claim_batch=4) as store:
        jobs = [make_job(waiting_since=T0 + i) for i in range(7)]
        for job in reversed(jobs):
            await store.create(job)
        statements = 0
        fetch = store._fetch

        async def counting_fetch(sql: str, *args: object, **kwargs: object) -> object:
            nonlocal statements
            statements += sql == store._sql.claim_next
            return await fetch(sql, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(store, "_fetch", counting_fetch)
        # Six claims at one moment: two statements (4 + 2), each caller one job, oldest first.
        got = await asyncio.gather(*(store.claim("w1", now=T0 + 10, lease_seconds=LEASE) for _ in range(6)))
        assert statements == 2
        assert [job.id for job in got if job is not None] == [job.id for job in jobs[:6]]
        assert all(job is not None and job.lease_owner == "w1" for job in got)
        # Nothing is leased beyond what was asked for.
        assert len(await store.held_by("w1")) == 6
        # More claims than jobs: the extra callers get None.
        more = await asyncio.gather(*(store.claim("w1", now=T0 + 11, lease_seconds=LEASE) for _ in range(3)))
        assert [job.id if job else None for job in more] == [jobs[6].id, None, None]
        assert statements == 3


async def test_claims_of_different_workers_or_moments_are_not_merged(
    postgres_url: str, schemas: list[str]
) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas), claim_batch=8) as store:
        jobs = [make_job(waiting_since=T0 + i) for i in range(4)]
        for job in jobs:
            await store.create(job)
        got = await asyncio.gather(
            store.claim("w1", now=T0 + 1, lease_seconds=LEASE),
            store.claim("w2", now=T0 + 1, lease_seconds=LEASE),
            store.claim("w1", now=T0 + 2, lease_seconds=LEASE),
        )
        assert [job.lease_owner for job in got if job is not None] == ["w1", "w2", "w1"]
        assert sorted(job.id for job in got if job is not None) == sorted(job.id for job in jobs[:3])
        first = got[2]
        assert first is not None and first.lease_expires_at == T0 + 2 + LEASE


async def test_a_failed_merged_claim_fails_every_caller(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_url, schema=_new_schema(schemas)) as store:

        async def broken(*args: object, **kwargs: object) -> object:
            raise StoreError("boom")

        monkeypatch.setattr(store, "_fetch", broken)
        outcomes = await asyncio.gather(
            *(store.claim("w1", now=T0, lease_seconds=LEASE) for _ in range(3)), return_exceptions=True
        )
        assert [str(outcome) for outcome in outcomes] == ["boom"] * 3


async def test_broken_connections_are_replaced(postgres_url: str, schemas: list[str]) -> None:
    name = f"ej-broken-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}application_name={name}"
    async with PostgresStore(url, schema=_new_schema(schemas), min_size=2, max_size=2, writers=1) as store:
        job = make_job()
        await store.create(job)
        await asyncio.gather(store.get(job.id), store.get(job.id))  # both pooled connections used
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (name,),
            ).fetchone()
        assert killed is not None and killed[0] == 2
        # A read is tried again on a fresh connection; a write whose connection broke fails (its
        # commit is in doubt) and the next one works.
        assert await store.get(job.id) == job
        job.current_step = 1
        try:
            await store.save(job, expected_version=0)
        except StoreError:
            await store.save(job, expected_version=0)
        stored = await store.get(job.id)
        assert stored is not None and stored.current_step == 1 and stored.version == 1


async def test_an_older_schema_is_migrated_forward_once(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from expert_jobs.stores import _pg_schema

    schema = _new_schema(schemas)
    async with PostgresStore(postgres_url, schema=schema) as store:
        job = make_job()
        await store.create(job)

    def v2(s: str) -> tuple[str, ...]:
        return (f"ALTER TABLE {s}.jobs ADD COLUMN note text NOT NULL DEFAULT 'migrated'",)

    monkeypatch.setattr(_pg_schema, "MIGRATIONS", (*_pg_schema.MIGRATIONS, v2))
    monkeypatch.setattr(_pg_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    for _ in range(2):  # the second open finds nothing to do
        async with PostgresStore(postgres_url, schema=schema) as store:
            assert await store.get(job.id) == job
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY version').fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 2)]
        assert conn.execute(f'SELECT note FROM "{schema}".jobs').fetchall() == [("migrated",)]


async def test_a_batch_on_a_broken_connection_fails_cleanly_and_the_next_works(
    postgres_url: str, schemas: list[str]
) -> None:
    name = f"ej-broken-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{separator}application_name={name}"
    async with PostgresStore(url, schema=_new_schema(schemas), min_size=2, max_size=2, writers=1) as store:
        jobs = [make_job() for _ in range(5)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            conn.execute(sql, (name,))
        for job in jobs:
            job.current_step = 1
        outcomes = await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs),
            return_exceptions=True,
        )
        assert all(outcome is None or isinstance(outcome, StoreError) for outcome in outcomes), outcomes
        for job, outcome in zip(jobs, outcomes, strict=True):
            stored = await store.get(job.id)
            assert stored is not None
            _, total = await store.list_checkpoints(job.id)
            # Saved once or not at all: never a checkpoint without its job update, never two.
            assert (stored.version, total) in ((1, 1), (0, 0))
            if outcome is None:
                assert stored.version == 1
            if stored.version == 0:
                job.current_step = 1
                await store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1))
        print(f"\noutcomes after the connections broke: {[type(o).__name__ for o in outcomes]}")


async def test_rows_written_by_the_previous_version_read_unchanged(
    postgres_url: str, schemas: list[str]
) -> None:
    schema = _new_schema(schemas)
    async with PostgresStore(postgres_url, schema=schema) as store:
        job = make_job(checkpoint_seq=1)
        first = make_checkpoint(job, 1)
        job.last_checkpoint_id = first.id
        await store.create(job, first)
        data = old_checkpoint_text(job, first.id, with_messages=False)
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{schema}".checkpoints SET data = %s::json, messages = %s::json WHERE id = %s',
                (data, old_messages_text(), first.id),
            )
            conn.execute(
                f'UPDATE "{schema}".jobs SET error = %s::json WHERE id = %s', (OLD_JOB_ERROR_TEXT, job.id)
            )
        await assert_reads_old_rows(store, job, first.id)
