"""Crash recovery for real: worker processes on one SQLite file, killed with ``SIGKILL`` at random
moments, restarted under the same id (it takes back what it held at once) and under other ids
(they recover the dead worker's jobs once its leases lapse), until every job has finished.

Then, from the store: every job ``completed`` exactly once, its usage equal to the sum of its
checkpoints' step usages (and to what the provider reported for its 8 steps: nothing counted
twice), its checkpoints a clean sequence, and — from the provider's own log of generations — no
step generated again except the one in flight at a kill. Seeded: ``CRASH_SEED=<n>`` replays a run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE
from expert_jobs.engine.runner import root_run_id
from expert_jobs.stores.sqlite import SQLiteStore
from tests.crash.worker_main import EXPERT, STEPS, make_runtime, step_usage

ROOT = Path(__file__).resolve().parents[2]
JOBS = 40
DEADLINE = 60.0
"""The whole test gives up after this many seconds."""


class Cluster:
    """The SQLite file, the provider log and the worker processes started on them."""

    def __init__(self, tmp_path: Path, rng: random.Random) -> None:
        self.db = tmp_path / "jobs.db"
        self.log = tmp_path / "generations.log"
        self.stderr = tmp_path / "workers.stderr"
        self.rng = rng
        self.kills = 0
        self.in_flight: list[int] = []
        """How many jobs were ``processing`` at each kill."""
        self.started = time.monotonic()
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, worker_id: str, *, lease: float) -> subprocess.Popen[str]:
        """Start a worker process and wait until it claims."""
        with open(self.stderr, "a") as errors:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.crash.worker_main", str(self.db), str(self.log),
                 "--worker-id", worker_id, "--lease", str(lease), "--delay", "0.2"],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self.procs.append(proc)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready and proc.stdout.readline().strip() == "ready", self._errors()
        return proc

    def kill(self, proc: subprocess.Popen[str]) -> None:
        """``kill -9`` the worker."""
        assert proc.poll() is None, f"worker died by itself: {self._errors()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.kills += 1
        statuses = [status for status, _, _ in self.rows().values()]
        self.in_flight.append(statuses.count("processing"))

    def _errors(self) -> str:
        return self.stderr.read_text()[-3000:] if self.stderr.exists() else ""

    def rows(self) -> dict[str, tuple[str, int, str | None]]:
        """``id -> (status, checkpoint_seq, lease_owner)`` as the file has it now."""
        with sqlite3.connect(self.db, timeout=10) as conn:
            rows = conn.execute("SELECT id, status, checkpoint_seq, lease_owner FROM jobs").fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def wait_until(self, what: str, condition: Callable[[], bool], timeout: float) -> None:
        """Poll ``condition`` until true; fail after ``timeout`` seconds (or at the test deadline)."""
        until = min(time.monotonic() + timeout, self.started + DEADLINE)
        while not condition():
            if time.monotonic() > until:
                pytest.fail(f"timed out waiting until {what}; workers said: {self._errors()}")
            time.sleep(0.05)

    def run_then_kill(self, worker_id: str, *, lease: float, low: float = 0.2, high: float = 0.7) -> None:
        """Start a worker, wait until it runs jobs (if any are left), let it run a random while, kill it."""
        proc = self.start(worker_id, lease=lease)
        self.wait_until(
            f"{worker_id} runs jobs", lambda: self.done() or bool(self.running(worker_id)), 15
        )
        time.sleep(self.rng.uniform(low, high))
        self.kill(proc)

    def running(self, worker_id: str) -> list[str]:
        """Jobs ``processing`` under the worker's lease."""
        return [
            job_id
            for job_id, (status, _, owner) in self.rows().items()
            if owner == worker_id and status == "processing"
        ]

    def held(self, worker_id: str) -> dict[str, int]:
        """Unfinished jobs the worker holds: ``id -> checkpoint_seq``."""
        return {
            job_id: seq
            for job_id, (status, seq, owner) in self.rows().items()
            if owner == worker_id and status != "completed"
        }

    def progressed(self, before: dict[str, int]) -> bool:
        """Every job of ``before`` has a later checkpoint than then."""
        now = self.rows()
        return all(now[job_id][1] > seq for job_id, seq in before.items())

    def done(self) -> bool:
        """Every job completed."""
        return all(status == "completed" for status, _, _ in self.rows().values())

    def stop_all(self) -> None:
        """Kill whatever still runs (test teardown)."""
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


async def _submit(db: Path) -> list[str]:
    store = await SQLiteStore.open(db)
    runtime = make_runtime(store, log_fd=None, delay=0, lease=1.0)
    try:
        return [(await runtime.submit(EXPERT, f"job {i}")).id for i in range(JOBS)]
    finally:
        await runtime.close()


def test_jobs_survive_kill_9_and_finish_exactly_once(tmp_path: Path) -> None:
    seed = int(os.environ.get("CRASH_SEED", random.randrange(1 << 30)))
    print(f"CRASH_SEED={seed}")
    cluster = Cluster(tmp_path, random.Random(seed))
    job_ids = asyncio.run(_submit(cluster.db))
    try:
        # 1. Worker A (long leases) is killed while every job is mid-run.
        cluster.run_then_kill("A", lease=30.0, low=0.1, high=0.6)
        rows = cluster.rows()
        assert any(status == "processing" for status, _, _ in rows.values()), rows
        held = cluster.held("A")
        assert held, "A held nothing when it was killed"
        # 2. A restarts under the same id: it takes back what it held at once, long before its
        #    30-second leases could lapse.
        proc = cluster.start("A", lease=30.0)
        cluster.wait_until("the restarted A resumes its jobs", lambda: cluster.progressed(held), 10)
        time.sleep(cluster.rng.uniform(0.0, 0.3))
        cluster.kill(proc)
        # 3. A again, with short leases, killed; then B recovers A's jobs once their leases lapse.
        cluster.run_then_kill("A", lease=1.0)
        held = cluster.held("A")
        proc = cluster.start("B", lease=1.0)
        cluster.wait_until(
            "B recovers the jobs of the dead A",
            lambda: not cluster.held("A") and cluster.progressed(held),
            10,
        )
        time.sleep(cluster.rng.uniform(0.0, 0.3))
        cluster.kill(proc)
        # 4. More random kills of other workers, then one runs to the end.
        for _ in range(3):
            if cluster.done():
                break
            cluster.run_then_kill(cluster.rng.choice(["B", "C", "D"]), lease=1.0, low=0.3, high=0.9)
        proc = cluster.start("E", lease=1.0)
        cluster.wait_until("every job completes", cluster.done, DEADLINE)
        cluster.kill(proc)
    finally:
        cluster.stop_all()
    asyncio.run(_check_store(cluster.db, job_ids))
    print(f"jobs processing at each kill: {cluster.in_flight}")
    assert sum(1 for count in cluster.in_flight if count) >= 3, cluster.in_flight
    _check_generations(cluster.log, job_ids, cluster.kills)


async def _check_store(db: Path, job_ids: list[str]) -> None:
    expected_usage = sum((step_usage(step) for step in range(1, STEPS + 1)), ZERO_USAGE)
    store = await SQLiteStore.open(db)
    try:
        for job_id in job_ids:
            job = await store.get(job_id)
            assert job is not None
            assert job.status is JobStatus.COMPLETED
            assert (job.current_step, job.total_steps) == (STEPS, STEPS)
            assert job.lease_owner is None
            checkpoints, total = await store.list_checkpoints(job_id, take=1000)
            assert total == len(checkpoints) == job.checkpoint_seq
            assert [c.seq for c in checkpoints] == list(range(1, total + 1))
            assert checkpoints[-1].id == job.last_checkpoint_id
            # Completed exactly once: one completion checkpoint, the last one.
            completions = [c for c in checkpoints if c.status is JobStatus.COMPLETED]
            assert completions == [checkpoints[-1]] and completions[0].step == STEPS
            # Steps only move forward, and each step was checkpointed once.
            steps = [c.step for c in checkpoints]
            assert steps == sorted(steps)
            assert [c.step for c in checkpoints if c.kind == "step"] == list(range(1, STEPS))
            # Usage: the job's equals its checkpoints' step usages, and what the provider reported.
            assert sum((c.step_usage for c in checkpoints), ZERO_USAGE) == job.usage == expected_usage
            assert checkpoints[-1].usage == job.usage
            history = await store.load_history(job_id, root_run_id(job_id))
            assert len(history) == 1 + 2 * (STEPS - 1) + 1  # query, (call, result) x 7, answer
    finally:
        await store.close()


def _check_generations(log: Path, job_ids: list[str], kills: int) -> None:
    """From the provider's log: steps ran in order; a step ran again only when a kill interrupted it."""
    by_run: dict[str, list[int]] = defaultdict(list)
    for line in log.read_text().splitlines():
        run_id, step = line.split()
        by_run[run_id].append(int(step))
    repeats_total = 0
    for job_id in job_ids:
        steps = by_run[root_run_id(job_id)]
        assert steps[0] == 1 and steps[-1] == STEPS, steps
        for before, after in itertools.pairwise(steps):
            # The next generation is the next step, or the same one again after a kill (the step in
            # flight); never an earlier step, never a skipped one.
            assert after in (before, before + 1), steps
        repeats = len(steps) - STEPS
        assert repeats <= kills, steps
        repeats_total += repeats
    assert len(by_run) == len(job_ids)
    print(f"kills={kills} repeated generations={repeats_total}")
