"""The worker: claims queued jobs from the store and runs up to N at once, renews their leases,
sweeps (expiry, stalled jobs) and shuts down gracefully."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
from typing import Any

from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import Job
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.pricing import load_prices
from expert_jobs.engine.runner import JobRunner
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.sweeper import sweep

__all__ = ["Worker"]

_log = logging.getLogger("expert_jobs.worker")


class Worker:
    """Runs queued jobs of ``runtime``'s store, ``concurrency`` at a time.

    Use :meth:`run_until_idle` in tests and scripts, or :meth:`start` / :meth:`stop` in a service.
    ``worker_id`` should be stable across restarts of the same worker: a restarted worker takes back
    at once what it held when it died.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        concurrency: int = 16,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        sweep_interval: float = 5.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.runtime = runtime
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}-{new_id()[:8]}"
        self.poll_interval = poll_interval
        self.sweep_interval = sweep_interval
        self._running: dict[str, asyncio.Task[Job]] = {}
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[Any]] = []
        self.jobs_run = 0
        # The context the done callbacks of the job tasks a claim round launches run in: one copy
        # of the claimer's per round (made in _fill), not one per job (one object less for the
        # collector per job in flight). (The bound method is made per job: one kept here would be
        # a cycle through the worker, leaving its runtime and store to the collector.)
        self._callback_context = contextvars.Context()
        self.claim_batch = 64
        """The most claims sent at once when many slots are free."""

    async def _fill(self) -> int:
        """Claim jobs into free slots; returns how many were claimed.

        Claims go out in growing concurrent rounds (1, 2, 4, ... up to :attr:`claim_batch`) when the
        store serves concurrent claims together (its ``claims_in_batches`` is true: SQLite and
        PostgreSQL group them into one transaction), so an almost empty queue costs a single claim;
        other stores (MemoryStore) are asked one claim at a time, which costs them less.
        """
        runtime = self.runtime
        store = runtime.store
        lease = runtime.settings.lease_seconds
        claimed = 0
        self._callback_context = contextvars.copy_context()
        if not getattr(store, "claims_in_batches", False):
            # One claim at a time, each job launched as it comes.
            clock, worker_id, running = runtime.clock, self.worker_id, self._running
            while not self._stopping and len(running) < self.concurrency:
                job = await store.claim(worker_id, now=clock.now(), lease_seconds=lease)
                if job is None:
                    break
                self._launch(job)
                claimed += 1
            return claimed
        round_size = 1
        largest_round = self.claim_batch
        while not self._stopping:
            free = self.concurrency - len(self._running)
            if free <= 0:
                break
            wanted = min(free, round_size)
            now = runtime.clock.now()
            if wanted == 1:
                outcomes: list[Job | BaseException | None] = [
                    await store.claim(self.worker_id, now=now, lease_seconds=lease)
                ]
            else:
                outcomes = list(
                    await asyncio.gather(
                        *(store.claim(self.worker_id, now=now, lease_seconds=lease) for _ in range(wanted)),
                        return_exceptions=True,
                    )
                )
            got = 0
            failure: BaseException | None = None
            for outcome in outcomes:
                if isinstance(outcome, BaseException):
                    failure = outcome
                elif outcome is not None:
                    self._launch(outcome)
                    got += 1
            claimed += got
            if failure is not None:
                raise failure  # the jobs claimed in this round run; the claim loop logs and retries
            if got < wanted:
                break
            round_size = min(round_size * 2, largest_round)
        return claimed

    def _launch(self, job: Job) -> None:
        # The runner's run is the task's coroutine (what Runtime.execute awaits, without its frame:
        # a job in flight keeps one coroutine less alive).
        runner = JobRunner(self.runtime, job, self.worker_id)
        # The loop's create_task with the name (asyncio.create_task names the task in a second call).
        task = asyncio.get_running_loop().create_task(runner.run(), name=f"expert-job-{job.id}")
        self._running[job.id] = task
        task.add_done_callback(self._finished, context=self._callback_context)

    def _finished(self, task: asyncio.Task[Job]) -> None:
        job_id = task.get_name().removeprefix("expert-job-")
        self._running.pop(job_id, None)
        self.jobs_run += 1
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            _log.error("job %s crashed its runner", job_id, exc_info=task.exception())

    async def run_until_idle(self) -> int:
        """Run jobs until none is queued and none is running; returns how many runs finished."""
        await self.recover()
        before = self.jobs_run
        while True:
            self._slot_freed.clear()
            await self._fill()
            if not self._running:
                return self.jobs_run - before
            await self._slot_freed.wait()

    async def recover(self) -> None:
        """Take back jobs this worker id held before a restart, and sweep once."""
        runtime = self.runtime
        for job in await runtime.store.held_by(self.worker_id):
            if job.id not in self._running:
                await _hand_back(runtime, job)
        await sweep(runtime)

    async def start(self) -> None:
        """Start claiming in the background (and sweeping); the runtime renews the leases. With
        ``price_final_checkpoint`` on, the price table is loaded first, in a thread, so that the
        first job end does not stall the event loop loading it."""
        if self.runtime.settings.price_final_checkpoint:
            try:
                await asyncio.to_thread(load_prices)
            except Exception:  # a broken table: jobs still run, their cost says unknown
                _log.exception("worker %s: loading the price table failed", self.worker_id)
        await self.recover()
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="expert-jobs-claim"),
            asyncio.create_task(self._sweep_loop(), name="expert-jobs-sweep"),
        ]

    async def stop(self, *, grace: float = 10.0) -> None:
        """Stop claiming; give running jobs ``grace`` seconds to finish, then abandon their step
        in flight and hand them back to the queue; then stop the runtime's MCP servers (a runtime
        used again starts them anew when a job needs them)."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._release_unstarted()
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self.runtime.stop_mcp_servers()
        except Exception:
            _log.exception("worker %s: stopping the MCP servers failed", self.worker_id)

    async def _release_unstarted(self) -> None:
        """Let go of queued jobs leased to this worker that it never started (a claim committed
        after the claim loop was cancelled), so others take them at once, not after the lease."""
        store = self.runtime.store
        try:
            for job in await store.held_by(self.worker_id):
                if job.id not in self._running and job.status is JobStatus.QUEUED:
                    await store.release(job.id, self.worker_id)
        except Exception:
            _log.exception("worker %s: releasing unstarted jobs failed (leases will lapse)", self.worker_id)

    async def _claim_loop(self) -> None:
        wake = self.runtime.wakeup_event()
        while not self._stopping:
            wake.clear()
            self._slot_freed.clear()
            try:
                await self._fill()
            except Exception:  # a store hiccup (a lock timeout, a lost connection): retry after a pause
                _log.exception("worker %s: claiming failed; retrying", self.worker_id)
            waiters = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(self._slot_freed.wait())]
            try:
                await asyncio.wait(waiters, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await sweep(self.runtime)
            except Exception:
                _log.exception("sweep failed")


async def _hand_back(runtime: Runtime, job: Job) -> None:
    from expert_jobs.engine.sweeper import recover_stalled

    await recover_stalled(runtime, job)
