"""The bundled offline example: two experts, Python tools, a delegate and an interactive pause,
played by the scripted provider (no API keys, no network).

- ``example.toml``: the configuration (experts in the perstack.toml shape, ``pythonSkill`` tools
  from :mod:`expert_jobs.examples.tools`, an ``interactiveSkill``, the scripted provider);
- ``script.toml``: what the scripted provider answers, turn by turn, for each expert;
- ``data/sales.csv``: the data file the ``read_data`` tool reads.

Run it with ``expert-jobs run --example --answer yes`` (the embedded SQLite store in the current
directory), or in Python with ``await run_example("yes")`` (an in-memory store by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from expert_jobs.config import Config
    from expert_jobs.domain.job import Job
    from expert_jobs.ports.store import JobStore

__all__ = ["EXAMPLE_CONFIG", "EXAMPLE_EXPERT", "EXAMPLE_QUERY", "example_config", "run_example"]

EXAMPLE_CONFIG = Path(__file__).with_name("example.toml")
"""The example's configuration file."""

EXAMPLE_EXPERT = "sales-analyst@1.0.0"
"""The expert the example job runs."""

EXAMPLE_QUERY = "How did our sales do in 2024 compared with 2023? Draft a headline and publish it if I agree."
"""The example job's query."""


def example_config() -> Config:
    """The example's configuration, loaded and checked."""
    from expert_jobs.config import load_config

    return load_config(EXAMPLE_CONFIG)


async def run_example(answer: str = "yes", *, store: JobStore | None = None) -> Job:
    """Run the example job to its end in this process, answering its question with ``answer``.

    ``store`` defaults to a fresh ``MemoryStore``; the caller closes a store it passes.
    """
    from expert_jobs.config import build_runtime
    from expert_jobs.stores.memory import MemoryStore

    runtime = build_runtime(example_config(), store=store or MemoryStore())
    job = await runtime.run(EXAMPLE_EXPERT, EXAMPLE_QUERY)
    while job.status.value == "requestInteractiveToolResult":
        await runtime.continue_job(job.id, answer, interactive=True)
        job = await runtime.drive(job.id)
    return job
