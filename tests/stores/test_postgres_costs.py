"""What ``PostgresStore`` spends per operation, on the real server: each statement is planned once
per connection, a count-only list is a single statement, and ``json`` columns are read by the C
scanner with the values ``json.loads`` gives.

Every schema lives under a fresh name and is dropped afterwards; skipped without a reachable server
(see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from expert_jobs.domain.job import JobQuery
from expert_jobs.domain.status import JobStatus
from expert_jobs.stores._pg_json import load_json
from expert_jobs.stores.postgres import PostgresStore, _adapters, _configure, status_array
from tests.stores.conftest import new_schema
from tests.stores.contract import LEASE
from tests.stores.factories import T0, make_checkpoint, make_job


async def _plans(store: PostgresStore) -> dict[str, tuple[int, int]]:
    """Generic and custom plans made so far for each statement prepared on the store's connection."""
    async with store._pool.connection() as conn:
        cur = await conn.execute("SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements")
        rows: list[tuple[Any, ...]] = await cur.fetchall()
    return {statement: (generic, custom) for statement, generic, custom in rows}


async def test_every_statement_is_planned_once_per_connection(postgres_url: str, schemas: list[str]) -> None:
    # One connection, so every statement below ran on the one whose prepared statements we read.
    async with PostgresStore(postgres_url, schema=new_schema(schemas), max_size=1, writers=1) as store:
        jobs = [make_job(waiting_since=T0 + i) for i in range(8)]
        for job in jobs:
            await store.create(job)
        # Small batches first (as a worker's first claims give), then bigger ones: PostgreSQL's
        # own choice would keep planning the batch statements anew (generic plans costed for more rows).
        first = jobs[0]
        for seq in range(1, 8):
            first.current_step = seq
            await store.save(first, expected_version=seq - 1, checkpoint=make_checkpoint(first, seq))
        for job in jobs[1:]:
            job.current_step = 1
        await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs[1:])
        )
        for i in range(6):
            assert await store.claim("w1", now=T0 + 100 + i, lease_seconds=LEASE) is not None
        queued = frozenset({JobStatus.QUEUED})
        for _ in range(6):
            assert (await store.list(JobQuery(application_id="app1", take=0)))[1] == 8
            assert (await store.list(JobQuery(application_id="app1", take=0, statuses=queued)))[1] == 8
            assert len(await store.waiting_since_before([JobStatus.QUEUED], T0 + 1000)) == 2
        plans = await _plans(store)
        save = f"u AS (UPDATE {store._sql.jobs} AS t SET model"
        saves = [counts for statement, counts in plans.items() if save in statement]
        assert saves and saves[0][0] >= 8  # 7 alone, then the others together
        assert {statement: counts for statement, counts in plans.items() if counts[1]} == {}


async def _insert_queued_jobs(conn: Any, jobs: str, count: int) -> None:
    """``count`` queued jobs of application ``app1`` (ids ``j1``…), written straight into ``jobs``."""
    await conn.execute(
        f"INSERT INTO {jobs} (id, version, organization_id, application_id, expert_key, expert,"
        " files, model, temperature, max_steps, max_retries, status, created_at, updated_at,"
        " current_step, total_steps, total_duration_ms, usage, waiting_since, checkpoint_seq,"
        " search_key) SELECT 'j' || g, 0, 'o', 'app1', 'k', '{}', '[]', 'm', 0, 10, 1, 'queued',"
        f" g, g, 0, 0, 0, '{{}}', g, 0, 'k' FROM generate_series(1, {count:d}) AS g"
    )


async def test_a_claim_reads_no_whole_table_however_long_the_queue(
    postgres_url: str, schemas: list[str]
) -> None:
    schema = new_schema(schemas)
    async with PostgresStore(postgres_url, schema=schema, max_size=1) as store:
        await store.create(make_job())  # opens the store: the schema exists
        jobs = store._sql.jobs
        sql = store._sql.claim_next
        for number in range(1, 5):
            sql = sql.replace("%s", f"${number}", 1)
        async with store._pool.connection() as conn:
            await _insert_queued_jobs(conn, jobs, 20000)
            await conn.execute(f"ANALYZE {jobs}")
            # The plan the store's connection uses (generic): its LIMIT is a parameter.
            await conn.execute(f"PREPARE claim_plan AS {sql}")
            cur = await conn.execute("EXPLAIN EXECUTE claim_plan('w1', 1e12, 1e11, 64)")
            plan = "\n".join(row[0] for row in await cur.fetchall())
            await conn.execute("DEALLOCATE claim_plan")
        assert "Seq Scan" not in plan and "jobs_pkey" in plan, plan


def test_statuses_are_written_into_statements_only_as_job_statuses() -> None:
    assert status_array([JobStatus.QUEUED, "failed", JobStatus.QUEUED]) == "'{failed,queued}'::text[]"
    with pytest.raises(ValueError, match="is not a valid JobStatus"):
        status_array(["queued'); DROP TABLE jobs; --"])


async def test_a_server_without_the_plan_setting_keeps_its_own_choice() -> None:
    class OldServer:  # PostgreSQL 11 and older: no plan_cache_mode
        async def execute(self, sql: str) -> None:
            raise psycopg.errors.UndefinedObject(f"unrecognized configuration parameter in {sql!r}")

    await _configure(OldServer())  # the connection stays usable: no error


async def test_a_count_only_list_is_one_statement_with_every_filter(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_url, schema=new_schema(schemas)) as store:
        keys = ("@acme/writer@1", "@acme/WRITER@2", "@acme/reviewer@1", "@x/other@1")
        jobs = [make_job(expert_key=key, created_at=T0 + i) for i, key in enumerate(keys)]
        for job in jobs:
            await store.create(job)
        jobs[1].status = JobStatus.COMPLETED
        await store.save(jobs[1], expected_version=0)
        queries = [
            JobQuery(application_id="app1"),
            JobQuery(application_id="app1", filter="writer"),
            JobQuery(application_id="app1", statuses=frozenset({JobStatus.QUEUED})),
            JobQuery(application_id="app1", filter="WRITER", statuses=frozenset({JobStatus.COMPLETED})),
            JobQuery(application_id="app1", statuses=frozenset()),
            JobQuery(application_id="other"),
        ]
        expected = [(await store.list(query))[1] for query in queries]
        assert expected == [4, 2, 3, 1, 0, 0]

        async def no_snapshot(*args: object, **kwargs: object) -> object:
            raise AssertionError("a count-only list reads no page")

        monkeypatch.setattr(store, "_fetch_two", no_snapshot)
        for take in (0, -3):
            counted = [await store.list(replace(query, take=take)) for query in queries]
            assert counted == [([], total) for total in expected]


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    _containers,
    max_leaves=12,
)


@given(value=_JSON, spaced=st.booleans())
def test_json_is_read_as_json_loads_reads_it(value: object, spaced: bool) -> None:
    text = json.dumps(value, indent=1 if spaced else None, ensure_ascii=spaced)
    assert load_json(text) == json.loads(text)
    assert load_json(f" {text}\n") == json.loads(text)


@pytest.mark.parametrize("text", ["", "{", '{"a":1} x', "[1,]", "nul", "1 2"])
def test_text_that_is_not_json_is_refused_as_json_loads_refuses_it(text: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    with pytest.raises(json.JSONDecodeError):
        load_json(text)


def test_json_columns_read_back_as_values(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True, context=_adapters()) as conn:
        row = conn.execute(
            """SELECT '{"a": [1, 2.5, null]}'::json, ' "x\\u0000y" '::json, '[]'::json, NULL::json"""
        ).fetchone()
    assert row == ({"a": [1, 2.5, None]}, "x\x00y", [], None)


async def test_a_count_by_status_reads_only_the_jobs_in_those_statuses(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poll for progress counts an application's completed jobs while thousands are under way.
    async with PostgresStore(postgres_url, schema=new_schema(schemas), max_size=1) as store:
        await store.create(make_job(id="first"))  # opens the store: the schema exists
        jobs = store._sql.jobs
        async with store._pool.connection() as conn:
            await _insert_queued_jobs(conn, jobs, 5000)
        statements: list[tuple[str, Any]] = []
        fetch = store._fetch

        async def recording(sql: str, params: Any, **kwargs: Any) -> Any:
            statements.append((sql, params))
            return await fetch(sql, params, **kwargs)

        monkeypatch.setattr(store, "_fetch", recording)
        completed = JobQuery(application_id="app1", take=0, statuses=frozenset({JobStatus.COMPLETED}))
        assert await store.list(completed) == ([], 0)
        [(sql, params)] = statements
        for number in range(1, len(params) + 1):
            sql = sql.replace("%s", f"${number}", 1)
        async with store._pool.connection() as conn:
            # The plan the store's connection uses (generic: the application is a parameter).
            await conn.execute(f"PREPARE count_plan AS {sql}")
            explain = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE count_plan({})"
            cur = await conn.execute(psycopg.sql.SQL(explain).format(psycopg.sql.Literal(params[0])))
            [(explained,)] = await cur.fetchall()
            await conn.execute("DEALLOCATE count_plan")
        plan = explained[0]["Plan"]
        read = plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]
        assert read < 10, plan  # the whole application's jobs fill well over 100 pages
