"""Typed events the engine emits for every transition, step, tool call and checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from expert_jobs.domain.deltas import StreamDelta
from expert_jobs.domain.status import JobStatus

__all__ = ["EventKind", "JobEvent", "delta_event"]

EventKind = Literal["transition", "step", "toolCall", "toolResult", "checkpoint", "retry", "delta"]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Something that happened to a job.

    ``transition``: ``from_status`` -> ``status`` by ``trigger``. ``step``: a step finished
    (``usage`` is the step's). ``toolCall`` / ``toolResult``: ``detail`` has the name and id.
    ``checkpoint``: ``detail["checkpointId"]`` and ``detail["kind"]``; the job's final checkpoint,
    when ``RuntimeSettings.price_final_checkpoint`` is on, also ``detail["cost"]``: the job's cost
    as ``{"amount": "0.0049", "currency": "USD"}``, or ``None`` when unknown. ``retry``: a failed
    attempt, ``detail`` has the error; the deltas its generation streamed are void.
    ``delta``: a piece of a generation as it streams (``delta`` the typed
    :data:`~expert_jobs.domain.deltas.StreamDelta`, ``detail`` its ``to_wire()``; ``step`` the
    number of the step being generated; ``run_id`` tells parallel delegates apart). Delta events
    go only to listeners that asked for them (``subscribe(..., deltas=True)``) and are never
    stored: a step's checkpoint holds its complete response.
    """

    kind: EventKind
    job_id: str
    run_id: str | None
    expert_key: str
    step: int
    timestamp: float
    status: JobStatus
    from_status: JobStatus | None = None
    trigger: str | None = None
    detail: dict[str, Any] | None = None
    delta: StreamDelta | None = None

    def to_wire(self) -> dict[str, Any]:
        """camelCase data for streams."""
        return {
            "type": self.kind,
            "expertJobId": self.job_id,
            "runId": self.run_id,
            "expertKey": self.expert_key,
            "stepNumber": self.step,
            "timestamp": self.timestamp,
            "status": self.status.value,
            "fromStatus": self.from_status.value if self.from_status else None,
            "trigger": self.trigger,
            "detail": self.detail,
        }


# The slots of JobEvent, set one by one by delta_event (which must set every field).
_FIELDS = (
    "kind",
    "job_id",
    "run_id",
    "expert_key",
    "step",
    "timestamp",
    "status",
    "from_status",
    "trigger",
    "detail",
    "delta",
)
if tuple(f.name for f in fields(JobEvent)) != _FIELDS:  # pragma: no cover - guards an edit of JobEvent
    raise RuntimeError("JobEvent's fields changed: update _FIELDS and delta_event")
(
    _set_kind,
    _set_job_id,
    _set_run_id,
    _set_expert_key,
    _set_step,
    _set_timestamp,
    _set_status,
    _set_from_status,
    _set_trigger,
    _set_detail,
    _set_delta,
) = (JobEvent.__dict__[name].__set__ for name in _FIELDS)
_new = object.__new__


def delta_event(
    job_id: str,
    run_id: str | None,
    expert_key: str,
    step: int,
    timestamp: float,
    status: JobStatus,
    delta: StreamDelta,
) -> JobEvent:
    """The ``delta`` event of ``delta``: equal to ``JobEvent("delta", job_id, run_id, expert_key,
    step, timestamp, status, detail=delta.to_wire(), delta=delta)``, made at half the cost (its
    slots set directly rather than through the frozen dataclass's ``__init__``): the engine makes
    one per piece of a streaming generation."""
    event: JobEvent = _new(JobEvent)
    _set_kind(event, "delta")
    _set_job_id(event, job_id)
    _set_run_id(event, run_id)
    _set_expert_key(event, expert_key)
    _set_step(event, step)
    _set_timestamp(event, timestamp)
    _set_status(event, status)
    _set_from_status(event, None)
    _set_trigger(event, None)
    _set_detail(event, delta.to_wire())
    _set_delta(event, delta)
    return event
