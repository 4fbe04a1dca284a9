"""The configuration file: one TOML file describing experts (in the perstack.toml shape), their
Python and interactive tools, the provider (real or offline), the store, the workspace, runtime
settings, the worker, the HTTP server and the applications allowed to call the API.

::

    config = load_config("expert-jobs.toml")   # ConfigError names the file and each bad key
    runtime = build_runtime(config)            # store, provider, experts, tools, settings
    keyring = build_keyring(config)            # applications, key hashes, provider keys
    service = build_service(config)            # all of it, with the worker: what the API serves

Every key is described in ``docs/configuration.md``.
"""

from expert_jobs.config._build import (
    build_experts,
    build_keyring,
    build_mcp_servers,
    build_provider,
    build_runtime,
    build_service,
    build_settings,
    build_store,
    build_worker,
    build_workspace,
    provider_keys,
)
from expert_jobs.config._errors import ConfigError, ConfigProblem
from expert_jobs.config._load import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    expert_definition,
    expert_key_of,
    find_config,
    load_config,
    parse_config,
    with_store,
)
from expert_jobs.config._schema import (
    DEFAULT_STORE_URL,
    ApplicationConfig,
    Config,
    EngineConfig,
    ExpertConfig,
    InteractiveSkill,
    InteractiveToolConfig,
    McpHttpSkill,
    McpStdioSkill,
    ProviderConfig,
    PythonSkill,
    ServerConfig,
    SystemKeyConfig,
    WorkerConfig,
    WorkspaceConfig,
)
from expert_jobs.config._turns import TurnConfig

__all__ = [
    "CONFIG_ENV_VAR",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_STORE_URL",
    "ApplicationConfig",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "EngineConfig",
    "ExpertConfig",
    "InteractiveSkill",
    "InteractiveToolConfig",
    "McpHttpSkill",
    "McpStdioSkill",
    "ProviderConfig",
    "PythonSkill",
    "ServerConfig",
    "SystemKeyConfig",
    "TurnConfig",
    "WorkerConfig",
    "WorkspaceConfig",
    "build_experts",
    "build_keyring",
    "build_mcp_servers",
    "build_provider",
    "build_runtime",
    "build_service",
    "build_settings",
    "build_store",
    "build_worker",
    "build_workspace",
    "expert_definition",
    "expert_key_of",
    "find_config",
    "load_config",
    "parse_config",
    "provider_keys",
    "with_store",
]
