"""W2 on PostgreSQL: 1,000 concurrent 10-step jobs run by N worker processes sharing one database.

The workload is ``benchmarks/engine.py``'s W2 (the instant scripted provider, a tool call on every
step but the last); every checkpoint is durable (the server's ``synchronous_commit`` stays ``on``)
before the save that wrote it returns. The figure is jobs per second from the first submission to
the last completion, with the worker processes already started and connected (process start-up
is not part of it), on a fresh schema dropped afterwards. Submission (from this process, all jobs
at once) is included, as in the MemoryStore figure.

``run_w2_postgres(url, jobs, steps, workers)`` is what ``benchmarks/stores.py`` calls. Run alone:
``python benchmarks/_postgres_w2.py postgresql://postgres@127.0.0.1:5432/test --repeats 5``
(``--stats`` adds CPU seconds by process name and the workers' batching counters, on stderr).
The same file is the worker process (``--worker``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from engine import noop, script, warm_up_prices  # noqa: E402  (the W2 workload of benchmarks/engine.py)
from expert_jobs import Runtime, RuntimeSettings, ScriptedProvider, Worker  # noqa: E402
from expert_jobs.domain.job import JobQuery  # noqa: E402
from expert_jobs.domain.status import JobStatus  # noqa: E402
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID  # noqa: E402
from expert_jobs.stores.postgres import PostgresStore, split_url  # noqa: E402

POOL_SIZE = 6
"""Connections per worker process (the group-commit writer's, the rest for claims and reads)."""
POOL_OPEN = 3
"""Connections each process opens before the timed run (for the writer, claims and reads): the
run's first writes then wait for no connection to be set up (as with process start-up, not timed)."""
CLAIM_BATCH = 64
"""The most concurrent claims of a worker one statement serves (``PostgresStore``'s default)."""


def _runtime(store: PostgresStore, steps: int) -> Runtime:
    runtime = Runtime(
        providers=ScriptedProvider(script(steps)),
        store=store,
        settings=RuntimeSettings(default_max_steps=steps + 1),
    )
    runtime.add_expert("bench", "Benchmark expert.", tools=[noop])
    return runtime


async def _worker(url: str, schema: str, worker_id: str, steps: int, concurrency: int, stats: bool) -> None:
    store = await PostgresStore.open(
        url, schema=schema, min_size=POOL_OPEN, max_size=POOL_SIZE, claim_batch=CLAIM_BATCH
    )
    worker = Worker(_runtime(store, steps), concurrency=concurrency, worker_id=worker_id, poll_interval=0.02)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    warm_up_prices()  # the price table's one-time import, before the timed run, not in it
    await worker.start()
    print("ready", flush=True)
    ready_cpu = time.process_time()
    await stop.wait()
    await worker.stop(grace=5.0)
    if stats and store.writer is not None:
        writer = store.writer
        cpu = time.process_time() - ready_cpu
        counters = f"{writer.batches} commits, {writer.operations} writes"
        print(f"{worker_id}: {counters}, cpu {cpu:.2f} s", file=sys.stderr)
    await store.close()


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process, by pid, with its name (Linux only)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text[text.rindex(")") + 2 :].split()
            found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / 100)
    return found


def _print_cpu(before: dict[int, tuple[str, float]], elapsed: float, workers: list[int]) -> None:
    """CPU seconds spent during the run: by this benchmark's processes, by PostgreSQL, by others."""
    ours = {os.getpid(): "parent", **{pid: "workers" for pid in workers}}
    spent: dict[str, float] = {}
    for pid, (name, seconds) in _cpu_by_process().items():
        used = seconds - before.get(pid, (name, 0.0))[1]
        key = ours.get(pid) or ("postgres" if name == "postgres" else "others")
        spent[key] = spent.get(key, 0.0) + used
    keys = ("workers", "parent", "postgres", "others")
    shown = ", ".join(f"{key} {spent.get(key, 0.0):.2f}" for key in keys)
    print(f"wall {elapsed:.2f} s; CPU seconds: {shown}", file=sys.stderr)


async def _measure(url: str, schema: str, jobs: int, steps: int, workers: int, stats: bool) -> float:
    concurrency = math.ceil(jobs / workers)
    store = await PostgresStore.open(url, schema=schema, min_size=POOL_OPEN, max_size=POOL_SIZE)
    procs = []
    try:
        for i in range(workers):
            args = ["--worker", url, schema, f"bench-w{i}", str(steps), str(concurrency), str(int(stats))]
            proc = await asyncio.create_subprocess_exec(
                sys.executable, __file__, *args, stdout=asyncio.subprocess.PIPE
            )
            procs.append(proc)
        for proc in procs:
            assert proc.stdout is not None
            if (await proc.stdout.readline()).strip() != b"ready":
                raise RuntimeError(f"a worker process failed to start (exit {proc.returncode})")
        runtime = _runtime(store, steps)
        completed = frozenset({JobStatus.COMPLETED})
        done = JobQuery(application_id=DEFAULT_APPLICATION_ID, statuses=completed, take=0)
        cpu_before = _cpu_by_process() if stats else {}
        start = time.perf_counter()
        await asyncio.gather(*(runtime.submit("bench", f"job {i}") for i in range(jobs)))
        while (await store.list(done))[1] < jobs:  # noqa: ASYNC110  (the workers are other processes)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
        if stats:
            _print_cpu(cpu_before, elapsed, [proc.pid for proc in procs])
        unfinished = frozenset(JobStatus) - completed
        others = JobQuery(application_id=DEFAULT_APPLICATION_ID, statuses=unfinished, take=0)
        assert (await store.list(others))[1] == 0
        return jobs / elapsed
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 30)
        await store.close()


def _drop(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(split_url(url)[0], autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_w2_postgres(
    url: str, jobs: int = 1000, steps: int = 10, workers: int = 4, *, repeats: int = 1, stats: bool = False
) -> float:
    """Jobs per second of W2 with ``workers`` worker processes (the median of ``repeats`` runs,
    each on a fresh schema that is dropped afterwards)."""
    figures = []
    for _ in range(repeats):
        schema = f"ej_bench_{uuid.uuid4().hex[:12]}"
        try:
            figures.append(asyncio.run(_measure(url, schema, jobs, steps, workers, stats)))
        finally:
            _drop(url, schema)
    return statistics.median(figures)


def main() -> None:
    """Run the benchmark (or, with ``--worker``, be one of its worker processes)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, schema, worker_id, steps, concurrency, stats = sys.argv[2:8]
        asyncio.run(_worker(url, schema, worker_id, int(steps), int(concurrency), stats == "1"))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--stats", action="store_true", help="CPU seconds and batching counters, on stderr")
    args = parser.parse_args()
    figures = [
        run_w2_postgres(args.url, args.jobs, args.steps, args.workers, stats=args.stats)
        for _ in range(args.repeats)
    ]
    result = {
        "w2_postgres_jobs_per_s": round(statistics.median(figures), 1),
        "runs": [round(figure, 1) for figure in figures],
        "workers": args.workers,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
