"""Engine benchmarks: the step loop with the scripted provider and the MemoryStore, each workload
beside a plain-Python baseline loop measured in the same process run.

W1: one job of N steps (a tool call on steps 1..N-1, a final text at N): µs per step, N=10 and N=100,
    on a runtime that has run one job before (and, for N=10, also on a new runtime: "cold").
W2: 1,000 concurrent 10-step jobs through a Worker: jobs per second (submission included).
W3: 2,000 concurrent 5-step jobs with 50 ms model latency: wall time, and memory per in-flight job.

Run: ``python benchmarks/engine.py`` (a table) or ``python benchmarks/engine.py --json``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

from expert_jobs import (
    MemoryStore,
    Reply,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    ToolCalls,
    Usage,
    Worker,
)
from expert_jobs.providers.scripted import Turn

USAGE = Usage.of(100, 20)


async def noop(value: int = 0) -> str:
    """Do nothing, quickly."""
    return "ok"


def script(steps: int, delay: float = 0.0) -> list[Turn]:
    turns: list[Turn] = [
        ToolCalls.of(("noop", {"value": i}), usage=USAGE, delay=delay) for i in range(steps - 1)
    ]
    turns.append(Reply("done", usage=USAGE, delay=delay))
    return turns


def runtime_for(steps: int, delay: float = 0.0) -> Runtime:
    runtime = Runtime(
        providers=ScriptedProvider(script(steps, delay)),
        store=MemoryStore(),
        settings=RuntimeSettings(default_max_steps=steps + 1),
    )
    runtime.add_expert("bench", "Benchmark expert.", tools=[noop])
    return runtime


# ---------------------------------------------------------------- baseline: a plain loop


async def _baseline_call(step: int, last: bool) -> dict[str, Any]:
    return {"text": "done"} if last else {"tool": "noop", "args": {"value": step}}


async def baseline_job(steps: int, delay: float = 0.0) -> dict[str, int]:
    """An async call, a dict append and usage sums per step: the floor for any runtime."""
    history: list[dict[str, Any]] = []
    usage = {"input": 0, "output": 0, "total": 0}
    for step in range(steps):
        if delay:
            await asyncio.sleep(delay)
        response = await _baseline_call(step, step == steps - 1)
        history.append(response)
        usage["input"] += 100
        usage["output"] += 20
        usage["total"] += 120
        if "tool" in response:
            history.append({"result": await noop(**response["args"])})
    return usage


# ---------------------------------------------------------------- workloads


async def w1(steps: int, *, cold: bool = False) -> float:
    """µs per step of one job. The runtime's one-time start-up (its first job builds the toolset
    cache and starts the watchdog and lease-heartbeat tasks) is paid by a warm-up job first,
    unless ``cold``: then the figure includes it (reported as ``w1_cold_us_per_step_n10``)."""
    runtime = runtime_for(steps)
    if not cold:
        await runtime.run("bench", "warm-up")
    start = time.perf_counter()
    job = await runtime.run("bench", "go")
    elapsed = time.perf_counter() - start
    assert job.status.value == "completed" and job.total_steps == steps, job
    return elapsed / steps * 1e6


async def w1_baseline(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(10):
        await baseline_job(steps)
    return (time.perf_counter() - start) / (10 * steps) * 1e6


async def w2(jobs: int = 1000, steps: int = 10) -> float:
    runtime = runtime_for(steps)
    start = time.perf_counter()
    for i in range(jobs):
        await runtime.submit("bench", f"job {i}")
    ran = await Worker(runtime, concurrency=jobs).run_until_idle()
    elapsed = time.perf_counter() - start
    assert ran == jobs
    return jobs / elapsed


async def w2_baseline(jobs: int = 1000, steps: int = 10) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(baseline_job(steps) for _ in range(jobs)))
    return jobs / (time.perf_counter() - start)


async def w3(jobs: int = 2000, steps: int = 5, latency: float = 0.05) -> float:
    runtime = runtime_for(steps, latency)
    start = time.perf_counter()
    for i in range(jobs):
        await runtime.submit("bench", f"job {i}")
    ran = await Worker(runtime, concurrency=jobs).run_until_idle()
    assert ran == jobs
    return time.perf_counter() - start


async def w3_baseline(jobs: int = 2000, steps: int = 5, latency: float = 0.05) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(baseline_job(steps, latency) for _ in range(jobs)))
    return time.perf_counter() - start


async def _memory_per_job(make: Callable[[], Awaitable[Any]], jobs: int) -> float:
    """KiB allocated per in-flight job, sampled mid-run (halfway through the model latency)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    task = asyncio.create_task(make())
    peak = 0
    while not task.done():
        await asyncio.sleep(0.02)
        peak = max(peak, tracemalloc.get_traced_memory()[0] - before)
    await task
    tracemalloc.stop()
    return peak / jobs / 1024


async def w3_memory(jobs: int = 2000) -> float:
    return await _memory_per_job(lambda: w3(jobs), jobs)


async def w3_memory_baseline(jobs: int = 2000) -> float:
    return await _memory_per_job(lambda: w3_baseline(jobs), jobs)


def _one_run(fn: Callable[[], Awaitable[float]]) -> float:
    # The previous run's runtime and store are cyclic garbage: collect it now, not inside this run.
    # The collector stays on while measuring, so a run pays for its own objects.
    gc.collect()
    return asyncio.run(fn())  # type: ignore[arg-type]


def median_of(repeats: int, fn: Callable[[], Awaitable[float]]) -> float:
    return statistics.median(_one_run(fn) for _ in range(repeats))


def paired(
    repeats: int, fn: Callable[[], Awaitable[float]], baseline: Callable[[], Awaitable[float]]
) -> tuple[float, float]:
    """The medians of ``fn`` and of its baseline, their runs alternating (a burst of noise from
    the rest of the machine then hits both, not one of them)."""
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(repeats):
        ours.append(_one_run(fn))
        theirs.append(_one_run(baseline))
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is reported)")
    args = parser.parse_args()
    r = args.repeats
    results: dict[str, float] = {}
    # Each figure's runs alternate with its baseline's, so machine noise hits both alike.
    results["w1_us_per_step_n10"], results["baseline_w1_us_per_step_n10"] = paired(
        r * 4, lambda: w1(10), lambda: w1_baseline(10)
    )
    results["w1_cold_us_per_step_n10"] = median_of(r * 4, lambda: w1(10, cold=True))
    results["w1_us_per_step_n100"], results["baseline_w1_us_per_step_n100"] = paired(
        r * 2, lambda: w1(100), lambda: w1_baseline(100)
    )
    results["w2_jobs_per_s"], results["baseline_w2_jobs_per_s"] = paired(r, w2, w2_baseline)
    results["w3_wall_s"], results["baseline_w3_wall_s"] = paired(r, w3, w3_baseline)
    results["w3_kib_per_job"] = asyncio.run(w3_memory())
    results["baseline_w3_kib_per_job"] = asyncio.run(w3_memory_baseline())
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
        return
    targets = {
        "w1_us_per_step_n10": "<= 30",
        "w1_us_per_step_n100": "<= 30, flat",
        "w2_jobs_per_s": ">= 5000",
        "w3_wall_s": "<= 0.5",
        "w3_kib_per_job": "<= 20",
    }
    print(f"{'figure':<24}{'expert-jobs':>14}{'baseline':>12}  target")
    for key, target in targets.items():
        print(f"{key:<24}{results[key]:>14.2f}{results['baseline_' + key]:>12.2f}  {target}")
    cold = results["w1_cold_us_per_step_n10"]
    print(f"{'w1_cold_us_per_step_n10':<24}{cold:>14.2f}{'':>12}  (a new runtime's first job)")


if __name__ == "__main__":
    main()
