"""Small builders shared by the domain tests."""

from __future__ import annotations

from typing import Any

from expert_jobs import Job, JobStatus, new_id


def make_job(status: JobStatus = JobStatus.QUEUED, **overrides: Any) -> Job:
    """A job with fresh ids and plain defaults; ``overrides`` replace any keyword."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "organization_id": new_id(),
        "application_id": new_id(),
        "expert_key": "writer@1.0.0",
        "expert": {"key": "writer@1.0.0", "name": "writer"},
        "model": "claude-sonnet-4-5",
        "temperature": 0.0,
        "max_steps": 100,
        "max_retries": 5,
        "created_at": 1_767_225_600.0,
        "status": status,
    }
    fields.update(overrides)
    return Job(**fields)
