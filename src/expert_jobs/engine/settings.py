"""Runtime settings: defaults for jobs and the engine's timing knobs, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from expert_jobs.domain.models import DEFAULT_MODEL
from expert_jobs.ports.provider import ReasoningSettings

__all__ = ["DEFAULT_APPLICATION_ID", "DEFAULT_ORGANIZATION_ID", "RuntimeSettings"]

DEFAULT_ORGANIZATION_ID = "localorganization0000000"
"""The organization of jobs started through the library without a service (24 chars, spec pattern)."""
DEFAULT_APPLICATION_ID = "localapplication00000000"
"""The application of jobs started through the library without a service."""


@dataclass(frozen=True, slots=True)
class RuntimeSettings:
    """Defaults and limits. Every job default can be overridden per job.

    - ``default_model`` / ``default_max_steps`` / ``default_max_retries`` / ``default_temperature``:
      what a job gets when it does not say (``claude-sonnet-4-5``, 100, 5, 0.0).
    - ``generation_timeout``: seconds one model call may take before it counts as a retryable
      failure (300).
    - ``backoff_base`` / ``backoff_max``: exponential backoff between failed attempts
      (``base * 2**(n-1)``, capped, times a jitter in [0.5, 1]); a provider's ``Retry-After`` wins
      when longer, up to ``retry_after_max``.
    - ``lease_seconds``: how long a worker's claim lasts without renewal; the worker renews every
      third of it.
    - ``queued_expiry_seconds`` / ``paused_expiry_seconds``: how long a job may wait in ``queued``
      or in a pause before the sweeper expires it (``None``: never).
    - ``max_output_tokens`` / ``reasoning``: passed to every generation (``None``: the adapter's
      default for the model).
    """

    default_model: str = DEFAULT_MODEL
    default_max_steps: int = 100
    default_max_retries: int = 5
    default_temperature: float = 0.0
    generation_timeout: float = 300.0
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    retry_after_max: float = 600.0
    lease_seconds: float = 30.0
    queued_expiry_seconds: float | None = 24 * 3600.0
    paused_expiry_seconds: float | None = 7 * 24 * 3600.0
    max_output_tokens: int | None = None
    reasoning: ReasoningSettings | None = None
    organization_id: str = DEFAULT_ORGANIZATION_ID
    application_id: str = DEFAULT_APPLICATION_ID
