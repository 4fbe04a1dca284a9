"""Reading the configuration file: TOML (stdlib ``tomllib``), validation, relative paths, the script
file, and the checks that span tables (expert keys, delegates, script keys)."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from expert_jobs.config._base import ConfigModel, format_key, problems_of
from expert_jobs.config._errors import ConfigError, ConfigProblem
from expert_jobs.config._schema import SKILL_TAGS, Config, ExpertConfig, InteractiveSkill, check_store_url
from expert_jobs.config._turns import TurnConfig
from expert_jobs.domain.errors import InvalidExpertKey
from expert_jobs.domain.expert_key import parse_expert_key
from expert_jobs.domain.experts import ExpertDefinition, ExpertRegistry, InteractiveToolSpec
from expert_jobs.domain.output import OutputSpec, output_spec

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "ConfigSource",
    "expert_definition",
    "expert_key_of",
    "find_config",
    "load_config",
    "parse_config",
    "with_store",
]

CONFIG_ENV_VAR = "EXPERT_JOBS_CONFIG"
"""The environment variable naming the configuration file when none is given."""

DEFAULT_CONFIG_FILE = "expert-jobs.toml"
"""The file looked for in the current directory when neither a path nor the variable is given."""

ConfigSource = str | os.PathLike[str]
"""A path to a configuration file."""


class _ScriptFile(ConfigModel):
    """A script file: ``script`` (turns for every expert) and/or ``scripts`` (turns per expert key)."""

    script: tuple[TurnConfig, ...] | None = None
    scripts: dict[str, tuple[TurnConfig, ...]] | None = None


def find_config(explicit: ConfigSource | None = None) -> Path | None:
    """The configuration file to use: ``explicit``, else ``$EXPERT_JOBS_CONFIG``, else
    ``./expert-jobs.toml`` if it exists, else ``None`` (defaults only)."""
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(path, [("", f"cannot be read: {exc}")]) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, [("", f"invalid TOML: {exc}")]) from None


def load_config(path: ConfigSource) -> Config:
    """Read, validate and check the configuration file at ``path``.

    Relative paths in it are made relative to its directory. Raises :class:`ConfigError` naming the
    file and every problem's key.
    """
    source = Path(path)
    return parse_config(_read_toml(source), source=source, base_dir=source.resolve().parent)


def parse_config(
    data: Mapping[str, Any], *, source: Path | None = None, base_dir: Path | None = None
) -> Config:
    """Validate configuration ``data`` (a parsed TOML document) into a :class:`Config`.

    ``base_dir`` (default: the current directory) anchors relative paths; ``source`` names the
    file in error messages.
    """
    base = (base_dir or Path.cwd()).resolve()
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, problems_of(exc, union_tags=SKILL_TAGS)) from None
    config = _resolve_paths(config, base, explicit_store="store" in data)
    if config.provider.script_file is not None:
        config = _load_script_file(config, config.provider.script_file)
    problems = _check(config)
    if problems:
        raise ConfigError(source, problems)
    config = _normalize_script_keys(config)
    config._source = source
    config._base_dir = base
    return config


def with_store(config: Config, url: str) -> Config:
    """``config`` with its ``store`` replaced by ``url`` (a command line's ``--store``).

    A relative SQLite path stays relative to the current directory. Raises :class:`ConfigError`
    (key ``store``) for a URL of an unknown kind.
    """
    try:
        check_store_url(url)
    except ValueError as exc:
        raise ConfigError(config.source, [("store", str(exc))]) from None
    return config.model_copy(update={"store": url})


def _absolute(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path


def _resolve_paths(config: Config, base: Path, *, explicit_store: bool) -> Config:
    update: dict[str, Any] = {"python_path": tuple(_absolute(base, p) for p in config.python_path)}
    if config.workspace is not None:
        update["workspace"] = config.workspace.model_copy(
            update={"path": _absolute(base, config.workspace.path)}
        )
    if config.provider.script_file is not None:
        update["provider"] = config.provider.model_copy(
            update={"script_file": _absolute(base, config.provider.script_file)}
        )
    store = config.store
    if explicit_store and store.startswith("sqlite:///") and not store.startswith("sqlite:////"):
        relative = store.removeprefix("sqlite:///")
        if relative and not relative.startswith(":memory:"):
            update["store"] = "sqlite:///" + str(base / relative)
    return config.model_copy(update=update)


def _load_script_file(config: Config, path: Path) -> Config:
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(path, [("", "no such file (provider.scriptFile)")]) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(path, [("", f"cannot be read as JSON: {exc}")]) from None
    else:
        data = _read_toml(path)
    try:
        parsed = _ScriptFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(path, problems_of(exc)) from None
    if parsed.script is None and parsed.scripts is None:
        raise ConfigError(path, [("", "a script file needs 'script' or 'scripts'")])
    provider = config.provider.model_copy(update={"script": parsed.script, "scripts": parsed.scripts})
    return config.model_copy(update={"provider": provider})


def expert_key_of(name: str, expert: ExpertConfig) -> str:
    """The key of ``[experts."name"]``: ``name@version``."""
    return f"{name}@{expert.version}"


def expert_definition(name: str, expert: ExpertConfig, *, tools: tuple[str, ...] = ()) -> ExpertDefinition:
    """The definition of ``[experts."name"]`` with the Python tool names ``tools`` (known only once
    their modules are imported). Skill ``rule``s are appended to the instruction."""
    rules = [f"- {skill_name}: {skill.rule}" for skill_name, skill in expert.skills.items() if skill.rule]
    instruction = expert.instruction
    if rules:
        instruction = instruction.rstrip() + "\n\nSkill rules:\n" + "\n".join(rules)
    return ExpertDefinition(
        key=expert_key_of(name, expert),
        instruction=instruction,
        tools=tools,
        description=expert.description,
        tags=expert.tags,
        interactive_tools=tuple(
            InteractiveToolSpec(
                name=tool_name, description=tool.description, input_schema=tool.input_json_schema
            )
            for skill in expert.skills.values()
            if isinstance(skill, InteractiveSkill)
            for tool_name, tool in skill.tools.items()
        ),
        delegates=expert.delegates,
        tool_timeout=expert.tool_timeout,
        output=_output_of(name, expert),
    )


def _output_of(name: str, expert: ExpertConfig) -> OutputSpec | None:
    """The output spec of an expert's ``outputJsonSchema`` (named by its ``title``, else by the
    expert's name), or ``None``."""
    schema = expert.output_json_schema
    if schema is None:
        return None
    title = schema.get("title")
    return output_spec(schema, title if isinstance(title, str) and title else name)


def _check(config: Config) -> list[ConfigProblem]:
    """The checks that span tables: names, delegates and script keys resolve within the file."""
    problems: list[ConfigProblem] = []
    registry = ExpertRegistry()
    definitions: dict[str, ExpertDefinition] = {}
    for name, expert in config.experts.items():
        where = format_key(["experts", name])
        try:
            parsed = parse_expert_key(name)
        except InvalidExpertKey as exc:
            problems.append((where, str(exc)))
            continue
        if parsed.version is not None or parsed.tag is not None:
            problems.append((where, "the table name is the expert's name; put the version in 'version'"))
            continue
        try:
            definition = expert_definition(name, expert)
        except ValidationError as exc:
            problems.extend((where, message) for _, message in problems_of(exc))
            continue
        definitions[name] = definition
        registry.add(definition)
    for name, definition in definitions.items():
        for index, key in enumerate(definition.delegates):
            if key not in registry:
                problems.append(
                    (format_key(["experts", name, "delegates", index]), f"no expert {key!r} in this file")
                )
    for key in config.provider.scripts or {}:
        if key != "*" and key not in registry:
            problems.append((format_key(["provider", "scripts", key]), f"no expert {key!r} in this file"))
    return problems


def _normalize_script_keys(config: Config) -> Config:
    """Script keys may name an expert as the file does (``analyst``); the provider sees full keys."""
    scripts = config.provider.scripts
    if not scripts:
        return config
    registry = ExpertRegistry(expert_definition(n, e) for n, e in config.experts.items())
    normalized: dict[str, tuple[TurnConfig, ...]] = {}
    for key, turns in scripts.items():
        expert = registry.get(key) if key != "*" else None
        normalized[expert.key if expert is not None else key] = turns
    provider = config.provider.model_copy(update={"scripts": normalized})
    return config.model_copy(update={"provider": provider})
