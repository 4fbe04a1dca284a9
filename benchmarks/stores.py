"""Store benchmarks: W2 (1,000 concurrent 10-step jobs through a Worker, submission included) with
each store side by side in one run: MemoryStore, SQLiteStore (a file in WAL mode with
``synchronous=FULL``: every checkpoint durable before its save returns) and, with ``--postgres URL``,
PostgresStore with 4 worker processes (``benchmarks/_postgres_w2.py``).

The workload is ``benchmarks/engine.py``'s W2 (same script, tool and usage); the jobs are submitted
concurrently (as an API server under load would), so that SQLite's group commit can share fsyncs
between submissions too. Figures are medians over ``--repeats`` runs.

Run: ``python benchmarks/stores.py`` (a table) or ``python benchmarks/stores.py --json``;
``--writer process`` runs SQLiteStore with ``writer="process"`` (its writer in a child process).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine import noop, script, warm_up_prices  # W2 of benchmarks/engine.py (found via sys.path above)
from expert_jobs import Runtime, RuntimeSettings, ScriptedProvider, Worker
from expert_jobs.ports.store import JobStore
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.stores.sqlite import SQLiteStore

JOBS = 1000
STEPS = 10


async def w2_store(
    store: JobStore, jobs: int = JOBS, steps: int = STEPS
) -> tuple[float, dict[str, Any]]:
    """W2 on ``store``: jobs per second, and what the store says about it (commits, fsyncs)."""
    runtime = Runtime(
        providers=ScriptedProvider(script(steps)),
        store=store,
        settings=RuntimeSettings(default_max_steps=steps + 1),
    )
    runtime.add_expert("bench", "Benchmark expert.", tools=[noop])
    writer = getattr(store, "writer", None)
    start = time.perf_counter()
    await asyncio.gather(*(runtime.submit("bench", f"job {i}") for i in range(jobs)))
    ran = await Worker(runtime, concurrency=jobs).run_until_idle()
    elapsed = time.perf_counter() - start
    assert ran == jobs, ran
    info: dict[str, Any] = {}
    if writer is not None:
        info = {"commits": writer.batches, "writes": writer.operations}
    await runtime.close()
    return jobs / elapsed, info


async def _memory() -> tuple[float, dict[str, Any]]:
    return await w2_store(MemoryStore())


WRITER: dict[str, Any] = {}
"""``SQLiteStore`` options from the command line (``--writer``)."""


async def _sqlite(path: Path) -> tuple[float, dict[str, Any]]:
    store = await SQLiteStore.open(path, **WRITER)  # synchronous=FULL, WAL: every commit fsyncs
    return await w2_store(store)


def _sqlite_run(directory: Path) -> tuple[float, dict[str, Any]]:
    path = directory / f"w2-{time.monotonic_ns()}.db"
    try:
        return asyncio.run(_sqlite(path))
    finally:
        for leftover in directory.glob(path.name + "*"):
            leftover.unlink()


def _postgres(url: str, workers: int) -> float | None:
    try:
        module = importlib.import_module("_postgres_w2")
    except ImportError:
        return None
    run: Callable[..., float] = module.run_w2_postgres
    return run(url, jobs=JOBS, steps=STEPS, workers=workers)


def main() -> None:
    """Run the benchmarks and print a table or one JSON object."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is reported)")
    parser.add_argument("--dir", type=Path, default=None, help="where SQLite files go (default: a temp dir)")
    parser.add_argument("--postgres", metavar="URL", default=None, help="also run W2 on this PostgreSQL")
    parser.add_argument("--postgres-workers", type=int, default=4, help="worker processes for PostgreSQL")
    parser.add_argument(
        "--writer", choices=("thread", "process"), default=None, help="SQLiteStore's writer"
    )
    args = parser.parse_args()
    warm_up_prices()  # the price table's one-time import, not inside the first timed run
    if args.writer is not None:
        WRITER["writer"] = args.writer
    directory = args.dir or Path(tempfile.mkdtemp(prefix="expert-jobs-bench-"))
    results: dict[str, Any] = {}
    try:
        # Interleaved, so machine noise hits every store alike.
        memory: list[float] = []
        sqlite: list[tuple[float, dict[str, Any]]] = []
        for _ in range(args.repeats):
            # As in engine.py: the previous run's runtime is cyclic garbage; collect it before a
            # timed run, not inside it (the collector stays on, so a run pays for its own objects).
            gc.collect()
            memory.append(asyncio.run(_memory())[0])
            gc.collect()
            sqlite.append(_sqlite_run(directory))
        sqlite.sort(key=lambda run: run[0])
        results["w2_memory_jobs_per_s"] = statistics.median(memory)
        results["w2_sqlite_jobs_per_s"] = statistics.median(run[0] for run in sqlite)
        details = sqlite[len(sqlite) // 2][1]
        results["w2_sqlite_commits"] = details["commits"]
        results["w2_sqlite_writes"] = details["writes"]
        results["w2_sqlite_writer"] = WRITER.get("writer", "default")
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.postgres:
        figure = _postgres(args.postgres, args.postgres_workers)
        results["w2_postgres_jobs_per_s"] = "skipped" if figure is None else figure
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in results.items()}))
        return
    print(f"W2: {JOBS} concurrent {STEPS}-step jobs, median of {args.repeats}")
    print(f"{'store':<34}{'jobs/s':>10}  target")
    print(f"{'MemoryStore':<34}{results['w2_memory_jobs_per_s']:>10.0f}")
    print(f"{'SQLiteStore (WAL, synchronous=FULL)':<34}{results['w2_sqlite_jobs_per_s']:>10.0f}  >= 3000")
    print(f"  {results['w2_sqlite_writes']} writes in {results['w2_sqlite_commits']} commits (fsyncs)")
    if args.postgres:
        value = results["w2_postgres_jobs_per_s"]
        shown = value if isinstance(value, str) else f"{value:.0f}"
        print(f"{f'PostgresStore ({args.postgres_workers} workers)':<34}{shown:>10}  >= 500")


if __name__ == "__main__":
    main()
