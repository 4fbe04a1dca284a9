"""The job record: what the store keeps of one expert job, and its wire form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from expert_jobs.domain.cost import Cost
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.lifecycle import fire
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE, Usage

__all__ = [
    "IDENTITY_FIELDS",
    "LEASE_FIELDS",
    "RUNTIME_VERSION",
    "STATE_FIELDS",
    "TRANSIENT_FIELDS",
    "Job",
    "JobQuery",
    "copy_state",
    "iso_utc",
]

RUNTIME_VERSION = "v1.0"


def iso_utc(epoch_seconds: float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z``, e.g. ``2026-01-02T03:04:05.678Z``."""
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Job:
    """One expert job: identity, request, status, counters, usage and the store's bookkeeping.

    ``status`` only changes through :meth:`fire` (the shared lifecycle machine). ``version`` is the
    store's optimistic-concurrency counter. Times are epoch seconds; the wire form has ISO strings.
    Counters: ``current_step`` is the step number of the latest checkpoint (0 before the first
    step), ``total_steps`` the steps completed in the job (delegates included), ``total_duration_ms``
    the milliseconds spent running (queueing and pauses excluded). ``error`` is why the job ended
    ``failed`` or ``exceededMaxSteps`` (a :class:`~expert_jobs.domain.errors.JobError`), else
    ``None``.

    ``output`` is the validated output of a job whose expert declares an output schema, as a JSON
    value (see :mod:`expert_jobs.domain.output`), set by the runner that completed the job and by
    ``Runtime.get`` (from the job's final checkpoint, where the output is stored). In memory only
    (:data:`TRANSIENT_FIELDS`): a store's own ``get`` leaves it ``None``.

    ``cost`` is what the job cost in money when it ended (completed, failed, exceededMaxSteps or
    canceled): its final checkpoint's cost (a :class:`~expert_jobs.domain.cost.Cost`), set by the
    runtime on the jobs it hands out (``Runtime.run``, ``drive``, ``get``, ``cancel``...). ``None``
    while the job has not ended (``Runtime.cost`` prices it so far), when its final checkpoint was
    not priced (pricing off, the ``prices`` extra missing) and when a model is unknown to the price
    table (shown as "unknown", never 0). In memory only (:data:`TRANSIENT_FIELDS`), never on the wire.
    """

    __slots__ = (
        "application_id",
        "checkpoint_seq",
        "cost",
        "created_at",
        "current_step",
        "error",
        "expert",
        "expert_key",
        "files",
        "id",
        "interactive_tool_call_result",
        "last_checkpoint_id",
        "lease_expires_at",
        "lease_owner",
        "max_retries",
        "max_steps",
        "model",
        "organization_id",
        "output",
        "query",
        "status",
        "temperature",
        "total_duration_ms",
        "total_steps",
        "updated_at",
        "usage",
        "version",
        "waiting_since",
    )

    def __init__(
        self,
        *,
        id: str,
        organization_id: str,
        application_id: str,
        expert_key: str,
        expert: dict[str, Any],
        model: str,
        temperature: float,
        max_steps: int,
        max_retries: int,
        created_at: float,
        query: str | None = None,
        files: tuple[str, ...] = (),
        status: JobStatus = JobStatus.QUEUED,
        updated_at: float | None = None,
        current_step: int = 0,
        total_steps: int = 0,
        total_duration_ms: int = 0,
        usage: Usage = ZERO_USAGE,
        interactive_tool_call_result: bool | None = None,
        version: int = 0,
        error: JobError | None = None,
        lease_owner: str | None = None,
        lease_expires_at: float | None = None,
        waiting_since: float | None = None,
        last_checkpoint_id: str | None = None,
        checkpoint_seq: int = 0,
        output: Any = None,
        cost: Cost | None = None,
    ) -> None:
        self.id = id
        self.organization_id = organization_id
        self.application_id = application_id
        self.expert_key = expert_key
        self.expert = expert
        self.query = query
        self.files = files
        self.model = model
        self.temperature = temperature
        self.max_steps = max_steps
        self.max_retries = max_retries
        self.status = status
        self.created_at = created_at
        self.updated_at = created_at if updated_at is None else updated_at
        self.current_step = current_step
        self.total_steps = total_steps
        self.total_duration_ms = total_duration_ms
        self.usage = usage
        self.interactive_tool_call_result = interactive_tool_call_result
        self.version = version
        self.error = error
        self.lease_owner = lease_owner
        self.lease_expires_at = lease_expires_at
        self.waiting_since = created_at if waiting_since is None else waiting_since
        self.last_checkpoint_id = last_checkpoint_id
        self.checkpoint_seq = checkpoint_seq
        self.output = output
        self.cost = cost

    def fire(self, trigger: str) -> JobStatus:
        """Move the job through the lifecycle (raises ``IllegalTransition`` and changes nothing)."""
        return fire(self, trigger)

    def copy(self) -> Job:
        """A shallow copy (stores hand out copies so callers never alias their state)."""
        clone: Job = _copy_job(self)
        return clone

    def __repr__(self) -> str:
        return (
            f"Job(id={self.id!r}, status={self.status.value!r}, step={self.current_step}, v={self.version})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Job):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in Job.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def to_wire(self) -> dict[str, Any]:
        """The spec's ``expertJob`` object (camelCase, every required field)."""
        body: dict[str, Any] = {
            "type": "expertJob",
            "id": self.id,
            "organizationId": self.organization_id,
            "createdAt": iso_utc(self.created_at),
            "updatedAt": iso_utc(self.updated_at),
            "status": self.status.value,
            "runtimeVersion": RUNTIME_VERSION,
            "expertKey": self.expert_key,
            "files": list(self.files),
            "expert": self.expert,
            "model": self.model,
            "temperature": self.temperature,
            "maxSteps": self.max_steps,
            "maxRetries": self.max_retries,
            "currentStep": self.current_step,
            "totalSteps": self.total_steps,
            "totalDuration": self.total_duration_ms,
            "usage": self.usage.to_wire(),
            "applicationId": self.application_id,
        }
        if self.query is not None:
            body["query"] = self.query
        if self.interactive_tool_call_result is not None:
            body["interactiveToolCallResult"] = self.interactive_tool_call_result
        return body


IDENTITY_FIELDS: tuple[str, ...] = (
    "organization_id",
    "application_id",
    "expert_key",
    "expert",
    "query",
    "files",
    "created_at",
)
"""A job's identity and request: fixed when the job is created, never changed by a store save."""

LEASE_FIELDS: tuple[str, ...] = ("lease_owner", "lease_expires_at")
"""The lease: written only by a store's claim, renew and release."""

TRANSIENT_FIELDS: tuple[str, ...] = ("output", "cost")
"""What a job carries in memory only, never written by a store (the output and the cost are on the
final checkpoint)."""

STATE_FIELDS: tuple[str, ...] = tuple(
    name
    for name in Job.__slots__
    if name not in ("id", "version", *IDENTITY_FIELDS, *LEASE_FIELDS, *TRANSIENT_FIELDS)
)
"""What a store save writes: status, counters, usage, error, waiting time, checkpoint bookkeeping
and the model settings a continue may change."""


def _compile_copy() -> Any:
    # One straight-line function (no getattr/setattr loop): a copy is on every store write.
    body = "\n".join(f"    clone.{name} = job.{name}" for name in Job.__slots__)
    namespace: dict[str, Any] = {"new": object.__new__, "Job": Job}
    exec(f"def copy_job(job):\n    clone = new(Job)\n{body}\n    return clone", namespace)
    return namespace["copy_job"]


def _compile_copy_state() -> Any:
    body = "\n".join(f"    target.{name} = source.{name}" for name in STATE_FIELDS)
    namespace: dict[str, Any] = {}
    exec(f"def copy_state(source, target):\n{body}", namespace)
    return namespace["copy_state"]


_copy_job = _compile_copy()

copy_state: Callable[[Job, Job], None] = _compile_copy_state()
copy_state.__doc__ = (
    """Set ``target``'s :data:`STATE_FIELDS` to ``source``'s (a store applying a save in place)."""
)


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A page of an application's jobs.

    ``filter`` keeps jobs whose expert key contains it (case-insensitive). ``sort`` defaults to
    ``createdAt`` and ``order`` to ``desc`` (newest first); ties break on the id.
    """

    application_id: str
    filter: str | None = None
    sort: Literal["createdAt", "updatedAt"] = "createdAt"
    order: Literal["asc", "desc"] = "desc"
    take: int = 100
    skip: int = 0
    statuses: frozenset[JobStatus] | None = None
