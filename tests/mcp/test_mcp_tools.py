"""MCP servers' tools in jobs: a real server (tests/mcp/server.py, the SDK's server API) over
stdio and over streamable HTTP on 127.0.0.1, a whole job through the runtime each time."""

from __future__ import annotations

import asyncio
import sys

import pytest

from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.messages import ToolResult, ToolResultsMessage
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.mcp import McpStdioServer
from expert_jobs.engine.runner import root_run_id
from expert_jobs.engine.runtime import Runtime
from expert_jobs.providers.scripted import Reply, ToolCalls
from tests.mcp.conftest import http_server, stdio_server


async def results(runtime: Runtime, job_id: str) -> list[ToolResult]:
    """Every tool result of the job's root run, in order."""
    history = await runtime.store.load_history(job_id, root_run_id(job_id))
    return [r for m in history if isinstance(m, ToolResultsMessage) for r in m.results]


async def test_a_job_calls_a_stdio_server_tool_with_its_schema_as_listed(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(ToolCalls.of(("add", {"a": 2, "b": 3})), Reply("5"))
    runtime.providers.record_requests = True  # type: ignore[union-attr]
    runtime.add_expert("calc@1.0.0", "You add.", mcp_servers=[stdio_server(pick=["add", "echo"])])
    job = await runtime.run("calc@1.0.0", "2 + 3?")
    assert job.status is JobStatus.COMPLETED
    assert [(r.content, r.is_error) for r in await results(runtime, job.id)] == [("5", False)]
    declared = {t.name: t for t in runtime.providers.requests[0].tools}  # type: ignore[union-attr]
    assert set(declared) == {"add", "echo"}  # pick
    schema = declared["add"].input_schema
    assert schema["properties"]["a"]["type"] == "integer" and schema["required"] == ["a", "b"]
    assert declared["add"].description == "Add two integers."


async def test_the_server_is_started_once_and_shared_by_jobs_and_calls(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(
        ToolCalls.of(("pid", {}), ("pid", {})), Reply("a"), ToolCalls.of(("pid", {})), Reply("b")
    )
    runtime.add_expert("p@1.0.0", "You tell pids.", mcp_servers=[stdio_server(omit=["crash", "hang"])])
    first = await runtime.run("p@1.0.0", "pid?")
    second = await runtime.run("p@1.0.0", "pid?")
    pids = {r.content for j in (first, second) for r in await results(runtime, j.id)}
    assert len(pids) == 1 and pids != {""}


async def test_errors_are_results_for_the_model(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(
        ToolCalls.of(("fail", {"reason": "no such city"}), ("add", {"a": "x", "b": 1})), Reply("sorry")
    )
    runtime.add_expert("e@1.0.0", "You try.", mcp_servers=[stdio_server()])
    job = await runtime.run("e@1.0.0", "go")
    assert job.status is JobStatus.COMPLETED
    failed, invalid = await results(runtime, job.id)
    assert failed.is_error and "no such city" in failed.content
    assert invalid.is_error and "add" in invalid.content


async def test_env_is_passed_to_the_server(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(ToolCalls.of(("echo", {"text": "hi"})), Reply("ok"))
    runtime.add_expert("v@1.0.0", "You echo.", mcp_servers=[stdio_server(env={"MCP_TEST_MARK": ">"})])
    job = await runtime.run("v@1.0.0", "go")
    assert [r.content for r in await results(runtime, job.id)] == [">hi"]


async def test_a_hanging_tool_times_out_and_the_job_goes_on(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(ToolCalls.of(("hang", {})), ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("2"))
    runtime.add_expert("h@1.0.0", "You wait.", mcp_servers=[stdio_server()], tool_timeout=0.5)
    job = await runtime.run("h@1.0.0", "go")
    assert job.status is JobStatus.COMPLETED
    hung, added = await results(runtime, job.id)
    assert hung.is_error and "timed out after 0.5 s" in hung.content
    assert (added.content, added.is_error) == ("2", False)  # the same server still answers


async def test_a_server_that_dies_mid_call_is_an_error_then_restarted(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(
        ToolCalls.of(("pid", {})),
        ToolCalls.of(("crash", {})),
        ToolCalls.of(("pid", {})),
        Reply("done"),
    )
    runtime.add_expert("c@1.0.0", "You crash.", mcp_servers=[stdio_server()])
    job = await asyncio.wait_for(runtime.run("c@1.0.0", "go"), 30)
    assert job.status is JobStatus.COMPLETED
    before, crashed, after = await results(runtime, job.id)
    assert crashed.is_error and "went away during the call" in crashed.content
    assert not after.is_error and after.content != before.content  # a new process


async def test_close_stops_the_server(runtime_with) -> None:  # type: ignore[no-untyped-def]
    import os

    runtime = runtime_with(ToolCalls.of(("pid", {})), Reply("ok"))
    runtime.add_expert("s@1.0.0", "You.", mcp_servers=[stdio_server()])
    job = await runtime.run("s@1.0.0", "go")
    pid = int((await results(runtime, job.id))[0].content)
    os.kill(pid, 0)  # alive
    await runtime.close()
    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail(f"the MCP server {pid} still runs after runtime.close()")


async def _gone(pid: int) -> bool:
    import os

    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_worker_stop_stops_the_server_and_a_later_job_starts_it_again(runtime_with) -> None:  # type: ignore[no-untyped-def]
    from expert_jobs.engine.worker import Worker

    runtime = runtime_with(ToolCalls.of(("pid", {})), Reply("ok"), ToolCalls.of(("pid", {})), Reply("ok"))
    runtime.add_expert("s@1.0.0", "You.", mcp_servers=[stdio_server()])
    first = await runtime.submit("s@1.0.0", "go")
    worker = Worker(runtime, poll_interval=0.05)
    await worker.start()
    for _ in range(400):
        if (await runtime.get(first.id)).status is JobStatus.COMPLETED:
            break
        await asyncio.sleep(0.025)
    pid = int((await results(runtime, first.id))[0].content)
    await worker.stop()
    assert await _gone(pid), f"the MCP server {pid} still runs after Worker.stop()"
    second = await runtime.run("s@1.0.0", "again")
    assert second.status is JobStatus.COMPLETED
    restarted = int((await results(runtime, second.id))[0].content)
    assert restarted != pid


async def test_a_pick_naming_a_missing_tool_fails_the_job_naming_it(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(Reply("never"))
    runtime.add_expert("k@1.0.0", "You.", mcp_servers=[stdio_server(pick=["add", "nope"])])
    job = await runtime.run("k@1.0.0", "go")
    assert job.status is JobStatus.FAILED
    assert job.error is not None and "pick names ['nope']" in str(job.error)


async def test_a_command_that_does_not_exist_fails_the_job_clearly(runtime_with) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(Reply("never"))
    missing = McpStdioServer("gone", "/nonexistent/mcp-server-binary")
    runtime.add_expert("g@1.0.0", "You.", mcp_servers=[missing])
    job = await runtime.run("g@1.0.0", "go")
    assert job.status is JobStatus.FAILED
    assert "MCP server 'gone' could not start" in str(job.error)


async def test_a_delegate_gets_its_own_mcp_tools(runtime_with) -> None:  # type: ignore[no-untyped-def]
    from expert_jobs.domain.experts import delegate_tool_name

    runtime = runtime_with(
        ToolCalls.of((delegate_tool_name("helper@1.0.0"), {"query": "add"})),
        ToolCalls.of(("add", {"a": 4, "b": 4})),
        Reply("8"),
        Reply("it is 8"),
    )
    runtime.add_expert("helper@1.0.0", "You add.", mcp_servers=[stdio_server(pick=["add"])])
    runtime.add_expert("boss@1.0.0", "You delegate.", delegates=["helper@1.0.0"])
    job = await runtime.run("boss@1.0.0", "4 + 4?")
    assert job.status is JobStatus.COMPLETED


def test_bad_server_settings_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="command"):
        McpStdioServer("x", "")
    with pytest.raises(UsageError, match="name"):
        McpStdioServer("bad name", sys.executable)
    with pytest.raises(UsageError, match="pick"):
        McpStdioServer("x", sys.executable, pick="add")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="url"):
        http_server("ftp://example.invalid/mcp")
    runtime = Runtime(providers=None)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="mcp_servers"):
        runtime.add_expert("x@1.0.0", "You.", mcp_servers=["server"])  # type: ignore[list-item]


async def test_a_tool_name_clash_with_a_python_tool_is_named(runtime_with) -> None:  # type: ignore[no-untyped-def]
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    runtime = runtime_with(Reply("never"))
    runtime.add_expert("d@1.0.0", "You.", tools=[add], mcp_servers=[stdio_server(pick=["add"])])
    job = await runtime.run("d@1.0.0", "go")
    assert job.status is JobStatus.FAILED and "a name another of its tools has" in str(job.error)


async def test_a_streamable_http_server(runtime_with, http_url: str) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(
        ToolCalls.of(("add", {"a": 20, "b": 22}), ("fail", {"reason": "remote no"})),
        ToolCalls.of(("hang", {})),
        ToolCalls.of(("echo", {"text": "still here"})),
        Reply("42"),
    )
    server = http_server(http_url, headers={"X-Test": "1"}, omit=["crash"])
    runtime.add_expert("r@1.0.0", "You add remotely.", mcp_servers=[server], tool_timeout=0.5)
    job = await asyncio.wait_for(runtime.run("r@1.0.0", "20 + 22?"), 30)
    assert job.status is JobStatus.COMPLETED
    added, failed, hung, echoed = await results(runtime, job.id)
    assert (added.content, added.is_error) == ("42", False)
    assert failed.is_error and "remote no" in failed.content
    assert hung.is_error and "timed out" in hung.content
    assert (echoed.content, echoed.is_error) == ("still here", False)


async def test_an_unreachable_http_server_fails_the_job_clearly(runtime_with) -> None:  # type: ignore[no-untyped-def]
    from tests.mcp.conftest import _free_port

    runtime = runtime_with(Reply("never"))
    runtime.add_expert("u@1.0.0", "You.", mcp_servers=[http_server(f"http://127.0.0.1:{_free_port()}/mcp")])
    job = await asyncio.wait_for(runtime.run("u@1.0.0", "go"), 30)
    assert job.status is JobStatus.FAILED and "MCP server 'remote'" in str(job.error)


async def test_a_server_that_died_between_calls_is_started_again(runtime_with) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    runtime = runtime_with(ToolCalls.of(("pid", {})), Reply("a"), ToolCalls.of(("pid", {})), Reply("b"))
    runtime.add_expert("i@1.0.0", "You.", mcp_servers=[stdio_server()])
    first = await runtime.run("i@1.0.0", "pid?")
    pid = int((await results(runtime, first.id))[0].content)
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # the relay sees the server's output end
        if runtime._mcp is not None and runtime._mcp._connection(stdio_server())._session is None:
            break
        await asyncio.sleep(0.05)
    second = await asyncio.wait_for(runtime.run("i@1.0.0", "pid?"), 30)
    (again,) = await results(runtime, second.id)
    assert not again.is_error and int(again.content) != pid


async def test_an_http_server_that_dies_mid_call_is_an_error_result(runtime_with, own_http_url: str) -> None:  # type: ignore[no-untyped-def]
    runtime = runtime_with(
        ToolCalls.of(("crash", {})), ToolCalls.of(("add", {"a": 1, "b": 1})), Reply("gone")
    )
    runtime.add_expert("x@1.0.0", "You.", mcp_servers=[http_server(own_http_url)], tool_timeout=20)
    job = await asyncio.wait_for(runtime.run("x@1.0.0", "go"), 60)
    assert job.status is JobStatus.COMPLETED
    crashed, after = await results(runtime, job.id)
    assert crashed.is_error and "MCP server 'remote'" in crashed.content, crashed.content
    assert after.is_error and "MCP server 'remote'" in after.content, after.content  # still down


async def test_tools_are_listed_again_when_the_server_is_restarted(runtime_with, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal

    listing = tmp_path / "tools.txt"
    listing.write_text("pid")
    runtime = runtime_with(
        ToolCalls.of(("pid", {})), Reply("a"), ToolCalls.of(("pid", {})), Reply("b"), Reply("c")
    )
    runtime.providers.record_requests = True  # type: ignore[union-attr]
    server = stdio_server(env={"MCP_TEST_TOOLS_FILE": str(listing)})
    runtime.add_expert("l@1.0.0", "You.", mcp_servers=[server])
    first = await runtime.run("l@1.0.0", "pid?")
    pid = int((await results(runtime, first.id))[0].content)
    listing.write_text("pid,echo")
    os.kill(pid, signal.SIGKILL)
    for _ in range(200):
        if runtime._mcp is not None and runtime._mcp._connection(server)._session is None:
            break
        await asyncio.sleep(0.05)
    await runtime.run("l@1.0.0", "pid?")  # its call starts the server again, which lists echo too
    await runtime.run("l@1.0.0", "tools?")
    seen = [sorted(t.name for t in r.tools) for r in runtime.providers.requests]  # type: ignore[union-attr]
    assert seen[0] == ["pid"] and seen[-1] == ["echo", "pid"]


def test_results_other_than_text_are_given_as_json() -> None:
    from mcp.types import CallToolResult, ImageContent, TextContent

    from expert_jobs.engine.mcp import _render_result

    mixed = CallToolResult(
        content=[TextContent(text="a chart:"), ImageContent(data="aGk=", mime_type="image/png")]
    )
    text, image = _render_result(mixed).split("\n")
    assert text == "a chart:" and '"mimeType": "image/png"' in image and '"data": "aGk="' in image
    assert _render_result(CallToolResult(content=[], structured_content={"n": 1})) == '{"n": 1}'
