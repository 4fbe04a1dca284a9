"""The live view on a terminal: a status line with step, status, tool calls and tokens under the
log; cleared when the job stops."""

from __future__ import annotations

import io
import re

from rich.console import Console

from expert_jobs.config import build_runtime
from expert_jobs.examples import EXAMPLE_EXPERT, EXAMPLE_QUERY, example_config
from expert_jobs.stores.memory import MemoryStore
from expert_jobs.transports.cli._run import Answers, RunRequest, follow_job, submit_job
from expert_jobs.transports.cli._view import describe_call, short


async def test_the_status_line_follows_the_job_on_a_terminal() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None, soft_wrap=True)
    runtime = build_runtime(example_config(), store=MemoryStore())
    job = await submit_job(runtime, RunRequest(EXAMPLE_EXPERT, EXAMPLE_QUERY))
    outcome = await follow_job(runtime, job, console=console, answers=Answers(["yes"]))
    assert outcome.job.status.value == "completed"
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    assert "step 0/20 · processing · sales-analyst@1.0.0: running read_data · 1 tool call ·" in text
    assert "step 1/20 · processing · 1 tool call · 412 in / 31 out tokens" in text
    assert "· requestDelegateResult · headline-writer@1.0.0: running percent_change · 4 tool calls" in text
    assert "step 3/20 · requestDelegateResult" in text
    assert "step 6/20 · requestInteractiveToolResult" in text
    assert re.search(r"step 7/20 · completed · \d+ tool calls · 3,548 in / 275 out tokens · \d+\.\ds", text)
    assert "✎ answer from --answer" in text


def test_calls_and_texts_are_shortened_to_one_line() -> None:
    assert short("a\n  b   c") == "a b c"
    assert short("x" * 300, 10) == "x" * 9 + "…"
    assert describe_call("add", {"numbers": [1, 2], "label": "sum"}) == 'add(numbers=[1, 2], label="sum")'


def test_a_store_password_is_not_printed() -> None:
    from expert_jobs.transports.cli._app import _redact

    assert _redact("postgresql://app:s3cret@db:5432/jobs") == "postgresql://app:***@db:5432/jobs"
    assert _redact("postgresql://app@db/jobs") == "postgresql://app@db/jobs"
    assert _redact("sqlite:///expert-jobs.db") == "sqlite:///expert-jobs.db"
