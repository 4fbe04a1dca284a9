"""Engine benchmarks: the step loop with the scripted provider and the MemoryStore, each workload
beside a plain-Python baseline loop measured in the same process run.

W1: one job of N steps (a tool call on steps 1..N-1, a final text at N): µs per step, N=10 and N=100,
    on a runtime that has run one job before (and, for N=10, also on a new runtime: "cold").
W2: 1,000 concurrent 10-step jobs through a Worker: jobs per second (submission included).
W3: 2,000 concurrent 5-step jobs with 50 ms model latency: wall time, and memory per in-flight job.
W1 and W2 run four times: with an ``async def`` tool, with a plain ``def`` tool (``_sync_``: run
in the runtime's tool threads), with the same function declared ``blocking=False`` (``_inline_``:
run on the event loop), and with the plain tool again on a runtime whose tool threads keep to the
event loop's CPU (``_sync_loop_cpu_``: ``RuntimeSettings(tool_threads_on_loop_cpu=True)``, Linux);
the sync baselines call the plain function directly.

Run: ``python benchmarks/engine.py`` (a table) or ``python benchmarks/engine.py --json``;
``--only w1_sync`` measures only the figures whose name contains ``w1_sync``.
``w1_traced_*``: W1 with OpenTelemetry tracing on (the ``otel`` extra: an SDK tracer provider whose
spans are made, ended and handed to a processor, then dropped), beside W1 with it off as the
baseline; skipped when OpenTelemetry is not installed.
``stream_us_per_delta``: one job whose one generation streams 20,000 text deltas to one delta
subscriber (``subscribe(fn, deltas=True)``), µs per delta, beside the baseline of a plain loop
taking the same provider's stream and calling the same subscriber; their difference is the
engine's overhead per delta (``stream_overhead_us_per_delta``, target <= 3).
``--against SRC`` (e.g. ``/tmp/bench-main/src``, a clone of main) measures W1 and W2 with no
subscriber for this tree and for ``SRC`` side by side, alternating runs in child processes
(``PYTHONPATH``), and prints the medians and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
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
    tool,
)
from expert_jobs.providers.scripted import Turn

USAGE = Usage.of(100, 20)


async def noop(value: int = 0) -> str:
    """Do nothing, quickly."""
    return "ok"


def noop_sync(value: int = 0) -> str:
    """Do nothing, quickly: a plain ``def`` tool (run in the runtime's tool threads)."""
    return "ok"


# The tool each workload's jobs call: "async" (``noop``), "sync" (``noop_sync``, a plain function
# in the tool threads, the default for a ``def`` tool), "inline" (the same function declared
# ``blocking=False``, run on the event loop) or "loop_cpu" (the plain function, in tool threads kept
# on the loop's CPU: ``tool_threads_on_loop_cpu``).
TOOL_KINDS = ("async", "sync", "inline", "loop_cpu")
# Code from before ``blocking=`` existed (for side-by-side runs with PYTHONPATH) has no "inline",
# and code from before ``tool_threads_on_loop_cpu`` no "loop_cpu".
HAS_INLINE = "blocking" in inspect.signature(tool).parameters
HAS_LOOP_CPU = "tool_threads_on_loop_cpu" in {f.name for f in dataclasses.fields(RuntimeSettings)}


def script(steps: int, delay: float = 0.0) -> list[Turn]:
    turns: list[Turn] = [
        ToolCalls.of(("noop", {"value": i}), usage=USAGE, delay=delay) for i in range(steps - 1)
    ]
    turns.append(Reply("done", usage=USAGE, delay=delay))
    return turns


def bench_tool(kind: str = "async") -> Any:
    """The ``noop`` tool of one kind (see ``TOOL_KINDS``), always named ``noop``."""
    if kind == "async":
        return noop
    if kind in ("sync", "loop_cpu"):
        return tool(noop_sync, name="noop")
    if kind == "inline":
        return tool(noop_sync, name="noop", blocking=False)  # type: ignore[call-arg, unused-ignore]
    raise ValueError(f"unknown tool kind {kind!r}")


def runtime_for(steps: int, delay: float = 0.0, kind: str = "async") -> Runtime:
    settings = RuntimeSettings(default_max_steps=steps + 1)
    if kind == "loop_cpu":
        settings = dataclasses.replace(settings, tool_threads_on_loop_cpu=True)
    runtime = Runtime(
        providers=ScriptedProvider(script(steps, delay)), store=MemoryStore(), settings=settings
    )
    runtime.add_expert("bench", "Benchmark expert.", tools=[bench_tool(kind)])
    return runtime


# ---------------------------------------------------------------- baseline: a plain loop


async def _baseline_call(step: int, last: bool) -> dict[str, Any]:
    return {"text": "done"} if last else {"tool": "noop", "args": {"value": step}}


async def baseline_job(steps: int, delay: float = 0.0, sync: bool = False) -> dict[str, int]:
    """An async call, a dict append and usage sums per step: the floor for any runtime (with
    ``sync``, the tool is the plain function, called directly)."""
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
            if sync:
                history.append({"result": noop_sync(**response["args"])})
            else:
                history.append({"result": await noop(**response["args"])})
    return usage


# ---------------------------------------------------------------- workloads


async def w1(steps: int, *, cold: bool = False, kind: str = "async") -> float:
    """µs per step of one job. The runtime's one-time start-up (its first job builds the toolset
    cache and starts the watchdog and lease-heartbeat tasks) is paid by a warm-up job first,
    unless ``cold``: then the figure includes it (reported as ``w1_cold_us_per_step_n10``)."""
    runtime = runtime_for(steps, kind=kind)
    try:
        return await _us_per_step(runtime, steps, warm_up=not cold)
    finally:
        await runtime.close()  # (gives a loop_cpu runtime's thread its CPUs back)


async def w1_traced(steps: int) -> float:
    """W1 with tracing on: what making a job's spans costs per step (see ``traced``)."""
    from expert_jobs.engine.tracing import enable_tracing

    runtime = runtime_for(steps)
    enable_tracing(runtime, _span_sink())
    return await _us_per_step(runtime, steps, warm_up=True)


async def _us_per_step(runtime: Runtime, steps: int, *, warm_up: bool) -> float:
    """µs per step of one ``steps``-step job on ``runtime`` (after a warm-up job if asked)."""
    if warm_up:
        await runtime.run("bench", "warm-up")
    start = time.perf_counter()
    job = await runtime.run("bench", "go")
    elapsed = time.perf_counter() - start
    assert job.status.value == "completed" and job.total_steps == steps, job
    return elapsed / steps * 1e6


def _span_sink() -> Any:
    """An SDK tracer provider whose spans go through a simple processor to an exporter that drops
    them: the spans' whole cost in the process, without the export."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Drop()))
    return provider


def _has_otel() -> bool:
    try:
        import opentelemetry.sdk.trace  # noqa: F401

        import expert_jobs.engine.tracing  # noqa: F401
    except ImportError:
        return False
    return True


class DeltaProvider:
    """A streaming provider that yields ``count`` prebuilt text deltas, then its one response: the
    provider's own cost per delta is one ``yield``."""

    def __init__(self, count: int) -> None:
        from expert_jobs.domain.deltas import TextDelta
        from expert_jobs.domain.messages import TextPart
        from expert_jobs.ports.provider import GenerationResponse

        self.deltas = [TextDelta("tok ") for _ in range(count)]
        self.response = GenerationResponse((TextPart("done"),), "stop", USAGE, None, "bench", "bench")

    async def generate(self, request: Any) -> Any:
        return self.response

    async def stream(self, request: Any) -> AsyncIterator[Any]:
        for delta in self.deltas:
            yield delta
        yield self.response


STREAM_DELTAS = 20_000


def _take(event: Any) -> None:
    """The one delta subscriber: takes the event and does nothing with it."""


async def stream_us_per_delta(deltas: int = STREAM_DELTAS) -> float:
    """µs per delta of a one-step job streaming ``deltas`` deltas to one delta subscriber (the
    job's own fixed cost, tens of µs, is spread over them)."""
    runtime = Runtime(providers=DeltaProvider(deltas), store=MemoryStore())
    runtime.add_expert("bench", "Benchmark expert.")
    runtime.events.subscribe(_take, deltas=True)
    await runtime.run("bench", "warm-up")
    start = time.perf_counter()
    job = await runtime.run("bench", "go")
    elapsed = time.perf_counter() - start
    assert job.status.value == "completed", job
    return elapsed / deltas * 1e6


async def stream_baseline(deltas: int = STREAM_DELTAS) -> float:
    """A plain loop over the same provider's stream calling the same subscriber per delta."""
    provider = DeltaProvider(deltas)
    response_type = type(provider.response)
    start = time.perf_counter()
    async for item in provider.stream(None):
        if not isinstance(item, response_type):
            _take(item)
    return (time.perf_counter() - start) / deltas * 1e6


async def w1_baseline(steps: int, sync: bool = False) -> float:
    start = time.perf_counter()
    for _ in range(10):
        await baseline_job(steps, sync=sync)
    return (time.perf_counter() - start) / (10 * steps) * 1e6


async def w2(jobs: int = 1000, steps: int = 10, kind: str = "async") -> float:
    runtime = runtime_for(steps, kind=kind)
    start = time.perf_counter()
    for i in range(jobs):
        await runtime.submit("bench", f"job {i}")
    ran = await Worker(runtime, concurrency=jobs).run_until_idle()
    elapsed = time.perf_counter() - start
    assert ran == jobs
    await runtime.close()  # (gives a loop_cpu runtime's thread its CPUs back)
    return jobs / elapsed


async def w2_baseline(jobs: int = 1000, steps: int = 10, sync: bool = False) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(baseline_job(steps, sync=sync) for _ in range(jobs)))
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


def warm_up_prices() -> None:
    """Pay the process's one-time price-table start-up now, not in a timed run: a runtime prices
    each job at its end (``price_final_checkpoint``, on by default), and the first job end of a
    process imports ``genai_prices`` and loads its table (≈ 75-150 ms, more than a whole W2 run)."""
    try:
        from expert_jobs.engine.pricing import price_usage_sum
    except ImportError:  # code from before pricing, or without the ``prices`` extra
        return
    with contextlib.suppress(Exception):
        price_usage_sum(USAGE, "scripted", provider="scripted")  # the scripted provider's model


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


def measure(repeats: int, only: str | None = None) -> dict[str, float]:
    """Every figure (or those whose name contains ``only``), each beside its baseline."""
    r = repeats
    results: dict[str, float] = {}

    def want(name: str) -> bool:
        return only is None or only in name

    # Each figure's runs alternate with its baseline's, so machine noise hits both alike.
    kinds = (("async", ""), ("sync", "sync_"), ("inline", "inline_"), ("loop_cpu", "sync_loop_cpu_"))
    for kind, tag in kinds:
        if (kind == "inline" and not HAS_INLINE) or (kind == "loop_cpu" and not HAS_LOOP_CPU):
            continue
        sync = kind != "async"
        for steps, times in ((10, 4), (100, 2)):
            name = f"w1_{tag}us_per_step_n{steps}"
            if want(name):
                results[name], results["baseline_" + name] = paired(
                    r * times,
                    lambda steps=steps, kind=kind: w1(steps, kind=kind),  # type: ignore[misc]
                    lambda steps=steps, sync=sync: w1_baseline(steps, sync),  # type: ignore[misc]
                )
        if kind == "async" and _has_otel():
            for steps, times in ((10, 4), (100, 2)):
                name = f"w1_traced_us_per_step_n{steps}"
                if want(name):
                    # The baseline: the same workload with tracing off.
                    results[name], results["baseline_" + name] = paired(
                        r * times,
                        lambda steps=steps: w1_traced(steps),  # type: ignore[misc]
                        lambda steps=steps: w1(steps),  # type: ignore[misc]
                    )
        if kind == "async" and want("w1_cold_us_per_step_n10"):
            results["w1_cold_us_per_step_n10"] = median_of(r * 4, lambda: w1(10, cold=True))
        name = f"w2_{tag}jobs_per_s"
        if want(name):
            results[name], results["baseline_" + name] = paired(
                r,
                lambda kind=kind: w2(kind=kind),  # type: ignore[misc]
                lambda sync=sync: w2_baseline(sync=sync),  # type: ignore[misc]
            )
    if want("stream_us_per_delta"):
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(r):
            ours.append(_one_run(stream_us_per_delta))
            theirs.append(_one_run(stream_baseline))
        results["stream_us_per_delta"] = statistics.median(ours)
        results["baseline_stream_us_per_delta"] = statistics.median(theirs)
        results["stream_overhead_us_per_delta"] = statistics.median(
            a - b for a, b in zip(ours, theirs, strict=True)
        )
    if want("w3_wall_s"):
        results["w3_wall_s"], results["baseline_w3_wall_s"] = paired(r, w3, w3_baseline)
    if want("w3_kib_per_job"):
        results["w3_kib_per_job"] = asyncio.run(w3_memory())
        results["baseline_w3_kib_per_job"] = asyncio.run(w3_memory_baseline())
    return results


TARGETS = {
    "w1_us_per_step_n10": "<= 8",
    "w1_us_per_step_n100": "<= 8, flat",
    "w1_traced_us_per_step_n10": "(baseline: tracing off)",
    "w1_traced_us_per_step_n100": "(baseline: tracing off)",
    "w1_sync_us_per_step_n10": "<= 40",
    "w1_sync_us_per_step_n100": "<= 40",
    "w1_inline_us_per_step_n10": "",
    "w1_inline_us_per_step_n100": "",
    "w2_jobs_per_s": ">= 15000",
    "w2_sync_jobs_per_s": "",
    "w2_inline_jobs_per_s": "",
    "w1_sync_loop_cpu_us_per_step_n10": "<= 40 (opt-in)",
    "w1_sync_loop_cpu_us_per_step_n100": "<= 40 (opt-in)",
    "w2_sync_loop_cpu_jobs_per_s": "",
    "stream_us_per_delta": "(overhead <= 3)",
    "w3_wall_s": "<= 0.30",
    "w3_kib_per_job": "<= 8",
}


# The figures --against compares (W1 and W2 with no subscriber), and the --only text of each.
AGAINST = {
    "w1_us_per_step_n10": "w1_us_per_step",
    "w1_us_per_step_n100": "w1_us_per_step",
    "w2_jobs_per_s": "w2_jobs_per_s",
}


def against(other_src: str, repeats: int) -> dict[str, tuple[float, float]]:
    """The medians of the :data:`AGAINST` figures for this tree and for ``other_src`` (a ``src``
    folder), their runs alternating in child processes (``PYTHONPATH``)."""
    here = str(Path(__file__).resolve().parents[1] / "src")
    runs: dict[str, dict[str, list[float]]] = {"this": {}, "other": {}}
    for _ in range(repeats):
        for label, src in (("this", here), ("other", other_src)):
            for only in sorted(set(AGAINST.values())):
                env = {**os.environ, "PYTHONPATH": src}
                command = [sys.executable, __file__, "--json", "--repeats", "1", "--only", only]
                output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                for name, value in json.loads(output).items():
                    if name in AGAINST:
                        runs[label].setdefault(name, []).append(value)
    return {
        name: (statistics.median(runs["this"][name]), statistics.median(runs["other"][name]))
        for name in AGAINST
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (the median is reported)")
    parser.add_argument("--only", help="measure only the figures whose name contains this text")
    parser.add_argument("--against", metavar="SRC", help="compare W1/W2 with the code in SRC (see above)")
    args = parser.parse_args()
    if args.against:
        compared = against(args.against, args.repeats)
        if args.json:
            print(json.dumps({k: [round(a, 3), round(b, 3)] for k, (a, b) in compared.items()}))
            return
        print(f"{'figure':<28}{'this tree':>12}{'against':>12}{'ratio':>8}")
        for name, (ours, theirs) in compared.items():
            print(f"{name:<28}{ours:>12.2f}{theirs:>12.2f}{ours / theirs:>8.3f}")
        return
    warm_up_prices()
    results = measure(args.repeats, args.only)
    if args.json:
        print(json.dumps({k: round(v, 3) for k, v in results.items()}))
        return
    print(f"{'figure':<28}{'expert-jobs':>14}{'baseline':>12}  target")
    for key, target in TARGETS.items():
        if key in results:
            print(f"{key:<28}{results[key]:>14.2f}{results['baseline_' + key]:>12.2f}  {target}")
    if "stream_overhead_us_per_delta" in results:
        overhead = results["stream_overhead_us_per_delta"]
        print(f"{'stream_overhead_us_per_delta':<28}{overhead:>14.2f}{'':>12}  <= 3 (the difference)")
    if "w1_cold_us_per_step_n10" in results:
        cold = results["w1_cold_us_per_step_n10"]
        print(f"{'w1_cold_us_per_step_n10':<28}{cold:>14.2f}{'':>12}  (a new runtime's first job)")


if __name__ == "__main__":
    main()
