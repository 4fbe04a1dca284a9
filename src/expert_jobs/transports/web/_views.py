"""What the templates show, computed from jobs and checkpoints: labels, durations, costs and the
timeline of a job (its runs, delegates nested under the call that started them, each step's
messages, tool calls with their results, usage and errors)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.cost import Cost, format_cost
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import (
    AssistantMessage,
    FilePart,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import Usage

__all__ = [
    "STATUS_TONES",
    "Block",
    "CallView",
    "RunView",
    "StepView",
    "build_timeline",
    "final_answer",
    "format_duration",
    "format_time",
    "job_cost_label",
    "list_cost_label",
    "pretty_json",
]

STATUS_TONES: dict[JobStatus, str] = {
    JobStatus.QUEUED: "neutral",
    JobStatus.PROCESSING: "running",
    JobStatus.COMPLETED: "ok",
    JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT: "waiting",
    JobStatus.REQUEST_DELEGATE_RESULT: "running",
    JobStatus.EXCEEDED_MAX_STEPS: "warn",
    JobStatus.FAILED: "bad",
    JobStatus.CANCELING: "warn",
    JobStatus.CANCELED: "muted",
    JobStatus.EXPIRED: "muted",
}
"""The colour family of each status's badge (a CSS class ``tone-<tone>``)."""

_MAX_SHOWN = 20_000
"""Longest text (a tool result, arguments) shown in full; the rest is cut with a note."""


def format_duration(milliseconds: int) -> str:
    """``850 ms``, ``12.4 s``, ``3 min 05 s``, ``2 h 03 min``."""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_time(epoch: float) -> str:
    """``2026-12-04 15:45:47 UTC``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def list_cost_label(job: Job) -> str:
    """An estimate of the job's cost: its whole usage at its model's rates (what a job too long to
    read every checkpoint of is shown with), ``—`` when it cannot be priced."""
    try:
        from expert_jobs.engine.pricing import PricesUnavailable, price_usage
    except ImportError:  # pragma: no cover - the engine always imports
        return "—"
    if not (job.usage.input_tokens or job.usage.output_tokens):
        return "—"
    try:
        cost = price_usage(job.usage, job.model, at=job.updated_at)
    except PricesUnavailable:
        return "—"
    return "unknown" if cost is None else format_cost(cost)


def job_cost_label(job: Job, checkpoints: Sequence[Checkpoint], complete: bool) -> str:
    """The job's cost from its checkpoints (each step at its own model's rates), or from its usage
    when not every checkpoint is loaded."""
    from expert_jobs.engine.pricing import PricesUnavailable, job_cost

    if not complete:
        estimate = list_cost_label(job)
        return f"≈ {estimate}" if estimate.startswith("$") else estimate
    try:
        cost: Cost | None = job_cost(job, checkpoints)
    except PricesUnavailable:
        return "— (pip install 'expert-jobs[prices]')"
    return format_cost(cost)


def pretty_json(value: Any) -> str:
    """Indented JSON for arguments (cut past a bound, saying so)."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return _cut(text)


def _cut(text: str) -> str:
    if len(text) <= _MAX_SHOWN:
        return text
    return text[:_MAX_SHOWN] + f"\n… ({len(text) - _MAX_SHOWN:,} more characters not shown)"


@dataclass
class CallView:
    """A tool call with its result (when it has one) and the delegate run it started (if any)."""

    call: ToolCall
    arguments: str
    result: ToolResult | None = None
    result_text: str = ""
    kind: Literal["tool", "delegate", "interactive"] = "tool"
    run: RunView | None = None


@dataclass
class Block:
    """One thing shown in a step: ``user`` text, ``text`` (the assistant's), ``thinking``, ``call``
    (a :class:`CallView`), ``result`` (a result whose call is not shown) or ``file``."""

    kind: Literal["user", "text", "thinking", "call", "result", "file"]
    text: str = ""
    call: CallView | None = None


@dataclass
class StepView:
    """One checkpoint of a run, with what it added."""

    checkpoint: Checkpoint
    blocks: list[Block] = field(default_factory=list)
    pending: list[ToolCall] = field(default_factory=list)
    error: JobError | None = None
    resumed_with: list[ToolResult] = field(default_factory=list)
    """Results of calls of an earlier step this checkpoint added (a delegate's, a person's answer)."""

    @property
    def title(self) -> str:
        """``Step 3``, ``Resumed``, ``Paused``, ``Stopped``..."""
        kind = self.checkpoint.kind
        if kind == "resume":
            return "Resumed"
        if kind == "start":
            return "Started"
        if kind == "stop" and not self.checkpoint.step_usage.total_tokens:
            return "Stopped"
        return f"Step {self.checkpoint.step}"


@dataclass
class RunView:
    """A run of the job: the root run, or a delegate's (``query`` is what it was asked)."""

    run_id: str
    expert_key: str
    steps: list[StepView] = field(default_factory=list)
    query: str | None = None
    usage: Usage | None = None


def _result_text(result: ToolResult) -> str:
    return _cut(result.content)


def build_timeline(checkpoints: Sequence[Checkpoint]) -> list[RunView]:
    """The job's runs as trees: the root run, each step's blocks, and every delegate's run nested
    in the call block that started it (a delegate whose parent step is not among ``checkpoints``
    is shown after the root run)."""
    # Call ids are unique within a run only: everything is keyed by (run id, call id).
    interactive = {
        (c.run_id, call.id)
        for c in checkpoints
        if c.run_state == "waitingInteractive"
        for call in c.pending_calls
    }
    results: dict[tuple[str, str], ToolResult] = {}
    delegated: dict[tuple[str, str], str] = {}  # -> the child run's id
    calls: set[tuple[str, str]] = set()
    for checkpoint in checkpoints:
        for message in checkpoint.new_messages:
            if isinstance(message, ToolResultsMessage):
                for result in message.results:
                    results[checkpoint.run_id, result.call_id] = result
            elif isinstance(message, AssistantMessage):
                calls.update((checkpoint.run_id, call.id) for call in message.tool_calls)
        for delegation in checkpoint.delegations:
            delegated[checkpoint.run_id, delegation.call_id] = delegation.run_id
    runs: dict[str, RunView] = {}
    order: list[RunView] = []
    for checkpoint in checkpoints:
        run = runs.get(checkpoint.run_id)
        if run is None:
            run = runs[checkpoint.run_id] = RunView(checkpoint.run_id, checkpoint.expert_key)
            if checkpoint.parent_run_id is None or checkpoint.parent_call_id is None:
                order.append(run)
        elif not run.expert_key:
            run.expert_key = checkpoint.expert_key
        run.usage = checkpoint.run_usage
        run.steps.append(_step(checkpoint, results, delegated, runs, interactive, calls))
    # Children whose parent call was not loaded (a long job shown from its latest checkpoints).
    attached = {
        id(c.run) for r in runs.values() for s in r.steps for b in s.blocks if (c := b.call) and c.run
    }
    for checkpoint in checkpoints:
        run = runs[checkpoint.run_id]
        if run not in order and id(run) not in attached:
            order.append(run)
    return order


def _step(
    checkpoint: Checkpoint,
    results: dict[tuple[str, str], ToolResult],
    delegated: dict[tuple[str, str], str],
    runs: dict[str, RunView],
    interactive: set[tuple[str, str]],
    calls: set[tuple[str, str]],
) -> StepView:
    step = StepView(checkpoint, error=checkpoint.error)
    own_calls = {
        call.id
        for message in checkpoint.new_messages
        if isinstance(message, AssistantMessage)
        for call in message.tool_calls
    }
    for message in checkpoint.new_messages:
        if isinstance(message, UserMessage):
            for part in message.parts:
                if isinstance(part, TextPart):
                    step.blocks.append(Block("user", part.text))
                elif isinstance(part, FilePart):
                    step.blocks.append(Block("file", f"{part.name} ({part.media_type})"))
        elif isinstance(message, AssistantMessage):
            for assistant_part in message.parts:
                if isinstance(assistant_part, TextPart):
                    if assistant_part.text.strip():
                        step.blocks.append(Block("text", assistant_part.text))
                elif isinstance(assistant_part, ThinkingPart):
                    if assistant_part.text.strip():
                        step.blocks.append(Block("thinking", assistant_part.text))
                else:
                    key = (checkpoint.run_id, assistant_part.id)
                    step.blocks.append(
                        Block(
                            "call",
                            call=_call_view(assistant_part, key, results, delegated, runs, interactive),
                        )
                    )
        elif isinstance(message, ToolResultsMessage):
            for result in message.results:
                if result.call_id in own_calls:
                    continue  # shown under its call, just above
                if (checkpoint.run_id, result.call_id) in calls:
                    # Shown under its call; a resumed run only says what it resumed with.
                    step.resumed_with.append(result)
                else:  # the call's own step is not among those shown
                    text = _result_text(result)
                    view = CallView(ToolCall(result.call_id, result.name, {}), "", result, text)
                    step.blocks.append(Block("result", text, view))
    step.pending = [c for c in checkpoint.pending_calls if (checkpoint.run_id, c.id) not in results]
    return step


def _call_view(
    call: ToolCall,
    key: tuple[str, str],
    results: dict[tuple[str, str], ToolResult],
    delegated: dict[tuple[str, str], str],
    runs: dict[str, RunView],
    interactive: set[tuple[str, str]],
) -> CallView:
    result = results.get(key)
    view = CallView(call, pretty_json(dict(call.arguments)), result, _result_text(result) if result else "")
    child = delegated.get(key)
    if child is not None:
        view.kind = "delegate"
        # The child run's checkpoints come after this one; they are filled in as the loop goes on.
        run = runs.get(child)
        if run is None:
            run = runs[child] = RunView(child, "")
        run.query = str(call.arguments.get("query", ""))
        view.run = run
    elif key in interactive:
        view.kind = "interactive"
    return view


def final_answer(job: Job, checkpoints: Sequence[Checkpoint]) -> str | None:
    """The text of the job's answer: the last assistant text of its root run once it completed."""
    if job.status is not JobStatus.COMPLETED:
        return None
    for checkpoint in reversed(checkpoints):
        if checkpoint.parent_run_id is not None:
            continue
        for message in reversed(checkpoint.new_messages):
            if isinstance(message, AssistantMessage) and message.text.strip():
                return message.text
    return None
