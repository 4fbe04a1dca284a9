"""Checkpoints and messages survive a trip through plain JSON data unchanged."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from expert_jobs import (
    AssistantMessage,
    Checkpoint,
    Delegation,
    FilePart,
    JobStatus,
    TextPart,
    ThinkingPart,
    ToolCall,
    ToolResult,
    ToolResultsMessage,
    UserMessage,
)
from expert_jobs.domain.checkpoint import CheckpointKind, RunState
from expert_jobs.domain.messages import Message, message_from_data, message_to_data, text_of
from expert_jobs.testing import expert_keys, ids, statuses, usages

JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
JSON = st.recursive(
    JSON_SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
ARGUMENTS = st.dictionaries(st.text(max_size=8), JSON, max_size=3)
OPTIONAL_TEXT = st.none() | st.text(max_size=12)

tool_calls = st.builds(ToolCall, st.text(max_size=8), st.text(max_size=8), ARGUMENTS, OPTIONAL_TEXT)
tool_results = st.builds(
    ToolResult, st.text(max_size=8), st.text(max_size=8), st.text(max_size=20), st.booleans()
)
text_parts = st.builds(TextPart, st.text(max_size=20), OPTIONAL_TEXT)
file_parts = st.builds(
    FilePart, st.text(max_size=8), st.sampled_from(["image/png", "application/pdf"]), st.binary(max_size=32)
)
thinking_parts = st.builds(
    ThinkingPart,
    st.text(max_size=20),
    OPTIONAL_TEXT,
    OPTIONAL_TEXT,
    OPTIONAL_TEXT,
    st.none() | ARGUMENTS,
)
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(UserMessage, st.lists(text_parts | file_parts, max_size=3).map(tuple)),
    st.builds(
        AssistantMessage,
        st.lists(text_parts | thinking_parts | tool_calls, max_size=4).map(tuple),
        OPTIONAL_TEXT,
        OPTIONAL_TEXT,
    ),
    st.builds(ToolResultsMessage, st.lists(tool_results, max_size=3).map(tuple)),
)


def through_json(data: Any) -> Any:
    return json.loads(json.dumps(data))


@given(messages)
def test_messages_round_trip_through_json_data(message: Message) -> None:
    data = message_to_data(message)
    again = message_from_data(through_json(data))
    assert again == message
    assert type(again) is type(message)
    assert text_of(again) == text_of(message)
    if isinstance(message, AssistantMessage):
        assert isinstance(again, AssistantMessage)
        assert again.tool_calls == message.tool_calls


def test_assistant_messages_list_their_tool_calls_and_text() -> None:
    call = ToolCall("c1", "search", {"q": "x"})
    message = AssistantMessage((TextPart("a"), ThinkingPart("hmm"), call, TextPart("b")))
    assert message.tool_calls == (call,)
    assert message.text == "ab"
    assert (
        text_of(ToolResultsMessage((ToolResult("c1", "search", "r1"), ToolResult("c2", "s", "r2"))))
        == "r1\nr2"
    )
    assert text_of(UserMessage.text("hi")) == "hi"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"role": "system", "parts": []}, "unknown message role 'system'"),
        ({"role": "user", "parts": [{"type": "video"}]}, "unknown message part type 'video'"),
    ],
)
def test_unknown_data_is_refused(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        message_from_data(data)


@st.composite
def checkpoints(draw: st.DrawFn) -> Checkpoint:
    job_id = draw(ids())
    return Checkpoint(
        id=draw(ids()),
        job_id=job_id,
        run_id=draw(ids()),
        seq=draw(st.integers(0, 10**6)),
        step=draw(st.integers(0, 10**4)),
        kind=draw(st.sampled_from(get_args(CheckpointKind))),
        status=draw(statuses()),
        run_state=draw(st.sampled_from(get_args(RunState))),
        expert_key=draw(expert_keys()),
        created_at=draw(st.floats(0, 4e9)),
        new_messages=tuple(draw(st.lists(messages, max_size=3))),
        message_count=draw(st.integers(0, 1000)),
        usage=draw(usages()),
        run_usage=draw(usages()),
        step_usage=draw(usages()),
        total_steps=draw(st.integers(0, 1000)),
        total_duration_ms=draw(st.integers(0, 10**9)),
        retry_count=draw(st.integers(0, 10)),
        parent_run_id=draw(st.none() | ids()),
        parent_call_id=draw(OPTIONAL_TEXT),
        pending_calls=tuple(draw(st.lists(tool_calls, max_size=2))),
        partial_results=tuple(draw(st.lists(tool_results, max_size=2))),
        delegations=tuple(
            draw(
                st.lists(
                    st.builds(Delegation, st.text(max_size=5), ids(), expert_keys(), st.text(max_size=10)),
                    max_size=2,
                )
            )
        ),
        error=draw(st.none() | st.just({"kind": "rate_limit", "message": "slow", "retryable": True})),
    )


@given(checkpoints())
def test_checkpoints_round_trip_through_json_data(checkpoint: Checkpoint) -> None:
    again = Checkpoint.from_data(through_json(checkpoint.to_data()))
    assert again == checkpoint
    assert type(again.status) is JobStatus


@given(checkpoints())
def test_checkpoint_wire_form_is_camel_case_json(checkpoint: Checkpoint) -> None:
    wire = through_json(checkpoint.to_wire())
    assert wire["type"] == "checkpoint"
    assert wire["expertJobId"] == checkpoint.job_id
    assert wire["stepNumber"] == checkpoint.step
    assert wire["status"] == checkpoint.status.value
    assert wire["usage"] == checkpoint.usage.to_wire()
    assert len(wire["newMessages"]) == len(checkpoint.new_messages)
