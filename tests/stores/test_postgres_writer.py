"""``PostgresStore``'s group-commit writer on the real server: the binary arrays it sends, what it does
with a value it cannot send, and the schema migration that gave the jobs table room for HOT updates.

Every schema lives under a fresh name and is dropped afterwards; skipped without a reachable server
(see ``conftest.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from expert_jobs.domain.errors import StoreError
from expert_jobs.domain.job import Job
from expert_jobs.stores import _pg_schema
from expert_jobs.stores._pg_schema import SCHEMA_VERSION
from expert_jobs.stores._pg_writer import _Array, encode_array
from expert_jobs.stores.postgres import PostgresStore, _adapters
from tests.stores.conftest import new_schema
from tests.stores.factories import make_checkpoint, make_job

INT8 = (-(1 << 63), (1 << 63) - 1)
INT4 = (-(1 << 31), (1 << 31) - 1)


@pytest.fixture(scope="module")
def conn(postgres_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_url, autocommit=True, context=_adapters()) as connection:
        yield connection


def _round_trip(conn: psycopg.Connection[Any], sql_type: str, column: tuple[Any, ...]) -> Any:
    row = conn.execute(f"SELECT %b::{sql_type}[]", (encode_array(sql_type, column),)).fetchone()
    assert row is not None
    return row[0]


# -- the binary arrays ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql_type", "column"),
    [
        ("text", ()),
        ("text", ("a", None, "é€😀", "", "x" * 70_000)),
        ("text", (None, None)),
        ("json", ('{"a":1,"b":[1.5,null]}', None, '"nul \\u0000"')),
        ("bigint", (0, *INT8, None)),
        ("integer", (7, *INT4)),
        ("float8", (0.1, -0.0, 1e308, 5e-324, float("inf"), 3)),
        ("float8", (None, 2.5)),
        ("boolean", (True, False, None)),
    ],
)
def test_columns_go_as_binary_arrays_of_their_type_and_read_back_equal(
    conn: psycopg.Connection[Any], sql_type: str, column: tuple[Any, ...]
) -> None:
    sent = encode_array(sql_type, column)
    assert isinstance(sent, _Array)  # the fast path, not psycopg's own dumping
    back = _round_trip(conn, sql_type, column)
    if sql_type == "json":
        back = [None if value is None else json.dumps(value, separators=(",", ":")) for value in back]
    assert back == list(column)


@pytest.mark.parametrize(
    ("sql_type", "column", "expected"),
    [
        ("bigint", (1.6, 2.4), [2, 2]),  # floats in an integer column: psycopg's list, the cast rounds
        ("integer", (1.2, None, 2.6), [1, None, 3]),
        ("text", (1, 2), ["1", "2"]),
    ],
)
def test_a_column_the_fast_path_cannot_take_goes_as_before(
    conn: psycopg.Connection[Any], sql_type: str, column: tuple[Any, ...], expected: list[Any]
) -> None:
    assert type(encode_array(sql_type, column)) is list
    assert _round_trip(conn, sql_type, column) == expected


def test_a_number_out_of_range_is_refused_by_the_server(conn: psycopg.Connection[Any]) -> None:
    for sql_type, value in (("bigint", 1 << 63), ("integer", 1 << 31), ("boolean", 1)):
        assert type(encode_array(sql_type, (value,))) is list
        with pytest.raises((psycopg.DataError, psycopg.ProgrammingError)):  # out of range, no cast
            _round_trip(conn, sql_type, (value,))


_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.none() | _TEXT, max_size=20),
    int8s=st.lists(st.none() | st.integers(*INT8), max_size=20),
    floats=st.lists(st.none() | st.floats(allow_nan=False), max_size=20),
)
def test_any_column_round_trips(
    conn: psycopg.Connection[Any],
    texts: list[str | None],
    int8s: list[int | None],
    floats: list[float | None],
) -> None:
    assert _round_trip(conn, "text", tuple(texts)) == texts
    assert _round_trip(conn, "bigint", tuple(int8s)) == int8s
    assert _round_trip(conn, "float8", tuple(floats)) == floats


# -- a value that cannot be sent -----------------------------------------------------------------------


async def test_a_value_that_cannot_be_sent_fails_only_its_own_write(
    postgres_url: str, schemas: list[str]
) -> None:
    async with PostgresStore(postgres_url, schema=new_schema(schemas), writers=1) as store:
        jobs = [make_job() for _ in range(5)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        for job in jobs:
            job.current_step = 1
        jobs[2].model = "lone surrogate \ud800"  # no UTF-8 for it: psycopg refuses to send it
        outcomes = await asyncio.gather(
            *(store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1)) for job in jobs),
            return_exceptions=True,
        )
        assert isinstance(outcomes[2], StoreError) and jobs[2].id in str(outcomes[2])
        assert outcomes[:2] + outcomes[3:] == [None] * 4
        for job in jobs[:2] + jobs[3:]:
            stored = await store.get(job.id)
            assert stored is not None and stored.version == 1 and stored.current_step == 1
        stored = await store.get(jobs[2].id)
        assert stored is not None and stored.version == 0
        assert (await store.list_checkpoints(jobs[2].id))[1] == 0


# -- schema version 2: fillfactor 65 -------------------------------------------------------------------


def _fillfactor(url: str, schema: str) -> list[str] | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)", (f'"{schema}".jobs',)
        ).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


async def _one_job_at_version(
    version: int, url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> Job:
    """A schema as the library of schema ``version`` created it, holding one job (returned)."""
    with monkeypatch.context() as patch:
        patch.setattr(_pg_schema, "MIGRATIONS", _pg_schema.MIGRATIONS[:version])
        patch.setattr(_pg_schema, "SCHEMA_VERSION", version)
        async with PostgresStore(url, schema=schema) as store:
            job = make_job()
            await store.create(job)
    return job


async def test_a_version_1_schema_is_upgraded_to_give_job_rows_room(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = new_schema(schemas)
    job = await _one_job_at_version(1, postgres_url, schema, monkeypatch)
    assert _fillfactor(postgres_url, schema) == ["fillfactor=80"]
    async with PostgresStore(postgres_url, schema=schema) as store:
        assert await store.get(job.id) == job
        job.current_step = 1
        await store.save(job, expected_version=0, checkpoint=make_checkpoint(job, 1))
        stored = await store.get(job.id)
        assert stored is not None and stored.version == 1 and stored.current_step == 1
    assert _fillfactor(postgres_url, schema) == ["fillfactor=65"]
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY version').fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
    async with PostgresStore(postgres_url, schema=schema) as store:  # nothing left to do
        assert await store.get(job.id) == stored


# -- one transaction in flight -------------------------------------------------------------------------


async def test_saves_queued_while_a_transaction_commits_share_the_next_one(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresStore(postgres_url, schema=new_schema(schemas)) as store:  # default writers
        jobs = [make_job() for _ in range(6)]
        await asyncio.gather(*(store.create(job) for job in jobs))
        writer = store.writer
        assert writer is not None
        batches = writer.batches
        pool = store._pool
        checkout = pool.connection
        started: list[int] = []
        gate = asyncio.Event()

        @contextlib.asynccontextmanager
        async def held_connection(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            started.append(len(started))
            await gate.wait()  # the first transaction is slow to commit
            async with checkout(*args, **kwargs) as conn:
                yield conn

        monkeypatch.setattr(pool, "connection", held_connection)
        for job in jobs:
            job.current_step = 1
        first = asyncio.ensure_future(store.save(jobs[0], expected_version=0))
        await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(store.save(job, expected_version=0)) for job in jobs[1:]]
        try:
            await asyncio.sleep(0.05)
            assert started == [0]  # the rest wait for the transaction in flight
        finally:
            gate.set()
        await asyncio.gather(first, *rest)
        assert writer.batches - batches == 2  # and then share one


# -- schema version 3: the status index ----------------------------------------------------------------


async def test_a_version_2_schema_takes_a_status_index_an_operator_built_beforehand(
    postgres_url: str, schemas: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = new_schema(schemas)
    job = await _one_job_at_version(2, postgres_url, schema, monkeypatch)
    # As docs/operations.md advises for a large table: built without blocking writes, before the upgrade.
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f'CREATE INDEX CONCURRENTLY jobs_app_status ON "{schema}".jobs'
            " (application_id, status, created_at, id)"
        )
    async with PostgresStore(postgres_url, schema=schema) as store:
        assert await store.get(job.id) == job
    with psycopg.connect(postgres_url) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".schema_version ORDER BY version').fetchall()
        indexes = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND indexname = 'jobs_app_status'",
            (schema,),
        ).fetchone()
    assert versions == [(1,), (2,), (3,)] and indexes == (1,)
