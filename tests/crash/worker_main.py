"""A worker process for the crash test: ``python -m tests.crash.worker_main DB LOG --worker-id ID``.

It runs the jobs of the SQLite file ``DB`` with a deterministic provider (step ``k`` of every job
asks for the tool ``noop`` until the last step answers) that appends ``<run id> <step>`` to ``LOG``
*before* each generation (an ``O_APPEND`` write, which survives ``kill -9``), then sleeps a little
so that jobs are caught mid-step. It prints ``ready`` once it is claiming, and runs until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random

from expert_jobs.domain.messages import AssistantMessage, TextPart, ToolCall
from expert_jobs.domain.usage import Usage
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.worker import Worker
from expert_jobs.ports.provider import GenerationRequest, GenerationResponse
from expert_jobs.providers.scripted import FunctionProvider
from expert_jobs.stores.sqlite import SQLiteStore

EXPERT = "crash@1"
STEPS = 8
"""Steps of every job: ``noop`` on steps 1..7, a final text on step 8."""


def step_usage(step: int) -> Usage:
    """The usage the provider reports for ``step`` (different per step, so sums tell them apart)."""
    return Usage.of(100 + step, 10 + step)


async def noop(step: int) -> str:
    """A tool that does nothing."""
    return f"ok {step}"


def make_runtime(store: SQLiteStore, *, log_fd: int | None, delay: float, lease: float) -> Runtime:
    """The runtime of the crash test (also used by the test to submit jobs)."""

    async def answer(request: GenerationRequest) -> GenerationResponse:
        step = 1 + sum(1 for m in request.messages if type(m) is AssistantMessage)
        if log_fd is not None:
            os.write(log_fd, f"{request.run_id} {step}\n".encode())
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        if step < STEPS:
            parts: tuple[TextPart | ToolCall, ...] = (ToolCall(f"call-{step}", "noop", {"step": step}),)
            return GenerationResponse(parts, "tool_calls", step_usage(step), None, "crash", "scripted")
        return GenerationResponse((TextPart("done"),), "stop", step_usage(step), None, "crash", "scripted")

    runtime = Runtime(
        providers=FunctionProvider(answer),
        store=store,
        settings=RuntimeSettings(lease_seconds=lease, default_max_steps=STEPS + 5),
    )
    runtime.add_expert(EXPERT, "Crash-test expert.", tools=[noop])
    return runtime


async def main(args: argparse.Namespace) -> None:
    """Run the worker until the process is killed."""
    store = await SQLiteStore.open(args.db)
    log_fd = os.open(args.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    runtime = make_runtime(store, log_fd=log_fd, delay=args.delay, lease=args.lease)
    worker = Worker(
        runtime,
        concurrency=args.concurrency,
        worker_id=args.worker_id,
        poll_interval=0.05,
        sweep_interval=args.sweep_interval,
    )
    await worker.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("db")
    parser.add_argument("log")
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--lease", type=float, default=1.0)
    parser.add_argument("--delay", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sweep-interval", type=float, default=0.2)
    asyncio.run(main(parser.parse_args()))
