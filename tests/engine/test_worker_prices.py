"""A worker loads the price table before it claims, off the event loop, so the first job end it
prices does not stall every job of the process (the table's import takes about a quarter second)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from expert_jobs import Reply, Runtime, RuntimeSettings, ScriptedProvider, Worker
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine import worker as worker_module


def _runtime(**settings: object) -> Runtime:
    provider = ScriptedProvider([Reply("done")])
    runtime = Runtime(providers=provider, settings=RuntimeSettings(**settings))  # type: ignore[arg-type]
    runtime.add_expert("e@1.0.0", "You answer.")
    return runtime


async def test_start_loads_the_price_table_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[threading.Thread] = []

    def load() -> bool:
        threads.append(threading.current_thread())
        return True

    monkeypatch.setattr(worker_module, "load_prices", load)
    worker = Worker(_runtime())
    await worker.start()
    await worker.stop()
    assert len(threads) == 1 and threads[0] is not threading.main_thread()


async def test_without_job_end_pricing_the_table_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(worker_module, "load_prices", lambda: calls.append(1) or True)
    worker = Worker(_runtime(price_final_checkpoint=False))
    await worker.start()
    await worker.stop()
    assert calls == []


async def test_a_table_that_fails_to_load_does_not_stop_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> bool:
        raise ValueError("corrupt price data")

    monkeypatch.setattr(worker_module, "load_prices", broken)
    runtime = _runtime()
    job = await runtime.submit("e@1.0.0", "q")
    worker = Worker(runtime, poll_interval=0.01)
    await worker.start()
    try:
        for _ in range(500):
            if (await runtime.get(job.id)).status is JobStatus.COMPLETED:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert (await runtime.get(job.id)).status is JobStatus.COMPLETED
