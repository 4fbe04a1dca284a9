"""From a :class:`Config` to running parts: the runtime (store, provider, experts, Python tools,
settings, workspace), the key ring of the API, and the worker."""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from pydantic import ValidationError

from expert_jobs.config._base import format_key, problems_of
from expert_jobs.config._errors import ConfigError, ConfigProblem
from expert_jobs.config._load import expert_definition, expert_key_of
from expert_jobs.config._schema import Config, McpHttpSkill, McpStdioSkill, PythonSkill
from expert_jobs.domain.errors import UsageError
from expert_jobs.domain.experts import ExpertDefinition
from expert_jobs.engine.files import Workspace
from expert_jobs.engine.mcp import McpHttpServer, McpServer, McpStdioServer
from expert_jobs.engine.runtime import Runtime
from expert_jobs.engine.settings import RuntimeSettings
from expert_jobs.engine.tools import Tool
from expert_jobs.engine.worker import Worker
from expert_jobs.ports.clock import Clock
from expert_jobs.ports.provider import Provider, ProviderResolver, ReasoningSettings
from expert_jobs.ports.store import JobStore
from expert_jobs.service.applications import Application, KeyRing
from expert_jobs.service.service import ExpertJobsService

__all__ = [
    "build_experts",
    "build_keyring",
    "build_mcp_servers",
    "build_provider",
    "build_runtime",
    "build_settings",
    "build_store",
    "build_worker",
    "build_workspace",
    "provider_keys",
]


def build_settings(config: Config) -> RuntimeSettings:
    """The runtime settings: the file's job defaults and ``[engine]``."""
    engine = config.engine
    budget = config.reasoning_budget
    reasoning = None
    if isinstance(budget, str):
        reasoning = ReasoningSettings(effort=budget)
    elif isinstance(budget, int):
        reasoning = ReasoningSettings(budget_tokens=budget)
    return RuntimeSettings(
        default_model=config.model,
        default_max_steps=config.max_steps,
        default_max_retries=config.max_retries,
        default_temperature=config.temperature,
        generation_timeout=config.timeout / 1000.0,
        backoff_base=engine.backoff_base,
        backoff_max=engine.backoff_max,
        retry_after_max=engine.retry_after_max,
        lease_seconds=engine.lease_seconds,
        queued_expiry_seconds=engine.queued_expiry_seconds or None,
        paused_expiry_seconds=engine.paused_expiry_seconds or None,
        max_output_tokens=engine.max_output_tokens,
        reasoning=reasoning,
        organization_id=engine.organization_id,
        application_id=engine.application_id,
        tool_timeout=engine.tool_timeout or None,
        tool_threads=engine.tool_threads,
        tool_threads_on_loop_cpu=engine.tool_threads_on_loop_cpu,
        job_timeout=engine.job_timeout or None,
        stream_timeout=engine.stream_timeout or None,
        max_tool_result_chars=engine.max_tool_result_chars or None,
        price_final_checkpoint=engine.price_final_checkpoint,
    )


def provider_keys(config: Config) -> dict[str, dict[str, str]]:
    """Each application's provider keys, ``env:NAME`` values read from the environment now."""
    keys: dict[str, dict[str, str]] = {}
    problems: list[ConfigProblem] = []
    for app_id, app in config.applications.items():
        resolved: dict[str, str] = {}
        for provider, value in app.provider_keys.items():
            if value.startswith("env:"):
                variable = value.removeprefix("env:")
                found = os.environ.get(variable)
                if not found:
                    where = format_key(["applications", app_id, "providerKeys", provider])
                    problems.append((where, f"environment variable {variable} is not set"))
                    continue
                value = found
            resolved[provider] = value
        keys[app_id] = resolved
    if problems:
        raise ConfigError(config.source, problems)
    return keys


def build_keyring(config: Config) -> KeyRing:
    """The applications (with their key hashes and provider keys) and the system key hashes."""
    keys = provider_keys(config)
    return KeyRing(
        (
            Application(
                id=app_id,
                organization_id=app.organization_id,
                name=app.name,
                key_hashes=app.key_hashes,
                provider_keys=keys[app_id],
            )
            for app_id, app in config.applications.items()
        ),
        config.every_system_key_hash,
    )


def build_provider(config: Config) -> Provider | ProviderResolver:
    """The provider of ``[provider]``: a scripted or test provider (offline), else the registry."""
    settings = config.provider
    if settings.provider_name == "scripted":
        from expert_jobs.providers.scripted import ScriptedProvider

        chunk, delay = settings.stream_chunk_chars, settings.stream_delay
        if settings.scripts is not None:
            scripts = {key: [t.to_turn() for t in turns] for key, turns in settings.scripts.items()}
            if settings.script is not None:
                scripts.setdefault("*", [t.to_turn() for t in settings.script])
            return ScriptedProvider(scripts, stream_chunk_chars=chunk, stream_delay=delay)
        return ScriptedProvider(
            [t.to_turn() for t in settings.script or ()], stream_chunk_chars=chunk, stream_delay=delay
        )
    if settings.provider_name == "test":
        from expert_jobs.providers.scripted import TestProvider

        return TestProvider(final_text=settings.final_text)
    from expert_jobs.providers.registry import ProviderRegistry

    keys = provider_keys(config)

    def key_for(provider: str, application_id: str | None, /) -> str | None:
        return keys.get(application_id or "", {}).get(provider)

    return ProviderRegistry(
        key_for=key_for,
        base_urls=settings.resolved_base_urls(),
        default_timeout=config.timeout / 1000.0,
    )


def build_store(config: Config) -> JobStore:
    """The job store named by ``store`` (``memory://``, ``sqlite:///path``, ``postgresql://...``)."""
    module = importlib.import_module("expert_jobs.stores.url")
    open_store = cast(Callable[[str], JobStore], module.open_store)
    try:
        return open_store(config.store)
    except UsageError as exc:
        raise ConfigError(config.source, [("store", str(exc))]) from None


def _import(module_name: str, where: str, source: Path | None) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(source, [(where, f"cannot import {module_name!r}: {exc}")]) from None
    except Exception as exc:
        raise ConfigError(
            source, [(where, f"importing {module_name!r} failed: {type(exc).__name__}: {exc}")]
        ) from None


def _candidates(module: ModuleType, skill: PythonSkill) -> list[str]:
    if skill.pick is not None:
        names = list(skill.pick)
    elif hasattr(module, "__all__"):
        names = list(module.__all__)
    else:
        names = [
            name
            for name, value in vars(module).items()
            if not name.startswith("_")
            and (
                isinstance(value, Tool) or (inspect.isfunction(value) and value.__module__ == module.__name__)
            )
        ]
    return [name for name in names if name not in skill.omit]


class _ToolCollector:
    """Makes each Python tool once and refuses two different functions under one tool name."""

    def __init__(self, source: Path | None) -> None:
        self.source = source
        self.tools: dict[str, Tool] = {}
        self._origin: dict[str, tuple[int, str]] = {}
        self._made: dict[int, Tool] = {}

    def add(self, value: Any, label: str, where: str) -> str:
        made = self._made.get(id(value))
        if made is None:
            if isinstance(value, Tool):
                made = value
            elif callable(value):
                try:
                    made = Tool.from_function(value)
                except UsageError as exc:
                    raise ConfigError(self.source, [(where, str(exc))]) from None
            else:
                raise ConfigError(self.source, [(where, f"{label} is not a function or a Tool")])
            self._made[id(value)] = made
        origin = self._origin.get(made.name)
        if origin is not None and origin[0] != id(made):
            raise ConfigError(
                self.source,
                [(where, f"tool name {made.name!r} of {label} is already taken by {origin[1]}")],
            )
        self._origin[made.name] = (id(made), label)
        self.tools[made.name] = made
        return made.name


def _python_path(config: Config) -> None:
    entries = [*config.python_path]
    if config.source is not None:
        entries.append(config.base_dir)
    for entry in entries:
        text = str(entry)
        if text not in sys.path:
            sys.path.append(text)


def build_experts(config: Config) -> tuple[list[Tool], list[ExpertDefinition]]:
    """Import the Python tools of every ``pythonSkill`` and make every expert's definition.

    Modules are imported with ``pythonPath`` and the configuration file's directory on
    ``sys.path``. Raises :class:`ConfigError` for a module that cannot be imported, a missing name,
    or one tool name given to two different functions.
    """
    _python_path(config)
    collector = _ToolCollector(config.source)
    experts: list[ExpertDefinition] = []
    for name, expert in config.experts.items():
        tool_names: list[str] = []
        for skill_name, skill in expert.skills.items():
            if not isinstance(skill, PythonSkill):
                continue
            where = format_key(["experts", name, "skills", skill_name])
            module = _import(skill.module, f"{where}.module", config.source)
            for attr in _candidates(module, skill):
                if not hasattr(module, attr):
                    raise ConfigError(
                        config.source, [(f"{where}.pick", f"module {skill.module!r} has no {attr!r}")]
                    )
                tool_names.append(collector.add(getattr(module, attr), f"{skill.module}.{attr}", where))
        try:
            experts.append(expert_definition(name, expert, tools=tuple(tool_names)))
        except ValidationError as exc:
            where = format_key(["experts", name])
            raise ConfigError(config.source, [(where, m) for _, m in problems_of(exc)]) from None
    return list(collector.tools.values()), experts


def build_mcp_servers(config: Config) -> dict[str, tuple[McpServer, ...]]:
    """The MCP servers of every expert with ``mcpStdioSkill`` / ``mcpStreamableHttpSkill`` skills, by
    expert key. Raises :class:`ConfigError` naming the skill's ``requiredEnv`` when a variable it
    lists is not set (servers themselves start at the first job that needs them)."""
    servers: dict[str, tuple[McpServer, ...]] = {}
    for name, expert in config.experts.items():
        made: list[McpServer] = []
        for skill_name, skill in expert.skills.items():
            where = format_key(["experts", name, "skills", skill_name])
            if isinstance(skill, McpStdioSkill):
                missing = [each for each in skill.required_env if each not in os.environ]
                if missing:
                    raise ConfigError(
                        config.source,
                        [(f"{where}.requiredEnv", f"the environment variables {missing} are not set")],
                    )
                env = {each: os.environ[each] for each in skill.required_env} | skill.env
                made.append(
                    McpStdioServer(
                        skill_name,
                        skill.command,
                        skill.args,
                        env=env,
                        cwd=str(config.base_dir) if config.source is not None else None,
                        pick=skill.pick,
                        omit=skill.omit,
                        description=skill.description,
                    )
                )
            elif isinstance(skill, McpHttpSkill):
                made.append(
                    McpHttpServer(
                        skill_name,
                        skill.endpoint,
                        headers=skill.headers,
                        pick=skill.pick,
                        omit=skill.omit,
                        description=skill.description,
                    )
                )
        if made:
            servers[expert_key_of(name, expert)] = tuple(made)
    return servers


def build_runtime(
    config: Config,
    *,
    store: JobStore | None = None,
    providers: Provider | ProviderResolver | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """A :class:`Runtime` as the file describes it (``store``, ``providers`` and ``clock`` override)."""
    tools, experts = build_experts(config)
    mcp_servers = build_mcp_servers(config)
    runtime = Runtime(
        providers=providers if providers is not None else build_provider(config),
        store=store if store is not None else build_store(config),
        experts=[each for each in experts if each.key not in mcp_servers],
        tools=tools,
        settings=build_settings(config),
        clock=clock,
        workspace=build_workspace(config),
    )
    for each in experts:
        if each.key in mcp_servers:
            runtime.add_expert(each, mcp_servers=mcp_servers[each.key])
    return runtime


def build_workspace(config: Config) -> Workspace | None:
    """The workspace of ``workspace`` / ``[workspace]`` with its limits (``None`` without one)."""
    settings = config.workspace
    if settings is None:
        return None
    return Workspace(
        settings.path,
        max_files=settings.max_files,
        max_file_bytes=settings.max_file_bytes,
        max_total_bytes=settings.max_total_bytes,
    )


def build_worker(config: Config, runtime: Runtime) -> Worker:
    """The worker of ``[worker]`` over ``runtime``."""
    worker = config.worker
    return Worker(
        runtime,
        concurrency=worker.concurrency,
        worker_id=worker.worker_id,
        poll_interval=worker.poll_interval,
        sweep_interval=worker.sweep_interval,
    )


def build_service(
    config: Config,
    *,
    store: JobStore | None = None,
    providers: Provider | ProviderResolver | None = None,
    clock: Clock | None = None,
) -> ExpertJobsService:
    """The service the configuration describes: its runtime, key ring and worker (``store``,
    ``providers`` and ``clock`` override the file's)."""
    runtime = build_runtime(config, store=store, providers=providers, clock=clock)
    return ExpertJobsService(runtime, build_keyring(config), worker=build_worker(config, runtime))
