"""The step loop: drives one claimed job through its runs until it stops, pauses or is let go.

One :class:`JobRunner` per claimed job. It keeps the run states in memory, writes a checkpoint at
every step end and every stop (atomically with the job's status and counters), and emits events.
The semantics are the README's "Step loop semantics" (docs/architecture.md says which function
keeps each rule); tests/engine/test_step_loop.py pins each one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from expert_jobs.domain.checkpoint import Checkpoint, CheckpointKind, Delegation, RunState
from expert_jobs.domain.errors import JobError, ProviderError, ProviderErrorKind, StaleJobVersion, UsageError
from expert_jobs.domain.events import EventKind, JobEvent, delta_event
from expert_jobs.domain.experts import ExpertDefinition, delegate_tool_name
from expert_jobs.domain.ids import checkpoint_id_prefix, derived_id, prefixed_checkpoint_id
from expert_jobs.domain.job import Job
from expert_jobs.domain.lifecycle import fire
from expert_jobs.domain.messages import (
    AssistantMessage,
    Message,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.output import OutputInvalid, invalid_answers_in_a_row, output_json, retry_prompt
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE, Usage
from expert_jobs.engine import pricing as _pricing
from expert_jobs.engine.files import user_message
from expert_jobs.engine.pricing import prices_available
from expert_jobs.engine.tools import Toolset, clip_result
from expert_jobs.engine.watchdog import deadline_clock
from expert_jobs.ports.provider import (
    GenerationRequest,
    GenerationResponse,
    OutputSchema,
    Provider,
    StreamingProvider,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from expert_jobs.domain.cost import Cost
    from expert_jobs.engine.events import EventBus
    from expert_jobs.engine.files import Workspace
    from expert_jobs.engine.settings import RuntimeSettings
    from expert_jobs.engine.tracing import JobTrace, JobTracing
    from expert_jobs.engine.watchdog import Watchdog
    from expert_jobs.ports.clock import Clock
    from expert_jobs.ports.store import JobStore

__all__ = ["JobRunner", "RunnerHost", "root_run_id"]

_log = logging.getLogger("expert_jobs.engine")

S = JobStatus
_PROCESSING = S.PROCESSING
_DELEGATING = S.REQUEST_DELEGATE_RESULT
# Statuses in which a runner that failed unexpectedly still has a job to stop.
_STOPPABLE = frozenset({S.QUEUED, _PROCESSING, _DELEGATING, S.CANCELING})
_INF = math.inf
# Where a job ends (until someone continues it): the stops whose checkpoint carries the job's cost.
_ENDS = frozenset({S.COMPLETED, S.FAILED, S.EXCEEDED_MAX_STEPS, S.CANCELED})


class RunnerHost(Protocol):
    """What a :class:`JobRunner` uses of its runtime (``Runtime`` is one; the runner does not
    import it, so the two modules do not import each other)."""

    @property
    def store(self) -> JobStore:
        """Where the job and its checkpoints are written."""
        ...

    @property
    def clock(self) -> Clock:
        """Timestamps, durations and backoff sleeps."""
        ...

    @property
    def events(self) -> EventBus:
        """Where the job's events are published."""
        ...

    @property
    def settings(self) -> RuntimeSettings:
        """Timeouts, limits and backoff."""
        ...

    @property
    def watchdog(self) -> Watchdog:
        """The deadlines of generations and tool calls."""
        ...

    @property
    def tool_threads(self) -> Executor:
        """The threads sync tools run in."""
        ...

    @property
    def workspace(self) -> Workspace | None:
        """Where a job's files are read from."""
        ...

    @property
    def tracing(self) -> JobTracing | None:
        """Makes the OpenTelemetry spans of job runs (``None``: tracing is off)."""
        ...

    def provider_for(self, job: Job) -> Provider:
        """The provider serving the job's model."""
        ...

    def resolve_expert(self, key: str) -> ExpertDefinition:
        """The expert ``key`` names."""
        ...

    def toolset(self, expert: ExpertDefinition, *, root: bool) -> Toolset:
        """What a run of ``expert`` offers its model."""
        ...

    @property
    def mcp_pending(self) -> bool:
        """Whether some expert's MCP servers are not connected and listed yet."""
        ...

    async def prepare_mcp(self, expert: ExpertDefinition) -> None:
        """Connect and list the MCP servers ``expert`` (and its delegates) use."""
        ...

    def runner_started(self, runner: JobRunner) -> None:
        """``runner``'s run starts: the host tracks it (cancel requests, lease renewals)."""
        ...

    def runner_ended(self, runner: JobRunner) -> None:
        """``runner``'s run ended, however it ended."""
        ...


def root_run_id(job_id: str) -> str:
    """The id of a job's root run (stable, so a restarted worker finds it)."""
    return derived_id(job_id, "root")


class _Canceled(Exception):
    """The job was asked to cancel; unwind to the runner's top."""


class _LeaseLost(Exception):
    """Another party moved the job (its lease or status); abandon without writing."""


class _Stop(Exception):
    """A job-wide stop (maxSteps reached, the job's time is up) raised from any run."""

    def __init__(self, trigger: str, reason: str, error: JobError | None = None) -> None:
        self.trigger = trigger
        self.reason = reason
        self.error = error
        super().__init__(reason)


class _TimeUp(Exception):
    """The job timer cancelled the job's task: stop it as over its time (``job_timeout``)."""


class _TornWrite(NamedTuple):
    """A write whose save raised something else than a lost race: it may or may not have landed."""

    run: _Run | None
    checkpoint: Checkpoint | None
    kind: CheckpointKind
    new_step: bool
    step_usage: Usage
    absorbed: tuple[_Run, ...]


class _RunFailed(Exception):
    """A run's generation failed for good (``error``: its job error, ``reason`` its message)."""

    def __init__(self, error: JobError) -> None:
        self.error = error
        self.reason = error.message
        super().__init__(error.message)


class _Paused(Exception):
    """The root run paused for interactive tool results."""


class _Run:
    """One expert's pass inside the job (the root run or a delegate's child run)."""

    __slots__ = (
        "delegates",
        "delegations",
        "error",
        "expert",
        "expert_key",
        "final_text",
        "id",
        "interactive",
        "invalid_outputs",
        "is_root",
        "messages",
        "output",
        "output_schema",
        "output_value",
        "parent_call_id",
        "parent_id",
        "partial",
        "pending",
        "request",
        "retry_count",
        "saved_count",
        "state",
        "tool_names",
        "tools",
        "unsaved",
        "usage",
    )

    def __init__(
        self,
        run_id: str,
        expert: ExpertDefinition,
        toolset: Toolset,
        parent_id: str | None,
        parent_call_id: str | None,
    ):
        self.id = run_id
        self.expert = expert
        # Read at every step: plain attributes, not the expert model's (pydantic's attribute hook).
        self.expert_key = expert.key
        # tool_names: the function tools by name -> (tool, its timeout or None); ``in`` tells them.
        self.tools, _, self.interactive, self.delegates, self.tool_names = toolset
        self.parent_id = parent_id
        self.parent_call_id = parent_call_id
        self.is_root = parent_id is None
        self.messages: list[Message] = []
        self.saved_count = 0
        self.usage: Usage = ZERO_USAGE
        self.unsaved: Usage = ZERO_USAGE
        self.retry_count = 0
        self.pending: tuple[ToolCall, ...] = ()
        self.partial: tuple[ToolResult, ...] = ()
        self.delegations: tuple[Delegation, ...] = ()
        self.state: RunState = "running"
        self.final_text = ""
        self.error: JobError | None = None
        self.request: GenerationRequest | None = None
        # Structured output (domain/output.py): the expert's declared shape, what providers are
        # asked for, the invalid answers given since the last valid one, and the validated output.
        self.output = output = expert.output
        self.output_schema = (
            None if output is None else OutputSchema(output.name, output.json_schema, output.strict)
        )
        self.invalid_outputs = 0
        self.output_value: Any = None


class JobRunner:
    """Runs one claimed job until it completes, pauses, fails, exceeds its steps, is canceled, or
    is let go (shutdown, lost lease). Use :meth:`run`; cancel with :meth:`request_cancel`."""

    __slots__ = (
        "_bus",
        "_checkpoint_prefix",
        "_clock",
        "_elapsed_ms",
        "_events",
        "_fresh",
        "_in_write",
        "_limit_ms",
        "_lock",
        "_mark",
        "_max_result",
        "_parallel",
        "_provider",
        "_released",
        "_root",
        "_rt",
        "_runs",
        "_settings",
        "_should_stream",
        "_steps_begun",
        "_store",
        "_streaming",
        "_threads",
        "_timeout",
        "_timer",
        "_tool_timeout",
        "_torn",
        "_trace",
        "_tracing",
        "_watchdog",
        "cancel_requested",
        "job",
        "lease_lost",
        "task",
        "timed_out",
        "worker_id",
    )

    def __init__(self, runtime: RunnerHost, job: Job, worker_id: str) -> None:
        self._rt = runtime
        self._store = runtime.store
        self._clock = runtime.clock
        self._bus = runtime.events
        self._settings = runtime.settings
        self.job = job
        # Its checkpoints' ids are this prefix and their sequence number (a string, not one more object).
        self._checkpoint_prefix = checkpoint_id_prefix(job.id)
        self.worker_id = worker_id
        self.cancel_requested = False
        self.lease_lost = False
        self.task: asyncio.Task[Any] | None = None
        self._lock: asyncio.Lock | None = None  # made when child runs first write concurrently
        self._parallel = 0  # child runs writing concurrently: their writes take the lock
        self._in_write = False
        self._released = False  # the last write dropped the lease with it
        # The job's runs this runner made (by id, no two with one id): a list, not a dict (a job
        # in flight is one run, for which a dict would be a few hundred bytes).
        self._runs: list[_Run] = []
        self._root: _Run | None = None
        # Transition events held until their write lands (made only while someone listens).
        self._events: list[JobEvent] | None = None
        self._mark = self._clock.monotonic()
        self._elapsed_ms = float(job.total_duration_ms)
        # No usage before this runner: the job's cost at its end is its usage's price (_priced).
        usage = job.usage
        self._fresh = usage is ZERO_USAGE or usage == ZERO_USAGE
        self._provider: Provider | None = None
        # The provider when it can stream, and its optional ``should_stream(request)`` hint.
        self._streaming: StreamingProvider | None = None
        self._should_stream: Callable[[GenerationRequest], bool] | None = None
        settings = self._settings
        self._timeout = settings.generation_timeout
        self._tool_timeout = settings.tool_timeout
        self._watchdog = runtime.watchdog
        self._threads = runtime.tool_threads
        limit = settings.max_tool_result_chars
        self._max_result = sys.maxsize if limit is None else limit
        # The job's running time limit in ms (checked at every step, and by a timer while a step runs).
        self._limit_ms = _INF if settings.job_timeout is None else settings.job_timeout * 1000.0
        # Steps whose generation succeeded, written or still in flight: parallel child runs each
        # take theirs from it, so together they never run more than maxSteps.
        self._steps_begun = job.total_steps
        self._torn: _TornWrite | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.timed_out = False
        # Tracing (engine/tracing.py): off when None; the run's spans while it runs.
        self._tracing = runtime.tracing
        self._trace: JobTrace | None = None

    # ------------------------------------------------------------------ control

    def request_cancel(self) -> None:
        """Ask the job to stop: the flag is checked before every model call and tool batch, and the
        in-flight call is abandoned (the task is cancelled unless it is writing a checkpoint)."""
        self.cancel_requested = True
        task = self.task
        # Only a suspended runner can be interrupted; from its own task the checks will see the flag.
        if task is not None and task is not asyncio.current_task() and not self._in_write and not task.done():
            task.cancel("expert-jobs: job canceled")

    def abandon(self) -> None:
        """The lease is lost (another worker may run the job now): stop without writing."""
        self.lease_lost = True
        task = self.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel("expert-jobs: lease lost")

    # ------------------------------------------------------------------ top level

    async def run(self) -> Job:
        """Drive the job; returns the job as last saved.

        Whatever goes wrong, the job does not stay ``processing`` with nobody at it: an
        unexpected exception (a tool or provider bug, a store hiccup) fails the job with the error
        kind ``internal`` and a final checkpoint; if even that write fails, the lease is dropped
        (or lapses) and the sweeper hands the job back to the queue.
        """
        self.task = asyncio.current_task()
        # The job's running time counts from here (the runner may be made before its task runs).
        self._mark = self._clock.monotonic()
        if self._limit_ms < _INF:
            self._timer = self._start_timer()
        if self._tracing is not None:
            self._trace = self._tracing.start_job(self.job)
        self._rt.runner_started(self)
        try:
            failure: Exception | None = None
            try:
                # The body inline (not a coroutine of its own: a frame less per job in flight).
                try:
                    if self.cancel_requested:
                        raise _Canceled
                    await self._start()
                    root = await self._load_root()
                    await self._drive(root)
                    await self._finish_root(root, "complete", "completed")
                except _Paused:
                    pass
                except _Stop as stop:
                    await self._stop_job(stop.trigger, stop.reason, stop.error)
                except _RunFailed as failed:
                    await self._stop_job("fail", failed.reason, failed.error)
            except (_Canceled, _LeaseLost):
                raise
            except asyncio.CancelledError:
                if not self._time_is_up():
                    raise
                failure = _TimeUp()
            except Exception as exc:
                failure = exc
            if failure is not None:
                await self._fail(failure)
        except (_Canceled, asyncio.CancelledError) as exc:
            self._stop_timer()
            if isinstance(exc, asyncio.CancelledError) and self.lease_lost:
                self._uncancel()
                _log.warning(
                    "job %s: worker %s lost its lease and let the job go", self.job.id, self.worker_id
                )
                return self.job
            if isinstance(exc, asyncio.CancelledError) and not self.cancel_requested:
                await self._let_go()
                raise
            self._uncancel()
            await self._finish_cancel()
        except _LeaseLost:
            _log.info("job %s: moved by someone else; worker %s lets it go", self.job.id, self.worker_id)
        finally:
            try:
                self._stop_timer()
                if not self._released:
                    try:
                        await self._store.release(self.job.id, self.worker_id)
                    except Exception:
                        _log.exception(
                            "job %s: worker %s could not release its lease (it lapses in %g s)",
                            self.job.id,
                            self.worker_id,
                            self._settings.lease_seconds,
                        )
                if self.job.lease_owner == self.worker_id:
                    self.job.lease_owner = self.job.lease_expires_at = None
                if self._trace is not None:
                    self._trace.end(self.job)
                    self._trace = None
            finally:
                # Even when the release above is cancelled: the runtime forgets the runner.
                self._rt.runner_ended(self)
        return self.job

    def _uncancel(self) -> None:
        task = self.task
        if task is not None:
            while task.cancelling():
                task.uncancel()

    # ------------------------------------------------------------------ failures and time limits

    async def _fail(self, failure: Exception) -> None:
        """End the job ``failed`` after an unexpected exception, a configuration problem found
        while running, or the job timer: on the state the store holds (see :meth:`_resync`), with
        a final checkpoint. If that fails too, log it: the job is left to the sweeper.

        An unexpected exception's error is a :class:`JobError` of kind ``internal`` (message
        ``"<type>: <text>"``, ``exception`` the type's name, ``step`` the step that was running); a
        configuration problem's is of kind ``usage`` (``exception``: its class), a provider's of its
        :data:`~expert_jobs.domain.errors.ProviderErrorKind`."""
        self._stop_timer()
        job_id = self.job.id
        internal = not isinstance(failure, _TimeUp | UsageError | ProviderError)
        if internal:
            _log.error(
                "job %s: unexpected %s; the job fails", job_id, type(failure).__name__, exc_info=failure
            )
        stored: Job | None = None
        try:
            if not await self._resync():
                return
            job = self.job
            stored = job.copy()
            if self.cancel_requested or job.status is S.CANCELING:
                self.cancel_requested = True
                raise _Canceled
            if isinstance(failure, _TimeUp):
                stop = self._over_time()
                reason, error = stop.reason, stop.error
                _log.warning("job %s: %s", job_id, reason)
            elif isinstance(failure, ProviderError):
                # A configuration problem discovered while running (no API key for the model...).
                reason = str(failure)
                error = JobError.from_provider(failure, job_id=job_id, step=job.total_steps + 1)
            elif isinstance(failure, UsageError):
                # A configuration problem discovered while running (unknown expert, file refused...).
                reason = str(failure)
                error = JobError(
                    "usage",
                    reason,
                    exception=type(failure).__name__,
                    job_id=job_id,
                    step=job.total_steps + 1,
                )
            else:
                reason = f"{type(failure).__name__}: {failure}"
                error = JobError(
                    "internal",
                    reason,
                    exception=type(failure).__qualname__,
                    job_id=job_id,
                    step=job.total_steps + 1,
                )
            await self._stop_job("fail", reason, error)
        except (_Canceled, _LeaseLost):
            raise
        except Exception:
            if stored is not None:
                self.job = stored  # what the store still holds
            _log.exception(
                "job %s: could not write its failure; it stays %s until the sweeper hands it back "
                "to the queue",
                job_id,
                self.job.status.value,
            )

    async def _resync(self) -> bool:
        """Bring the runner's state in line with the store before a stop after a failure: the job
        as stored, each run's saved messages, usage and open calls (the step in flight dropped),
        and a write that raised settled (landed or not). ``False`` when there is nothing to stop:
        the job rests already, or is someone else's."""
        job_id = self.job.id
        fresh = await self._store.get(job_id)
        if fresh is None:
            return False
        torn, self._torn = self._torn, None
        if (
            torn is not None
            and torn.checkpoint is not None
            and fresh.last_checkpoint_id == torn.checkpoint.id
        ):
            # The write landed although its save raised (a connection lost after the commit).
            for each in torn.absorbed:
                each.unsaved = ZERO_USAGE
            if torn.run is not None:
                torn.run.saved_count = torn.checkpoint.message_count
            if self._bus.active:
                self._publish_written(torn.run, torn.checkpoint, torn.kind, torn.new_step, torn.step_usage)
        self._events = None
        self.job = fresh
        owner = fresh.lease_owner
        if fresh.status not in _STOPPABLE or (
            owner != self.worker_id and (owner is not None or fresh.status is S.QUEUED)
        ):
            return False
        latest = await self._store.latest_checkpoints(job_id) if fresh.checkpoint_seq else {}
        for run in self._runs:
            checkpoint = latest.get(run.id)
            if checkpoint is None:
                run.saved_count = 0
                keep = _leading_input(run.messages)
                run.usage = ZERO_USAGE
                run.pending = run.partial = ()
                run.delegations = ()
                run.state = "running"
                run.error = None
            else:
                keep = run.saved_count = checkpoint.message_count
                run.usage = checkpoint.run_usage
                run.pending = checkpoint.pending_calls
                run.partial = checkpoint.partial_results
                run.delegations = checkpoint.delegations
                run.state = checkpoint.run_state
                run.error = checkpoint.error
            del run.messages[keep:]
        return True

    def _start_timer(self) -> asyncio.TimerHandle:
        """One timer for the job's remaining running time (not one per step)."""
        remaining = max(0.0, (self._limit_ms - self._elapsed_ms) / 1000.0)
        return asyncio.get_running_loop().call_later(remaining, self._timer_fired)

    def _stop_timer(self) -> None:
        """The job's stops and hand-backs run to their end: no timer cancels them."""
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None

    def _timer_fired(self) -> None:
        task = self.task
        if task is None or task.done():
            return
        if self._in_write:
            # A checkpoint is being written: let it land; the next step's check stops the job.
            self._limit_ms = -math.inf
            return
        self.timed_out = True
        task.cancel("expert-jobs: job timed out")

    def _time_is_up(self) -> bool:
        """Whether a cancellation of the job's task is the job timer's (and then absorb it)."""
        if not self.timed_out or self.lease_lost or self.cancel_requested:
            return False
        self._uncancel()
        return True

    def _over_time(self) -> _Stop:
        """The stop of a job whose running time passed ``job_timeout``."""
        job = self.job
        limit = self._settings.job_timeout
        assert limit is not None
        ran = (self._elapsed_ms + (self._clock.monotonic() - self._mark) * 1000.0) / 1000.0
        reason = f"the job ran for {ran:.1f} s, over its limit of {limit:g} s (job_timeout)"
        return _Stop(
            "fail", reason, JobError("job_timeout", reason, job_id=job.id, details={"limitSeconds": limit})
        )

    async def _start(self) -> None:
        job = self.job
        if job.status is S.CANCELING:
            raise _Canceled
        provider = self._provider = self._rt.provider_for(job)
        if callable(getattr(provider, "stream", None)):
            self._streaming = provider  # type: ignore[assignment]  # it has a stream(): checked
            self._should_stream = getattr(provider, "should_stream", None)
        if job.status is S.QUEUED:
            await self._write(None, "start", "start")

    async def _load_root(self) -> _Run:
        job = self.job
        root_id = root_run_id(job.id)
        # A job that never wrote a checkpoint has none to read back.
        checkpoint = None
        if job.checkpoint_seq:
            checkpoint = (await self._store.latest_checkpoints(job.id)).get(root_id)
        if self._trace is not None:
            # The run span starts linked to the previous run's, whose context the checkpoint keeps.
            self._trace.open(None if checkpoint is None else checkpoint.traceparent)
        expert = self._rt.resolve_expert(job.expert_key)
        if self._rt.mcp_pending:
            # MCP servers not listed yet (engine/mcp.py): connect them before the toolsets are made.
            await self._rt.prepare_mcp(expert)
        root = self._new_run(root_id, expert, None, None)
        if checkpoint is None:
            query = job.query
            if query and not job.files:
                # What user_message makes of a query alone, without its coroutine.
                message = UserMessage.text(query)
            else:
                message = await user_message(query, job.files, job.application_id, self._rt.workspace)
            root.messages.append(message)
            return root
        await self._restore(root, checkpoint)
        return root

    async def _restore(self, run: _Run, checkpoint: Checkpoint) -> None:
        run.messages = await self._store.load_history(self.job.id, run.id)
        run.saved_count = len(run.messages)
        run.usage = checkpoint.run_usage
        run.retry_count = checkpoint.retry_count
        run.pending = checkpoint.pending_calls
        run.partial = checkpoint.partial_results
        run.delegations = checkpoint.delegations
        run.state = checkpoint.run_state
        run.error = checkpoint.error
        if run.messages and type(run.messages[-1]) is AssistantMessage:
            run.final_text = run.messages[-1].text
        if checkpoint.output is not None and run.state == "completed":
            run.output_value = checkpoint.output
            run.final_text = output_json(checkpoint.output)
        if run.output is not None:
            run.invalid_outputs = invalid_answers_in_a_row(run.messages, run.output)

    def _new_run(
        self, run_id: str, expert: ExpertDefinition, parent_id: str | None, parent_call_id: str | None
    ) -> _Run:
        toolset = self._rt.toolset(expert, root=parent_id is None)
        run = _Run(run_id, expert, toolset, parent_id, parent_call_id)
        self._add_run(run)
        if run.is_root:
            self._root = run
        return run

    def _add_run(self, run: _Run) -> None:
        """Keep ``run`` among the job's runs, in place of an earlier one of its id if any."""
        runs = self._runs
        for index, known in enumerate(runs):
            if known.id == run.id:
                runs[index] = run
                return
        runs.append(run)

    # ------------------------------------------------------------------ the loop

    async def _drive(self, run: _Run) -> None:
        """Run ``run`` until its model answers without tool calls (or a stop is raised)."""
        job = self.job
        if run.state in ("waitingDelegates", "waitingInteractive") and run.pending:
            await self._settle_pending(run)
        # The task driving this run (the job's, or a child run's in a parallel delegation).
        task = self.task if run.is_root else None
        if task is None:
            task = asyncio.current_task()
        assert task is not None
        provider = self._provider
        assert provider is not None
        watchdog = self._watchdog
        deadlines = watchdog.deadlines
        loop = task.get_loop()
        timeout = self._timeout
        while True:
            if self._steps_begun >= job.max_steps:
                raise self._steps_exhausted()
            if self._elapsed_ms >= self._limit_ms:
                raise self._over_time()
            trace = self._trace
            if trace is not None:
                trace.step(run.id, run.parent_id, run.expert_key, self._steps_begun + 1)
            if trace is None and not self._bus.deltas and self._should_stream is None:
                # The common generation's first attempt, here rather than in _generate (a coroutine
                # less per step): not traced, not streamed; a failed attempt goes on in _generate.
                if self.cancel_requested:
                    raise _Canceled
                request = run.request
                if request is None or request.messages is not run.messages:
                    request = self._request(run)  # the run's first (no _generate coroutine for it)
                # watchdog.arm(task, timeout), inline (see engine/watchdog.py)
                deadlines[task] = deadline_clock() + timeout
                if timeout < watchdog.shortest or watchdog.watching is not loop:
                    watchdog.watch(loop, timeout)
                try:
                    response = await provider.generate(request)
                    if not response.parts:
                        raise _empty_output(response)
                except (Exception, asyncio.CancelledError) as failed:
                    response = await self._generate(run, task, failed)
                except BaseException:
                    deadlines.pop(task, None)
                    raise
                else:
                    deadlines.pop(task, None)
                    run.retry_count = 0
                    unsaved = run.unsaved
                    run.unsaved = response.usage if unsaved is ZERO_USAGE else unsaved + response.usage
            else:
                response = await self._generate(run, task)
            if self._steps_begun >= job.max_steps:
                # A parallel run of the job took the last step while this one was generating.
                raise self._steps_exhausted()
            self._steps_begun += 1
            assistant = AssistantMessage(response.parts, response.provider, response.model)
            run.messages.append(assistant)
            calls = assistant.tool_calls
            if not calls:
                if run.output is None:
                    run.final_text = assistant.text
                elif not self._take_output(run, assistant.text):
                    # Not valid output: the reason went back to the model; not a step.
                    self._steps_begun -= 1
                    continue
                run.state = "completed"
                if run.is_root:
                    return  # the final checkpoint is written with the "complete" transition
                await self._write(run, None, "step", new_step=True)
                return
            if self.cancel_requested:
                raise _Canceled
            if len(calls) == 1 and calls[0].name in run.tool_names:
                # The common step, run here rather than in _tool_batch: one ordinary tool call.
                call = calls[0]
                tool, limit = run.tool_names[call.name]
                if self._bus.active:
                    self._emit_calls(run, calls)
                called = tool.call(
                    call.arguments,
                    self._tool_timeout if limit is None else limit,
                    self._watchdog,
                    self._threads,
                    task,
                )
                if trace is not None:
                    called = trace.tool(run.id, call, called)
                content, is_error = await called
                # A finished coroutine is still a few hundred bytes: not kept while the job waits
                # for its next generation.
                del called
                if len(content) > self._max_result:
                    content = clip_result(content, self._max_result)
                result = ToolResult(call.id, call.name, content, is_error)
                if self._bus.active:
                    self._emit_results(run, (result,))
                run.messages.append(ToolResultsMessage((result,)))
                await self._write(run, None, "step", new_step=True)
            else:
                await self._tool_batch(run, calls)

    def _steps_exhausted(self) -> _Stop:
        job = self.job
        return _Stop("exceed_max_steps", f"step {self._steps_begun} reached maxSteps={job.max_steps}")

    async def _tool_batch(self, run: _Run, calls: tuple[ToolCall, ...]) -> None:
        """Run a response's tool calls: ordinary tools concurrently, then delegates and
        interactive calls pause the run (see the README's "Step loop semantics")."""
        results: dict[str, ToolResult] = {}
        ordinary: list[ToolCall] = []
        waiting: list[ToolCall] = []
        delegate_names = run.delegates
        for call in calls:
            if call.name in run.tool_names:
                ordinary.append(call)
            elif call.name in delegate_names or call.name in run.interactive:
                waiting.append(call)
            else:
                results[call.id] = ToolResult(call.id, call.name, f"Unknown tool {call.name!r}", True)
        if ordinary:
            self._emit_calls(run, ordinary)
            bound = run.tool_names
            default, watchdog, threads = self._tool_timeout, self._watchdog, self._threads
            runs = []
            trace = self._trace
            for call in ordinary:
                tool, limit = bound[call.name]
                called = tool.call(call.arguments, default if limit is None else limit, watchdog, threads)
                runs.append(called if trace is None else trace.tool(run.id, call, called))
            outcomes = [await runs[0]] if len(runs) == 1 else await asyncio.gather(*runs)
            most = self._max_result
            for call, (content, is_error) in zip(ordinary, outcomes, strict=True):
                if len(content) > most:
                    content = clip_result(content, most)
                results[call.id] = ToolResult(call.id, call.name, content, is_error)
        if self._bus.active:
            self._emit_results(run, tuple(results.values()))
        if not waiting:
            run.messages.append(ToolResultsMessage(tuple(results[c.id] for c in calls)))
            await self._write(run, None, "step", new_step=True)
            return
        run.pending = tuple(waiting)
        run.partial = tuple(results[c.id] for c in calls if c.id in results)
        delegations = tuple(
            Delegation(
                c.id, derived_id(run.id, c.id), delegate_names[c.name], str(c.arguments.get("query", ""))
            )
            for c in waiting
            if c.name in delegate_names
        )
        if delegations:
            run.delegations = delegations
            run.state = "waitingDelegates"
            trigger = "request_delegate_result" if self.job.status is _PROCESSING else None
            await self._write(run, trigger, "step", new_step=True)
        else:
            run.state = "waitingInteractive"
            await self._write(run, "request_interactive_tool_result", "pause", new_step=True, release=True)
            raise _Paused
        await self._settle_pending(run)

    async def _settle_pending(self, run: _Run) -> None:
        """Run the pending delegations; then pause for interactive calls or close the tool batch."""
        if run.state == "waitingInteractive":
            # Restored while still waiting for a person: nothing to do but wait.
            if run.is_root and self.job.status is not S.REQUEST_INTERACTIVE_TOOL_RESULT:
                await self._write(run, "request_interactive_tool_result", "pause", release=True)
            raise _Paused
        if run.delegations:
            await self._run_delegations(run)
        interactive = tuple(c for c in run.pending if c.name in run.interactive)
        run.pending = interactive
        run.delegations = ()
        if interactive:
            run.state = "waitingInteractive"
            self._back_to_processing(run)
            await self._write(run, "request_interactive_tool_result", "pause", release=True)
            raise _Paused
        self._close_batch(run)
        self._back_to_processing(run)
        await self._write(run, None, "resume")

    def _back_to_processing(self, run: _Run) -> None:
        """When the root's delegates are done, the job resumes (requestDelegateResult -> queued ->
        processing) while the worker still holds it."""
        if run.is_root and self.job.status is _DELEGATING:
            self._transition("resume", run)
            self._transition("start", run)

    def _close_batch(self, run: _Run) -> None:
        last = run.messages[-1]
        assert type(last) is AssistantMessage
        by_id = {r.call_id: r for r in run.partial}
        run.messages.append(ToolResultsMessage(tuple(by_id[c.id] for c in last.tool_calls)))
        run.partial = ()
        run.pending = ()
        run.state = "running"

    async def _run_delegations(self, run: _Run) -> None:
        done = {r.call_id for r in run.partial}
        todo = [d for d in run.delegations if d.call_id not in done]
        if not todo:
            return
        latest = await self._store.latest_checkpoints(self.job.id)
        if len(todo) == 1:
            outcomes = [await self._child(run, todo[0], latest.get(todo[0].run_id))]
        else:
            self._parallel += 1
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(self._child(run, d, latest.get(d.run_id))) for d in todo]
            except BaseExceptionGroup as failures:
                raise _most_urgent(failures) from None
            finally:
                self._parallel -= 1
            outcomes = [t.result() for t in tasks]
        run.partial = run.partial + tuple(outcomes)

    async def _child(self, parent: _Run, delegation: Delegation, checkpoint: Checkpoint | None) -> ToolResult:
        expert = self._rt.resolve_expert(delegation.expert_key)
        child = self._new_run(delegation.run_id, expert, parent.id, delegation.call_id)
        name = delegate_tool_name(delegation.expert_key)
        if checkpoint is not None:
            await self._restore(child, checkpoint)
        else:
            child.messages.append(UserMessage.text(delegation.query))
        if child.state == "completed":
            return self._answer(delegation.call_id, name, child.final_text)
        if child.state == "failed":
            return self._answer(delegation.call_id, name, _failure_text(expert.key, child.error), True)
        try:
            await self._drive(child)
        except _RunFailed as failed:
            child.state = "failed"
            child.error = failed.error
            await self._write(child, None, "stop")
            if self._trace is not None:
                self._trace.end_run(child.id, "failed", child.error)
            return self._answer(delegation.call_id, name, _failure_text(expert.key, child.error), True)
        if self._trace is not None:
            self._trace.end_run(child.id, "completed", None)
        return self._answer(delegation.call_id, name, child.final_text)

    def _answer(self, call_id: str, name: str, content: str, is_error: bool = False) -> ToolResult:
        """A delegate's tool result, cut to ``max_tool_result_chars``."""
        if len(content) > self._max_result:
            content = clip_result(content, self._max_result)
        return ToolResult(call_id, name, content, is_error)

    # ------------------------------------------------------------------ generation with retries

    async def _generate(
        self, run: _Run, task: asyncio.Task[Any], failed: BaseException | None = None
    ) -> GenerationResponse:
        """The run's next response, retrying failed attempts (``failed``: how a first attempt made
        by the caller failed, its deadline still armed; it is handled as this loop's first)."""
        job = self.job
        provider = self._provider
        assert provider is not None
        request = run.request
        if request is None or request.messages is not run.messages:
            request = self._request(run)
        watchdog = self._watchdog
        timeout = self._timeout
        trace = self._trace
        span = None
        streamed = False  # whether the attempt in flight streams (its timeout is an idle one)
        while True:
            if failed is None:
                if self.cancel_requested:
                    raise _Canceled
                if trace is not None:
                    span = trace.generation(run.id, request)
                watchdog.arm(task, timeout)
            try:
                if failed is not None:
                    first, failed = failed, None
                    raise first
                streamed = (self._bus.deltas or self._should_stream is not None) and self._streams(request)
                if streamed:
                    response = await self._streamed(run, request, task, timeout)
                else:
                    response = await provider.generate(request)
                if not response.parts:
                    raise _empty_output(response)
            except asyncio.CancelledError:
                if not watchdog.fired(task):
                    raise
                task.uncancel()
                if streamed:
                    error = ProviderError(f"generation stream idle for {timeout:g} s", kind="timeout")
                else:
                    error = ProviderError(f"generation timed out after {timeout:g} s", kind="timeout")
            except ProviderError as exc:
                error = exc
            except Exception as exc:
                # An adapter (or a FunctionProvider) that fails some other way: its answer was not
                # a usable response (or a timeout, a lost connection). Retried, never a crashed job.
                error = _unexpected_provider_error(exc)
                _log.warning(
                    "job %s: the provider raised %s instead of a ProviderError; counted as %s",
                    job.id,
                    type(exc).__name__,
                    error.kind,
                    exc_info=exc,
                )
            else:
                run.retry_count = 0
                run.unsaved = response.usage if run.unsaved is ZERO_USAGE else run.unsaved + response.usage
                if trace is not None and span is not None:
                    trace.generated(span, response)
                return response
            finally:
                watchdog.disarm(task)
            if trace is not None and span is not None:
                trace.generation_failed(span, error)
            if isinstance(error.usage, Usage):
                run.unsaved = run.unsaved + error.usage
            if not error.retryable:
                raise _RunFailed(
                    JobError.from_provider(
                        error,
                        f"{error.kind} error from {error.provider or 'provider'}: {error}",
                        attempt=run.retry_count + 1,
                        job_id=job.id,
                        step=job.total_steps + 1,
                    )
                )
            if run.retry_count >= job.max_retries:
                raise _RunFailed(
                    JobError.from_provider(
                        error,
                        f"{run.retry_count + 1} consecutive failed attempts exhausted "
                        f"maxRetries={job.max_retries}: {error}",
                        attempt=run.retry_count + 1,
                        job_id=job.id,
                        step=job.total_steps + 1,
                    )
                )
            run.retry_count += 1
            self._emit(run, "retry", {"attempt": run.retry_count, "error": error.to_data()})
            delay = self._backoff(run.retry_count, error.retry_after)
            if trace is not None:
                trace.retry(run.id, run.retry_count, error, delay)
            await self._clock.sleep(delay)

    def _request(self, run: _Run) -> GenerationRequest:
        """The run's generation request, made once per run: its history is the run's live message
        list (made again only when that list is replaced, by a restore)."""
        job = self.job
        settings = self._settings
        request = run.request = GenerationRequest(
            job.model,
            run.expert.instruction,
            run.messages,
            run.tools,
            job.temperature,
            settings.max_output_tokens,
            settings.reasoning,
            self._timeout,
            run.id,
            run.expert.key,
            run.output_schema,
        )
        return request

    def _streams(self, request: GenerationRequest) -> bool:
        """Whether to stream this generation: the provider can, and someone takes the job's
        deltas or the provider asks for it (``should_stream(request)``: e.g. Anthropic thinking
        with a large ``max_tokens``, which its API wants streamed)."""
        if self._streaming is None:
            return False
        if self._bus.deltas and self._bus.wants_deltas(self.job.id):
            return True
        should = self._should_stream
        return should is not None and bool(should(request))

    async def _streamed(
        self, run: _Run, request: GenerationRequest, task: asyncio.Task[Any], idle: float
    ) -> GenerationResponse:
        """One generation through the provider's stream. Each chunk re-arms the watchdog (the
        generation timeout bounds the wait for the next chunk) and each delta goes to the delta
        listeners; the stream's last item, the complete response, is what is returned (as
        ``generate``'s would be). The stream is closed however this ends (a cancel, a timeout, a
        failure mid-way): nothing of a broken stream reaches the run's history."""
        streaming = self._streaming
        assert streaming is not None
        bus = self._bus
        watchdog = self._watchdog
        now = self._clock.now
        job = self.job
        # The status does not change while the run generates (a cancel ends the stream).
        job_id, run_id, expert_key, status = job.id, run.id, job.expert_key, job.status
        step = self._steps_begun + 1
        limit = self._settings.stream_timeout
        monotonic = self._clock.monotonic
        deadline = _INF if limit is None else monotonic() + limit
        stream = streaming.stream(request)
        if self._trace is not None:
            stream = self._trace.streaming(run_id, stream)
        response: GenerationResponse | None = None
        try:
            async for item in stream:
                watchdog.arm(task, idle)
                if isinstance(item, GenerationResponse):
                    response = item
                    break
                if monotonic() > deadline:
                    raise ProviderError(
                        f"generation stream still going after {limit:g} s (stream_timeout)", kind="timeout"
                    )
                if bus.deltas:  # the listeners may all leave mid-stream
                    bus.publish_delta(delta_event(job_id, run_id, expert_key, step, now(), status, item))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if response is None:
            raise ProviderError(
                "the provider's stream ended without a complete response", kind="invalid_response"
            )
        return response

    def _take_output(self, run: _Run, text: str) -> bool:
        """Check an answer of a run whose expert declares an output schema: valid, keep its output
        (a delegate hands its parent the output's JSON text) and say so; invalid, send the reason
        back to the model as a user message and say no. More than ``maxRetries`` invalid answers
        in a row fail the run (error kind ``invalid_output``)."""
        spec = run.output
        assert spec is not None
        try:
            value = spec.parse(text)
        except OutputInvalid as exc:
            job = self.job
            run.invalid_outputs += 1
            count = run.invalid_outputs
            if self._trace is not None:
                self._trace.invalid_output(run.id, count, count <= job.max_retries)
            if count > job.max_retries:
                raise _RunFailed(
                    JobError(
                        "invalid_output",
                        f"{count} consecutive answers were not valid output, exhausting "
                        f"maxRetries={job.max_retries}: {exc}",
                        attempt=count,
                        job_id=job.id,
                        step=job.total_steps + 1,
                    )
                ) from None
            run.messages.append(UserMessage.text(retry_prompt(spec, str(exc))))
            if self._bus.active:
                error = JobError("invalid_output", str(exc), True, count, job_id=job.id)
                self._emit(run, "retry", {"attempt": count, "error": error.to_data()})
            return False
        run.invalid_outputs = 0
        run.output_value = value
        run.final_text = output_json(value)
        return True

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        settings = self._settings
        delay: float = min(settings.backoff_max, settings.backoff_base * 2.0 ** (attempt - 1))
        delay *= 0.5 + random.random() / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.retry_after_max))
        return delay

    # ------------------------------------------------------------------ stops

    async def _finish_root(self, root: _Run, trigger: str, state: RunState) -> None:
        root.state = state
        self.job.output = root.output_value
        await self._write(root, trigger, "stop", new_step=True, release=True)

    async def _stop_job(self, trigger: str, reason: str, error: JobError | None = None) -> None:
        """Exceeded or failed: answer every open call of the root, then write the final checkpoint
        with the job's error (``reason`` its message; without ``error``: maxSteps was reached)."""
        job = self.job
        if job.status is _DELEGATING:
            self._transition("resume", None)
        if job.status is S.QUEUED:
            self._transition("start", None)
        root = self._root or await self._stored_root()
        if root.pending:
            answered = {r.call_id for r in root.partial}
            root.partial = root.partial + tuple(
                ToolResult(c.id, c.name, f"Not run: the job stopped ({reason})", True)
                for c in root.pending
                if c.id not in answered
            )
            self._close_batch(root)
        root.delegations = ()
        root.state = "exceededMaxSteps" if trigger == "exceed_max_steps" else "failed"
        if error is None:
            error = JobError("max_steps", reason, job_id=job.id)
        elif error.message != reason:
            error = error.with_message(reason)
        root.error = job.error = error
        await self._write(root, trigger, "stop", absorb_all=True, release=True)

    async def _stored_root(self) -> _Run:
        """The root run for a stop checkpoint when it was never loaded: as last saved, if ever."""
        job = self.job
        run = _Run(root_run_id(job.id), _NO_EXPERT, _NO_TOOLS, None, None)
        run.expert_key = job.expert_key
        self._add_run(run)
        self._root = run
        if job.checkpoint_seq:
            checkpoint = (await self._store.latest_checkpoints(job.id)).get(run.id)
            if checkpoint is not None:
                await self._restore(run, checkpoint)
        return run

    async def _discard_unsaved(self) -> _Run:
        """The root with the messages of the abandoned step dropped (its calls have no results);
        before its first checkpoint, the query stays (a requeued job resumes with it)."""
        root = self._root or await self._stored_root()
        del root.messages[root.saved_count or _leading_input(root.messages) :]
        return root

    async def _finish_cancel(self) -> None:
        fresh = await self._store.get(self.job.id)
        if fresh is None:
            return
        self.job = fresh
        if fresh.status not in (
            S.CANCELING,
            S.QUEUED,
            _PROCESSING,
            _DELEGATING,
            S.REQUEST_INTERACTIVE_TOOL_RESULT,
        ):
            return
        if fresh.status is not S.CANCELING:
            self._transition("cancel", None)
        root = await self._discard_unsaved()
        root.state = "canceled"
        await self._write(root, "finish_cancel", "stop", absorb_all=True, force=True, release=True)

    async def _let_go(self) -> None:
        """Shutdown: hand the job back to the queue with what the step in flight spent."""
        fresh = await self._store.get(self.job.id)
        if fresh is None or fresh.lease_owner != self.worker_id:
            return
        self.job = fresh
        trigger = {_PROCESSING: "requeue", _DELEGATING: "resume"}.get(fresh.status)
        if trigger is None:
            return
        root = await self._discard_unsaved()
        with contextlib.suppress(_LeaseLost, _Canceled):
            await self._write(root, trigger, "stop", absorb_all=True, force=True, release=True)

    # ------------------------------------------------------------------ writing

    def _transition(self, trigger: str, run: _Run | None) -> None:
        job = self.job
        before = job.status
        fire(job, trigger, job_id=job.id)
        status = job.status
        if status is S.QUEUED or status is S.REQUEST_INTERACTIVE_TOOL_RESULT or status is _DELEGATING:
            job.waiting_since = self._clock.now()
        if self._bus.active:
            event = JobEvent(
                "transition",
                job.id,
                run.id if run else None,
                job.expert_key,
                job.current_step,
                self._clock.now(),
                status,
                before,
                trigger,
            )
            if self._events is None:
                self._events = [event]
            else:
                self._events.append(event)

    async def _write(
        self,
        run: _Run | None,
        trigger: str | None,
        kind: CheckpointKind,
        *,
        new_step: bool = False,
        absorb_all: bool = False,
        force: bool = False,
        release: bool = False,
    ) -> None:
        """Apply ``trigger`` and save the job atomically with a checkpoint of ``run`` (if any);
        with ``release`` (the run's last write: a stop or a pause), drop the lease with it.

        The checkpoint's ``step_usage`` is all usage the run reported since its last checkpoint
        (every run's, with ``absorb_all``). A lost race (``StaleJobVersion``) means someone else
        moved the job: a cancel request unwinds as a cancellation, anything else as a lost lease.
        Child runs writing concurrently take turns (the lock); a lone run writes straight away.
        """
        lock = None
        if self._parallel:
            lock = self._lock
            if lock is None:
                lock = self._lock = asyncio.Lock()
            await lock.acquire()
        try:
            job = self.job
            expected = job.version
            absorbed, step_usage = self._account(run, new_step, absorb_all)
            if trigger is not None:
                self._transition(trigger, run)
            job.updated_at = self._clock.now()
            checkpoint = None if run is None else self._checkpoint(run, kind, step_usage)
            if release and checkpoint is not None:
                # The run's last checkpoint: priced at the job's end, and the run span's trace
                # context kept for the job's next run to link to (any process: engine/tracing.py).
                if self._prices(checkpoint):
                    checkpoint = await self._priced(checkpoint)
                if self._trace is not None:
                    checkpoint = checkpoint._replace(traceparent=self._trace.traceparent())
            self._in_write = True
            try:
                await self._store.save(
                    job,
                    expected_version=expected,
                    checkpoint=checkpoint,
                    release_for=self.worker_id if release else None,
                )
                self._released = release
            except StaleJobVersion:
                self._events = None
                await self._lost_race(force)
            except Exception:
                self._torn = _TornWrite(run, checkpoint, kind, new_step, step_usage, tuple(absorbed))
                raise
            finally:
                self._in_write = False
            for each in absorbed:
                each.unsaved = ZERO_USAGE
            if run is not None:
                run.saved_count = len(run.messages)
            if self._bus.active:
                self._publish_written(run, checkpoint, kind, new_step, step_usage)
        finally:
            if lock is not None:
                lock.release()
        if self.cancel_requested and not force:
            raise _Canceled

    def _prices(self, checkpoint: Checkpoint) -> bool:
        """Whether ``checkpoint`` is where the job ends (not a pause, not a hand-back to the
        queue), ``price_final_checkpoint`` asks for its cost there and the price table is installed."""
        return (
            checkpoint.kind == "stop"
            and checkpoint.status in _ENDS
            and self._settings.price_final_checkpoint
            and prices_available()
        )

    async def _priced(self, final: Checkpoint) -> Checkpoint:
        """``final`` with what the job cost (engine/pricing.py), worked out once, at the job's end,
        and ``job.cost`` set to it (``None`` for a model unknown to the price table).

        A job this runner ran from its start ran on one model (the job's; every run of a job asks
        the same one): its cost is the price of its usage, a few µs, unless that much input could
        have reached a tier of the model's prices. Otherwise (that, or a job that ran before: a
        follow-up, a resume, a re-claim) its earlier checkpoints are read back and each priced with
        its step's model. The cost is optional: a failure to work it out is logged and never fails
        the job."""
        job = self.job
        try:
            cost: Cost | None = None
            by_step = not self._fresh
            if not by_step:
                model, provider = self._served_by()
                try:
                    cost = _pricing.price_usage_sum(job.usage, model, provider=provider, at=final.created_at)
                except _pricing.TierReached:
                    by_step = True
            if by_step:
                earlier: list[Checkpoint] = []
                store = self._store
                while True:
                    page, total = await store.list_checkpoints(final.job_id, take=500, skip=len(earlier))
                    earlier.extend(page)
                    if not page or len(earlier) >= total:
                        break
                cost = _pricing.job_cost(job, [*earlier, final])
        except Exception:
            _log.warning("job %s: could not price its final checkpoint", final.job_id, exc_info=True)
            return final
        job.cost = cost
        return final if cost is None else final._replace(cost=cost)

    def _served_by(self) -> tuple[str, str | None]:
        """The model and provider of the root run's latest answer (what served the job), else the
        job's model: how :func:`~expert_jobs.engine.pricing.job_cost` names them too."""
        root = self._root
        if root is not None:
            for message in reversed(root.messages):
                if type(message) is AssistantMessage and message.model is not None:
                    return message.model, message.provider
        return self.job.model, None

    def _account(self, run: _Run | None, new_step: bool, absorb_all: bool) -> tuple[Iterable[_Run], Usage]:
        """Bring the job's duration, step counters and usage up to now; returns the runs whose
        unsaved usage this write absorbs, and that usage's sum (the step's usage)."""
        job = self.job
        now_mono = self._clock.monotonic()
        self._elapsed_ms += (now_mono - self._mark) * 1000.0
        self._mark = now_mono
        job.total_duration_ms = int(self._elapsed_ms)
        if new_step:
            job.total_steps += 1
            job.current_step = job.total_steps
        absorbed = self._runs if absorb_all else (run,) if run is not None else ()
        step_usage = ZERO_USAGE
        job_usage = job.usage
        # When the job's usage is the very object of the only run that reported (a job of one run),
        # its new usage is that run's new usage: one sum, one object, instead of two.
        same_sum: Usage | None = None
        for each in absorbed:
            unsaved = each.unsaved
            if unsaved is not ZERO_USAGE:
                before = each.usage
                each.usage = unsaved if before is ZERO_USAGE else before + unsaved
                if step_usage is ZERO_USAGE:
                    step_usage = unsaved
                    same_sum = each.usage if before is job_usage else None
                else:
                    step_usage = step_usage + unsaved
                    same_sum = None
        if step_usage is not ZERO_USAGE:
            job.usage = same_sum if same_sum is not None else job_usage + step_usage
        return absorbed, step_usage

    def _checkpoint(self, run: _Run, kind: CheckpointKind, step_usage: Usage) -> Checkpoint:
        """The checkpoint of ``run`` as the job stands now (the job's checkpoint counters move on)."""
        job = self.job
        seq = job.checkpoint_seq + 1
        messages = run.messages
        # The fields in Checkpoint's order, as one tuple: what its generated __new__ would build
        # after binding its 27 arguments (a frame the hot path can do without).
        checkpoint = _new_checkpoint(
            Checkpoint,
            (
                prefixed_checkpoint_id(self._checkpoint_prefix, seq),
                job.id,
                run.id,
                seq,
                job.current_step,
                kind,
                job.status,
                run.state,
                run.expert_key,
                job.updated_at,
                tuple(messages[run.saved_count :]),
                len(messages),
                job.usage,
                run.usage,
                step_usage,
                job.total_steps,
                job.total_duration_ms,
                run.retry_count,
                run.parent_id,
                run.parent_call_id,
                run.pending,
                run.partial,
                run.delegations,
                run.error,
                None,  # cost: set on the final checkpoint only, by _write (price_final_checkpoint)
                None,  # traceparent: set on a run's last checkpoint only, by _write (when tracing)
                run.output_value,  # output: set once the run's answer was valid output
            ),
        )
        job.checkpoint_seq = seq
        job.last_checkpoint_id = checkpoint.id
        return checkpoint

    def _publish_written(
        self, run: _Run | None, checkpoint: Checkpoint | None, kind: str, new_step: bool, step_usage: Usage
    ) -> None:
        events, self._events = self._events, None
        if new_step:
            self._emit(run, "step", {"usage": step_usage.to_wire()})
        if checkpoint is not None:
            detail: dict[str, Any] = {"checkpointId": checkpoint.id, "kind": kind}
            if self._prices(checkpoint):
                # The job's last checkpoint, priced (_priced): its cost, or None for unknown.
                cost = checkpoint.cost
                detail["cost"] = None if cost is None else cost.to_wire()
            self._emit(run, "checkpoint", detail)
        if events is not None:
            for event in events:
                self._bus.publish(event)

    async def _lost_race(self, force: bool) -> None:
        fresh = await self._store.get(self.job.id)
        if fresh is not None and fresh.status is S.CANCELING and not force:
            self.cancel_requested = True
            raise _Canceled
        raise _LeaseLost(self.job.id)

    # ------------------------------------------------------------------ events

    def _emit(self, run: _Run | None, kind: EventKind, detail: dict[str, Any]) -> None:
        if not self._bus.active:
            return
        job = self.job
        self._bus.publish(
            JobEvent(
                kind,
                job.id,
                run.id if run else None,
                job.expert_key,
                job.current_step,
                self._clock.now(),
                job.status,
                detail=detail,
            )
        )

    def _emit_results(self, run: _Run, results: Sequence[ToolResult]) -> None:
        for result in results:
            self._emit(
                run, "toolResult", {"id": result.call_id, "name": result.name, "isError": result.is_error}
            )

    def _emit_calls(self, run: _Run, calls: Sequence[ToolCall]) -> None:
        if self._bus.active:
            for call in calls:
                self._emit(run, "toolCall", {"id": call.id, "name": call.name})


_URGENCY = (_Canceled, _LeaseLost, _Stop)
_new_checkpoint = tuple.__new__


def _most_urgent(failures: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that decides what happens when several children of one step stop."""
    flat: list[BaseException] = []
    pending: list[BaseException] = [failures]
    while pending:
        error = pending.pop()
        if isinstance(error, BaseExceptionGroup):
            pending.extend(error.exceptions)
        else:
            flat.append(error)
    for kind in _URGENCY:
        for error in flat:
            if isinstance(error, kind):
                return error
    return flat[0]


def _empty_output(response: GenerationResponse) -> ProviderError:
    """The error of a response without any part."""
    return ProviderError(
        "the model returned no output", kind="empty_output", usage=response.usage, provider=response.provider
    )


def _unexpected_provider_error(exc: Exception) -> ProviderError:
    """What a provider's unexpected exception counts as: ``timeout`` (a ``TimeoutError``),
    ``connection`` (a ``ConnectionError``), else ``invalid_response``; all three are retried."""
    kind: ProviderErrorKind
    if isinstance(exc, TimeoutError):
        kind = "timeout"
    elif isinstance(exc, ConnectionError):
        kind = "connection"
    else:
        kind = "invalid_response"
    return ProviderError(f"the provider raised {type(exc).__name__}: {exc}", kind=kind)


def _leading_input(messages: list[Message]) -> int:
    """How many messages come before the first answer: a run's input (its query), kept when a step
    of a run that never wrote a checkpoint is dropped."""
    count = 0
    for message in messages:
        if type(message) is AssistantMessage:
            break
        count += 1
    return count


def _failure_text(key: str, error: JobError | None) -> str:
    message = "unknown error" if error is None else error.message
    return f"Delegate {key} failed: {message}"


_NO_EXPERT = ExpertDefinition(key="expert-jobs-internal", instruction="-")
_NO_TOOLS = Toolset((), frozenset(), frozenset(), {})
