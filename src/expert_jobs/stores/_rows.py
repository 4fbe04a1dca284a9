"""Jobs and checkpoints as rows: the column layout and JSON coding the SQL stores share.

Nested data (the expert, files, usage, error, a checkpoint) is JSON text; ``search_key`` is the
expert key lowercased in Python, so the list filter is an exact case-insensitive substring match
in every store (no ``LIKE`` wildcards, no database-specific case folding).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.job import Job
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

__all__ = [
    "INSERT_COLUMNS",
    "JOB_COLUMNS",
    "UPDATE_COLUMNS",
    "checkpoint_from_json",
    "checkpoint_json",
    "dumps",
    "insert_values",
    "job_from_row",
    "update_values",
    "usage_json",
]

JOB_COLUMNS: tuple[str, ...] = (
    "id",
    "organization_id",
    "application_id",
    "expert_key",
    "expert",
    "query",
    "files",
    "model",
    "temperature",
    "max_steps",
    "max_retries",
    "status",
    "created_at",
    "updated_at",
    "current_step",
    "total_steps",
    "total_duration_ms",
    "usage",
    "interactive_tool_call_result",
    "version",
    "error",
    "lease_owner",
    "lease_expires_at",
    "waiting_since",
    "last_checkpoint_id",
    "checkpoint_seq",
)
"""The columns read back into a :class:`Job`, in :func:`job_from_row`'s order."""

_NOT_SAVED = frozenset({"id", "version", "lease_owner", "lease_expires_at"})
UPDATE_COLUMNS: tuple[str, ...] = (*(c for c in JOB_COLUMNS if c not in _NOT_SAVED), "search_key")
"""The columns a save writes (never the id, the version or the lease), in :func:`update_values`' order."""

INSERT_COLUMNS: tuple[str, ...] = ("id", "version", "lease_owner", "lease_expires_at", *UPDATE_COLUMNS)
"""The columns a create writes, in :func:`insert_values`' order."""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
dumps: Callable[[Any], str] = _encoder.encode
"""Compact JSON text (UTF-8 kept as is)."""


def update_values(job: Job) -> list[Any]:
    """The values of :data:`UPDATE_COLUMNS` for ``job`` (a snapshot: later changes to it don't leak in)."""
    error = job.error
    return [
        job.organization_id,
        job.application_id,
        job.expert_key,
        dumps(job.expert),
        job.query,
        dumps(list(files)) if (files := job.files) else "[]",
        job.model,
        job.temperature,
        job.max_steps,
        job.max_retries,
        job.status.value,
        job.created_at,
        job.updated_at,
        job.current_step,
        job.total_steps,
        job.total_duration_ms,
        usage_json(job.usage),
        job.interactive_tool_call_result,
        None if error is None else dumps(error),
        job.waiting_since,
        job.last_checkpoint_id,
        job.checkpoint_seq,
        job.expert_key.lower(),
    ]


def usage_json(usage: Usage) -> str:
    """``usage.to_wire()`` as compact JSON, formatted directly (its five fields are ints)."""
    return (
        f'{{"inputTokens":{usage.input_tokens:d},"outputTokens":{usage.output_tokens:d},'
        f'"reasoningTokens":{usage.reasoning_tokens:d},"totalTokens":{usage.total_tokens:d},'
        f'"cachedInputTokens":{usage.cached_input_tokens:d}}}'
    )


def insert_values(job: Job) -> list[Any]:
    """The values of :data:`INSERT_COLUMNS` for a new ``job`` (version 0)."""
    return [job.id, 0, job.lease_owner, job.lease_expires_at, *update_values(job)]


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def job_from_row(row: Sequence[Any]) -> Job:
    """A :class:`Job` from a row of :data:`JOB_COLUMNS` (JSON as text, or already decoded)."""
    interactive = row[18]
    error = row[20]
    return Job(
        id=row[0],
        organization_id=row[1],
        application_id=row[2],
        expert_key=row[3],
        expert=_load(row[4]),
        query=row[5],
        files=tuple(_load(row[6])),
        model=row[7],
        temperature=row[8],
        max_steps=row[9],
        max_retries=row[10],
        status=JobStatus(row[11]),
        created_at=row[12],
        updated_at=row[13],
        current_step=row[14],
        total_steps=row[15],
        total_duration_ms=row[16],
        usage=Usage.model_validate(_load(row[17])),
        interactive_tool_call_result=None if interactive is None else bool(interactive),
        version=row[19],
        error=None if error is None else _load(error),
        lease_owner=row[21],
        lease_expires_at=row[22],
        waiting_since=row[23],
        last_checkpoint_id=row[24],
        checkpoint_seq=row[25],
    )


def checkpoint_json(checkpoint: Checkpoint) -> str:
    """The checkpoint as JSON text (:meth:`Checkpoint.to_data`)."""
    return dumps(checkpoint.to_data())


def checkpoint_from_json(value: Any) -> Checkpoint:
    """A checkpoint from :func:`checkpoint_json`'s text (or its already decoded data)."""
    return Checkpoint.from_data(_load(value))
