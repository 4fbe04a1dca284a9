"""Readable renderings of a job's checkpoints: the compact table of ``expert-jobs jobs checkpoints``
and the conversation of ``expert-jobs jobs show --transcript``.

Both read the checkpoints in ``seq`` order and turn their new messages into :class:`Entry` values
(the user's query, the model's text and thinking, tool calls with their arguments, results,
delegations, interactive questions and answers, errors, the job's validated output), each at the
depth of its run: a delegate's run is one level under the run that delegated to it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from expert_jobs.domain.checkpoint import Checkpoint
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

__all__ = [
    "Entry",
    "EntryKind",
    "checkpoint_table",
    "entries_of",
    "print_transcript",
]

EntryKind = Literal[
    "user",
    "step",
    "thinking",
    "text",
    "final",
    "call",
    "delegate",
    "interactive",
    "result",
    "tool_error",
    "delegate_answer",
    "answer",
    "error",
    "output",
]
"""What an :class:`Entry` shows."""

_THINKING_LIMIT = 240
"""Thinking is shown dimmed and cut to this many characters (it is in ``--json`` in full)."""
_RESULT_LIMIT = 600
"""A tool result longer than this is cut in the transcript (``--json`` has it in full)."""
_ARGUMENTS_LIMIT = 600
"""Tool call arguments longer than this are cut in the transcript."""
_CELL_LIMIT = 400
"""No line of the checkpoint table is built longer than this (the cell cuts it to its width)."""

_KIND_WORDS: Mapping[str, str] = {
    "start": "start",
    "step": "end of step",
    "pause": "pause",
    "resume": "resume",
    "stop": "stop",
}
_SEQ_WIDTH = 4
_ABOUT_WIDTH = 28  # the longest status, requestInteractiveToolResult
_MIN_MESSAGES_WIDTH = 20
_TABLE_OVERHEAD = 6  # the padding between the columns and at the right edge
_SYMBOLS: Mapping[EntryKind, str] = {
    "user": "user:",
    "step": "",
    "thinking": "thinking:",
    "text": "",
    "final": "",
    "call": "→",
    "delegate": "⇢",
    "interactive": "?",
    "result": "←",
    "tool_error": "✘",
    "delegate_answer": "⇠",
    "answer": "⇠",
    "error": "✘",
    "output": "output:",
}
_STYLES: Mapping[EntryKind, str] = {
    "user": "bold",
    "step": "bold cyan",
    "thinking": "dim italic",
    "text": "",
    "final": "bold",
    "call": "",
    "delegate": "magenta",
    "interactive": "magenta",
    "result": "green",
    "tool_error": "red",
    "delegate_answer": "magenta",
    "answer": "magenta",
    "error": "bold red",
    "output": "bold green",
}


@dataclass(frozen=True)
class Entry:
    """One thing that happened in a job, as the checkpoints record it.

    ``depth`` is 0 for the job's own run, 1 for a delegate it called, and so on; ``seq`` is the
    checkpoint that recorded it; ``text`` is the full text (renderers cut it as they need).
    """

    kind: EntryKind
    text: str
    depth: int
    seq: int


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str, limit: int = _CELL_LIMIT) -> str:
    return _cut(" ".join(text.split()), limit)


def call_text(name: str, arguments: Mapping[str, Any], limit: int = _ARGUMENTS_LIMIT) -> str:
    """``name(key=value, ...)`` with JSON values; the arguments cut to ``limit`` characters."""
    inner = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return f"{name}({_cut(inner, limit)})"


def _user_text(message: UserMessage) -> str:
    pieces: list[str] = []
    for part in message.parts:
        if type(part) is TextPart:
            pieces.append(part.text)
        elif type(part) is FilePart:
            pieces.append(f"[file {part.name} ({part.media_type}, {len(part.data):,} bytes)]")
    return "\n".join(pieces)


def _thinking_text(part: ThinkingPart) -> str:
    if part.text.strip():
        return _one_line(part.text, _THINKING_LIMIT)
    return "(redacted)" if part.redacted_data else "(not shown by the provider)"


class _Reader:
    """Turns checkpoints, in ``seq`` order, into entries; remembers runs, delegations and pending
    interactive calls across checkpoints."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.depths: dict[str, int] = {}
        self.delegates: dict[tuple[str, str], str] = {}  # (run id, call id) -> expert key
        self.interactive: set[tuple[str, str]] = set()
        self.interactive_names = frozenset(str(n) for n in job.expert.get("interactiveTools") or ())
        self.seen_results: set[tuple[str, str]] = set()

    def depth_of(self, checkpoint: Checkpoint) -> int:
        depth = self.depths.get(checkpoint.run_id)
        if depth is None:
            parent = checkpoint.parent_run_id
            depth = 0 if parent is None else self.depths.get(parent, 0) + 1
            self.depths[checkpoint.run_id] = depth
        return depth

    def read(self, checkpoint: Checkpoint) -> list[Entry]:
        run, seq = checkpoint.run_id, checkpoint.seq
        depth = self.depth_of(checkpoint)
        child = checkpoint.parent_run_id is not None
        for delegation in checkpoint.delegations:
            self.delegates[(run, delegation.call_id)] = delegation.expert_key
            self.depths.setdefault(delegation.run_id, depth + 1)
        pending = {call.id for call in checkpoint.pending_calls}
        out: list[Entry] = []
        for message in checkpoint.new_messages:
            if type(message) is UserMessage:
                out.append(Entry("user", _user_text(message), depth, seq))
            elif type(message) is AssistantMessage:
                tokens = checkpoint.step_usage.total_tokens
                header = f"step {checkpoint.step} · {checkpoint.expert_key}"
                if tokens:
                    header += f" · {tokens:,} tokens"
                out.append(Entry("step", header, depth, seq))
                final = not message.tool_calls and checkpoint.run_state == "completed" and not child
                for part in message.parts:
                    if type(part) is ThinkingPart:
                        out.append(Entry("thinking", _thinking_text(part), depth, seq))
                    elif type(part) is TextPart and part.text.strip():
                        out.append(Entry("final" if final else "text", part.text.strip(), depth, seq))
                    elif type(part) is ToolCall:
                        out.append(self._call(run, part, pending, depth, seq))
            elif type(message) is ToolResultsMessage:
                out.extend(self._result(run, r, depth, seq) for r in message.results)
        for result in checkpoint.partial_results:
            if (run, result.call_id) not in self.seen_results:
                out.append(self._result(run, result, depth, seq))
        if checkpoint.error and checkpoint.run_state == "failed":
            failure = f"{checkpoint.expert_key} failed: {checkpoint.error.message}"
            out.append(Entry("error", failure, depth, seq))
        if checkpoint.output is not None and not child:
            # The job's validated output (a delegate's is its answer to the parent, shown there).
            out.append(Entry("output", json.dumps(checkpoint.output, ensure_ascii=False), depth, seq))
        return out

    def _call(self, run: str, call: ToolCall, pending: set[str], depth: int, seq: int) -> Entry:
        delegate = self.delegates.get((run, call.id))
        if delegate is not None:
            query = str(call.arguments.get("query", ""))
            return Entry("delegate", f"delegate to {delegate}: {query}", depth, seq)
        if call.id in pending or (depth == 0 and call.name in self.interactive_names):
            self.interactive.add((run, call.id))
            return Entry("interactive", f"{call_text(call.name, call.arguments)} (asks a person)", depth, seq)
        return Entry("call", call_text(call.name, call.arguments), depth, seq)

    def _result(self, run: str, result: ToolResult, depth: int, seq: int) -> Entry:
        key = (run, result.call_id)
        self.seen_results.add(key)
        content = _cut(result.content, _RESULT_LIMIT)
        delegate = self.delegates.get(key)
        if delegate is not None:
            kind: EntryKind = "tool_error" if result.is_error else "delegate_answer"
            return Entry(kind, f"{delegate} answered: {content}", depth, seq)
        if key in self.interactive:
            return Entry("answer", f"answer to {result.name}: {content}", depth, seq)
        if result.is_error:
            return Entry("tool_error", f"{result.name} error: {content}", depth, seq)
        return Entry("result", f"{result.name}: {content}", depth, seq)


def entries_of(job: Job, checkpoints: Iterable[Checkpoint]) -> list[Entry]:
    """Everything the checkpoints (in ``seq`` order, all of them for a whole transcript) record."""
    reader = _Reader(job)
    found: list[Entry] = []
    for checkpoint in checkpoints:
        found.extend(reader.read(checkpoint))
    return found


# ---------------------------------------------------------------------- the checkpoint table


def _label(entry: Entry) -> Text:
    symbol = _SYMBOLS[entry.kind]
    text = Text(no_wrap=True, overflow="ellipsis")
    if symbol:
        text.append(symbol + " ", style=_STYLES[entry.kind] or None)
    body = _one_line(entry.text)
    text.append(body, style=_STYLES[entry.kind] if entry.kind in ("thinking", "error") else None)
    return text


def checkpoint_table(
    job: Job,
    checkpoints: Sequence[Checkpoint],
    total: int,
    *,
    width: int = 100,
    earlier: Sequence[Checkpoint] = (),
) -> Table:
    """The checkpoints as a three-column table ``width`` columns wide at most: ``#`` (seq), the
    checkpoint (step and kind, status, expert — ``↳`` for a delegate's — and tokens) and its new
    messages, one line each, cut to the column. ``earlier`` are the checkpoints before this page
    (to know delegations and interactive calls made before it)."""
    messages_width = max(_MIN_MESSAGES_WIDTH, width - _SEQ_WIDTH - _ABOUT_WIDTH - _TABLE_OVERHEAD)
    reader = _Reader(job)
    for checkpoint in earlier:
        reader.read(checkpoint)
    table = Table(
        title=f"checkpoints of job {job.id} ({len(checkpoints)} of {total})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_lines=False,
        pad_edge=False,
        expand=False,
    )
    table.add_column("#", justify="right", no_wrap=True, width=_SEQ_WIDTH)
    table.add_column("checkpoint", no_wrap=True, overflow="ellipsis", width=_ABOUT_WIDTH)
    table.add_column("new messages", no_wrap=True, overflow="ellipsis", width=messages_width)
    for index, checkpoint in enumerate(checkpoints):
        lines = [_label(e) for e in reader.read(checkpoint) if e.kind != "step"]
        arrow = "↳ " * reader.depth_of(checkpoint)
        tokens = checkpoint.step_usage.total_tokens
        about = Text(no_wrap=True, overflow="ellipsis")
        about.append(f"step {checkpoint.step} · {_KIND_WORDS[checkpoint.kind]}\n", style="bold")
        about.append(f"{checkpoint.status.value}\n")
        about.append(f"{arrow}{checkpoint.expert_key}\n", style="cyan")
        about.append(f"{tokens:,} tokens", style="dim")
        messages: RenderableType = Group(*lines) if lines else Text("(no new messages)", style="dim")
        table.add_row(str(checkpoint.seq), about, messages, end_section=index < len(checkpoints) - 1)
    return table


# ---------------------------------------------------------------------- the transcript


def _emit(console: Console, prefix: str, first: str, text: str, style: str, width: int) -> None:
    """Print ``text`` wrapped to ``width``: the first line after ``prefix + first``, the others
    under it (``prefix`` carries the delegate bars)."""
    lead = prefix + first
    room = max(20, width - len(lead))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, room, break_long_words=True, replace_whitespace=False) or [""])
    for index, line in enumerate(lines):
        row = Text(no_wrap=True, end="\n")
        row.append(prefix, style="dim")
        row.append(first if index == 0 else " " * len(first), style=style or None)
        row.append(line, style=style if style in ("dim italic", "red", "bold red", "bold") else None)
        console.print(row, soft_wrap=True, highlight=False)


def print_transcript(console: Console, job: Job, checkpoints: Iterable[Checkpoint]) -> None:
    """Print the job's conversation on ``console``: the query, each step's thinking (dimmed and
    short), text and tool calls with their arguments and results, delegates' runs indented under
    the call that started them (``│``), interactive questions and their answers, errors, and how
    the job ended."""
    width = console.width
    usage = job.usage
    head = Text()
    head.append(f"job {job.id}", style="bold")
    head.append(f" · {job.expert_key} · {job.model}")
    steps = "1 step" if job.total_steps == 1 else f"{job.total_steps} steps"
    console.print(head, highlight=False)
    console.print(f"{job.status.value} · {steps} · {usage.total_tokens:,} tokens", highlight=False)
    for entry in entries_of(job, checkpoints):
        bars = "│ " * entry.depth
        style = _STYLES[entry.kind]
        if entry.kind == "step":
            console.print(Text(bars, style="dim") + Text(entry.text, style=style), soft_wrap=True)
        elif entry.kind == "user":
            _emit(console, bars, "user: ", entry.text, style, width)
        elif entry.kind == "final":
            _emit(console, bars + "  ", "final answer: ", entry.text, "bold", width)
        elif entry.kind == "text":
            _emit(console, bars + "  ", "", entry.text, "", width)
        else:
            _emit(console, bars + "  ", _SYMBOLS[entry.kind] + " ", entry.text, style, width)
    end = f"■ {job.status.value}"
    if job.error and job.status is not JobStatus.COMPLETED:
        end += f": {job.error.message}"
    done = job.status is JobStatus.COMPLETED
    console.print(Text(end, style="bold green" if done else "bold yellow"), soft_wrap=True)
