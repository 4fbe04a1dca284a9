"""OpenTelemetry traces of job runs, following the GenAI semantic conventions (the ``otel`` extra).

Off by default: a runtime traces only with a :class:`JobTracing` (``Runtime(tracing=...)`` or
:func:`enable_tracing`); without one the step loop pays one ``is not None`` check per hook and this
module never imports ``opentelemetry``. The SDK (or any API-compatible tracer provider) is imported
here only, when a :class:`JobTracing` is made.

The spans of one run of a job (a runner's ``run()``: until it completes, pauses, stops or is let go):

- ``invoke_agent {expert}`` (the run): ``gen_ai.operation.name`` ``invoke_agent``,
  ``gen_ai.agent.name``, ``gen_ai.request.model``, ``expert_jobs.job.id``, the status it started
  from and ended in (``expert_jobs.job.status``), its steps and usage; linked to the span of the
  job's previous run (``expert_jobs.link`` ``previous_run``: a resume after a pause, a follow-up,
  a requeue), in whichever process it ran: a run's last checkpoint (its pause or stop) keeps its
  span's W3C ``traceparent`` (``Checkpoint.traceparent``), which the job's next run reads back
  when it restores the checkpoint;
- ``step {n}`` per step of each run (``expert_jobs.step``, ``expert_jobs.run.id``), with an
  ``expert_jobs.retry`` event per retried generation (attempt, error kind, backoff delay) and an
  ``expert_jobs.output.invalid`` event per answer that is not valid structured output (attempt,
  whether it is sent back to the model; not the reason, which may quote the answer);
- ``chat {model}`` per generation attempt (kind CLIENT): request model and temperature, the
  requested output (``gen_ai.output.type`` ``json`` and ``expert_jobs.output.schema``, the
  schema's name, when an output schema is asked for), whether it streamed
  (``expert_jobs.generation.streamed``; then the seconds to the stream's first chunk,
  ``expert_jobs.generation.time_to_first_chunk_s``), response model, ``gen_ai.provider.name``,
  ``gen_ai.usage.*`` (input, output, cache read, cache creation when non-zero, reasoning),
  ``gen_ai.response.finish_reasons``; a failed attempt has status ERROR and ``error.type``;
- ``execute_tool {name}`` per ordinary tool call (``gen_ai.tool.name``, ``gen_ai.tool.call.id``),
  status ERROR when the model gets an error result; the span is the current one while an ``async``
  tool runs, so the tool's own spans nest under it;
- ``invoke_agent {delegate}`` per delegate's child run, under the step that delegated, with its
  own steps, generations and tool calls.
"""

from __future__ import annotations

import importlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext, Tracer, TracerProvider

    from expert_jobs.domain.errors import JobError, ProviderError
    from expert_jobs.domain.job import Job
    from expert_jobs.domain.messages import ToolCall
    from expert_jobs.ports.provider import GenerationRequest, GenerationResponse

__all__ = ["INSTRUMENTATION_NAME", "JobTrace", "JobTracing", "enable_tracing"]

INSTRUMENTATION_NAME = "expert_jobs"
"""The instrumentation scope of every span (the tracer's name)."""

# Our providers' names -> the conventions' well-known gen_ai.provider.name values.
_PROVIDER_NAMES = {"google": "gcp.gemini", "gemini": "gcp.gemini"}
_FAILED_STATUSES = frozenset({JobStatus.FAILED, JobStatus.EXPIRED})

_T = TypeVar("_T")


def _load_otel() -> Any:
    """The ``opentelemetry.trace`` module, or an ImportError naming the extra to install."""
    try:
        return importlib.import_module("opentelemetry.trace")
    except ImportError as exc:
        raise ImportError(
            "expert-jobs tracing needs OpenTelemetry: pip install 'expert-jobs[otel]' "
            f"(could not import opentelemetry.trace: {exc})"
        ) from exc


class JobTracing:
    """Makes the spans of job runs with a tracer of ``tracer_provider`` (the global provider when
    ``None``: set it with ``opentelemetry.trace.set_tracer_provider``).

    A job's next run links to its previous run's span through the ``traceparent`` its last
    checkpoint keeps (any process); failing that (a checkpoint written without tracing), through
    the span contexts remembered here: ``remember`` bounds how many jobs' last run span contexts
    are kept, the oldest forgotten first. Raises ImportError naming the ``otel`` extra when
    OpenTelemetry is not installed.
    """

    __slots__ = ("_last", "_otel", "_propagator", "_remember", "tracer")

    def __init__(self, tracer_provider: TracerProvider | None = None, *, remember: int = 10_000) -> None:
        if remember < 0:
            raise ValueError(f"remember must be >= 0, not {remember}")
        otel = _load_otel()
        from expert_jobs import __version__

        self._otel = otel
        # W3C trace context (the propagation API): a run's span context in its last checkpoint.
        self._propagator: Any = importlib.import_module(
            "opentelemetry.trace.propagation.tracecontext"
        ).TraceContextTextMapPropagator()
        self.tracer: Tracer = otel.get_tracer(
            INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider
        )
        self._remember = remember
        self._last: OrderedDict[str, SpanContext] = OrderedDict()

    def start_job(self, job: Job) -> JobTrace:
        """The trace of a run of ``job`` starting now; its span opens (with its start time now)
        when :meth:`JobTrace.open` learns the previous run's trace context."""
        return JobTrace(self, job)

    def previous_run(self, job_id: str) -> SpanContext | None:
        """The span context of the last run of ``job_id`` traced here, if remembered."""
        return self._last.get(job_id)

    def traceparent(self, span: Span) -> str | None:
        """``span``'s W3C ``traceparent`` header value (``None`` for a span without a valid
        context: a non-recording tracer's)."""
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._otel.set_span_in_context(span))
        return carrier.get("traceparent")

    def span_context(self, traceparent: str) -> SpanContext | None:
        """The (remote) span context a ``traceparent`` value names; ``None`` if it is malformed."""
        context = self._propagator.extract({"traceparent": traceparent})
        span_context: SpanContext = self._otel.get_current_span(context).get_span_context()
        return span_context if span_context.is_valid else None

    def _remember_run(self, job_id: str, context: SpanContext) -> None:
        if not self._remember:
            return
        last = self._last
        last[job_id] = context
        last.move_to_end(job_id)
        while len(last) > self._remember:
            last.popitem(last=False)


def enable_tracing(runtime: Any, tracer_provider: TracerProvider | None = None) -> JobTracing:
    """Trace the runs of ``runtime``'s jobs from now on (runs that start later); returns the
    :class:`JobTracing` set as ``runtime.tracing``. ``runtime.tracing = None`` turns it off."""
    tracing = JobTracing(tracer_provider)
    runtime.tracing = tracing
    return tracing


class JobTrace:
    """The open spans of one run of a job; the runner calls it at its hook points."""

    __slots__ = (
        "_attempts",
        "_attributes",
        "_generations",
        "_job_id",
        "_otel",
        "_resumed",
        "_runs",
        "_span",
        "_start_ns",
        "_steps",
        "_tracer",
        "_tracing",
    )

    def __init__(self, tracing: JobTracing, job: Job) -> None:
        self._otel = tracing._otel
        self._tracing = tracing
        self._tracer = tracing.tracer
        self._job_id = job.id
        # The run span opens in open(), once the previous run's trace context is known (links are
        # set when a span starts), with the run's start time taken here.
        self._start_ns = time.time_ns()
        self._resumed = job.checkpoint_seq > 0
        self._attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": job.expert_key,
            "gen_ai.request.model": job.model,
            "gen_ai.conversation.id": job.id,
            "expert_jobs.job.id": job.id,
            "expert_jobs.job.status.start": job.status.value,
        }
        self._span: Span | None = None
        self._steps: dict[str, Span] = {}  # run id -> its current step's span
        self._runs: dict[str, Span] = {}  # child run id -> its span
        self._generations: set[Span] = set()  # attempts in flight
        self._attempts: dict[str, Span] = {}  # run id -> its latest generation attempt's span

    def open(self, traceparent: str | None) -> Span:
        """Start the run's span (once; later calls return it), linked to the previous run's span:
        the one ``traceparent`` (from the checkpoint the run restores) names, else the one
        remembered in this process, if any."""
        span = self._span
        if span is not None:
            return span
        tracing = self._tracing
        previous = None if traceparent is None else tracing.span_context(traceparent)
        if previous is None:
            previous = tracing.previous_run(self._job_id)
        otel = self._otel
        attributes = self._attributes
        attributes["expert_jobs.job.resumed"] = previous is not None or self._resumed
        span = self._span = self._tracer.start_span(
            f"invoke_agent {attributes['gen_ai.agent.name']}",
            kind=otel.SpanKind.INTERNAL,
            attributes=attributes,
            links=() if previous is None else (otel.Link(previous, {"expert_jobs.link": "previous_run"}),),
            start_time=self._start_ns,
        )
        return span

    def traceparent(self) -> str | None:
        """The run span's W3C ``traceparent``, for the run's last checkpoint (a pause or a stop)."""
        return self._tracing.traceparent(self.open(None))

    # ------------------------------------------------------------------ parents

    def _parent_of_run(self, run_id: str) -> Span:
        """Where a run's steps hang: the job run's span for the root, the child run's own span."""
        span = self._runs.get(run_id)
        return span if span is not None else self.open(None)

    def _current(self, run_id: str) -> Span:
        """Where a run's generations, tool calls and delegates hang: its current step's span."""
        step = self._steps.get(run_id)
        return step if step is not None else self._parent_of_run(run_id)

    def _context(self, span: Span) -> Any:
        return self._otel.set_span_in_context(span)

    # ------------------------------------------------------------------ hooks

    def step(self, run_id: str, parent_id: str | None, expert_key: str, number: int) -> None:
        """A step of ``run_id`` begins (the previous one of that run, if open, ends)."""
        previous = self._steps.pop(run_id, None)
        if previous is not None:
            previous.end()
        if parent_id is not None and run_id not in self._runs:
            self._runs[run_id] = self._tracer.start_span(
                f"invoke_agent {expert_key}",
                context=self._context(self._current(parent_id)),
                kind=self._otel.SpanKind.INTERNAL,
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": expert_key,
                    "expert_jobs.job.id": self._job_id,
                    "expert_jobs.run.id": run_id,
                    "expert_jobs.run.parent_id": parent_id,
                },
            )
        self._steps[run_id] = self._tracer.start_span(
            f"step {number}",
            context=self._context(self._parent_of_run(run_id)),
            attributes={
                "expert_jobs.job.id": self._job_id,
                "expert_jobs.run.id": run_id,
                "expert_jobs.step": number,
                "gen_ai.agent.name": expert_key,
            },
        )

    def generation(self, run_id: str, request: GenerationRequest) -> Span:
        """A generation attempt of ``run_id`` begins: its ``chat`` span."""
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": request.model,
            "expert_jobs.job.id": self._job_id,
            "expert_jobs.run.id": run_id,
        }
        if request.temperature is not None:
            attributes["gen_ai.request.temperature"] = request.temperature
        if request.max_output_tokens is not None:
            attributes["gen_ai.request.max_tokens"] = request.max_output_tokens
        schema = request.output_schema
        if schema is not None:
            attributes["gen_ai.output.type"] = "json"
            attributes["expert_jobs.output.schema"] = schema.name
        attributes["expert_jobs.generation.streamed"] = False  # streaming() says otherwise
        span = self._tracer.start_span(
            f"chat {request.model}",
            context=self._context(self._current(run_id)),
            kind=self._otel.SpanKind.CLIENT,
            attributes=attributes,
        )
        self._generations.add(span)
        self._attempts[run_id] = span
        return span

    def streaming(self, run_id: str, stream: AsyncIterator[_T]) -> AsyncIterator[_T]:
        """The generation attempt of ``run_id`` in flight streams through ``stream``: mark its
        span streamed, and return ``stream`` timed (its first item sets the span's
        ``expert_jobs.generation.time_to_first_chunk_s``). Closing the timed stream closes
        ``stream``."""
        span = self._attempts.get(run_id)
        if span is None:  # no attempt of that run traced: nothing to time
            return stream
        span.set_attribute("expert_jobs.generation.streamed", True)
        return _TimedStream(span, stream)

    def generated(self, span: Span, response: GenerationResponse) -> None:
        """The attempt succeeded: its response's model, provider, usage and finish reason."""
        self._generations.discard(span)
        attributes = _usage(response.usage)
        attributes["gen_ai.response.finish_reasons"] = (response.finish_reason,)
        if response.model is not None:
            attributes["gen_ai.response.model"] = response.model
        if response.provider is not None:
            _add_provider(attributes, response.provider)
        span.set_attributes(attributes)  # one call: the SDK takes a lock per call
        span.end()

    def generation_failed(self, span: Span, error: ProviderError) -> None:
        """The attempt failed (to be retried or not): status ERROR, ``error.type`` its kind."""
        self._generations.discard(span)
        attributes = _usage(error.usage) if isinstance(error.usage, Usage) else {}
        attributes["error.type"] = error.kind
        attributes["expert_jobs.error.retryable"] = error.retryable
        if error.provider is not None:
            _add_provider(attributes, error.provider)
        span.set_attributes(attributes)
        span.set_status(self._otel.Status(self._otel.StatusCode.ERROR, str(error)))
        span.end()

    def retry(self, run_id: str, attempt: int, error: ProviderError, delay: float) -> None:
        """A failed generation is retried: an ``expert_jobs.retry`` event on the step's span."""
        self._current(run_id).add_event(
            "expert_jobs.retry",
            {
                "expert_jobs.retry.attempt": attempt,
                "expert_jobs.retry.delay_s": delay,
                "error.type": error.kind,
                "exception.message": str(error),
            },
        )

    def invalid_output(self, run_id: str, attempt: int, retried: bool) -> None:
        """An answer of ``run_id`` is not valid structured output: an ``expert_jobs.output.invalid``
        event on the step's span (the ``attempt``-th invalid answer in a row; ``retried``: the
        reason goes back to the model, else the run fails with error kind ``invalid_output``). The
        reason is not recorded: it may quote the answer, and answers are never recorded."""
        self._current(run_id).add_event(
            "expert_jobs.output.invalid",
            {
                "expert_jobs.retry.attempt": attempt,
                "expert_jobs.output.retried": retried,
                "error.type": "invalid_output",
            },
        )

    async def tool(
        self, run_id: str, call: ToolCall, result: Awaitable[tuple[str, bool]]
    ) -> tuple[str, bool]:
        """Await a tool call's ``(content, is_error)`` inside its ``execute_tool`` span."""
        otel = self._otel
        span = self._tracer.start_span(
            f"execute_tool {call.name}",
            context=self._context(self._current(run_id)),
            kind=otel.SpanKind.INTERNAL,
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.name,
                "gen_ai.tool.call.id": call.id,
                "gen_ai.tool.type": "function",
                "expert_jobs.job.id": self._job_id,
                "expert_jobs.run.id": run_id,
            },
        )
        try:
            with otel.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                content, is_error = await result
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            span.set_status(otel.Status(otel.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            span.end()
            raise
        if is_error:
            span.set_attribute("error.type", "tool_error")
            span.set_status(otel.Status(otel.StatusCode.ERROR, content[:200]))
        span.end()
        return content, is_error

    def end_run(self, run_id: str, state: str, error: JobError | None) -> None:
        """A delegate's child run ended (``state``: completed or failed)."""
        self._attempts.pop(run_id, None)
        step = self._steps.pop(run_id, None)
        if step is not None:
            step.end()
        span = self._runs.pop(run_id, None)
        if span is None:
            return
        span.set_attribute("expert_jobs.run.state", state)
        if error is not None:
            span.set_attribute("error.type", error.kind)
            span.set_status(self._otel.Status(self._otel.StatusCode.ERROR, error.message))
        span.end()

    def end(self, job: Job) -> None:
        """The run is over (whatever the outcome): close every open span, the run's last with the
        job's status, steps and usage, and remember it for the job's next run."""
        for span in tuple(self._generations):
            span.set_attribute("error.type", "abandoned")
            span.end()
        self._generations.clear()
        self._attempts.clear()
        for step in self._steps.values():
            step.end()
        self._steps.clear()
        for child in self._runs.values():
            child.end()
        self._runs.clear()
        span = self.open(None)
        status = job.status
        attributes = _usage(job.usage)
        attributes["expert_jobs.job.status"] = status.value
        attributes["expert_jobs.job.total_steps"] = job.total_steps
        span.set_attributes(attributes)
        error = job.error
        if status in _FAILED_STATUSES and error is not None:
            span.set_attribute("error.type", error.kind)
            span.set_status(self._otel.Status(self._otel.StatusCode.ERROR, error.message))
        span.end()
        self._tracing._remember_run(job.id, span.get_span_context())


def _add_provider(attributes: dict[str, Any], provider: str) -> None:
    name = _PROVIDER_NAMES.get(provider, provider)
    attributes["gen_ai.provider.name"] = name
    attributes["gen_ai.system"] = name


def _usage(usage: Usage) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.reasoning.output_tokens": usage.reasoning_tokens,
    }
    if usage.cache_write_tokens:
        # Counted inside input_tokens, as the conventions want it.
        attributes["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write_tokens
    return attributes


class _TimedStream(AsyncIterator[_T]):
    """A stream that sets its span's time to first chunk when its first item arrives."""

    __slots__ = ("_span", "_start", "_stream")

    def __init__(self, span: Span, stream: AsyncIterator[_T]) -> None:
        self._span = span
        self._stream = stream
        self._start: float | None = time.perf_counter()

    def __aiter__(self) -> _TimedStream[_T]:
        return self

    async def __anext__(self) -> _T:
        item = await self._stream.__anext__()
        start = self._start
        if start is not None:
            self._start = None
            self._span.set_attribute(
                "expert_jobs.generation.time_to_first_chunk_s", time.perf_counter() - start
            )
        return item

    async def aclose(self) -> None:
        """Close the underlying stream (an async generator's ``aclose``), if it can be."""
        aclose = getattr(self._stream, "aclose", None)
        if aclose is not None:
            await aclose()
