"""Runtime settings: defaults for jobs and the engine's timing knobs, in one place."""

from __future__ import annotations

import math
from dataclasses import dataclass

from expert_jobs.domain.errors import UsageError
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
      failure (300). When the call streams (someone listens for deltas, or the provider asks for
      it), it is an idle timeout instead: the seconds allowed between two chunks of the stream.
    - ``stream_timeout``: the most seconds a streamed generation may take in all (3,600), however
      lively its stream: past it the generation is a retryable ``timeout`` failure, so a stream
      that never ends (a provider looping) cannot hold a job. ``None``: no limit.
    - ``backoff_base`` / ``backoff_max``: exponential backoff between failed attempts
      (``base * 2**(n-1)``, capped, times a jitter in [0.5, 1]); a provider's ``Retry-After`` wins
      when longer, up to ``retry_after_max``.
    - ``lease_seconds``: how long a worker's claim lasts without renewal; the worker renews every
      third of it.
    - ``queued_expiry_seconds`` / ``paused_expiry_seconds``: how long a job may wait in ``queued``
      or in a pause before the sweeper expires it (``None``: never).
    - ``max_output_tokens`` / ``reasoning``: passed to every generation (``None``: the adapter's
      default for the model).
    - ``tool_timeout``: seconds one Python tool call may take (300, like a generation), unless the
      tool (``tool(timeout=...)``) or its expert (``tool_timeout``) says otherwise; a call that
      overruns returns the error result ``"Tool <name> timed out after <N> s"`` to the model.
      ``None``: no limit. Enforced within min(1 s, timeout/4) by the runtime's watchdog.
    - ``tool_threads``: the most threads sync tools run in at once (32). The runtime owns one
      bounded pool: a hung sync tool keeps its thread, and when all are busy new sync calls wait
      for one (their timeout still applies) instead of starting more threads.
    - ``tool_threads_on_loop_cpu``: keep the tool threads, and the thread of the event loop that
      calls them, on the CPU that loop runs on (Linux; ignored with a warning elsewhere); off by
      default. A quick sync tool's call is two thread wake-ups, and on a machine whose idle CPUs
      sleep (most VMs) waking a thread on another CPU costs tens of µs: on one CPU a sync tool
      costs several times less. The price: a tool computing in C with the GIL released no longer
      runs beside the loop, and the loop's thread stays on that CPU until the runtime closes
      (see docs/configuration.md, "Sync tools").
    - ``job_timeout``: the most running time a job may have, in seconds of its ``totalDuration``
      (queueing and pauses excluded, every worker's share and every follow-up included), or
      ``None`` (the default): no limit. Past it the job ends ``failed`` with the error kind
      ``job_timeout``, abandoning its model call or tool in flight; a follow-up of a job already
      past it fails at once, as one past ``maxSteps`` does. Running time rather than time since
      the start, because a pause for a person may rightly last days and queueing measures the
      workers, not the job; and ``totalDuration`` is stored, so a crash does not reset it.
    - ``max_tool_result_chars``: the longest tool result kept (100,000 characters): a longer one
      (a Python tool's, a delegate's answer, a person's answer to an interactive tool) is cut to
      this length and ends with a marker saying how much was cut. ``None``: no limit.
    - ``price_final_checkpoint``: put what the job cost in money on its final checkpoint
      (``Checkpoint.cost``), its ``checkpoint`` event and the job the runtime hands back
      (``Job.cost``), see docs/providers.md "Cost in money". On by default, and a no-op without
      the ``prices`` extra: priced once per job end (never per step), in a few µs for a job run in
      one go (its usage's price); a job that ran before (a follow-up, a resume) or whose input may
      have reached a price tier has its checkpoints read back and priced. ``False`` turns it off;
      ``Runtime.cost`` prices any job at any time either way.
    """

    default_model: str = DEFAULT_MODEL
    default_max_steps: int = 100
    default_max_retries: int = 5
    default_temperature: float = 0.0
    generation_timeout: float = 300.0
    stream_timeout: float | None = 3600.0
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
    tool_timeout: float | None = 300.0
    tool_threads: int = 32
    tool_threads_on_loop_cpu: bool = False
    job_timeout: float | None = None
    max_tool_result_chars: int | None = 100_000
    price_final_checkpoint: bool = True

    def __post_init__(self) -> None:
        for name in ("tool_timeout", "job_timeout", "stream_timeout"):
            seconds = getattr(self, name)
            if seconds is not None and not _positive_number(seconds):
                raise UsageError(
                    f"{name} must be a number of seconds > 0, or None (no limit); got {seconds!r}"
                )
        if not _positive_integer(self.tool_threads):
            raise UsageError(f"tool_threads must be an integer >= 1, got {self.tool_threads!r}")
        if type(self.tool_threads_on_loop_cpu) is not bool:
            raise UsageError(
                f"tool_threads_on_loop_cpu must be True or False, got {self.tool_threads_on_loop_cpu!r}"
            )
        chars = self.max_tool_result_chars
        if chars is not None and not _positive_integer(chars):
            raise UsageError(
                f"max_tool_result_chars must be an integer >= 1, or None (no limit); got {chars!r}"
            )


def _positive_number(value: object) -> bool:
    return (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0 and not math.isnan(value)
    )


def _positive_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
