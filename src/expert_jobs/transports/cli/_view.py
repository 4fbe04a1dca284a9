"""The live view of ``expert-jobs run``: a log of steps, tool calls, delegations, pauses and retries,
with a status line (step, status, running tool, tool calls, tokens, time) on stderr.

The view follows the runtime's events (:class:`~expert_jobs.engine.events.EventBus`) in order: a
subscriber queues them and one task renders them. ``toolCall``/``step``/``transition`` events update
the status line; each ``checkpoint`` event is looked up in the store and its new messages (the
model's text, tool calls with their arguments, tool results, delegations, pending interactive calls)
are printed. On a terminal the status line is a rich ``Live`` display; elsewhere only the log is
written (no cursor tricks in files and pipes).

On a terminal the view also asks for the job's deltas (``subscribe(..., deltas=True)``), so the
job's generations stream: above the status line, each generating run shows the tail of its
thinking (dimmed), its answer and the tool calls it is writing, as they arrive. The text is
dropped from the live area once the step's checkpoint prints it in the log (a retry drops it too:
those deltas were void).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.deltas import (
    StreamDelta,
    TextDelta,
    ThinkingDelta,
    ToolCallArgumentsDelta,
    ToolCallStartDelta,
)
from expert_jobs.domain.events import JobEvent
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import AssistantMessage, ToolCall, ToolResult, ToolResultsMessage
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.runtime import Runtime

__all__ = ["LiveView", "describe_call", "short"]

S = JobStatus
_TEXT_LIMIT = 160
_RESULT_LIMIT = 100
_FLUSH_TIMEOUT = 10.0
# The live area keeps the tail of what a run is writing: this many characters, shown as at most
# _STREAM_LINES lines of thinking and of answer each.
_STREAM_CHARS = 4_000
_STREAM_LINES = 6
_STOPPED_STYLE = {
    S.COMPLETED: "bold green",
    S.FAILED: "bold red",
    S.EXCEEDED_MAX_STEPS: "bold yellow",
    S.CANCELED: "bold yellow",
    S.EXPIRED: "bold yellow",
}


def short(text: str, limit: int = _TEXT_LIMIT) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Writing:
    """What one run's generation in flight has streamed so far (the tails, bounded)."""

    __slots__ = ("answer", "calls", "expert", "step", "thinking")

    def __init__(self, expert: str, step: int) -> None:
        self.expert = expert
        self.step = step
        self.thinking = ""
        self.answer = ""
        self.calls: dict[int, list[str]] = {}  # index -> [name, arguments so far]

    def add(self, delta: StreamDelta) -> None:
        if isinstance(delta, TextDelta):
            self.answer = (self.answer + delta.text)[-_STREAM_CHARS:]
        elif isinstance(delta, ThinkingDelta):
            self.thinking = (self.thinking + delta.text)[-_STREAM_CHARS:]
        elif isinstance(delta, ToolCallStartDelta):
            self.calls[delta.index] = [delta.name, ""]
        elif isinstance(delta, ToolCallArgumentsDelta) and delta.index in self.calls:
            call = self.calls[delta.index]
            call[1] = (call[1] + delta.fragment)[-_STREAM_CHARS:]

    def render(self) -> RenderableType:
        lines: list[RenderableType] = [
            Text.assemble(("step " + str(self.step), "bold cyan"), " ", (self.expert, "cyan"), " ✎")
        ]
        if self.thinking.strip():
            lines.append(Text(_tail(self.thinking), style="dim italic"))
        if self.answer.strip():
            lines.append(Text(_tail(self.answer)))
        for name, arguments in tuple(self.calls.values()):
            lines.append(Text(f"  → {name}({short(arguments, _TEXT_LIMIT)}", style="dim"))
        return Group(*lines)


def _tail(text: str) -> str:
    """The last :data:`_STREAM_LINES` lines of ``text``."""
    return "\n".join(text.strip().splitlines()[-_STREAM_LINES:])


def describe_call(name: str, arguments: Mapping[str, Any]) -> str:
    """``name(key=value, ...)`` with JSON values, cut to a readable length."""
    inner = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return f"{name}({short(inner, _TEXT_LIMIT)})"


class LiveView:
    """Follows one job's events on ``console`` (stderr) while the job runs in this process.

    Use as ``async with LiveView(runtime, console, job) as view: ...``; :meth:`pause_display`
    hides the status line while a prompt reads an answer; :meth:`flush` waits until every event
    published so far is rendered.
    """

    def __init__(self, runtime: Runtime, console: Console, job: Job, *, store_label: str = "") -> None:
        self.runtime = runtime
        self.store_label = store_label or type(runtime.store).__name__
        self.console = console
        self.job_id = job.id
        self.expert_key = job.expert_key
        self.model = job.model
        self.max_steps = job.max_steps
        self.status = job.status
        self.step = job.current_step
        self.tool_calls = 0
        self.input_tokens = job.usage.input_tokens
        self.output_tokens = job.usage.output_tokens
        self.running: dict[str, str] = {}  # run id -> what it is doing now
        self.experts: dict[str, str] = {}  # run id -> expert key
        self._started = time.monotonic()
        self._queue: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._printed_results: set[tuple[str, str]] = set()
        self._delegate_calls: dict[tuple[str, str], str] = {}
        self._interactive_calls: set[tuple[str, str]] = set()
        self._flushes: list[asyncio.Future[None]] = []
        self.writing: dict[str, _Writing] = {}  # run id -> what its generation streamed so far
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._live: Live | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> LiveView:
        # Deltas only where they can be shown (the live area): elsewhere the job need not stream.
        self._unsubscribe = self.runtime.events.subscribe(self._on_event, deltas=self.console.is_terminal)
        self._task = asyncio.create_task(self._consume(), name="expert-jobs-cli-view")
        self._start_live()
        self.log(
            f"[bold]▶ job {self.job_id}[/] · {escape(self.expert_key)} · {escape(self.model)} · "
            f"store {escape(self.store_label)}"
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            # Render what is left (bounded: leaving on an error must not wait on a stuck store).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.flush(), _FLUSH_TIMEOUT)
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            if self._task is not None and not self._task.done():
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._stop_live()

    def _start_live(self) -> None:
        if self.console.is_terminal and self._live is None:
            self._live = Live(
                console=self.console,
                get_renderable=self._status_line,
                transient=True,
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    @contextlib.contextmanager
    def pause_display(self) -> Iterator[None]:
        """Hide the status line (for a prompt) and show it again afterwards."""
        self._stop_live()
        try:
            yield
        finally:
            self._start_live()

    async def flush(self) -> None:
        """Wait until every event published so far has been rendered."""
        if self._task is None or self._task.done():
            return
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(None)
        self._flushes.append(done)
        await done

    # ------------------------------------------------------------------ output

    def log(self, markup: str) -> None:
        """Print one line of the log (rich markup) above the status line."""
        self.console.print(markup, highlight=False, soft_wrap=True)

    def _status_line(self) -> RenderableType:
        elapsed = time.monotonic() - self._started
        parts = [
            f"step {self.step}/{self.max_steps}",
            self.status.value,
            *self.running.values(),
            f"{self.tool_calls} tool call{'' if self.tool_calls == 1 else 's'}",
            f"{self.input_tokens:,} in / {self.output_tokens:,} out tokens",
            f"{elapsed:.1f}s",
        ]
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, overflow="ellipsis")
        grid.add_row(Spinner("dots", style="cyan"), Text(" · ".join(parts), style="bold"))
        # Called from the live display's refresh thread too: take the runs at once (one C call).
        writing = tuple(self.writing.values())
        if not writing:
            return grid
        return Group(*(each.render() for each in writing), grid)

    # ------------------------------------------------------------------ events

    def _on_event(self, event: JobEvent) -> None:
        if event.job_id == self.job_id:
            self._queue.put_nowait(event)

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            if event is None:
                flushes, self._flushes = self._flushes, []
                for done in flushes:
                    if not done.done():
                        done.set_result(None)
                continue
            if event.kind == "delta":
                # Many per second: shown at the live display's next tick, not one refresh each.
                self._add_delta(event)
                continue
            try:
                await self._render(event)
            except Exception as exc:  # the view must never break the job
                self.log(f"[dim](view: {escape(type(exc).__name__)}: {escape(str(exc))})[/]")
            if self._live is not None:
                self._live.refresh()  # the status line now, not at the next tick

    def _add_delta(self, event: JobEvent) -> None:
        delta = event.delta
        if delta is None:
            return
        run = event.run_id or ""
        writing = self.writing.get(run)
        if writing is None or writing.step != event.step:
            writing = self.writing[run] = _Writing(self._expert_of(run), event.step)
        writing.add(delta)

    async def _render(self, event: JobEvent) -> None:
        self.status = event.status
        kind = event.kind
        run = event.run_id or ""
        if kind == "toolCall":
            detail = event.detail or {}
            self.tool_calls += 1
            self.running[run] = f"{self._expert_of(run)}: running {detail.get('name')}"
        elif kind == "toolResult":
            self.running.pop(run, None)
        elif kind == "step":
            self.step = max(self.step, event.step)
            usage = (event.detail or {}).get("usage") or {}
            self.input_tokens += int(usage.get("inputTokens", 0))
            self.output_tokens += int(usage.get("outputTokens", 0))
        elif kind == "retry":
            self.writing.pop(run, None)  # the failed attempt's deltas are void
            detail = event.detail or {}
            error = detail.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else error
            self.log(
                f"  [yellow]↻ retry {detail.get('attempt')}[/] ({escape(self._expert_of(run))}): "
                f"{escape(short(str(message)))}"
            )
        elif kind == "checkpoint":
            checkpoint_id = (event.detail or {}).get("checkpointId")
            if checkpoint_id:
                checkpoint = await self.runtime.store.get_checkpoint(self.job_id, str(checkpoint_id))
                if checkpoint is not None:
                    self._render_checkpoint(checkpoint)
        elif kind == "transition":
            self._render_transition(event)

    def _expert_of(self, run_id: str) -> str:
        return self.experts.get(run_id, self.expert_key)

    def _render_transition(self, event: JobEvent) -> None:
        status = event.status
        if status is S.REQUEST_DELEGATE_RESULT:
            self.log("  [magenta]⏸ requestDelegateResult[/]: waiting for the delegates")
        elif status is S.REQUEST_INTERACTIVE_TOOL_RESULT:
            self.log("  [magenta]⏸ requestInteractiveToolResult[/]: waiting for an answer")
        elif status is S.CANCELING:
            self.log("  [yellow]■ canceling[/]")
        elif status in _STOPPED_STYLE:
            self.log(f"[{_STOPPED_STYLE[status]}]■ {status.value}[/]")

    def _render_checkpoint(self, checkpoint: Checkpoint) -> None:
        run = checkpoint.run_id
        self.experts.setdefault(run, checkpoint.expert_key)
        if any(isinstance(message, AssistantMessage) for message in checkpoint.new_messages):
            self.writing.pop(run, None)  # printed in the log below, as a whole
        child = checkpoint.parent_run_id is not None
        indent = "  │ " if child else ""
        self.step = max(self.step, checkpoint.step)
        self.input_tokens = checkpoint.usage.input_tokens
        self.output_tokens = checkpoint.usage.output_tokens
        for delegation in checkpoint.delegations:
            known = self.runtime.experts.get(delegation.expert_key)
            key = known.key if known is not None else delegation.expert_key
            self.experts[delegation.run_id] = key
            self._delegate_calls[(run, delegation.call_id)] = key
        pending = {call.id for call in checkpoint.pending_calls}
        for message in checkpoint.new_messages:
            if isinstance(message, AssistantMessage):
                tokens = checkpoint.step_usage.total_tokens
                header = f"[bold cyan]step {checkpoint.step}[/] [cyan]{escape(checkpoint.expert_key)}[/]"
                if tokens:
                    header += f" [dim]({tokens:,} tokens)[/]"
                text = message.text.strip()
                final = checkpoint.run_state == "completed" and not child and not message.tool_calls
                if text and not final:
                    header += f": {escape(short(text))}"
                self.log(indent + header)
                for call in message.tool_calls:
                    self._render_call(indent, run, call, pending)
                if final and text:
                    self.log("  [bold]final answer:[/]")
                    for line in text.splitlines():
                        self.log(f"    {escape(line)}")
            elif isinstance(message, ToolResultsMessage):
                for result in message.results:
                    self._render_result(indent, run, result)
        for result in checkpoint.partial_results:
            self._render_result(indent, run, result)
        if checkpoint.error and checkpoint.run_state == "failed":
            why = checkpoint.error.message
            self.log(
                f"{indent}[red]✘ {escape(self._expert_of(run))} failed: {escape(short(why))}[/]"
            )

    def waiting_for(self, run_id: str, call: ToolCall) -> None:
        """Note a pending interactive call (shown once, even when the job paused before this view)."""
        if (run_id, call.id) not in self._interactive_calls:
            self._interactive_calls.add((run_id, call.id))
            self.log(f"  [magenta]? interactive {escape(describe_call(call.name, call.arguments))}[/]")

    def _render_call(self, indent: str, run: str, call: ToolCall, pending: set[str]) -> None:
        delegate = self._delegate_calls.get((run, call.id))
        if delegate is not None:
            query = str(call.arguments.get("query", ""))
            self.log(f'{indent}  [magenta]⇢ delegate to {escape(delegate)}[/]: "{escape(short(query))}"')
        elif call.id in pending:
            self._interactive_calls.add((run, call.id))
            self.log(
                f"{indent}  [magenta]? interactive {escape(describe_call(call.name, call.arguments))}[/]"
            )
        else:
            self.log(f"{indent}  → {escape(describe_call(call.name, call.arguments))}")

    def _render_result(self, indent: str, run: str, result: ToolResult) -> None:
        key = (run, result.call_id)
        if key in self._printed_results:
            return
        self._printed_results.add(key)
        content = escape(short(result.content, _RESULT_LIMIT))
        delegate = self._delegate_calls.get(key)
        if delegate is not None:
            style = "red" if result.is_error else "magenta"
            self.log(f'{indent}  [{style}]⇠ {escape(delegate)} answered[/]: "{content}"')
        elif key in self._interactive_calls:
            self.log(f'{indent}  [magenta]⇠ answer to {escape(result.name)}[/]: "{content}"')
        elif result.is_error:
            self.log(f"{indent}  [red]✘ {escape(result.name)} error[/]: {content}")
        else:
            self.log(f"{indent}  [green]←[/] {escape(result.name)}: {content}")
