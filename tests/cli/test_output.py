"""Structured output in the CLI: ``jobs show --output`` prints the validated output, the
transcript shows it, and the run's JSON on stdout stays the API's expertJob."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.cli.conftest import Invoke

UNTYPED = """
store = "sqlite:///jobs.db"

[provider]
providerName = "scripted"

[[provider.script]]
text = "Here you go"

[[provider.script]]
text = '{"city": "Oslo", "rank": 1}'

[experts."where"]
instruction = "Say where."
"""
TYPED = (
    UNTYPED
    + """outputJsonSchema = '''{"type": "object", "required": ["city", "rank"],
    "properties": {"city": {"type": "string"}, "rank": {"type": "integer"}}}'''
"""
)


def test_show_output_and_the_transcript(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(TYPED)
    out = invoke("run", "q", "--expert", "where")
    assert out.code == 0, out.stderr
    job = out.json()
    assert job["status"] == "completed" and "output" not in job  # the API's expertJob, unchanged
    shown = invoke("jobs", "show", job["id"], "--output")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout) == {"city": "Oslo", "rank": 1}
    transcript = invoke("jobs", "show", job["id"], "--transcript").stdout
    assert "not valid output" in transcript  # the retry prompt sent back after "Here you go"
    assert 'output: {"city": "Oslo", "rank": 1}' in transcript
    both = invoke("jobs", "show", job["id"], "--output", "--transcript")
    assert both.code != 0


def test_show_output_of_a_job_without_one_is_null(invoke: Invoke, write_config: Callable[..., Path]) -> None:
    write_config(UNTYPED)
    out = invoke("run", "q", "--expert", "where")
    assert out.code == 0, out.stderr
    shown = invoke("jobs", "show", out.json()["id"], "--output")
    assert shown.code == 0 and json.loads(shown.stdout) is None
