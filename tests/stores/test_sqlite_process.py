"""``SQLiteStore(path, writer="process")``: the store contract with the writes in a child process,
plus what only a process can do: die. A dead writer fails what waits and what comes, never hangs."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from expert_jobs.domain.errors import StaleJobVersion, StoreError, UsageError
from expert_jobs.ports.store import JobStore
from expert_jobs.stores._sqlite_process import ProcessWriter
from expert_jobs.stores.sqlite import SQLiteStore
from expert_jobs.stores.url import open_store
from tests.stores.contract import StoreContract, StoreFactory
from tests.stores.factories import make_checkpoint, make_job


@pytest.fixture
def store_factory(tmp_path: Path) -> StoreFactory:
    """Fresh SQLite files written by a writer process."""
    counter = itertools.count()

    async def open_store() -> JobStore:
        return await SQLiteStore.open(tmp_path / f"store-{next(counter)}.db", writer="process")

    return open_store


class TestSQLiteProcessStore(StoreContract):
    """Every contract test, with the writes in a child process."""

    state_machine_examples = 15


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_the_writes_run_in_a_child_process_and_close_stops_it(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = await SQLiteStore.open(path, writer="process")
    writer = store.writer
    assert isinstance(writer, ProcessWriter) and store.writer_kind == "process"
    assert writer.pid != os.getpid() and _alive(writer.pid)
    job = make_job(id="j1")
    await store.create(job, make_checkpoint(job, 1))
    await store.close()
    assert writer._process.returncode == 0  # exited by itself, not killed
    with sqlite3.connect(path) as conn:  # committed and on disk
        assert conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(StoreError, match="closed"):
        await store.create(make_job(id="j2"))


async def test_the_writer_process_writes_with_full_sync(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    try:
        writer = store.writer
        assert isinstance(writer, ProcessWriter)
        assert await writer.submit(("fetch", "PRAGMA synchronous", ())) == [(2,)]  # FULL
    finally:
        await store.close()


async def test_refusals_come_back_typed_and_alone(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    try:
        b = make_job(id="b")
        await store.create(make_job(id="a"))
        await store.create(b)
        stale, good, missing, duplicate = await asyncio.gather(
            store.save(make_job(id="a"), expected_version=5),
            store.save(b, expected_version=0, checkpoint=make_checkpoint(b, 1)),
            store.save(make_job(id="nobody"), expected_version=0),
            store.create(make_job(id="a")),
            return_exceptions=True,
        )
        assert isinstance(stale, StaleJobVersion) and (stale.expected, stale.actual) == (5, 0)
        assert good is None
        assert isinstance(missing, StoreError) and "does not exist" in str(missing)
        assert isinstance(duplicate, StoreError) and "already exists" in str(duplicate)
        job = await store.get("b")
        assert job is not None and job.version == 1
    finally:
        await store.close()


async def test_a_killed_writer_fails_waiting_and_later_writes_without_hanging(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    writer = store.writer
    assert isinstance(writer, ProcessWriter)
    await store.create(make_job(id="j1"))
    # Stop the child so the next writes are surely waiting, then kill it.
    os.kill(writer.pid, signal.SIGSTOP)
    waiting = [asyncio.ensure_future(store.create(make_job(id=f"w{i}"))) for i in range(20)]
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in waiting)
    os.kill(writer.pid, signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(isinstance(result, StoreError) for result in results), results
    assert "writer process exited with code -9" in str(results[0])
    with pytest.raises(StoreError, match="writer process exited"):
        await asyncio.wait_for(store.save(make_job(id="j1"), expected_version=0), 10)
    assert (await store.get("j1")) is not None  # reads still work: the file is intact
    await asyncio.wait_for(store.close(), 10)


async def test_several_event_loops_share_one_writer_process(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    errors: list[BaseException] = []

    def other_loop() -> None:
        async def work() -> None:
            await asyncio.gather(*(store.create(make_job(id=f"t{i}")) for i in range(50)))

        try:
            asyncio.run(work())
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=other_loop)
    thread.start()
    await asyncio.gather(*(store.create(make_job(id=f"m{i}")) for i in range(50)))
    await asyncio.to_thread(thread.join, 30)
    assert not errors
    found = [await store.get(f"{prefix}{i}") for prefix in "tm" for i in range(50)]
    assert all(job is not None for job in found)
    await store.close()


async def test_a_bad_writer_kind_is_refused_and_memory_keeps_a_thread(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="writer"):
        SQLiteStore(tmp_path / "jobs.db", writer="fiber")  # type: ignore[arg-type]
    store = await SQLiteStore.open(":memory:", writer="process")
    try:
        assert store.writer_kind == "thread"  # an in-memory database lives in one connection
    finally:
        await store.close()


async def test_the_url_chooses_the_writer(tmp_path: Path) -> None:
    store = await asyncio.to_thread(open_store, f"sqlite:///{tmp_path / 'jobs.db'}?writer=process")
    try:
        assert isinstance(store, SQLiteStore) and store.writer_kind == "process"
    finally:
        await store.close()


async def test_close_returns_in_bounded_time_with_a_stuck_child(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    writer = store.writer
    assert isinstance(writer, ProcessWriter)
    writer._stop_timeout = 0.5
    os.kill(writer.pid, signal.SIGSTOP)
    pending = asyncio.ensure_future(store.create(make_job(id="late")))
    started = time.monotonic()
    await asyncio.wait_for(store.close(), 10)
    assert time.monotonic() - started < 5
    assert not _alive(writer.pid) or writer._process.returncode is not None
    with pytest.raises(StoreError):
        await asyncio.wait_for(pending, 5)


async def test_a_lock_held_too_long_fails_the_batch_and_the_writer_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = await SQLiteStore.open(path, writer="process", busy_timeout=0.2)
    try:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock
        results = await asyncio.wait_for(
            asyncio.gather(*(store.create(make_job(id=f"j{i}")) for i in range(5)), return_exceptions=True),
            10,
        )
        assert all(isinstance(result, StoreError) for result in results), results
        assert "batch rolled back" in str(results[0]) and "locked" in str(results[0])
        other.execute("ROLLBACK")
        other.close()
        await store.create(make_job(id="after"))
        assert await store.get("after") is not None and await store.get("j0") is None
    finally:
        await store.close()


async def test_the_writer_process_is_out_of_the_terminals_reach(tmp_path: Path) -> None:
    # A Ctrl-C goes to the terminal's foreground process group: it must stop the application
    # gracefully (which still writes), not kill the writer under it.
    store = await SQLiteStore.open(tmp_path / "jobs.db", writer="process")
    try:
        writer = store.writer
        assert isinstance(writer, ProcessWriter)
        assert os.getpgid(writer.pid) != os.getpgrp()
    finally:
        await store.close()


async def test_a_database_the_child_cannot_open_is_a_store_error(tmp_path: Path) -> None:
    settings = {"path": str(tmp_path / "missing" / "jobs.db"), "busy_timeout": 1.0, "pragmas": [],
                "sql": {}, "chunk": 500, "max_batch": 10}
    with pytest.raises(StoreError, match="cannot open the database"):
        await asyncio.to_thread(ProcessWriter, settings)
