"""Tools: schemas from hints and docstrings, validation, concurrency, errors as results."""

from __future__ import annotations

import asyncio
import threading

import pytest

from expert_jobs import JobStatus, Reply, ToolCalls, ToolResultsMessage, UsageError, tool
from expert_jobs.engine.tools import Tool

from .conftest import checkpoints, make_runtime


def test_schema_comes_from_hints_defaults_and_docstring() -> None:
    @tool
    def search(query: str, limit: int = 5, exact: bool = False) -> list[str]:
        """Search the catalogue.

        Args:
            query: what to look for
            limit: how many results
                at most
        """
        return []

    assert search.name == "search"
    assert search.description == "Search the catalogue."
    schema = search.input_schema
    assert schema["required"] == ["query"]
    assert schema["properties"]["query"] == {"type": "string", "description": "what to look for"}
    assert schema["properties"]["limit"]["default"] == 5
    assert schema["properties"]["limit"]["description"] == "how many results at most"
    assert schema["additionalProperties"] is False


def test_tools_reject_what_cannot_be_described() -> None:
    def variadic(*args: int) -> None:
        """No."""

    with pytest.raises(UsageError, match="args"):
        Tool.from_function(variadic)
    with pytest.raises(UsageError, match="tool name"):
        Tool.from_function(lambda: None, name="bad name")


async def test_invalid_arguments_and_exceptions_become_error_results() -> None:
    @tool
    def explode(x: int) -> int:
        """Always fails."""
        raise RuntimeError("kaboom")

    runtime = make_runtime(
        [
            ToolCalls.of(("explode", {"x": 1}), ("add", {"a": "not a number", "b": 1}), ("nosuch", {})),
            Reply("ok"),
        ],
        tools=[explode, "add"],
    )
    runtime.add_tool(__import__("tests.engine.conftest", fromlist=["add"]).add)
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is JobStatus.COMPLETED
    history = await runtime.store.load_history(job.id, (await checkpoints(runtime, job))[0].run_id)
    results = history[2]
    assert isinstance(results, ToolResultsMessage)
    explode_result, add_result, unknown = results.results
    assert explode_result.is_error and "RuntimeError: kaboom" in explode_result.content
    assert add_result.is_error and "arguments.a" in add_result.content
    assert unknown.is_error and "Unknown tool 'nosuch'" in unknown.content


async def test_ordinary_tools_of_one_response_run_concurrently() -> None:
    started: list[str] = []
    both_started = asyncio.Event()

    async def wait_for_peer(name: str) -> str:
        """Returns only once both calls are in flight."""
        started.append(name)
        if len(started) == 2:
            both_started.set()
        await asyncio.wait_for(both_started.wait(), timeout=2)
        return name

    runtime = make_runtime(
        [ToolCalls.of(("wait_for_peer", {"name": "a"}), ("wait_for_peer", {"name": "b"})), Reply("ok")],
        tools=[wait_for_peer],
    )
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is JobStatus.COMPLETED
    assert sorted(started) == ["a", "b"]


async def test_sync_tools_run_in_a_worker_thread() -> None:
    seen: list[bool] = []

    def where() -> str:
        """Reports whether it runs on the main thread."""
        seen.append(threading.current_thread() is threading.main_thread())
        return "ok"

    runtime = make_runtime([ToolCalls.of(("where", {})), Reply("ok")], tools=[where])
    await runtime.run("main@1.0.0", "q")
    assert seen == [False]


async def test_results_are_rendered_as_text() -> None:
    @tool
    def data() -> dict[str, int]:
        """Returns a mapping."""
        return {"a": 1}

    assert await data.call({}) == ('{"a": 1}', False)
