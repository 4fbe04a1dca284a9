"""The SQL stores' JSON coding: the directly formatted texts are exactly the encoder's."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.messages import AssistantMessage, Message, ToolCall, message_to_data
from expert_jobs.domain.usage import Usage
from expert_jobs.stores._rows import checkpoint_from_json, checkpoint_json, dumps, messages_json, usage_json
from tests.domain.test_checkpoint import checkpoints, messages
from tests.stores.factories import assistant, make_checkpoint, make_job, user


@given(checkpoints())
def test_checkpoint_json_is_the_encoders_text_of_its_data(checkpoint: Checkpoint) -> None:
    assert checkpoint_json(checkpoint) == dumps(checkpoint.to_data())
    assert checkpoint_from_json(checkpoint_json(checkpoint)) == checkpoint


def test_a_plain_checkpoint_is_the_encoders_text_too() -> None:
    job = make_job()
    plain = make_checkpoint(job, 3, new_messages=(user("hi"), assistant("hello")), message_count=2)
    assert plain.retry_count == 0 and plain.error is None and not plain.pending_calls
    assert checkpoint_json(plain) == dumps(plain.to_data())
    one_run = plain._replace(run_usage=plain.usage)
    assert checkpoint_json(one_run) == dumps(one_run.to_data())


@given(checkpoints())
def test_checkpoint_json_without_messages_leaves_out_only_the_messages(checkpoint: Checkpoint) -> None:
    data = checkpoint.to_data()
    del data["new_messages"]
    assert checkpoint_json(checkpoint, with_messages=False) == dumps(data)


@given(st.lists(messages, max_size=4))
def test_messages_json_is_the_encoders_text_of_their_data(batch: list[Message]) -> None:
    assert messages_json(batch) == dumps([message_to_data(m) for m in batch])


@given(checkpoints(), st.sampled_from([math.inf, -math.inf, 0, 10**20]))
def test_unusual_numbers_are_written_as_the_encoder_writes_them(
    checkpoint: Checkpoint, number: float
) -> None:
    odd = checkpoint._replace(created_at=number)
    assert checkpoint_json(odd) == dumps(odd.to_data())
    assert json.loads(checkpoint_json(odd))["created_at"] == number


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=6)
        | st.lists(st.integers(), max_size=2),
        max_size=4,
    )
)
def test_tool_call_arguments_are_the_encoders_text(arguments: dict[str, object]) -> None:
    call = AssistantMessage((ToolCall("c1", "search", arguments),))
    assert messages_json([call]) == dumps([message_to_data(call)])


def test_the_last_usage_text_is_reused_only_for_the_same_object() -> None:
    first, second = Usage.of(10, 2), Usage.of(10, 3)
    assert usage_json(first) == dumps(first.to_wire())
    assert usage_json(second) == dumps(second.to_wire())
    assert usage_json(first) == dumps(first.to_wire())
    assert usage_json(Usage.of(10, 2)) == usage_json(first)
