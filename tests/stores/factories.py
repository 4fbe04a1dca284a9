"""Builders of jobs and checkpoints for the store tests (every field filled with a sensible value)."""

from __future__ import annotations

from typing import Any

from expert_jobs.domain.checkpoint import Checkpoint, Delegation
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.ids import new_id
from expert_jobs.domain.job import Job
from expert_jobs.domain.messages import (
    AssistantMessage,
    FilePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.domain.usage import ZERO_USAGE, Usage

T0 = 1_767_225_600.0
"""2026-01-01T00:00:00Z: every test time is an offset from it."""


def make_job(**overrides: Any) -> Job:
    """A queued job of application ``app1`` created at ``T0``; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "organization_id": "org1",
        "application_id": "app1",
        "expert_key": "@acme/writer@1.0.0",
        "expert": {"key": "@acme/writer@1.0.0", "instruction": "Write well.", "tools": []},
        "model": "claude-sonnet-4-5",
        "temperature": 0.0,
        "max_steps": 100,
        "max_retries": 5,
        "created_at": T0,
        "query": "Say hello.",
    }
    fields.update(overrides)
    return Job(**fields)


def make_rich_job() -> Job:
    """A job with every optional field set to a non-default value (for round trips)."""
    return make_job(
        expert_key="@acme/Reviewer@2.1.0",
        expert={"key": "@acme/Reviewer@2.1.0", "nested": {"list": [1, 2.5, None, True, "é"]}},
        files=("notes.md", "img/photo.png"),
        temperature=0.7,
        max_steps=7,
        max_retries=2,
        status=JobStatus.FAILED,
        created_at=T0 + 0.123,
        updated_at=T0 + 9.987654,
        current_step=3,
        total_steps=4,
        total_duration_ms=12345,
        usage=Usage.of(1000, 200, reasoning=50, cached=300, cache_write=120),
        interactive_tool_call_result=False,
        error=JobError(
            "bad_request",
            "nope",
            attempt=1,
            status_code=400,
            provider="openai",
            step=4,
            details={"extra": [1]},
        ),
        waiting_since=T0 + 5.5,
        last_checkpoint_id=new_id(),
        checkpoint_seq=9,
    )


def user(text: str) -> UserMessage:
    """A user message of one text part."""
    return UserMessage.text(text)


def assistant(text: str) -> AssistantMessage:
    """An assistant message of one text part."""
    return AssistantMessage((TextPart(text),), provider="scripted", model="test")


def make_checkpoint(
    job: Job,
    seq: int,
    *,
    run_id: str = "run1",
    new_messages: tuple[Message, ...] = (),
    message_count: int = 0,
    step: int | None = None,
    **overrides: Any,
) -> Checkpoint:
    """A step checkpoint of ``job`` numbered ``seq`` (``step`` defaults to ``seq``)."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "job_id": job.id,
        "run_id": run_id,
        "seq": seq,
        "step": seq if step is None else step,
        "kind": "step",
        "status": JobStatus.PROCESSING,
        "run_state": "running",
        "expert_key": job.expert_key,
        "created_at": T0 + seq,
        "new_messages": new_messages,
        "message_count": message_count,
        "usage": ZERO_USAGE,
        "run_usage": ZERO_USAGE,
        "step_usage": ZERO_USAGE,
        "total_steps": seq,
        "total_duration_ms": 10 * seq,
    }
    fields.update(overrides)
    return Checkpoint(**fields)


def make_rich_checkpoint(job: Job, seq: int) -> Checkpoint:
    """A checkpoint using every message part and every optional field (for round trips)."""
    call = ToolCall("call_1", "search", {"q": "x", "n": [1, 2]}, signature="sig-a")
    messages: tuple[Message, ...] = (
        UserMessage((TextPart("look at this"), FilePart("a.png", "image/png", b"\x89PNG\x00\xff"))),
        AssistantMessage(
            (
                ThinkingPart("hmm", signature="s1", redacted_data="r", provider="anthropic",
                             provider_data={"id": "rs_1", "encrypted": "e"}),
                TextPart("calling", signature="ts"),
                call,
            ),
            provider="anthropic",
            model="claude-sonnet-4-5",
        ),
        ToolResultsMessage((ToolResult("call_1", "search", "found", is_error=False),)),
    )
    return make_checkpoint(
        job,
        seq,
        run_id="run-rich",
        new_messages=messages,
        message_count=len(messages),
        kind="pause",
        status=JobStatus.REQUEST_DELEGATE_RESULT,
        run_state="waitingDelegates",
        created_at=T0 + 0.25,
        usage=Usage.of(10, 5, cache_write=2),
        run_usage=Usage.of(8, 4, reasoning=1),
        step_usage=Usage.of(3, 2, cached=1, cache_write=1),
        retry_count=2,
        parent_run_id="run-parent",
        parent_call_id="call_0",
        pending_calls=(ToolCall("call_2", "ask", {"question": "?"}),),
        partial_results=(ToolResult("call_3", "calc", "4", is_error=True),),
        delegations=(Delegation("call_2", "run-child", "@acme/helper@1", "help"),),
        error=JobError("timeout", "slow", True, attempt=3, job_id=job.id, step=2),
    )
