"""Lifecycle benchmarks: one transition, and creating a job with its lifecycle attached, each beside a
plain dict-table baseline (``status = TABLE[(status, trigger)]``) measured in the same process run.

- transition: ``fire(job, trigger)`` through the shared ``transitions`` machine, over a legal cycle
  (start, request_delegate_result, resume, start, complete, follow_up); baseline: the same cycle as
  ``obj.status = TABLE[(obj.status, trigger)]``. Also ``job.fire(trigger)`` and an illegal move
  (``IllegalTransition`` raised and caught; baseline: a ``KeyError`` from the table).
- create: ``Job(...)`` (the lifecycle is attached by construction: a job only carries ``status``);
  baseline: the same record as a plain dict. For reference, what the shared machine avoids: a
  ``Machine`` per job, and ``add_model`` + ``remove_model`` on one shared machine.

Each figure is the median over ``--repeats`` runs (``timeit.repeat``), in µs per operation.
Targets: a transition <= 10 µs, creating a job with its lifecycle <= 5 µs.

Run: ``python benchmarks/lifecycle.py`` (a table) or ``python benchmarks/lifecycle.py --json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import timeit
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

from transitions import Machine

from expert_jobs import IllegalTransition, Job, JobStatus
from expert_jobs.domain.lifecycle import TRANSITIONS, fire

TARGETS = {"transition_us": 10.0, "create_job_us": 5.0}
CYCLE = ("start", "request_delegate_result", "resume", "start", "complete", "follow_up")
TABLE: dict[tuple[str, str], str] = {
    (source.value, trigger): dest.value for trigger, sources, dest in TRANSITIONS for source in sources
}
IDS = ("a" * 24, "b" * 24, "c" * 24)


def new_job() -> Job:
    return Job(
        id=IDS[0],
        organization_id=IDS[1],
        application_id=IDS[2],
        expert_key="writer@1.0.0",
        expert={"key": "writer@1.0.0"},
        model="claude-sonnet-4-5",
        temperature=0.0,
        max_steps=100,
        max_retries=5,
        created_at=1_767_225_600.0,
    )


def new_record() -> dict[str, Any]:
    return {
        "id": IDS[0],
        "organization_id": IDS[1],
        "application_id": IDS[2],
        "expert_key": "writer@1.0.0",
        "expert": {"key": "writer@1.0.0"},
        "model": "claude-sonnet-4-5",
        "temperature": 0.0,
        "max_steps": 100,
        "max_retries": 5,
        "created_at": 1_767_225_600.0,
        "updated_at": 1_767_225_600.0,
        "status": "queued",
    }


class Plain:
    """The baseline's job: a slotted object with a string status."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = "queued"


def median_us(fn: Callable[[], object], number: int, repeats: int, per_call: int = 1) -> float:
    """Median over ``repeats`` of the µs per operation of ``fn`` (``per_call`` operations a call)."""
    times = timeit.repeat(fn, number=number, repeat=repeats)
    return statistics.median(times) / (number * per_call) * 1e6


def bench(number: int, repeats: int) -> dict[str, float]:
    job, plain = new_job(), Plain()
    results: dict[str, float] = {}

    def cycle_fire() -> None:
        for trigger in CYCLE:
            fire(job, trigger)

    def cycle_method() -> None:
        for trigger in CYCLE:
            job.fire(trigger)

    def cycle_table() -> None:
        for trigger in CYCLE:
            plain.status = TABLE[(plain.status, trigger)]

    per = len(CYCLE)
    results["transition_us"] = median_us(cycle_fire, number, repeats, per)
    results["transition_job_fire_us"] = median_us(cycle_method, number, repeats, per)
    results["baseline_transition_us"] = median_us(cycle_table, number, repeats, per)
    assert job.status is JobStatus.QUEUED and plain.status == "queued"

    final = new_job()
    final.status = JobStatus.CANCELED
    final_plain = Plain()
    final_plain.status = "canceled"

    # try/except rather than contextlib.suppress: suppress() would add its own cost to both timings
    def illegal() -> None:
        try:  # noqa: SIM105
            fire(final, "start")
        except IllegalTransition:
            pass

    def illegal_table() -> None:
        try:  # noqa: SIM105
            final_plain.status = TABLE[(final_plain.status, "start")]
        except KeyError:
            pass

    results["illegal_us"] = median_us(illegal, number, repeats)
    results["baseline_illegal_us"] = median_us(illegal_table, number, repeats)

    results["create_job_us"] = median_us(new_job, number, repeats)
    results["baseline_create_job_us"] = median_us(new_record, number, repeats)

    # What the shared machine avoids (fewer rounds: these are slow).
    states = list(JobStatus)
    transitions = [{"trigger": t, "source": list(src), "dest": dst} for t, src, dst in TRANSITIONS]
    shared = Machine(model=None, states=states, initial=JobStatus.QUEUED, transitions=transitions)

    class Model:
        pass

    def machine_per_job() -> None:
        Machine(model=Model(), states=states, initial=JobStatus.QUEUED, transitions=transitions)

    def add_model() -> None:
        model = Model()
        shared.add_model(model)
        shared.remove_model(model)

    slow = max(number // 20, 10)
    results["reference_machine_per_job_us"] = median_us(machine_per_job, slow, repeats)
    results["reference_add_model_us"] = median_us(add_model, slow, repeats)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeats", type=int, default=7, help="runs per figure (the median is reported)")
    parser.add_argument("--number", type=int, default=20_000, help="operations per run")
    args = parser.parse_args()
    results = bench(args.number, args.repeats)
    meets = {key: results[key] <= limit for key, limit in TARGETS.items()}
    if args.json:
        print(
            json.dumps(
                {
                    **{k: round(v, 3) for k, v in results.items()},
                    "targets_us": TARGETS,
                    "meets_targets": all(meets.values()),
                    "python": platform.python_version(),
                    "transitions": version("transitions"),
                    "repeats": args.repeats,
                    "number": args.number,
                }
            )
        )
        return
    rows = [
        ("transition (fire)", "transition_us", "baseline_transition_us"),
        ("transition (job.fire)", "transition_job_fire_us", "baseline_transition_us"),
        ("illegal move (raise)", "illegal_us", "baseline_illegal_us"),
        ("create job + lifecycle", "create_job_us", "baseline_create_job_us"),
    ]
    print(f"{'µs per operation (median)':<28}{'expert-jobs':>12}{'baseline':>10}  target")
    for label, key, base in rows:
        target = f"<= {TARGETS[key]:g}" if key in TARGETS else ""
        verdict = ("ok" if meets[key] else "MISSED") if key in TARGETS else ""
        print(f"{label:<28}{results[key]:>12.2f}{results[base]:>10.2f}  {target} {verdict}".rstrip())
    print("reference, avoided by the shared machine:")
    print(f"{'  a Machine per job':<28}{results['reference_machine_per_job_us']:>12.2f}")
    print(f"{'  add_model + remove_model':<28}{results['reference_add_model_us']:>12.2f}")


if __name__ == "__main__":
    main()
