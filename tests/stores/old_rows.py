"""Rows as the previous version of the library wrote them, for the stores to read unchanged.

The stores' format did not change when the API's checkpoints became camelCase throughout: messages
and checkpoints are stored as ``Checkpoint.to_data`` (snake_case) as before. What changed is the
job error: a typed :class:`JobError` whose data always has a ``kind``; the previous version stored
a ``maxSteps`` stop's error without one and a configuration problem's under its exception's name.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.job import Job
from expert_jobs.ports.store import JobStore
from tests.domain.test_checkpoint import OLD_CHECKPOINT_DATA, snake_keys

OLD_JOB_ERROR_TEXT = '{"kind":"UnknownExpert","message":"Expert not found: gone@1.0.0"}'
"""A failed job's ``error`` column as the previous version wrote it."""
OLD_JOB_ERROR = JobError("usage", "Expert not found: gone@1.0.0", exception="UnknownExpert")
"""What it reads as now."""


def old_checkpoint_data(job: Job, checkpoint_id: str, seq: int = 1) -> dict[str, Any]:
    """The previous version's stored data of a checkpoint of ``job`` (run ``run1``): snake_case
    message parts, an error without ``kind``."""
    data = copy.deepcopy(OLD_CHECKPOINT_DATA)
    data.update(id=checkpoint_id, job_id=job.id, seq=seq, run_id="run1", expert_key=job.expert_key)
    return data


def old_checkpoint_text(job: Job, checkpoint_id: str, seq: int = 1, *, with_messages: bool = True) -> str:
    """:func:`old_checkpoint_data` as the stored JSON text (without ``new_messages``, as PostgreSQL
    keeps them in a column of their own, if not ``with_messages``)."""
    data = old_checkpoint_data(job, checkpoint_id, seq)
    if not with_messages:
        del data["new_messages"]
    return json.dumps(data, separators=(",", ":"))


def old_messages_text() -> str:
    """The old checkpoint's ``new_messages`` as stored JSON text."""
    return json.dumps(OLD_CHECKPOINT_DATA["new_messages"], separators=(",", ":"))


async def assert_reads_old_rows(store: JobStore, job: Job, checkpoint_id: str) -> None:
    """``store`` holds ``job`` with :data:`OLD_JOB_ERROR_TEXT` and the old checkpoint
    ``checkpoint_id``: every read gives the expected values, and the API shows them camelCase."""
    expected = Checkpoint.from_data(old_checkpoint_data(job, checkpoint_id))
    stored = await store.get(job.id)
    assert stored is not None and stored.error == OLD_JOB_ERROR
    assert type(stored.temperature) is float
    checkpoint = await store.get_checkpoint(job.id, checkpoint_id)
    assert checkpoint == expected
    assert checkpoint.error == JobError("max_steps", "step 2 reached maxSteps=2")
    assert await store.list_checkpoints(job.id) == ([expected], 1)
    assert await store.latest_checkpoints(job.id) == {"run1": expected}
    assert await store.load_history(job.id, "run1") == list(expected.new_messages)
    wire = checkpoint.to_wire()
    assert snake_keys(wire) == []
    assert wire["newMessages"][1]["results"][0] == {
        "callId": "call_1",
        "name": "search",
        "content": "found",
        "isError": False,
    }
