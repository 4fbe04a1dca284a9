"""Tools: schemas from hints and docstrings, validation, concurrency, errors as results."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator

from expert_jobs import (
    JobStatus,
    Reply,
    Runtime,
    RuntimeSettings,
    ScriptedProvider,
    ToolCalls,
    ToolResultsMessage,
    UsageError,
    tool,
)
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


def weather_google(city: str, days: int = 1) -> str:
    """Look up the weather.

    Forecasts come from the national service.

    Args:
        city (str): The city name.
        days: How many days
            ahead.

    Returns:
        The forecast.
    """
    return ""


def weather_numpy(city: str, days: int = 1) -> str:
    """Look up the weather.

    Forecasts come from the national service.

    Parameters
    ----------
    city : str
        The city name.
    days : int, optional
        How many days
        ahead.

    Returns
    -------
    str
        The forecast.
    """
    return ""


def weather_sphinx(city: str, days: int = 1) -> str:
    """Look up the weather.

    Forecasts come from the national service.

    :param city: The city name.
    :type city: str
    :param int days: How many days
        ahead.
    :returns: The forecast.
    """
    return ""


@pytest.mark.parametrize(
    "fn", [weather_google, weather_numpy, weather_sphinx], ids=["google", "numpy", "sphinx"]
)
def test_google_numpy_and_sphinx_docstrings_describe_the_tool_and_its_parameters(fn: Any) -> None:
    made = Tool.from_function(fn, name="weather")
    assert made.description == "Look up the weather.\n\nForecasts come from the national service."
    properties = made.input_schema["properties"]
    assert properties["city"]["description"] == "The city name."
    assert properties["days"]["description"] == "How many days ahead."
    assert made.declaration.description == made.description


def test_a_docstring_without_parameters_is_the_description() -> None:
    def ping(host: str) -> str:
        """Ping a host
        and say how long it took."""
        return ""

    made = Tool.from_function(ping)
    assert made.description == "Ping a host\nand say how long it took."
    assert "description" not in made.input_schema["properties"]["host"]
    assert Tool.from_function(lambda: None, name="bare").description == ""


async def test_annotated_bounds_shape_the_schema_and_the_validation() -> None:
    def roll(n: Annotated[int, Field(ge=1, le=5)], label: Annotated[str, Field(max_length=3)] = "d") -> str:
        """Roll n dice.

        Args:
            n: how many
        """
        return label * n

    made = Tool.from_function(roll)
    n = made.input_schema["properties"]["n"]
    assert (n["minimum"], n["maximum"], n["description"]) == (1, 5, "how many")
    assert made.input_schema["properties"]["label"]["maxLength"] == 3
    assert await made.call({"n": 2}) == ("dd", False)
    text, is_error = await made.call({"n": 100})
    assert is_error and "arguments.n: Input should be less than or equal to 5" in text
    text, is_error = await made.call({"n": 1, "label": "long"})
    assert is_error and "arguments.label" in text


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


# ---------------------------------------------------------------- how a call runs

BOUND = 20.0  # seconds: the most a test waits for what should take well under one


async def test_a_tool_declared_non_blocking_runs_inline_on_the_event_loop() -> None:
    seen: list[bool] = []

    @tool(blocking=False)
    def where() -> str:
        """Reports whether it runs on the main thread."""
        seen.append(threading.current_thread() is threading.main_thread())
        return "ok"

    assert where.blocking is False
    runtime = make_runtime(
        [ToolCalls.of(("where", {})), ToolCalls.of(("where", {}), ("where", {})), Reply("ok")], tools=[where]
    )
    job = await runtime.run("main@1.0.0", "q")
    assert job.status is JobStatus.COMPLETED
    assert seen == [True, True, True]
    assert runtime.tool_threads.started == 0  # no thread was ever needed


async def test_an_inline_tool_gets_no_deadline_and_its_failures_are_results() -> None:
    class Spy:
        armed = 0

        def arm(self, task: object, timeout: float) -> None:
            self.armed += 1

    @tool(blocking=False, timeout=0.001)
    def explode(x: int) -> int:
        """Fails."""
        raise ValueError(f"bad {x}")

    spy = Spy()
    content, is_error = await explode.call({"x": 3}, 0.001, spy)  # type: ignore[arg-type]
    assert (content, is_error) == ("Tool explode failed: ValueError: bad 3", True)
    content, is_error = await explode.call({"x": "three"}, 0.001, spy)  # type: ignore[arg-type]
    assert is_error and "arguments.x" in content
    assert spy.armed == 0  # nothing could interrupt it: no deadline is armed


def test_blocking_is_a_flag_and_async_tools_never_block() -> None:
    def plain() -> str:
        """Plain."""
        return ""

    async def coroutine() -> str:
        """A coroutine."""
        return ""

    assert tool(plain).blocking is True
    assert tool(plain, blocking=False).blocking is False
    assert tool(coroutine).blocking is False
    assert Tool.from_function(coroutine, blocking=True).blocking is False
    with pytest.raises(UsageError, match="blocking must be True or False"):
        tool(plain, blocking="no")  # type: ignore[arg-type]


async def test_a_sleeping_sync_tool_never_stalls_other_jobs() -> None:
    gate = threading.Event()
    entered = threading.Event()

    def sleepy() -> str:
        """Sleeps until the test lets it go."""
        entered.set()
        gate.wait(BOUND)
        return "rested"

    def quick(n: int) -> int:
        """Answers at once (in a thread too)."""
        return n + 1

    @tool(blocking=False)
    def inline(n: int) -> int:
        """Answers at once, on the loop."""
        return n * 2

    script = {
        "sleepy": [ToolCalls.of(("sleepy", {})), Reply("done")],
        "busy": [ToolCalls.of(("quick", {"n": i}), ("inline", {"n": i})) for i in range(20)]
        + [Reply("done")],
    }
    runtime = Runtime(providers=ScriptedProvider(script), settings=RuntimeSettings(default_max_steps=30))
    runtime.add_expert("sleepy", "Sleeps.", tools=[sleepy])
    runtime.add_expert("busy", "Busy.", tools=[quick, inline])
    try:
        sleeping = asyncio.create_task(runtime.run("sleepy", "q"))
        for _ in range(int(BOUND * 100)):  # polled: waiting in a thread would take one
            if entered.is_set():
                break
            await asyncio.sleep(0.01)
        assert entered.is_set()
        # The sleeping tool holds its thread; 20 steps of another job run to the end meanwhile.
        busy = await asyncio.wait_for(asyncio.gather(*(runtime.run("busy", "q") for _ in range(3))), BOUND)
        assert all(job.status is JobStatus.COMPLETED and job.total_steps == 21 for job in busy)
        assert not sleeping.done()
        gate.set()
        job = await asyncio.wait_for(sleeping, BOUND)
        assert job.status is JobStatus.COMPLETED
    finally:
        gate.set()
        await runtime.close()
