"""Job statuses with their exact wire values."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FINAL_STATUSES", "PAUSED_STATUSES", "JobStatus"]


class JobStatus(StrEnum):
    """The ten statuses of an expert job, valued exactly as on the wire."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    REQUEST_INTERACTIVE_TOOL_RESULT = "requestInteractiveToolResult"
    REQUEST_DELEGATE_RESULT = "requestDelegateResult"
    EXCEEDED_MAX_STEPS = "exceededMaxSteps"
    FAILED = "failed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    EXPIRED = "expired"


FINAL_STATUSES = frozenset({JobStatus.CANCELED, JobStatus.EXPIRED})
"""Statuses no trigger leaves."""

PAUSED_STATUSES = frozenset({JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT, JobStatus.REQUEST_DELEGATE_RESULT})
"""Statuses in which the job waits for a result from outside its current run."""
