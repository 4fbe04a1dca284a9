"""Jobs and checkpoints as rows: the column layout and JSON coding the SQL stores share.

Nested data (the expert, files, usage, error, a checkpoint) is JSON text; ``search_key`` is the
expert key lowercased in Python, so the list filter is an exact case-insensitive substring match
in every store (no ``LIKE`` wildcards, no database-specific case folding).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.job import IDENTITY_FIELDS, STATE_FIELDS, Job
from expert_jobs.domain.messages import (
    AssistantMessage,
    Message,
    TextPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    message_to_data,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

__all__ = [
    "IDENTITY_COLUMNS",
    "INSERT_COLUMNS",
    "JOB_COLUMNS",
    "SQL_INT_MAX",
    "UPDATE_COLUMNS",
    "checkpoint_from_json",
    "checkpoint_json",
    "clamp_page",
    "clamp_seq",
    "dumps",
    "identity_values",
    "insert_values",
    "job_from_row",
    "messages_json",
    "update_values",
    "usage_json",
]

SQL_INT_MAX = (1 << 63) - 1
"""The largest integer SQLite and PostgreSQL (``bigint``) take as a parameter."""


def clamp_page(take: int, skip: int) -> tuple[int, int]:
    """``LIMIT`` and ``OFFSET`` values every database takes: a page size or a skip beyond what
    they hold is the same page (empty, or every row), a negative one is 0."""
    return min(max(take, 0), SQL_INT_MAX), min(max(skip, 0), SQL_INT_MAX)


def clamp_seq(after_seq: int) -> int:
    """An ``after_seq`` bound every database takes (seqs start at 1: anything below 0 is -1)."""
    return min(max(after_seq, -1), SQL_INT_MAX)


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

IDENTITY_COLUMNS: tuple[str, ...] = (*IDENTITY_FIELDS, "search_key")
"""The job's identity and request: written by a create, never by a save, in :func:`identity_values`'
order."""

UPDATE_COLUMNS: tuple[str, ...] = tuple(c for c in JOB_COLUMNS if c in STATE_FIELDS)
"""The columns a save writes (never the id, the version, the lease or the identity), in
:func:`update_values`' order. Leaving the rest alone spares a save their encoding and the
database the upkeep of the indexes on them."""

INSERT_COLUMNS: tuple[str, ...] = (
    "id",
    "version",
    "lease_owner",
    "lease_expires_at",
    *IDENTITY_COLUMNS,
    *UPDATE_COLUMNS,
)
"""The columns a create writes, in :func:`insert_values`' order."""

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)
dumps: Callable[[Any], str] = _encoder.encode
"""Compact JSON text (UTF-8 kept as is)."""
_quote: Callable[[str], str] = json.encoder.encode_basestring
"""A string as the encoder above writes it (quoted, escaped, UTF-8 kept as is)."""


def update_values(job: Job) -> list[Any]:
    """The values of :data:`UPDATE_COLUMNS` for ``job`` (a snapshot: later changes to it don't leak in)."""
    error = job.error
    return [
        job.model,
        job.temperature,
        job.max_steps,
        job.max_retries,
        job.status.value,
        job.updated_at,
        job.current_step,
        job.total_steps,
        job.total_duration_ms,
        usage_json(job.usage),
        job.interactive_tool_call_result,
        None if error is None else dumps(error.to_data()),
        job.waiting_since,
        job.last_checkpoint_id,
        job.checkpoint_seq,
    ]


def identity_values(job: Job) -> list[Any]:
    """The values of :data:`IDENTITY_COLUMNS` for ``job``."""
    return [
        job.organization_id,
        job.application_id,
        job.expert_key,
        dumps(job.expert),
        job.query,
        dumps(list(files)) if (files := job.files) else "[]",
        job.created_at,
        job.expert_key.lower(),
    ]


def usage_json(usage: Usage) -> str:
    """``usage.to_data()`` as compact JSON, formatted directly (its fields are ints): the wire's
    five counters, and ``cacheWriteTokens`` only when there were cache writes (rows as before).

    The text of the last usage encoded is kept with it: a save writes the job's usage in its row
    and again in its checkpoint (one object), so the second is a lookup.
    """
    global _last_usage
    last = _last_usage
    if usage is last[0]:
        return last[1]
    counters = (
        usage.input_tokens,
        usage.output_tokens,
        usage.reasoning_tokens,
        usage.total_tokens,
        usage.cached_input_tokens,
    )
    writes = usage.cache_write_tokens
    # printf-style %d: the counters are plain ints (Usage checks), and one C call formats them all
    # (twice as fast as an f-string's five format specs).
    text = _USAGE_WITH_WRITES % (*counters, writes) if writes else _USAGE % counters
    # One tuple, replaced whole: a reader on another thread sees a matching pair.
    _last_usage = (usage, text)
    return text


_last_usage: tuple[Usage | None, str] = (None, "")
_USAGE = '{"inputTokens":%d,"outputTokens":%d,"reasoningTokens":%d,"totalTokens":%d,"cachedInputTokens":%d}'
_USAGE_WITH_WRITES = _USAGE[:-1] + ',"cacheWriteTokens":%d}'


def insert_values(job: Job) -> list[Any]:
    """The values of :data:`INSERT_COLUMNS` for a new ``job`` (version 0)."""
    return [job.id, 0, job.lease_owner, job.lease_expires_at, *identity_values(job), *update_values(job)]


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def job_from_row(row: Sequence[Any]) -> Job:
    """A :class:`Job` from a row of :data:`JOB_COLUMNS` (JSON as text, or already decoded).

    ``temperature`` is made a float: SQLite hands a REAL column's ``0.0`` back as the integer ``0``
    from ``UPDATE ... RETURNING``. ``error`` is read with :meth:`JobError.from_data`, which also
    reads what earlier versions stored."""
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
        temperature=float(row[8]),
        max_steps=row[9],
        max_retries=row[10],
        status=JobStatus(row[11]),
        created_at=row[12],
        updated_at=row[13],
        current_step=row[14],
        total_steps=row[15],
        total_duration_ms=row[16],
        usage=Usage.from_data(_load(row[17])),
        interactive_tool_call_result=None if interactive is None else bool(interactive),
        version=row[19],
        error=None if error is None else JobError.from_data(_load(error)),
        lease_owner=row[21],
        lease_expires_at=row[22],
        waiting_since=row[23],
        last_checkpoint_id=row[24],
        checkpoint_seq=row[25],
    )


def checkpoint_json(checkpoint: Checkpoint, *, with_messages: bool = True) -> str:
    """The checkpoint as JSON text: exactly ``dumps(checkpoint.to_data())`` (without
    ``new_messages`` if not ``with_messages``), formatted field by field.

    A store encodes a checkpoint at every step; building the ``to_data`` dictionaries first and
    encoding them after costs three times as much. Strings go through the JSON encoder's own
    string quoting, so the text is the encoder's, byte for byte.
    """
    c = checkpoint
    messages = f'"new_messages":{messages_json(c.new_messages)},' if with_messages else ""
    usage = usage_json(c.usage)
    # A job of one run: its usage and the run's are one object.
    run_usage = usage if c.run_usage is c.usage else usage_json(c.run_usage)
    return (
        f'{{"id":{_quote(c.id)},"job_id":{_quote(c.job_id)},"run_id":{_quote(c.run_id)},'
        f'"seq":{_int(c.seq)},"step":{_int(c.step)},"kind":{_quote(c.kind)},'
        f'"status":{_quote(c.status)},"run_state":{_quote(c.run_state)},'
        f'"expert_key":{_quote(c.expert_key)},"created_at":{_number(c.created_at)},{messages}'
        f'"message_count":{_int(c.message_count)},"usage":{usage},'
        f'"run_usage":{run_usage},"step_usage":{usage_json(c.step_usage)},'
        f'"total_steps":{_int(c.total_steps)},"total_duration_ms":{_int(c.total_duration_ms)},'
        f"{_PLAIN_TAIL if c[_TAIL_START:] == _PLAIN_TAIL_VALUES else _tail_json(c)}"
    )


_TAIL_START = Checkpoint._fields.index("retry_count")
_PLAIN_TAIL_VALUES = (0, None, None, (), (), (), None, None, None, None)
"""The fields from ``retry_count`` on, as most checkpoints have them (no retry, no parent, no
open calls, no error, no cost, no trace context, no output): their text is then a constant."""
_PLAIN_TAIL = (
    '"retry_count":0,"parent_run_id":null,"parent_call_id":null,'
    '"pending_calls":[],"partial_results":[],"delegations":[],"error":null}'
)


def _tail_json(c: Checkpoint) -> str:
    # The uncommon tail (a retry, a parent, open calls, an error): through to_data, not by hand.
    data = c.to_data()
    # ``cost``, ``traceparent`` and ``output`` are in the data only when set (Checkpoint.to_data).
    return dumps({key: data[key] for key in Checkpoint._fields[_TAIL_START:] if key in data})[1:]


def messages_json(messages: Sequence[Message]) -> str:
    """``dumps([message_to_data(m) for m in messages])``, with the common messages (tool results,
    and responses of text and tool calls) formatted directly."""
    return f"[{','.join([_message_json(m) for m in messages])}]" if messages else "[]"


def _message_json(message: Message) -> str:
    if type(message) is ToolResultsMessage:
        return f'{{"role":"tool","results":{_results_json(message.results)}}}'
    if type(message) is AssistantMessage:
        parts = []
        for part in message.parts:
            if type(part) is ToolCall and part.signature is None:
                parts.append(
                    f'{{"type":"tool_call","id":{_quote(part.id)},"name":{_quote(part.name)},'
                    f'"arguments":{_arguments_json(part.arguments)}}}'
                )
            elif type(part) is TextPart and part.signature is None:
                parts.append(f'{{"type":"text","text":{_quote(part.text)}}}')
            else:
                return dumps(message_to_data(message))
        provider = "" if message.provider is None else f',"provider":{_quote(message.provider)}'
        model = "" if message.model is None else f',"model":{_quote(message.model)}'
        return f'{{"role":"assistant","parts":[{",".join(parts)}]{provider}{model}}}'
    return dumps(message_to_data(message))


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    """``dumps(dict(arguments))``; flat arguments (text, numbers, booleans, null) formatted
    directly, the JSON encoder's way (its encoder costs more to set up than they take to write)."""
    fields = []
    for key, value in arguments.items():
        kind = type(value)
        if type(key) is not str:
            return dumps(dict(arguments))
        if kind is str:
            text = _quote(value)
        elif kind is int:
            text = int.__repr__(value)
        elif kind is bool:
            text = "true" if value else "false"
        elif value is None:
            text = "null"
        elif kind is float and math.isfinite(value):
            text = float.__repr__(value)
        else:
            return dumps(dict(arguments))
        fields.append(f"{_quote(key)}:{text}")
    return f"{{{','.join(fields)}}}"


def _results_json(results: Sequence[ToolResult]) -> str:
    if not results:
        return "[]"
    return (
        "["
        + ",".join(
            [
                f'{{"call_id":{_quote(r.call_id)},"name":{_quote(r.name)},"content":{_quote(r.content)},'
                f'"is_error":{"true" if r.is_error else "false"}}}'
                for r in results
            ]
        )
        + "]"
    )


def _int(value: int) -> str:
    # The encoder writes ints (never bools here) with int.__repr__; anything else goes through it.
    return int.__repr__(value) if type(value) is int else dumps(value)


def _number(value: float) -> str:
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    return dumps(value)


def checkpoint_from_json(value: Any) -> Checkpoint:
    """A checkpoint from :func:`checkpoint_json`'s text (or its already decoded data)."""
    return Checkpoint.from_data(_load(value))
