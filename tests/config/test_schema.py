"""Every key of the configuration file: its default, its validation and where it ends up."""

from __future__ import annotations

from pathlib import Path

import pytest

from expert_jobs.config import (
    DEFAULT_STORE_URL,
    ConfigError,
    build_settings,
    find_config,
    load_config,
    parse_config,
    with_store,
)
from expert_jobs.domain.models import DEFAULT_MODEL
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID, DEFAULT_ORGANIZATION_ID, RuntimeSettings
from tests.config.conftest import Load, WriteFile


def test_defaults() -> None:
    config = parse_config({})
    assert config.model == DEFAULT_MODEL == "claude-sonnet-4-5"
    assert (config.temperature, config.max_steps, config.max_retries) == (0.0, 100, 5)
    assert config.timeout == 300_000
    assert config.reasoning_budget is None
    assert config.store == DEFAULT_STORE_URL == "sqlite:///expert-jobs.db"
    assert config.workspace is None
    assert config.python_path == ()
    assert config.system_key_hashes == () and config.system_keys == ()
    assert config.applications == {} and config.experts == {}
    assert config.provider.provider_name == "auto"
    assert config.provider.setting.base_url is None
    assert config.provider.base_urls == {}
    assert (config.provider.script, config.provider.scripts, config.provider.script_file) == (
        None,
        None,
        None,
    )
    assert config.provider.final_text is None
    engine = config.engine
    assert (engine.backoff_base, engine.backoff_max, engine.retry_after_max) == (1.0, 60.0, 600.0)
    assert engine.lease_seconds == 30.0
    assert engine.queued_expiry_seconds == 86_400.0
    assert engine.paused_expiry_seconds == 604_800.0
    assert engine.max_output_tokens is None
    assert (engine.organization_id, engine.application_id) == (
        DEFAULT_ORGANIZATION_ID,
        DEFAULT_APPLICATION_ID,
    )
    worker = config.worker
    assert (worker.concurrency, worker.poll_interval, worker.sweep_interval, worker.worker_id) == (
        16,
        0.5,
        5.0,
        None,
    )
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8000)
    assert config.source is None
    assert config.base_dir == Path.cwd()


def test_the_default_settings_are_the_runtimes_defaults() -> None:
    settings = build_settings(parse_config({}))
    defaults = RuntimeSettings()
    for name in (
        "default_model", "default_max_steps", "default_max_retries", "default_temperature",
        "generation_timeout", "backoff_base", "backoff_max", "retry_after_max", "lease_seconds",
        "queued_expiry_seconds", "paused_expiry_seconds", "max_output_tokens", "organization_id",
        "application_id", "tool_timeout", "tool_threads", "job_timeout", "max_tool_result_chars",
    ):  # fmt: skip
        assert getattr(settings, name) == getattr(defaults, name), name


def test_top_level_job_defaults_and_engine_reach_the_settings(load: Load) -> None:
    config = load(
        """
        model = "gpt-5-mini"
        temperature = 0.25
        maxSteps = 7
        maxRetries = 0
        timeout = 1500
        reasoningBudget = "high"

        [engine]
        backoffBase = 0.5
        backoffMax = 4
        retryAfterMax = 30
        leaseSeconds = 12
        queuedExpirySeconds = false
        pausedExpirySeconds = 60
        maxOutputTokens = 1024
        organizationId = "org000000000000000000001"
        applicationId = "app000000000000000000001"
        """
    )
    settings = build_settings(config)
    assert (settings.default_model, settings.default_temperature) == ("gpt-5-mini", 0.25)
    assert (settings.default_max_steps, settings.default_max_retries) == (7, 0)
    assert settings.generation_timeout == 1.5  # milliseconds in the file, seconds in the settings
    assert settings.reasoning is not None and settings.reasoning.effort == "high"
    assert (settings.backoff_base, settings.backoff_max, settings.retry_after_max) == (0.5, 4.0, 30.0)
    assert settings.lease_seconds == 12.0
    assert settings.queued_expiry_seconds is None  # false: never
    assert settings.paused_expiry_seconds == 60.0
    assert settings.max_output_tokens == 1024
    assert (settings.organization_id, settings.application_id) == (
        "org000000000000000000001",
        "app000000000000000000001",
    )


def test_the_engine_limits_reach_the_settings(load: Load) -> None:
    settings = build_settings(
        load("[engine]\ntoolTimeout = 45\ntoolThreads = 4\njobTimeout = 900\nmaxToolResultChars = 2000\n")
    )
    assert (settings.tool_timeout, settings.tool_threads) == (45.0, 4)
    assert (settings.job_timeout, settings.max_tool_result_chars) == (900.0, 2000)
    unlimited = build_settings(load("[engine]\ntoolTimeout = false\nmaxToolResultChars = false\n"))
    assert unlimited.tool_timeout is unlimited.job_timeout is unlimited.max_tool_result_chars is None
    defaults = build_settings(load(""))
    assert defaults.stream_timeout == 3600.0
    assert build_settings(load("[engine]\nstreamTimeout = 90\n")).stream_timeout == 90.0
    assert build_settings(load("[engine]\nstreamTimeout = false\n")).stream_timeout is None
    assert (defaults.tool_timeout, defaults.tool_threads) == (300.0, 32)
    assert (defaults.job_timeout, defaults.max_tool_result_chars) == (None, 100_000)
    assert defaults.price_final_checkpoint is True
    assert defaults.tool_threads_on_loop_cpu is False
    assert build_settings(load("[engine]\ntoolThreadsOnLoopCpu = true\n")).tool_threads_on_loop_cpu is True


def test_price_final_checkpoint_reaches_the_settings(load: Load) -> None:
    assert build_settings(load("[engine]\npriceFinalCheckpoint = false\n")).price_final_checkpoint is False
    assert build_settings(load("[engine]\npriceFinalCheckpoint = false\n")).price_final_checkpoint is False


def test_a_reasoning_budget_in_tokens(load: Load) -> None:
    settings = build_settings(load("reasoningBudget = 2048"))
    assert settings.reasoning is not None and settings.reasoning.budget_tokens == 2048


def test_worker_and_server(load: Load) -> None:
    config = load(
        """
        [worker]
        concurrency = 3
        pollInterval = 0.1
        sweepInterval = 2
        workerId = "w-1"

        [server]
        host = "0.0.0.0"
        port = 9000
        """
    )
    assert (config.worker.concurrency, config.worker.poll_interval) == (3, 0.1)
    assert (config.worker.sweep_interval, config.worker.worker_id) == (2.0, "w-1")
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9000)


EXPIRY = "must be a positive number of seconds, or false for never"


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("maxStep = 3", "", "unknown key 'maxStep' (did you mean 'maxSteps'?)"),
        ("maxSteps = 0", "maxSteps", "greater than or equal to 1"),
        ("maxRetries = -1", "maxRetries", "greater than or equal to 0"),
        ("temperature = 1.5", "temperature", "less than or equal to 1"),
        ("timeout = 0", "timeout", "greater than 0"),
        ('model = "gpt-0"', "model", "gpt-0"),
        ('reasoningBudget = "huge"', "reasoningBudget", ""),
        ('store = "redis://x"', "store", "expected memory://, sqlite:///path or postgresql://"),
        ("[engine]\nleaseSeconds = 0", "engine.leaseSeconds", "greater than 0"),
        ("[engine]\nqueuedExpirySeconds = -5", "engine.queuedExpirySeconds", "false for never"),
        # 0 is not "never" (TOML's 0 == false in pydantic's literal check read it so), nor is true 1 s.
        ("[engine]\nqueuedExpirySeconds = 0", "engine.queuedExpirySeconds", EXPIRY),
        ("[engine]\nqueuedExpirySeconds = 0.0", "engine.queuedExpirySeconds", EXPIRY),
        ("[engine]\nqueuedExpirySeconds = true", "engine.queuedExpirySeconds", EXPIRY),
        ("[engine]\nqueuedExpirySeconds = inf", "engine.queuedExpirySeconds", EXPIRY),
        ('[engine]\nqueuedExpirySeconds = "60"', "engine.queuedExpirySeconds", EXPIRY),
        ("[engine]\npausedExpirySeconds = 0", "engine.pausedExpirySeconds", EXPIRY),
        ("[engine]\npausedExpirySeconds = true", "engine.pausedExpirySeconds", EXPIRY),
        ("[engine]\npausedExpirySeconds = nan", "engine.pausedExpirySeconds", EXPIRY),
        ("[engine]\nleaseSeconds = true", "engine.leaseSeconds", "must be a number, not true or false"),
        ("[engine]\nleaseSeconds = inf", "engine.leaseSeconds", "finite number"),
        ("[engine]\nbackoffBase = true", "engine.backoffBase", "must be a number, not true or false"),
        ("[engine]\nbackoffMax = inf", "engine.backoffMax", "finite number"),
        ('[engine]\nretryAfterMax = "600"', "engine.retryAfterMax", "valid number"),
        ("[engine]\nmaxOutputTokens = true", "engine.maxOutputTokens", "whole number, not true or false"),
        ("[engine]\ntoolThreads = true", "engine.toolThreads", "whole number, not true or false"),
        ("[engine]\ntoolThreadsOnLoopCpu = 1", "engine.toolThreadsOnLoopCpu", "valid boolean"),
        ("[worker]\npollInterval = true", "worker.pollInterval", "must be a number, not true or false"),
        ("[worker]\nsweepInterval = inf", "worker.sweepInterval", "finite number"),
        ("[worker]\nconcurrency = true", "worker.concurrency", "whole number, not true or false"),
        ("[server]\nport = true", "server.port", "whole number, not true or false"),
        ("maxSteps = true", "maxSteps", "whole number, not true or false"),
        ("maxSteps = 1000001", "maxSteps", "less than or equal to 1000000"),
        ("maxRetries = 101", "maxRetries", "less than or equal to 100"),
        ("temperature = true", "temperature", "must be a number, not true or false"),
        ("timeout = inf", "timeout", "finite number"),
        ("reasoningBudget = true", "reasoningBudget", "not true or false"),
        (
            '[experts."a"]\ninstruction = "x"\ntoolTimeout = true',
            'experts."a".toolTimeout',
            "not true or false",
        ),
        ('[engine]\napplicationId = "Short"', "engine.applicationId", ""),
        ("[engine]\nbackoff = 1", "engine", "unknown key 'backoff'"),
        ("[engine]\ntoolTimeout = 0", "engine.toolTimeout", "or false for no limit"),
        ("[engine]\ntoolTimeout = true", "engine.toolTimeout", "or false for no limit"),
        ("[engine]\njobTimeout = inf", "engine.jobTimeout", "finite number of seconds"),
        ("[engine]\ntoolThreads = 0", "engine.toolThreads", "greater than or equal to 1"),
        ("[engine]\nmaxToolResultChars = 0", "engine.maxToolResultChars", "or false for no limit"),
        ("[engine]\nmaxToolResultChars = 2.5", "engine.maxToolResultChars", "valid integer"),
        ('[engine]\npriceFinalCheckpoint = "yes"', "engine.priceFinalCheckpoint", "valid boolean"),
        ("[engine]\npriceFinalCheckpoint = 1", "engine.priceFinalCheckpoint", "valid boolean"),
        ('[experts."a"]\ninstruction = "x"\ntoolTimeout = -1', 'experts."a".toolTimeout', "greater than 0"),
        ("[worker]\nconcurrency = 0", "worker.concurrency", "greater than or equal to 1"),
        ("[worker]\npollInterval = 0", "worker.pollInterval", "greater than 0"),
        ("[server]\nport = 70000", "server.port", "less than or equal to 65535"),
        ('[server]\nport = "http"', "server.port", "valid integer"),
        ('systemKeyHashes = ["abc"]', "systemKeyHashes[0]", "expected 'sha256:' and 64 hex digits"),
        ('systemKeyHashes = ["ejk_secret"]', "systemKeyHashes[0]", "this looks like a key itself"),
        ('[[systemKeys]]\nkeyHash = "abc"', "systemKeys[0].keyHash", "expected 'sha256:' and 64 hex digits"),
        ('[[systemKeys]]\nkeyHash = "ejs_secret"', "systemKeys[0].keyHash", "this looks like a key itself"),
        ('[[systemKeys]]\nname = "ops"', "systemKeys[0].keyHash", "missing (this key is required)"),
        ('[[systemKeys]]\nkey = "ejs_x"', "systemKeys[0]", "unknown key 'key'"),
        ('systemKeys = { keyHash = "x" }', "systemKeys", "valid tuple"),
    ],
)
def test_errors_name_the_file_and_the_key(write: WriteFile, text: str, key: str, message: str) -> None:
    path = write(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert error.source == path
    assert str(error).startswith(f"{path}: ")
    keys = [k for k, _ in error.problems]
    assert key in keys
    assert message in dict(error.problems)[key]


def test_several_problems_are_all_reported(write: WriteFile) -> None:
    path = write("maxSteps = 0\ntemperature = 3\n[server]\nport = -1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert {k for k, _ in caught.value.problems} == {"maxSteps", "temperature", "server.port"}
    assert f"{path}: 3 problems: " in str(caught.value)


def test_unreadable_files(write: WriteFile, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write("model = \n"))
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(write("a = 1\na = 2\n"))


def test_store_urls_and_relative_paths(write: WriteFile, tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    config = load_config(
        write('store = "sqlite:///data/jobs.db"\nworkspace = "files"\npythonPath = ["lib"]\n', "conf/x.toml")
    )
    assert config.store == f"sqlite:///{sub / 'data' / 'jobs.db'}"  # relative to the file's directory
    assert config.workspace is not None and config.workspace.path == sub / "files"
    assert config.python_path == (sub / "lib",)
    assert config.base_dir == sub
    assert load_config(write('store = "sqlite:////abs/jobs.db"\n')).store == "sqlite:////abs/jobs.db"
    assert load_config(write('store = "sqlite:///:memory:"\n')).store == "sqlite:///:memory:"
    assert load_config(write('store = "memory://"\n')).store == "memory://"
    pg = "postgresql://postgres@127.0.0.1:5432/test"
    assert load_config(write(f'store = "{pg}"\n')).store == pg
    # Without a `store` key, the default stays relative to the working directory.
    assert load_config(write("")).store == DEFAULT_STORE_URL


def test_with_store_replaces_the_store_and_keeps_the_source(write: WriteFile) -> None:
    path = write('store = "memory://"\n')
    config = with_store(load_config(path), "sqlite:///other.db")
    assert config.store == "sqlite:///other.db"
    assert config.source == path
    with pytest.raises(ConfigError) as caught:
        with_store(config, "mysql://x")
    assert caught.value.problems[0][0] == "store"


def test_find_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EXPERT_JOBS_CONFIG", raising=False)
    assert find_config() is None
    (tmp_path / "expert-jobs.toml").write_text("")
    assert find_config() == Path("expert-jobs.toml")
    monkeypatch.setenv("EXPERT_JOBS_CONFIG", "/somewhere/else.toml")
    assert find_config() == Path("/somewhere/else.toml")
    assert find_config("given.toml") == Path("given.toml")


def test_expiries_and_durations_that_are_valid(load: Load) -> None:
    settings = build_settings(load("[engine]\nqueuedExpirySeconds = 0.5\npausedExpirySeconds = 1\n"))
    assert (settings.queued_expiry_seconds, settings.paused_expiry_seconds) == (0.5, 1.0)
    never = build_settings(load("[engine]\nqueuedExpirySeconds = false\npausedExpirySeconds = false\n"))
    assert never.queued_expiry_seconds is never.paused_expiry_seconds is None
    config = load("maxSteps = 1000000\nmaxRetries = 100\ntemperature = 1\n[engine]\nleaseSeconds = 5\n")
    assert (config.max_steps, config.max_retries, config.temperature) == (1_000_000, 100, 1.0)
    assert config.engine.lease_seconds == 5.0


def test_system_keys_from_anywhere_add_up_with_system_key_hashes(load: Load) -> None:
    from expert_jobs.config import build_keyring
    from expert_jobs.service.applications import SystemPrincipal, hash_key

    config = load(
        f"""
        systemKeyHashes = ["{hash_key("ejs_one")}", "{hash_key("ejs_two")}"]

        [[systemKeys]]
        keyHash = "{hash_key("ejs_three")}"
        name = "ops"

        [engine]
        leaseSeconds = 10

        [[systemKeys]]
        keyHash = "{hash_key("ejs_two")}"
        """
    )
    assert [key.name for key in config.system_keys] == ["ops", ""]
    assert config.engine.lease_seconds == 10.0  # the table after a [[systemKeys]] entry is intact
    assert config.every_system_key_hash == tuple(hash_key(k) for k in ("ejs_one", "ejs_two", "ejs_three"))
    ring = build_keyring(config)
    for key in ("ejs_one", "ejs_two", "ejs_three"):
        assert isinstance(ring.authenticate(key), SystemPrincipal), key
    assert ring.authenticate("ejs_four") is None
