"""MCP skills in the configuration file: ``mcpStdioSkill`` and ``mcpStreamableHttpSkill``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from expert_jobs.config import ConfigError, build_mcp_servers, build_runtime, load_config
from expert_jobs.domain.messages import ToolResultsMessage
from expert_jobs.domain.status import JobStatus
from expert_jobs.engine.mcp import McpHttpServer, McpStdioServer
from expert_jobs.engine.runner import root_run_id
from expert_jobs.providers.scripted import Reply, ScriptedProvider, ToolCalls
from expert_jobs.stores.memory import MemoryStore
from tests.config.conftest import WriteFile

SERVER = str(Path(__file__).parents[1] / "mcp" / "server.py")


def _stdio_toml(extra: str = "") -> str:
    return (
        '[experts."calc"]\ninstruction = "You add."\n'
        '[experts."calc".skills."math"]\ntype = "mcpStdioSkill"\n'
        f"command = {json.dumps(sys.executable)}\nargs = [{json.dumps(SERVER)}]\n"
        'description = "Sums"\nrule = "Use add for sums."\n' + extra
    )


def test_an_mcp_stdio_skill_becomes_a_server_of_the_expert(
    write: WriteFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_TEST_SECRET", "s3")
    config = load_config(
        write(
            _stdio_toml(
                'env = { A = "1" }\nrequiredEnv = ["MCP_TEST_SECRET"]\npick = ["add"]\nomit = ["x"]\n'
            )
        )
    )
    (server,) = build_mcp_servers(config)["calc@1.0.0"]
    assert isinstance(server, McpStdioServer)
    assert (server.name, server.command, server.args) == ("math", sys.executable, (SERVER,))
    assert dict(server.env) == {"A": "1", "MCP_TEST_SECRET": "s3"}
    assert (server.pick, server.omit, server.description) == (("add",), ("x",), "Sums")
    assert server.cwd == str(config.base_dir)


def test_a_missing_required_env_names_the_key(write: WriteFile, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_TEST_ABSENT", raising=False)
    config = load_config(write(_stdio_toml('requiredEnv = ["MCP_TEST_ABSENT"]\n')))
    with pytest.raises(ConfigError) as caught:
        build_mcp_servers(config)
    problems = dict(caught.value.problems)
    assert "MCP_TEST_ABSENT" in problems['experts."calc".skills."math".requiredEnv']


def test_an_mcp_streamable_http_skill(write: WriteFile) -> None:
    config = load_config(
        write(
            '[experts."web"]\ninstruction = "i"\n[experts."web".skills."remote"]\n'
            'type = "mcpStreamableHttpSkill"\nendpoint = "https://mcp.example.com/mcp"\n'
            'headers = { Authorization = "Bearer t" }\nomit = ["delete"]\n'
        )
    )
    (server,) = build_mcp_servers(config)["web@1.0.0"]
    assert isinstance(server, McpHttpServer)
    assert (server.url, dict(server.headers), server.omit) == (
        "https://mcp.example.com/mcp",
        {"Authorization": "Bearer t"},
        ("delete",),
    )


async def test_a_job_calls_the_tool_of_an_mcp_skill_from_the_file(write: WriteFile) -> None:
    pytest.importorskip("mcp")
    config = load_config(write(_stdio_toml('pick = ["add"]\n')))
    provider = ScriptedProvider([ToolCalls.of(("add", {"a": 1, "b": 41})), Reply("42")])
    provider.record_requests = True
    runtime = build_runtime(config, store=MemoryStore(), providers=provider)
    try:
        job = await runtime.run("calc@1.0.0", "1 + 41?")
        assert job.status is JobStatus.COMPLETED
        history = await runtime.store.load_history(job.id, root_run_id(job.id))
        results = [r for m in history if isinstance(m, ToolResultsMessage) for r in m.results]
        assert [(r.content, r.is_error) for r in results] == [("42", False)]
        assert [t.name for t in provider.requests[0].tools] == ["add"]
        assert "- math: Use add for sums." in runtime.resolve_expert("calc@1.0.0").instruction
    finally:
        await runtime.close()
