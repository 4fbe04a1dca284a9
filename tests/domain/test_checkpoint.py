"""Checkpoints and messages survive a trip through plain JSON data unchanged; the stores' data
keeps its snake_case format (old rows read unchanged), the API's rendering is camelCase throughout."""

from __future__ import annotations

import json
import re
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
from expert_jobs.domain.errors import JOB_ERROR_KINDS, JobError
from expert_jobs.domain.messages import (
    Message,
    message_from_data,
    message_to_data,
    message_to_wire,
    text_of,
)
from expert_jobs.domain.usage import Usage
from expert_jobs.domain.wire import CheckpointWire
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


OPTIONAL_INT = st.none() | st.integers(0, 10**6)
job_errors = st.builds(
    JobError,
    st.sampled_from(JOB_ERROR_KINDS),
    st.text(max_size=20),
    st.booleans(),
    OPTIONAL_INT,
    st.none() | st.integers(100, 599),
    OPTIONAL_TEXT,
    st.none() | ids(),
    OPTIONAL_INT,
    OPTIONAL_TEXT,
    st.dictionaries(st.sampled_from(["limitSeconds", "retryAfter"]), st.integers(0, 100), max_size=2),
)
"""Job errors of every kind, with and without their optional context."""


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
        error=draw(st.none() | job_errors),
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


CAMEL_KEY = re.compile(r"^[a-z][a-zA-Z0-9]*$")
OPAQUE = {"arguments", "providerData"}
"""Keys whose values are someone else's data (the model's arguments, a provider's token), kept as
they came."""


def snake_keys(node: Any, path: str = "") -> list[str]:
    """The path of every key under ``node`` that is not camelCase (opaque values skipped)."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if not CAMEL_KEY.fullmatch(key):
                found.append(f"{path}.{key}")
            if key not in OPAQUE:
                found.extend(snake_keys(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found.extend(snake_keys(item, f"{path}[{i}]"))
    return found


@given(checkpoints())
def test_the_checkpoint_wire_form_is_camel_case_throughout_and_matches_its_schema(
    checkpoint: Checkpoint,
) -> None:
    wire = through_json(checkpoint.to_wire())
    assert snake_keys(wire) == []
    CheckpointWire.model_validate(wire)  # the OpenAPI document's Checkpoint (extra keys refused)
    assert [r["callId"] for r in wire["partialToolResults"]] == [
        r.call_id for r in checkpoint.partial_results
    ]
    assert [d["runId"] for d in wire["delegations"]] == [d.run_id for d in checkpoint.delegations]
    assert wire["error"] == (None if checkpoint.error is None else checkpoint.error.to_data())


@given(messages)
def test_the_wire_form_of_a_message_is_its_data_with_camel_case_keys(message: Message) -> None:
    wire = through_json(message_to_wire(message))
    assert snake_keys(wire) == []
    data = through_json(message_to_data(message))
    renamed = {"call_id": "callId", "is_error": "isError", "media_type": "mediaType"}
    renamed |= {"redacted_data": "redactedData", "provider_data": "providerData"}

    def camel(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                renamed.get(k, k): v if k in ("arguments", "provider_data") else camel(v)
                for k, v in node.items()
            }
        return [camel(item) for item in node] if isinstance(node, list) else node

    assert wire == camel(data)


def test_a_tool_result_on_the_wire() -> None:
    checkpoint = _old_checkpoint()
    wire = checkpoint.to_wire()
    assert wire["newMessages"][1] == {
        "role": "tool",
        "results": [{"callId": "call_1", "name": "search", "content": "found", "isError": False}],
    }
    assert wire["partialToolResults"] == [
        {"callId": "call_2", "name": "ask", "content": "yes", "isError": True}
    ]
    assert wire["delegations"] == [
        {"callId": "call_3", "runId": "run2", "expertKey": "helper@1.0.0", "query": "help"}
    ]


# A checkpoint exactly as the previous version stored it (snake_case message parts, an error of a
# maxSteps stop without a ``kind``): the stores' format did not change, it reads unchanged.
OLD_CHECKPOINT_DATA: dict[str, Any] = {
    "id": "jobaaaaaaaaaaaac00000003",
    "job_id": "jobaaaaaaaaaaaaaaaaaaaa1",
    "run_id": "run1",
    "seq": 3,
    "step": 2,
    "kind": "stop",
    "status": "exceededMaxSteps",
    "run_state": "exceededMaxSteps",
    "expert_key": "main@1.0.0",
    "created_at": 1767225600.5,
    "new_messages": [
        {
            "role": "assistant",
            "parts": [
                {"type": "thinking", "text": "hmm", "redacted_data": "xyz", "provider": "anthropic"},
                {"type": "tool_call", "id": "call_1", "name": "search", "arguments": {"q": "x"}},
            ],
            "provider": "anthropic",
            "model": "claude-sonnet-4-5",
        },
        {
            "role": "tool",
            "results": [{"call_id": "call_1", "name": "search", "content": "found", "is_error": False}],
        },
        {
            "role": "user",
            "parts": [{"type": "file", "name": "a.png", "media_type": "image/png", "data": "AAE="}],
        },
    ],
    "message_count": 5,
    "usage": {
        "inputTokens": 3,
        "outputTokens": 2,
        "reasoningTokens": 0,
        "totalTokens": 5,
        "cachedInputTokens": 0,
    },
    "run_usage": {
        "inputTokens": 3,
        "outputTokens": 2,
        "reasoningTokens": 0,
        "totalTokens": 5,
        "cachedInputTokens": 0,
    },
    "step_usage": {
        "inputTokens": 1,
        "outputTokens": 1,
        "reasoningTokens": 0,
        "totalTokens": 2,
        "cachedInputTokens": 0,
    },
    "total_steps": 2,
    "total_duration_ms": 12,
    "retry_count": 0,
    "parent_run_id": None,
    "parent_call_id": None,
    "pending_calls": [{"id": "call_2", "name": "ask", "arguments": {}, "signature": None}],
    "partial_results": [{"call_id": "call_2", "name": "ask", "content": "yes", "is_error": True}],
    "delegations": [{"call_id": "call_3", "run_id": "run2", "expert_key": "helper@1.0.0", "query": "help"}],
    "error": {"message": "step 2 reached maxSteps=2"},
}


def _old_checkpoint() -> Checkpoint:
    return Checkpoint.from_data(json.loads(json.dumps(OLD_CHECKPOINT_DATA)))


def test_a_checkpoint_stored_by_the_previous_version_reads_unchanged() -> None:
    checkpoint = _old_checkpoint()
    assert checkpoint.new_messages == (
        AssistantMessage(
            (
                ThinkingPart("hmm", redacted_data="xyz", provider="anthropic"),
                ToolCall("call_1", "search", {"q": "x"}),
            ),
            "anthropic",
            "claude-sonnet-4-5",
        ),
        ToolResultsMessage((ToolResult("call_1", "search", "found", False),)),
        UserMessage((FilePart("a.png", "image/png", b"\x00\x01"),)),
    )
    assert checkpoint.partial_results == (ToolResult("call_2", "ask", "yes", True),)
    assert checkpoint.delegations == (Delegation("call_3", "run2", "helper@1.0.0", "help"),)
    assert checkpoint.usage == Usage.of(3, 2)
    assert checkpoint.error == JobError("max_steps", "step 2 reached maxSteps=2")
    # The storage format is unchanged: the same data is written back (the error gains its
    # ``kind`` and ``retryable``), and the API shows it camelCase.
    again = checkpoint.to_data()
    assert again["error"] == {"kind": "max_steps", "message": "step 2 reached maxSteps=2", "retryable": False}
    assert {**again, "error": None} == {**OLD_CHECKPOINT_DATA, "error": None}
    wire = checkpoint.to_wire()
    assert snake_keys(wire) == []
    assert wire["newMessages"][0]["parts"][0]["redactedData"] == "xyz"
    assert wire["newMessages"][2]["parts"][0]["mediaType"] == "image/png"
    CheckpointWire.model_validate(wire)
