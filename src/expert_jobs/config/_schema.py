"""The configuration file's schema: one pydantic model per TOML table (see ``docs/configuration.md``).

The expert tables follow perstack.toml (``[experts."name"]`` with ``version``, ``description``,
``instruction``, ``delegates``, ``tags`` and ``skills``); the rest configures the runtime, the store,
the provider, the worker, the server and the applications allowed to call the API.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    field_validator,
    model_validator,
)

from expert_jobs.config._base import ConfigModel
from expert_jobs.config._turns import TurnConfig
from expert_jobs.domain.errors import UnknownModel
from expert_jobs.domain.ids import ResourceId
from expert_jobs.domain.models import DEFAULT_MODEL, ModelCatalogue
from expert_jobs.domain.output import output_spec
from expert_jobs.domain.wire import MAX_RETRIES_LIMIT, MAX_STEPS_LIMIT
from expert_jobs.engine.files import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES, DEFAULT_MAX_TOTAL_BYTES
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID, DEFAULT_ORGANIZATION_ID

__all__ = [
    "DEFAULT_STORE_URL",
    "MCP_SKILL_TYPES",
    "PROVIDER_NAMES",
    "REAL_PROVIDERS",
    "SKILL_TAGS",
    "ApplicationConfig",
    "Config",
    "EngineConfig",
    "ExpertConfig",
    "InteractiveSkill",
    "InteractiveToolConfig",
    "KeyHash",
    "McpHttpSkill",
    "McpStdioSkill",
    "Number",
    "ProviderConfig",
    "ProviderSetting",
    "PythonSkill",
    "ServerConfig",
    "Skill",
    "SystemKeyConfig",
    "Whole",
    "WorkerConfig",
    "WorkspaceConfig",
    "check_store_url",
]

DEFAULT_STORE_URL = "sqlite:///expert-jobs.db"
"""The embedded default store: ``expert-jobs.db`` in the current working directory."""

REAL_PROVIDERS = ("anthropic", "google", "openai", "deepseek")
"""Provider names served by the official SDK adapters (through the provider registry)."""

PROVIDER_NAMES = ("auto", *REAL_PROVIDERS, "scripted", "test")
"""Values of ``[provider] providerName``."""

SKILL_TAGS = frozenset(
    {"pythonSkill", "python", "interactiveSkill", "mcpStdioSkill", "mcpStreamableHttpSkill"}
)
"""Values of a skill's ``type`` that expert-jobs runs."""

MCP_SKILL_TYPES = frozenset({"mcpSseSkill"})
"""perstack.toml skill types that expert-jobs does not run (MCP's deprecated SSE transport)."""
_SKILL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")

_KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[\w.-]+)?(\+[\w.-]+)?$", re.ASCII)


def _check_hash(value: str) -> str:
    if not _KEY_HASH.fullmatch(value):
        hint = " (this looks like a key itself: store only its hash)" if value.startswith("ej") else ""
        raise ValueError(f"expected 'sha256:' and 64 hex digits, as `expert-jobs keys create` prints{hint}")
    return value


KeyHash = Annotated[str, AfterValidator(_check_hash)]
"""The stored form of an API or system key: ``sha256:<64 hex digits>``."""


def _no_bool_number(value: Any) -> Any:
    # Before pydantic, which would read true as 1.
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


def _no_bool_whole(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a whole number, not true or false")
    return value


Number = Annotated[float, BeforeValidator(_no_bool_number), Strict(), Field(allow_inf_nan=False)]
"""A finite TOML number (integer or float); not a boolean, not a string, not ``inf`` or ``nan``."""

Whole = Annotated[int, BeforeValidator(_no_bool_whole), Strict()]
"""A TOML integer; not a boolean, a float or a string."""


def _seconds_or_false(value: Any, meaning: str) -> Any:
    """``false``, or a positive finite number of seconds: ``true``, ``0``, a negative number,
    ``inf``/``nan`` and a string are refused here, before pydantic, which would read ``0`` as
    ``false``, ``true`` as ``1`` and ``"5"`` as ``5``."""
    if value is False:
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ValueError(f"must be a positive number of seconds, or false for {meaning}")
    return value


def _schema_object(value: Any) -> dict[str, Any]:
    """A JSON schema given as a JSON string (perstack.toml's way) or as a TOML table, as a dict."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON schema object (a JSON string or a table)")
    return value


class InteractiveToolConfig(ConfigModel):
    """One interactive tool: the job pauses until a person (or client) answers the call."""

    description: str = Field("", max_length=2048)
    input_json_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description="A JSON schema object, as a JSON string (perstack.toml) or as a TOML table.",
    )

    @field_validator("input_json_schema", mode="before")
    @classmethod
    def _parse_schema(cls, value: Any) -> Any:
        value = _schema_object(value)
        if value.get("type", "object") != "object":
            raise ValueError(f"the input schema's type must be 'object', got {value.get('type')!r}")
        return value


class InteractiveSkill(ConfigModel):
    """``type = "interactiveSkill"``: tools answered by a person, each with a JSON input schema."""

    type: Literal["interactiveSkill"]
    description: str = ""
    rule: str | None = None
    tools: dict[str, InteractiveToolConfig] = Field(min_length=1)


class PythonSkill(ConfigModel):
    """``type = "pythonSkill"`` (or ``"python"``): Python functions (or ``Tool`` objects) of a module.

    Without ``pick``, the module's ``__all__`` if it has one, else every public function defined in
    it and every ``Tool`` it holds; ``omit`` leaves some out.
    """

    type: Literal["pythonSkill", "python"]
    description: str = ""
    rule: str | None = None
    module: str
    pick: tuple[str, ...] | None = None
    omit: tuple[str, ...] = ()

    @field_validator("module")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if not _MODULE.fullmatch(value):
            raise ValueError(f"{value!r} is not a dotted module path like 'my_package.tools'")
        return value


def _tool_names(value: tuple[str, ...] | None) -> tuple[str, ...] | None:
    if value is not None and not all(value):
        raise ValueError("tool names must not be empty")
    return value


class McpStdioSkill(ConfigModel):
    """``type = "mcpStdioSkill"`` (perstack.toml): the tools of an MCP server run as a local process
    (``command`` with ``args``), spoken to over stdio; started at the first job that needs it."""

    type: Literal["mcpStdioSkill"]
    description: str = ""
    rule: str | None = None
    command: str = Field(min_length=1)
    args: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    required_env: tuple[str, ...] = Field(
        (), description="Variables of this process's environment passed on to the server (all must be set)."
    )
    pick: Annotated[tuple[str, ...] | None, AfterValidator(_tool_names)] = None
    omit: tuple[str, ...] = ()
    lazy_init: StrictBool = Field(
        True, description="Accepted for perstack.toml; servers always start lazily."
    )


class McpHttpSkill(ConfigModel):
    """``type = "mcpStreamableHttpSkill"``: the tools of a remote MCP server over streamable HTTP at
    ``endpoint``, sent ``headers`` with every request."""

    type: Literal["mcpStreamableHttpSkill"]
    description: str = ""
    rule: str | None = None
    endpoint: str = Field(pattern=r"^https?://\S+$")
    headers: dict[str, str] = Field(default_factory=dict)
    pick: Annotated[tuple[str, ...] | None, AfterValidator(_tool_names)] = None
    omit: tuple[str, ...] = ()


Skill = Annotated[PythonSkill | InteractiveSkill | McpStdioSkill | McpHttpSkill, Field(discriminator="type")]
"""A skill of an expert (tagged by ``type``)."""


class ExpertConfig(ConfigModel):
    """``[experts."name"]``: an expert in the perstack.toml shape; its key is ``name@version``."""

    version: str = "1.0.0"
    description: str = Field("", max_length=2048)
    instruction: str = Field(min_length=1, max_length=20_480)
    delegates: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    tool_timeout: Number | None = Field(
        None, gt=0, description="Seconds one call of the expert's Python tools may take."
    )
    min_runtime_version: str | None = Field(None, description="Accepted for perstack.toml; not checked.")
    skills: dict[str, Skill] = Field(default_factory=dict)
    output_json_schema: dict[str, Any] | None = Field(
        None,
        description=(
            "The JSON schema the expert's final answer must match (structured output), as a JSON "
            "string or as a TOML table; see docs/providers.md."
        ),
    )

    @field_validator("output_json_schema", mode="before")
    @classmethod
    def _output_schema(cls, value: Any) -> Any:
        value = _schema_object(value)
        # Checked here, so a schema the engine could not validate answers against never loads.
        output_spec(value)
        return value

    @field_validator("version")
    @classmethod
    def _semver(cls, value: str) -> str:
        if not _SEMVER.fullmatch(value):
            raise ValueError(f"{value!r} is not a semantic version like '1.0.0'")
        return value

    @field_validator("skills", mode="before")
    @classmethod
    def _supported_skills(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for name, skill in value.items():
                kind = skill.get("type") if isinstance(skill, dict) else None
                if kind in MCP_SKILL_TYPES:
                    raise ValueError(
                        f"skill {name!r}: type {kind!r} (MCP's deprecated SSE transport) is not supported; "
                        "use type = 'mcpStreamableHttpSkill' with the server's streamable HTTP endpoint"
                    )
                if kind in ("mcpStdioSkill", "mcpStreamableHttpSkill") and not _SKILL_NAME.fullmatch(name):
                    raise ValueError(f"skill {name!r}: an MCP skill's name must match {_SKILL_NAME.pattern}")
        return value


class ProviderSetting(ConfigModel):
    """``[provider.setting]`` (perstack.toml): ``baseUrl`` of the provider named by ``providerName``."""

    base_url: str | None = None


class ProviderConfig(ConfigModel):
    """``[provider]``: who answers the model calls.

    ``providerName``: ``auto`` (default: every model id goes to its provider's SDK adapter, keys
    from the application or the environment), one of ``anthropic``/``google``/``openai``/``deepseek``
    (the same routing; ``setting.baseUrl`` applies to that provider), ``scripted`` (offline: plays
    ``script`` / ``scripts`` / ``scriptFile``) or ``test`` (offline: calls every tool once, then
    answers ``finalText``). ``streamChunkChars`` and ``streamDelay`` shape a scripted provider's
    stream: characters per text delta, and seconds before each delta (to watch it stream).
    """

    provider_name: Literal["auto", "anthropic", "google", "openai", "deepseek", "scripted", "test"] = "auto"
    setting: ProviderSetting = Field(default_factory=ProviderSetting)
    base_urls: dict[Literal["anthropic", "google", "openai", "deepseek"], str] = Field(default_factory=dict)
    script: tuple[TurnConfig, ...] | None = None
    scripts: dict[str, tuple[TurnConfig, ...]] | None = None
    script_file: Path | None = None
    final_text: str | None = None
    stream_chunk_chars: int = Field(16, ge=1, le=100_000)
    stream_delay: float = Field(0.0, ge=0, le=10)

    @model_validator(mode="after")
    def _consistent(self) -> ProviderConfig:
        name = self.provider_name
        scripted = self.script is not None or self.scripts is not None or self.script_file is not None
        if name != "scripted" and scripted:
            raise ValueError(f"script, scripts and scriptFile need providerName = 'scripted' (not {name!r})")
        if name == "scripted" and not scripted:
            raise ValueError("providerName = 'scripted' needs script, scripts or scriptFile")
        if self.script_file is not None and (self.script is not None or self.scripts is not None):
            raise ValueError("give scriptFile or inline script/scripts, not both")
        if self.final_text is not None and name != "test":
            raise ValueError("finalText is for providerName = 'test'")
        if name != "scripted" and ("stream_chunk_chars" in self.model_fields_set or self.stream_delay):
            raise ValueError("streamChunkChars and streamDelay are for providerName = 'scripted'")
        if self.setting.base_url is not None and name not in REAL_PROVIDERS:
            raise ValueError(
                f"setting.baseUrl needs providerName to be one of {', '.join(REAL_PROVIDERS)}; "
                "use baseUrls = { provider = url } otherwise"
            )
        return self

    def resolved_base_urls(self) -> dict[str, str]:
        """Base URL per provider name (``setting.baseUrl`` applied to ``providerName``)."""
        urls: dict[str, str] = {name: url for name, url in self.base_urls.items()}
        if self.setting.base_url is not None:
            urls[self.provider_name] = self.setting.base_url
        return urls


class EngineConfig(ConfigModel):
    """``[engine]``: the engine's timing knobs and limits, and the identity of jobs started without
    the API.

    An expiry of ``false`` means never; a limit of ``false`` (``toolTimeout``, ``jobTimeout``,
    ``streamTimeout``, ``maxToolResultChars``) means none. Durations are finite numbers of seconds;
    ``0``, a negative number or ``true`` where a positive one (or ``false``) is expected is an error
    naming the key.
    ``priceFinalCheckpoint`` (``true``/``false``, default ``true``) is
    ``RuntimeSettings.price_final_checkpoint``, and ``toolThreadsOnLoopCpu`` (default ``false``)
    ``RuntimeSettings.tool_threads_on_loop_cpu``.
    """

    backoff_base: Number = Field(1.0, ge=0)
    backoff_max: Number = Field(60.0, ge=0)
    retry_after_max: Number = Field(600.0, ge=0)
    lease_seconds: Number = Field(30.0, gt=0)
    queued_expiry_seconds: Number | Literal[False] = 24 * 3600.0
    paused_expiry_seconds: Number | Literal[False] = 7 * 24 * 3600.0
    max_output_tokens: Whole | None = Field(None, gt=0)
    organization_id: ResourceId = DEFAULT_ORGANIZATION_ID
    application_id: ResourceId = DEFAULT_APPLICATION_ID
    tool_timeout: float | Literal[False] = 300.0
    tool_threads: Whole = Field(32, ge=1)
    tool_threads_on_loop_cpu: StrictBool = False
    job_timeout: float | Literal[False] = False
    stream_timeout: float | Literal[False] = 3600.0
    max_tool_result_chars: int | Literal[False] = Field(100_000)
    price_final_checkpoint: StrictBool = True

    @field_validator("tool_timeout", "job_timeout", "stream_timeout", "max_tool_result_chars", mode="before")
    @classmethod
    def _limit_or_false(cls, value: Any) -> Any:
        # Before pydantic's lax parsing, which would read 0 as false and true as 1.
        if value is True or (not isinstance(value, bool) and isinstance(value, int | float) and value <= 0):
            raise ValueError("must be a positive number, or false for no limit")
        return value

    @field_validator("tool_timeout", "job_timeout", "stream_timeout")
    @classmethod
    def _finite(cls, value: float | Literal[False]) -> float | Literal[False]:
        if value is not False and not math.isfinite(value):
            raise ValueError("must be a finite number of seconds, or false for no limit")
        return value

    @field_validator("queued_expiry_seconds", "paused_expiry_seconds", mode="before")
    @classmethod
    def _expiry_or_false(cls, value: Any) -> Any:
        # Before pydantic's lax parsing, which would read 0 as false (never) and true as 1.
        return _seconds_or_false(value, "never")


class WorkerConfig(ConfigModel):
    """``[worker]``: the worker ``expert-jobs serve`` runs next to the HTTP server."""

    concurrency: Whole = Field(16, ge=1)
    poll_interval: Number = Field(0.5, gt=0)
    sweep_interval: Number = Field(5.0, gt=0)
    worker_id: str | None = None


class ServerConfig(ConfigModel):
    """``[server]``: where ``expert-jobs serve`` listens, and the HTTP server's limits.

    The limits are named like the fields of ``ServerLimits`` (``transports/cli/_serve.py``), which
    reads them from here; unset (``None``), the server's default applies. The command line's
    options override them.
    """

    host: str = "127.0.0.1"
    port: Whole = Field(8000, ge=0, le=65535)
    max_body_bytes: Whole | None = Field(None, ge=1)
    max_header_bytes: Whole | None = Field(None, ge=1)
    timeout_keep_alive: Whole | None = Field(None, ge=1)
    limit_concurrency: Whole | None = Field(None, ge=1)
    backlog: Whole | None = Field(None, ge=1, le=65_535)
    timeout_graceful_shutdown: Whole | None = Field(None, ge=1)
    proxy_headers: StrictBool | None = None
    forwarded_allow_ips: str | None = None

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _addresses(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not all(isinstance(each, str) for each in value):
                raise ValueError("must be a string or an array of strings")
            value = ",".join(value)
        if not isinstance(value, str):
            return value
        if not value.strip():
            raise ValueError("must list at least one address or network, or '*' for any")
        entries = [each.strip() for each in value.split(",")]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            if entry == "*":
                raise ValueError("'*' (trust any address) must be alone")
            try:
                if "/" in entry:
                    ipaddress.ip_network(entry)
                else:
                    ipaddress.ip_address(entry)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (like 10.0.0.0/8, host bits zero); "
                    "give addresses or networks separated by commas, or '*' for any"
                ) from None
        return ",".join(entries)


class WorkspaceConfig(ConfigModel):
    """``[workspace]``: the directory of the jobs' files (one directory per application) and the
    bounds of what one request may give (``engine.files.Workspace``'s limits).

    ``workspace = "dir"`` is short for ``[workspace] path = "dir"``.
    """

    path: Path
    max_files: Whole = Field(DEFAULT_MAX_FILES, ge=1)
    max_file_bytes: Whole = Field(DEFAULT_MAX_FILE_BYTES, ge=1)
    max_total_bytes: Whole = Field(DEFAULT_MAX_TOTAL_BYTES, ge=1)

    @field_validator("path", mode="before")
    @classmethod
    def _a_directory(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a directory (an empty path is not one)")
        return value


class SystemKeyConfig(ConfigModel):
    """``[[systemKeys]]``: one system key, by its hash (an array of tables: append one anywhere in
    the file, as many as needed)."""

    key_hash: KeyHash
    name: str = ""


class ApplicationConfig(ConfigModel):
    """``[applications."<applicationId>"]``: an application allowed to call the API.

    ``providerKeys`` values are keys, or ``env:NAME`` to read the environment variable ``NAME``.
    """

    organization_id: ResourceId = DEFAULT_ORGANIZATION_ID
    name: str = ""
    key_hashes: tuple[KeyHash, ...] = ()
    provider_keys: dict[Literal["anthropic", "google", "openai", "deepseek"], str] = Field(
        default_factory=dict
    )


class Config(ConfigModel):
    """The whole configuration file. Build a runtime with :func:`expert_jobs.config.build_runtime`.

    Top-level job defaults use perstack.toml's names (``model``, ``temperature``, ``maxSteps``,
    ``maxRetries``, ``timeout`` in milliseconds per generation, ``reasoningBudget``). Relative paths
    (``workspace``, ``pythonPath``, ``provider.scriptFile``, a relative SQLite ``store``) are relative
    to the file's directory once loaded with :func:`expert_jobs.config.load_config`.
    """

    model: str = DEFAULT_MODEL
    temperature: Number = Field(0.0, ge=0, le=1)
    max_steps: Whole = Field(100, ge=1, le=MAX_STEPS_LIMIT)
    max_retries: Whole = Field(5, ge=0, le=MAX_RETRIES_LIMIT)
    timeout: Number = Field(300_000.0, gt=0)
    reasoning_budget: Literal["minimal", "low", "medium", "high"] | Annotated[Whole, Field(gt=0)] | None = (
        None
    )
    store: str = DEFAULT_STORE_URL
    workspace: WorkspaceConfig | None = None
    python_path: tuple[Path, ...] = ()
    system_key_hashes: tuple[KeyHash, ...] = ()
    system_keys: tuple[SystemKeyConfig, ...] = ()
    provider: ProviderConfig = Field(default_factory=ProviderConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    applications: dict[ResourceId, ApplicationConfig] = Field(default_factory=dict)
    experts: dict[str, ExpertConfig] = Field(default_factory=dict)

    _source: Path | None = PrivateAttr(None)
    _base_dir: Path | None = PrivateAttr(None)

    @property
    def source(self) -> Path | None:
        """The file this configuration was read from (``None``: given as data, or the defaults)."""
        return self._source

    @property
    def base_dir(self) -> Path:
        """The directory relative paths were resolved against (the file's; else the current one)."""
        return self._base_dir or Path.cwd()

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        try:
            ModelCatalogue().get_info(value)
        except UnknownModel as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("provider", mode="before")
    @classmethod
    def _provider_shorthand(cls, value: Any) -> Any:
        # ``provider = "scripted"`` is short for ``[provider] providerName = "scripted"``.
        return {"providerName": value} if isinstance(value, str) else value

    @field_validator("workspace", mode="before")
    @classmethod
    def _workspace_shorthand(cls, value: Any) -> Any:
        # ``workspace = "dir"`` is short for ``[workspace] path = "dir"``.
        if isinstance(value, str | Path):
            return {"path": value}
        if value is not None and not isinstance(value, dict | WorkspaceConfig):
            raise ValueError("must be a directory path, or a [workspace] table with path, maxFiles, ...")
        return value

    @property
    def every_system_key_hash(self) -> tuple[str, ...]:
        """The system key hashes of ``systemKeyHashes`` and of every ``[[systemKeys]]``, in file
        order, each once."""
        hashes = (*self.system_key_hashes, *(key.key_hash for key in self.system_keys))
        return tuple(dict.fromkeys(hashes))

    @field_validator("store")
    @classmethod
    def _store_scheme(cls, value: str) -> str:
        return check_store_url(value)


def check_store_url(value: str) -> str:
    """``value`` if it names a store expert-jobs can open (``memory://``, ``sqlite:///path``,
    ``postgresql://...``); else ``ValueError`` saying what is expected."""
    if not value.startswith(("memory://", "sqlite://", "postgresql://", "postgres://")):
        raise ValueError(f"{value!r}: expected memory://, sqlite:///path or postgresql://user@host/db")
    return value
