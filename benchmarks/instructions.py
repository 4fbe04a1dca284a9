"""Instruction counts of the engine workloads, under valgrind's cachegrind: deterministic figures
for comparing two versions of the code on a noisy machine, where wall-clock medians move by 2x
between hours (see README.md). An instruction count is not a time (cache misses, and so most of
the garbage collector's cost, do not show), so the wall-clock benchmarks stay the targets' measure.

Each figure is the difference between a process that runs a workload k+1 times and one that runs
it k times (imports, warm-up and process exit cancel out), with a fixed hash seed:
W1: instructions per step of 100-step jobs, the collector off (the step's own code: where a full
collection falls would otherwise move the figure by more than most changes); W2: per job of 1,000
concurrent 10-step jobs, the collector on as in engine.py (the steps, submission, claim and the
collections the run triggers); W2_1: the same with 1-step jobs (what a job costs besides its steps).

Run: ``python benchmarks/instructions.py [--json]`` (needs ``valgrind``; about a minute).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import engine

_REFS = re.compile(r"I\s+refs:\s+([\d,]+)")


async def _w1(runs: int) -> None:
    runtime = engine.runtime_for(100)
    await runtime.run("bench", "warm-up")
    for _ in range(runs):
        await runtime.run("bench", "go")


def _child(workload: str, runs: int) -> None:
    # The process's one-time set-up out of the count's way: the price table's import and load (a
    # job end prices the job), then every object alive now (modules, the price table) frozen out of
    # the collector's sight, so each run's ``gc.collect()`` costs the same in both processes
    # (without it, the larger process's one more full collection of the whole heap counted as
    # ≈ 23k instructions per W2 job once the price table was in the heap).
    engine.warm_up_prices()
    gc.collect()
    gc.freeze()
    if workload == "w1":
        gc.collect()
        gc.disable()
        asyncio.run(_w1(runs))
    else:
        steps = 10 if workload == "w2" else 1
        for _ in range(runs):
            gc.collect()
            asyncio.run(engine.w2(1000, steps))
    sys.stdout.flush()
    os._exit(0)  # no interpreter shutdown: its collection would count in the last run


def _instructions(workload: str, runs: int) -> int:
    command = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        workload,
        str(runs),
    ]
    environment = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=environment)
    found = _REFS.search(done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def measure() -> dict[str, int]:
    """Instructions per W1 step, per W2 job and per W2 1-step job."""
    # figure: (workload, runs in the smaller process, runs more in the larger, units in those runs)
    plans = {
        "w1_instructions_per_step": ("w1", 1, 4, 400),
        "w2_instructions_per_job": ("w2", 1, 1, 1000),
        "w2_1step_instructions_per_job": ("w2_1", 1, 1, 1000),
    }
    results = {}
    for figure, (workload, runs, more, units) in plans.items():
        extra = _instructions(workload, runs + more) - _instructions(workload, runs)
        results[figure] = extra // units
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: these counts need it (apt-get install valgrind)")
    results = measure()
    if args.json:
        print(json.dumps(results))
        return
    for key, value in results.items():
        print(f"{key:<34}{value:>12,}")


if __name__ == "__main__":
    main()
