"""Tools: schemas from hints and docstrings, validation, concurrency, errors as results."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel, ConfigDict, field_validator

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


async def test_arguments_are_validated_by_the_rules_of_the_schema_model() -> None:
    # A function tool validates a call straight to keyword arguments (not through a model
    # instance): the outcomes must be the argument model's, and left-out arguments the defaults.
    seen: list[dict[str, object]] = []

    @tool
    async def pick(count: int, label: str = "all", ratio: float | None = None) -> str:
        """Pick things."""
        seen.append({"count": count, "label": label, "ratio": ratio})
        return "ok"

    assert await pick.call({"count": 2}) == ("ok", False)
    assert await pick.call({"count": "3", "ratio": 1}) == ("ok", False)  # lax, as the model
    assert seen == [{"count": 2, "label": "all", "ratio": None}, {"count": 3, "label": "all", "ratio": 1.0}]
    for bad, where in (({}, "arguments.count"), ({"count": 1, "extra": 1}, "arguments.extra")):
        content, is_error = await pick.call(bad)
        assert is_error and where in content, content
    assert len(seen) == 2


async def test_a_tool_built_on_its_own_argument_model_keeps_the_models_validators() -> None:
    class Arguments(BaseModel):
        model_config = ConfigDict(extra="forbid")
        word: str

        @field_validator("word")
        @classmethod
        def shout(cls, value: str) -> str:
            return value.upper()

    async def echo(word: str) -> str:
        return word

    echo_tool = Tool("echo", "Echo.", echo, Arguments)
    assert await echo_tool.call({"word": "hi"}) == ("HI", False)
    content, is_error = await echo_tool.call({"word": "hi", "more": 1})
    assert is_error and "arguments.more" in content


def test_an_experts_toolset_is_built_once_and_rebuilt_when_tools_change() -> None:
    runtime = make_runtime([Reply("done")])
    expert = runtime.resolve_expert("main@1.0.0")
    root = runtime.toolset(expert, root=True)
    assert root.functions == {"add"}
    assert root.interactive == {"ask"}
    assert set(root.delegates.values()) == {"helper", "other"}
    assert [d.name for d in root.declarations][:2] == ["add", "ask"]
    assert runtime.toolset(expert, root=True) is root  # every run of the expert shares it
    child = runtime.toolset(expert, root=False)
    assert child.interactive == frozenset()  # a child run gets no interactive tools
    assert "ask" not in [d.name for d in child.declarations]

    def double(x: int) -> int:
        """Double a number."""
        return 2 * x

    runtime.add_tool(double)
    assert runtime.toolset(expert, root=True) is not root
