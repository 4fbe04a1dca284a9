"""The SQL stores' JSON coding: the directly formatted texts are exactly the encoder's."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from expert_jobs.domain.checkpoint import Checkpoint
from expert_jobs.domain.errors import JobError
from expert_jobs.domain.messages import AssistantMessage, Message, ToolCall, message_to_data
from expert_jobs.domain.usage import Usage
from expert_jobs.stores._rows import (
    INSERT_COLUMNS,
    JOB_COLUMNS,
    checkpoint_from_json,
    checkpoint_json,
    dumps,
    insert_values,
    job_from_row,
    messages_json,
    usage_json,
)
from expert_jobs.stores.postgres import _checkpoint_from_row
from tests.domain.test_checkpoint import checkpoints, messages
from tests.stores.factories import assistant, make_checkpoint, make_job, make_rich_job, user
from tests.stores.old_rows import (
    OLD_JOB_ERROR,
    OLD_JOB_ERROR_TEXT,
    old_checkpoint_data,
    old_checkpoint_text,
    old_messages_text,
)


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


def test_cache_writes_are_in_the_usage_text_only_when_there_are_some() -> None:
    plain = Usage.of(10, 2, cached=3)
    # As every version before cache writes wrote it: rows without cache writes did not change.
    assert usage_json(plain) == (
        '{"inputTokens":10,"outputTokens":2,"reasoningTokens":0,"totalTokens":12,"cachedInputTokens":3}'
    )
    written = Usage.of(10, 2, cached=3, cache_write=4)
    assert (
        usage_json(written) == dumps(written.to_data()) == usage_json(plain)[:-1] + ',"cacheWriteTokens":4}'
    )
    assert Usage.from_data(json.loads(usage_json(written))) == written
    assert Usage.from_data(json.loads(usage_json(plain))).cache_write_tokens == 0


def test_a_job_row_reads_its_error_and_a_whole_temperature_as_typed_values() -> None:
    job = make_rich_job()
    values = dict(zip(INSERT_COLUMNS, insert_values(job), strict=True))
    row = [values.get(column, 0) for column in JOB_COLUMNS]
    row[JOB_COLUMNS.index("version")] = job.version
    stored = job_from_row(row)
    assert stored.error == job.error and isinstance(stored.error, JobError)
    row[JOB_COLUMNS.index("temperature")] = 0  # what SQLite's UPDATE ... RETURNING hands back
    row[JOB_COLUMNS.index("error")] = OLD_JOB_ERROR_TEXT  # what the previous version stored
    old = job_from_row(row)
    assert old.temperature == 0.0 and type(old.temperature) is float
    assert old.error == OLD_JOB_ERROR
    row[JOB_COLUMNS.index("error")] = json.loads(OLD_JOB_ERROR_TEXT)  # PostgreSQL decodes json
    assert job_from_row(row).error == OLD_JOB_ERROR


def test_a_checkpoint_stored_by_the_previous_version_decodes_on_both_sql_paths() -> None:
    job = make_job()
    expected = Checkpoint.from_data(old_checkpoint_data(job, "c1"))
    assert checkpoint_from_json(old_checkpoint_text(job, "c1")) == expected  # SQLite: JSON text
    data = json.loads(old_checkpoint_text(job, "c1", with_messages=False))  # PostgreSQL: two columns
    assert _checkpoint_from_row(data, json.loads(old_messages_text())) == expected
    # Written back by this version, it is the same text but for the error's kind and retryable.
    again = json.loads(checkpoint_json(expected))
    assert again["new_messages"] == json.loads(old_messages_text())
    assert again["error"] == {"kind": "max_steps", "message": "step 2 reached maxSteps=2", "retryable": False}
