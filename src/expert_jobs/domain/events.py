"""Typed events the engine emits for every transition, step, tool call and checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from expert_jobs.domain.status import JobStatus

__all__ = ["EventKind", "JobEvent"]

EventKind = Literal["transition", "step", "toolCall", "toolResult", "checkpoint", "retry"]


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Something that happened to a job.

    ``transition``: ``from_status`` -> ``status`` by ``trigger``. ``step``: a step finished
    (``usage`` is the step's). ``toolCall`` / ``toolResult``: ``detail`` has the name and id.
    ``checkpoint``: ``detail["checkpointId"]`` and ``detail["kind"]``; the job's final checkpoint,
    when ``RuntimeSettings.price_final_checkpoint`` is on, also ``detail["cost"]``: the job's cost
    as ``{"amount": "0.0049", "currency": "USD"}``, or ``None`` when unknown. ``retry``: a failed
    attempt, ``detail`` has the error.
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
