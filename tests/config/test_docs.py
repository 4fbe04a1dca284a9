"""``docs/configuration.md`` tells the truth: every key of every table is documented, and the full
example loads, builds and runs a job offline."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from expert_jobs.config import (
    _load,
    _schema,
    _turns,
    build_experts,
    build_keyring,
    build_runtime,
    load_config,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.service.applications import Application, SystemPrincipal

DOC = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")
MODELS: list[type[BaseModel]] = [
    _schema.Config,
    _schema.ProviderConfig,
    _schema.ProviderSetting,
    _schema.EngineConfig,
    _schema.WorkerConfig,
    _schema.ServerConfig,
    _schema.WorkspaceConfig,
    _schema.SystemKeyConfig,
    _schema.ApplicationConfig,
    _schema.ExpertConfig,
    _schema.PythonSkill,
    _schema.InteractiveSkill,
    _schema.InteractiveToolConfig,
    _schema.McpStdioSkill,
    _schema.McpHttpSkill,
    _turns.TurnConfig,
    _turns.CallConfig,
    _turns.UsageConfig,
    _load._ScriptFile,
]


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _full_example() -> tuple[str, str]:
    section = DOC.split("## A full example", 1)[1]
    toml, python = re.findall(r"```(?:toml|python)\n(.*?)```", section, flags=re.S)[:2]
    return toml, python


def _keys(data: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            found.add(key)
            found |= _keys(value)
    elif isinstance(data, list):
        for item in data:
            found |= _keys(item)
    return found


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_key_is_documented_in_a_table_row(model: type[BaseModel]) -> None:
    rows = [line for line in DOC.splitlines() if line.startswith("| `")]
    documented = {m.group(1) for row in rows if (m := re.match(r"\| `([A-Za-z.\[\]]+)`", row))}
    documented |= {key.rsplit(".", 1)[-1] for key in documented}
    missing = [alias for alias in _aliases(model) if alias not in documented]
    assert not missing, f"{model.__name__}: undocumented keys {missing}"


def test_the_full_example_uses_every_key_but_the_alternatives() -> None:
    toml, _ = _full_example()
    used = _keys(tomllib.loads(toml))
    every = {alias for model in MODELS for alias in _aliases(model)}
    # Keys that exclude what the example uses (a scripted provider), and the MCP skills' (they need
    # a server to run); shown in the alternatives.
    mcp = {"command", "args", "env", "requiredEnv", "lazyInit", "endpoint", "headers"}
    assert every - used == {"script", "scriptFile", "finalText", "setting", "baseUrl"} | mcp
    for alternative in ("scriptFile = ", "finalText = ", "setting = { baseUrl", "[[provider.script]]"):
        assert alternative in DOC
    for alternative in ('type = "mcpStdioSkill"', 'type = "mcpStreamableHttpSkill"', "endpoint = "):
        assert alternative in DOC


async def test_the_full_example_loads_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml, python = _full_example()
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shop_tools.py").write_text(python, encoding="utf-8")
    (tmp_path / "files" / "acmesupport0000000000000").mkdir(parents=True)
    path = tmp_path / "expert-jobs.toml"
    path.write_text(toml, encoding="utf-8")
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    monkeypatch.setenv("ACME_ANTHROPIC_KEY", "sk-ant-from-env")
    config = load_config(path)
    assert config.store == f"sqlite:///{tmp_path / 'data' / 'jobs.db'}"
    assert (config.server.host, config.server.port, config.worker.concurrency) == ("0.0.0.0", 8080, 8)
    ring = build_keyring(config)
    app = ring.authenticate("secret")
    assert isinstance(app, Application) and app.name == "Support desk"
    assert app.provider_keys == {"anthropic": "sk-ant-from-env", "openai": "sk-literal-key"}
    assert isinstance(ring.authenticate("test"), SystemPrincipal)  # systemKeyHashes
    assert isinstance(ring.authenticate("rotated"), SystemPrincipal)  # [[systemKeys]] at the end
    assert config.workspace is not None and config.workspace.path == tmp_path / "files"
    assert (config.server.max_body_bytes, config.server.forwarded_allow_ips) == (
        262_144,
        "10.0.0.0/8,127.0.0.1",
    )
    tools, experts = build_experts(config)
    assert [t.name for t in tools] == ["lookup_order", "percent_change"]
    assert {e.key for e in experts} == {"support@1.2.0", "refund-policy@1.0.0"}
    (tmp_path / "data").mkdir()
    runtime = build_runtime(config)
    assert runtime.workspace is not None and runtime.workspace.root == tmp_path / "files"
    assert (runtime.workspace.max_files, runtime.workspace.max_file_bytes) == (20, 524_288)
    assert runtime.workspace.max_total_bytes == 4_194_304
    runtime.settings = type(runtime.settings)(**{**_settings(runtime), "backoff_base": 0.0})
    try:
        job = await runtime.run("support@prod", "Refund A-17, please.")
        assert job.status is JobStatus.REQUEST_INTERACTIVE_TOOL_RESULT
        assert job.application_id == "acmesupport0000000000000"
        await runtime.continue_job(job.id, "yes", interactive=True)
        job = await runtime.drive(job.id)
        assert job.status is JobStatus.COMPLETED
        assert job.total_steps == 5  # lookup, delegate (1 step), confirm, final
        assert job.model == "claude-haiku-4-5"
    finally:
        await runtime.close()


def _settings(runtime: Any) -> dict[str, Any]:
    settings = runtime.settings
    return {name: getattr(settings, name) for name in settings.__dataclass_fields__}
