"""Messages: an assistant message's tool calls and text are read from its parts, in order."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from expert_jobs.domain.messages import AssistantMessage, TextPart, ThinkingPart, ToolCall, ToolResult

_parts = st.lists(
    st.one_of(
        st.builds(TextPart, st.text(max_size=5)),
        st.builds(ThinkingPart, st.text(max_size=5)),
        st.builds(ToolCall, st.text(max_size=5), st.just("noop"), st.just({})),
    ),
    max_size=5,
).map(tuple)


@given(_parts)
def test_tool_calls_and_text_are_the_parts_of_their_kind_in_order(parts: tuple[object, ...]) -> None:
    message = AssistantMessage(parts, "scripted", "m")  # type: ignore[arg-type]
    assert message.tool_calls == tuple(p for p in parts if type(p) is ToolCall)
    assert message.text == "".join(p.text for p in parts if type(p) is TextPart)  # type: ignore[attr-defined]
    assert message == AssistantMessage(parts, "scripted", "m")  # type: ignore[arg-type]
    if all(type(p) is ToolCall for p in parts):
        assert message.tool_calls is parts  # shared, not copied


def test_messages_stay_frozen() -> None:
    message = AssistantMessage((TextPart("hi"),))
    with pytest.raises(dataclasses.FrozenInstanceError):
        message.parts = ()  # type: ignore[misc]
    result = ToolResult("c1", "noop", "ok")
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.content = "changed"  # type: ignore[misc]
    assert dataclasses.replace(result, content="new") == ToolResult("c1", "noop", "new")
    assert dataclasses.replace(message, model="m2").tool_calls == ()
