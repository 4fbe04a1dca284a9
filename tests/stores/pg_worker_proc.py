"""A worker process for the PostgreSQL multi-worker tests and benchmark.

``python -m tests.stores.pg_worker_proc URL SCHEMA WORKER_ID [options]`` runs a
:class:`~expert_jobs.engine.worker.Worker` over a :class:`PostgresStore` with a deterministic
scripted provider (``--steps`` turns per run: tool calls, then a final text; ``--delay`` seconds per
model call), prints ``ready`` once the store is open and runs until SIGTERM (a graceful stop) or
SIGKILL. Everything the test checks is read from the database.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from expert_jobs.domain.usage import Usage
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.worker import Worker
from expert_jobs.providers.scripted import Reply, ScriptedProvider, ToolCalls, Turn
from expert_jobs.stores.postgres import PostgresStore

EXPERT = "worker-test"
TURN_USAGE = Usage.of(100, 20)


async def noop(value: int = 0) -> str:
    """Do nothing."""
    return f"ok {value}"


def script(steps: int, delay: float) -> list[Turn]:
    """``steps - 1`` tool-calling turns, then a final answer; each model call takes ``delay`` s."""
    turns: list[Turn] = [
        ToolCalls.of(("noop", {"value": i}), usage=TURN_USAGE, delay=delay) for i in range(steps - 1)
    ]
    turns.append(Reply("done", usage=TURN_USAGE, delay=delay))
    return turns


def make_runtime(store: PostgresStore, *, steps: int, delay: float, lease: float) -> Runtime:
    """The runtime every process of a test shares the shape of (same expert, same script)."""
    runtime = Runtime(
        providers=ScriptedProvider(script(steps, delay)),
        store=store,
        settings=RuntimeSettings(default_max_steps=steps + 1, lease_seconds=lease),
    )
    runtime.add_expert(EXPERT, "Worker test expert.", tools=[noop])
    return runtime


async def main(argv: list[str]) -> None:
    """Run one worker until told to stop."""
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("schema")
    parser.add_argument("worker_id")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--sweep", type=float, default=0.25)
    parser.add_argument("--max-size", type=int, default=4)
    parser.add_argument("--claim-batch", type=int, default=1)
    args = parser.parse_args(argv)
    store = await PostgresStore.open(
        args.url, schema=args.schema, max_size=args.max_size, claim_batch=args.claim_batch
    )
    runtime = make_runtime(store, steps=args.steps, delay=args.delay, lease=args.lease)
    worker = Worker(
        runtime,
        concurrency=args.concurrency,
        worker_id=args.worker_id,
        poll_interval=args.poll,
        sweep_interval=args.sweep,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await worker.start()
    print("ready", flush=True)
    await stop.wait()
    await worker.stop(grace=5.0)
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
