"""Many worker processes on one PostgreSQL database, for real.

Four processes (``tests/stores/pg_worker_proc.py``) run hundreds of scripted jobs from one schema;
one of them is killed with SIGKILL mid-run; every job must still finish exactly once, its steps
checkpointed once each, its usage the sum of its steps'. And a cancel made here, through a
``Runtime`` in the test process, must stop a job running in a worker process within one step.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from expert_jobs.domain.errors import StaleJobVersion
from expert_jobs.domain.job import JobQuery
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE, Usage
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID
from expert_jobs.stores.postgres import PostgresStore
from tests.stores.pg_worker_proc import EXPERT, make_runtime
from tests.stores.test_postgres import _drop, _new_schema

ROOT = Path(__file__).resolve().parents[2]
S = JobStatus


@pytest.fixture
def schemas(postgres_url: str) -> Iterator[list[str]]:
    """Schemas created by the test, dropped afterwards."""
    created: list[str] = []
    yield created
    _drop(postgres_url, created)


class Workers:
    """Worker subprocesses, their stderr kept in files for the failure report."""

    def __init__(self, url: str, schema: str, logs: Path, options: list[str]) -> None:
        self.url = url
        self.schema = schema
        self.logs = logs
        self.options = options
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, worker_id: str) -> None:
        """Launch one worker process."""
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        with open(self.logs / f"{worker_id}.log", "w") as stderr:
            self.procs[worker_id] = subprocess.Popen(
                [sys.executable, "-m", "tests.stores.pg_worker_proc", self.url, self.schema, worker_id,
                 *self.options],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )

    async def ready(self, within: float = 30.0) -> None:
        """Wait until every worker printed ``ready``."""

        def wait_one(proc: subprocess.Popen[str]) -> str:
            assert proc.stdout is not None
            return proc.stdout.readline().strip()

        lines = await asyncio.wait_for(
            asyncio.gather(*(asyncio.to_thread(wait_one, p) for p in self.procs.values())), within
        )
        assert lines == ["ready"] * len(self.procs), self.report()

    def kill(self, worker_id: str) -> None:
        """SIGKILL one worker and reap it."""
        proc = self.procs[worker_id]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        """SIGTERM the living workers (a graceful stop), then reap them all."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()

    def report(self) -> str:
        """The workers' exit codes and stderr, for assertion messages."""
        parts = []
        for worker_id, proc in self.procs.items():
            log = (self.logs / f"{worker_id}.log").read_text()[-3000:]
            parts.append(f"--- {worker_id} (exit {proc.poll()}):\n{log}")
        return "\n".join(parts)


@asynccontextmanager
async def _cluster(
    url: str,
    schema: str,
    logs: Path,
    count: int,
    *,
    steps: int,
    delay: float,
    lease: float,
    concurrency: int,
    claim_batch: int = 1,
) -> AsyncIterator[tuple[Workers, Runtime, PostgresStore]]:
    store = await PostgresStore.open(url, schema=schema, max_size=4)
    runtime = make_runtime(store, steps=steps, delay=delay, lease=lease)
    options = [f"--steps={steps}", f"--delay={delay}", f"--lease={lease}", f"--concurrency={concurrency}",
               f"--claim-batch={claim_batch}"]
    workers = Workers(url, schema, logs, options)
    try:
        for i in range(count):
            workers.start(f"w{i}")
        await workers.ready()
        yield workers, runtime, store
    finally:
        workers.stop_all()
        await store.close()


async def _until(
    predicate: Callable[[], Awaitable[bool]], *, within: float, what: str, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + within
    while True:
        if await predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(interval)


async def _count(store: PostgresStore, *statuses: JobStatus) -> int:
    query = JobQuery(application_id=DEFAULT_APPLICATION_ID, statuses=frozenset(statuses), take=0)
    return (await store.list(query))[1]


@pytest.mark.parametrize("claim_batch", [1, 64])
async def test_four_workers_finish_every_job_exactly_once_despite_a_kill(
    postgres_url: str, schemas: list[str], tmp_path: Path, claim_batch: int
) -> None:
    jobs_count, steps, lease = 300, 5, 2.0
    schema = _new_schema(schemas)
    async with _cluster(
        postgres_url, schema, tmp_path, 4, steps=steps, delay=0.04, lease=lease, concurrency=12,
        claim_batch=claim_batch,
    ) as (workers, runtime, store):
        started = time.monotonic()
        submitted = await asyncio.gather(*(runtime.submit(EXPERT, f"job {i}") for i in range(jobs_count)))
        ids = [job.id for job in submitted]

        # Kill w0 with SIGKILL while it holds running jobs, part way through the run.
        victim_jobs: list[str] = []

        async def victim_is_busy() -> bool:
            if await _count(store, S.COMPLETED) < jobs_count // 5:
                return False
            held = await store.held_by("w0")
            if not any(job.status is S.PROCESSING for job in held):
                return False
            workers.kill("w0")
            victim_jobs.extend(job.id for job in await store.held_by("w0"))
            return True

        await _until(victim_is_busy, within=30, what="w0 to be running jobs mid-run")
        done_at_kill = await _count(store, S.COMPLETED)
        assert done_at_kill < jobs_count and victim_jobs

        async def all_done() -> bool:
            return await _count(store, S.COMPLETED) == jobs_count

        try:
            await _until(all_done, within=45, what="every job to complete", interval=0.1)
        except AssertionError as exc:
            counts = {s.value: await _count(store, s) for s in S}
            raise AssertionError(f"{exc}; statuses {counts}\n{workers.report()}") from None
        elapsed = time.monotonic() - started

        # Every job: completed once, each step checkpointed once, usage the sum of its steps'.
        for job_id in ids:
            job = await store.get(job_id)
            assert job is not None and job.status is S.COMPLETED, job
            assert (job.current_step, job.total_steps) == (steps, steps)
            assert job.lease_owner is None, f"{job_id} still leased to {job.lease_owner}"
            checkpoints, total = await store.list_checkpoints(job_id, take=1000)
            assert [c.seq for c in checkpoints] == list(range(1, total + 1))
            # steps 1..n-1 end in "step" checkpoints, the last in the "stop" one: none repeated.
            assert [c.kind for c in checkpoints] == ["step"] * (steps - 1) + ["stop"], job_id
            assert [c.step for c in checkpoints] == list(range(1, steps + 1)), job_id
            assert sum(1 for c in checkpoints if c.status is S.COMPLETED) == 1
            usage = sum((c.step_usage for c in checkpoints), ZERO_USAGE)
            assert job.usage == usage == Usage.of(steps * 100, steps * 20), job_id
        # The killed worker's jobs were finished by the others, and it holds nothing any more.
        assert await store.held_by("w0") == []
        for job_id in victim_jobs:
            job = await store.get(job_id)
            assert job is not None and job.status is S.COMPLETED
        survivors = [w for w, p in workers.procs.items() if w != "w0"]
        assert all(workers.procs[w].poll() is None for w in survivors), workers.report()
    print(f"\n{jobs_count} jobs; w0 killed holding {len(victim_jobs)}, {done_at_kill} done; {elapsed:.1f} s")


async def test_a_cancel_from_another_process_stops_a_running_job_within_one_step(
    postgres_url: str, schemas: list[str], tmp_path: Path
) -> None:
    steps, delay = 60, 0.2
    schema = _new_schema(schemas)
    # A long lease: the heartbeat (every lease/3 = 10 s) cannot be what delivers the cancel.
    async with _cluster(
        postgres_url, schema, tmp_path, 1, steps=steps, delay=delay, lease=30.0, concurrency=4
    ) as (workers, runtime, store):
        job = await runtime.submit(EXPERT, "a long job")

        async def running() -> bool:
            current = await store.get(job.id)
            return current is not None and current.current_step >= 3

        await _until(running, within=20, what="the job to be running")
        while True:
            try:
                asked_at = time.monotonic()
                canceled = await runtime.cancel(job.id)
                break
            except StaleJobVersion:
                continue  # the worker saved a step between our read and our write
        assert canceled.status is S.CANCELING
        step_at_cancel = canceled.current_step

        async def stopped() -> bool:
            current = await store.get(job.id)
            return current is not None and current.status is S.CANCELED

        await _until(stopped, within=5, what="the job to be canceled", interval=0.01)
        latency = time.monotonic() - asked_at
        final = await store.get(job.id)
        assert final is not None
        assert final.current_step <= step_at_cancel + 1, (step_at_cancel, final.current_step)
        assert latency < 3.0, latency
        checkpoints, total = await store.list_checkpoints(job.id, take=1000)
        assert checkpoints[-1].status is S.CANCELED and total == final.checkpoint_seq
        assert final.usage == sum((c.step_usage for c in checkpoints), ZERO_USAGE)
        assert workers.procs["w0"].poll() is None, workers.report()
    print(f"\ncanceled at step {step_at_cancel} -> {final.current_step}; {latency * 1000:.0f} ms")
