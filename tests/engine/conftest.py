"""Helpers for engine tests: a runtime on a fake clock with a scripted provider."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from expert_jobs import Checkpoint, FakeClock, Job, Runtime, RuntimeSettings, ScriptedProvider
from expert_jobs.providers.scripted import Turn

ASK_SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b


def make_runtime(
    script: Sequence[Turn] | Mapping[str, Sequence[Turn]],
    *,
    settings: RuntimeSettings | None = None,
    clock: FakeClock | None = None,
    **expert: Any,
) -> Runtime:
    """A runtime with an expert ``main@1.0.0`` (tool ``add``, interactive ``ask``, delegate ``helper``)."""
    runtime = Runtime(
        providers=ScriptedProvider(script, sleep=(clock or FakeClock()).sleep),
        clock=clock or FakeClock(),
        settings=settings or RuntimeSettings(),
    )
    runtime.add_expert("helper", "You help.", description="A helper expert")
    runtime.add_expert("other", "You help too.")
    runtime.add_expert(
        "main@1.0.0",
        "You are the main expert.",
        tools=expert.pop("tools", [add]),
        interactive_tools=expert.pop("interactive_tools", [{"name": "ask", "input_schema": ASK_SCHEMA}]),
        delegates=expert.pop("delegates", ["helper", "other"]),
    )
    return runtime


async def checkpoints(runtime: Runtime, job: Job) -> list[Checkpoint]:
    """All checkpoints of the job in seq order."""
    found, total = await runtime.store.list_checkpoints(job.id, take=10_000)
    assert total == len(found)
    return found


@pytest.fixture
def clock() -> FakeClock:
    """A fresh fake clock."""
    return FakeClock()
