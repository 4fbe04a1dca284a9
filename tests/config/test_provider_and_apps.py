"""``[provider]`` (real, scripted from inline turns or a script file, test) and ``[applications]``
(keys stored as hashes, provider keys from the file or the environment)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from expert_jobs.config import (
    ConfigError,
    build_keyring,
    build_provider,
    build_runtime,
    build_store,
    build_worker,
    load_config,
    parse_config,
    provider_keys,
)
from expert_jobs.domain.status import JobStatus
from expert_jobs.providers.registry import ProviderRegistry
from expert_jobs.providers.scripted import ScriptedProvider, TestProvider
from expert_jobs.service.applications import Application, SystemPrincipal, generate_key, hash_key
from expert_jobs.stores.memory import MemoryStore
from tests.config.conftest import Load, WriteFile

EXPERTS = """
[experts."main"]
instruction = "i"
delegates = ["aide"]

[experts."aide"]
instruction = "i"
"""


async def test_inline_scripts_per_expert_with_usage_thinking_and_failures(load: Load) -> None:
    config = load(
        """
        store = "memory://"
        maxRetries = 2
        [engine]
        backoffBase = 0
        [provider]
        providerName = "scripted"

        [[provider.scripts."main"]]
        text = "asking aide"
        thinking = "hmm"
        toolCalls = [{ name = "aide", arguments = { query = "help" }, id = "c1" }]
        usage = { inputTokens = 10, outputTokens = 5, reasoningTokens = 2, cachedInputTokens = 4 }

        [[provider.scripts."main"]]
        fail = "rate_limit"
        message = "slow down"
        retryAfter = 0

        [[provider.scripts."main"]]
        text = "done"
        delay = 0.01

        [[provider.scripts."aide"]]
        text = "helped"
        """
        + EXPERTS
    )
    provider = build_provider(config)
    assert isinstance(provider, ScriptedProvider)
    assert config.provider.scripts is not None
    assert set(config.provider.scripts) == {"main@1.0.0", "aide@1.0.0"}  # names became keys
    runtime = build_runtime(config)
    job = await runtime.run("main@1.0.0", "go")
    assert job.status is JobStatus.COMPLETED
    assert job.total_steps == 3  # main, aide, main
    assert job.usage.input_tokens >= 10 and job.usage.cached_input_tokens >= 4
    assert job.usage.reasoning_tokens >= 2


async def test_one_script_for_every_expert_and_a_star_entry(load: Load) -> None:
    one = load('[provider]\nproviderName = "scripted"\n[[provider.script]]\ntext = "hello"\n' + EXPERTS)
    job = await build_runtime(one, store=MemoryStore()).run("aide", "go")
    assert job.status is JobStatus.COMPLETED
    star = load(
        '[provider]\nproviderName = "scripted"\n[[provider.scripts."*"]]\ntext = "any"\n'
        '[[provider.scripts."aide"]]\ntext = "aide"\n' + EXPERTS
    )
    assert star.provider.scripts is not None
    assert set(star.provider.scripts) == {"*", "aide@1.0.0"}


@pytest.mark.parametrize("suffix", [".toml", ".json"])
async def test_a_script_file_relative_to_the_config(write: WriteFile, suffix: str) -> None:
    scripts = {"scripts": {"aide": [{"text": "from the file"}]}}
    if suffix == ".json":
        write(json.dumps(scripts), "scripts/turns.json")
    else:
        write('[[scripts."aide"]]\ntext = "from the file"\n', "scripts/turns.toml")
    config = load_config(
        write(
            f'store = "memory://"\n[provider]\nproviderName = "scripted"\n'
            f'scriptFile = "scripts/turns{suffix}"\n' + EXPERTS
        )
    )
    assert config.provider.script_file is not None and config.provider.script_file.is_absolute()
    job = await build_runtime(config).run("aide", "go")
    assert job.status is JobStatus.COMPLETED


@pytest.mark.parametrize(
    ("provider", "key", "message"),
    [
        ('providerName = "scripted"', "provider", "needs script, scripts or scriptFile"),
        (
            'providerName = "openai"\n[[provider.script]]\ntext = "x"',
            "provider",
            "need providerName = 'scripted'",
        ),
        (
            'providerName = "test"\nsetting = { baseUrl = "http://x" }',
            "provider",
            "setting.baseUrl needs providerName",
        ),
        ('providerName = "auto"\nfinalText = "x"', "provider", "finalText is for providerName = 'test'"),
        ('providerName = "magic"', "provider.providerName", "Input should be"),
        (
            'providerName = "scripted"\n[[provider.script]]\nthinking = "only"',
            "provider.script[0]",
            "a turn needs",
        ),
        (
            'providerName = "scripted"\n[[provider.script]]\nfail = "rate_limit"\ntext = "x"',
            "provider.script[0]",
            "a 'fail' turn takes no text",
        ),
        ('providerName = "scripted"\n[[provider.script]]\nfail = "meteor"', "provider.script[0].fail", ""),
        (
            'providerName = "scripted"\n[[provider.script]]\ntoolCalls = []',
            "provider.script[0]",
            "at least one",
        ),
        (
            'providerName = "scripted"\n[[provider.scripts."ghost"]]\ntext = "x"',
            'provider.scripts."ghost"',
            "no expert",
        ),
        (
            'baseUrls = { mistral = "http://x" }',
            'provider.baseUrls."mistral" (the name)',
            "'anthropic', 'google'",
        ),
    ],
)
def test_provider_errors(write: WriteFile, provider: str, key: str, message: str) -> None:
    path = write(f"[provider]\n{provider}\n" + EXPERTS)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert message in problems[key]


def test_script_file_errors(write: WriteFile) -> None:
    path = write('[provider]\nproviderName = "scripted"\nscriptFile = "nope.json"\n')
    with pytest.raises(ConfigError, match="no such file"):
        load_config(path)
    write("{}", "empty.json")
    with pytest.raises(ConfigError, match="needs 'script' or 'scripts'"):
        load_config(write('[provider]\nproviderName = "scripted"\nscriptFile = "empty.json"\n'))
    write('[[script]]\ntext = "x"\n', "s.toml")
    both = '[provider]\nproviderName = "scripted"\nscriptFile = "s.toml"\n[[provider.script]]\ntext = "x"\n'
    with pytest.raises(ConfigError, match="give scriptFile or inline script/scripts, not both"):
        load_config(write(both))


async def test_the_test_provider(load: Load) -> None:
    config = load(
        'store = "memory://"\n[provider]\nproviderName = "test"\nfinalText = "all good"\n' + EXPERTS
    )
    provider = build_provider(config)
    assert isinstance(provider, TestProvider)
    assert parse_config({"provider": "test"}).provider.provider_name == "test"  # the shorthand


def test_real_providers_go_through_the_registry_with_base_urls(load: Load) -> None:
    config = load(
        """
        [provider]
        providerName = "openai"
        setting = { baseUrl = "http://localhost:9999/v1" }
        baseUrls = { anthropic = "http://localhost:9998" }
        """
    )
    assert isinstance(build_provider(config), ProviderRegistry)
    assert config.provider.resolved_base_urls() == {
        "openai": "http://localhost:9999/v1",
        "anthropic": "http://localhost:9998",
    }
    assert isinstance(build_provider(parse_config({})), ProviderRegistry)


def test_applications_keys_and_system_keys(load: Load) -> None:
    key, other, system = generate_key(), generate_key(), generate_key(system=True)
    config = load(
        f"""
        systemKeyHashes = ["{hash_key(system)}"]
        [applications."app000000000000000000001"]
        organizationId = "org000000000000000000001"
        name = "Billing"
        keyHashes = ["{hash_key(key)}", "{hash_key(other)}"]
        providerKeys = {{ anthropic = "sk-ant-literal" }}

        [applications."app000000000000000000002"]
        """
    )
    ring = build_keyring(config)
    app = ring.authenticate(key)
    assert isinstance(app, Application)
    assert (app.id, app.organization_id, app.name) == (
        "app000000000000000000001",
        "org000000000000000000001",
        "Billing",
    )
    assert app.provider_keys == {"anthropic": "sk-ant-literal"}
    assert ring.authenticate(other) == app
    assert isinstance(ring.authenticate(system), SystemPrincipal)
    assert ring.authenticate("ejk_wrong") is None
    second = ring.applications["app000000000000000000002"]
    assert (second.organization_id, second.key_hashes) == ("localorganization0000000", ())


def test_provider_keys_from_the_environment(load: Load, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load(
        """
        [applications."app000000000000000000001"]
        providerKeys = { openai = "env:MY_OPENAI_KEY", google = "literal" }
        """
    )
    monkeypatch.setenv("MY_OPENAI_KEY", "sk-from-env")
    assert provider_keys(config) == {
        "app000000000000000000001": {"openai": "sk-from-env", "google": "literal"}
    }
    monkeypatch.delenv("MY_OPENAI_KEY")
    with pytest.raises(ConfigError) as caught:
        provider_keys(config)
    assert caught.value.problems == (
        (
            'applications."app000000000000000000001".providerKeys."openai"',
            "environment variable MY_OPENAI_KEY is not set",
        ),
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[applications."short"]', 'applications."short" (the name)'),
        (
            '[applications."app000000000000000000001"]\nkeyHashes = ["md5:00"]',
            'applications."app000000000000000000001".keyHashes[0]',
        ),
        (
            '[applications."app000000000000000000001"]\nproviderKeys = { mistral = "x" }',
            'applications."app000000000000000000001".providerKeys."mistral" (the name)',
        ),
        (
            '[applications."app000000000000000000001"]\norganizationId = "x"',
            'applications."app000000000000000000001".organizationId',
        ),
        ('[applications."app000000000000000000001"]\nkeys = []', 'applications."app000000000000000000001"'),
    ],
)
def test_application_errors(write: WriteFile, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(text + "\n"))
    assert key in dict(caught.value.problems), caught.value.problems


async def test_store_and_worker(load: Load, tmp_path: Path) -> None:
    config = load(
        'store = "sqlite:///jobs.db"\n[worker]\nconcurrency = 2\npollInterval = 0.2\nworkerId = "w9"\n'
    )
    store = build_store(config)
    try:
        assert await store.get("nothing") is None
    finally:
        await store.close()
    assert (tmp_path / "jobs.db").exists()
    runtime = build_runtime(parse_config({"store": "memory://"}))
    worker = build_worker(config, runtime)
    assert worker.concurrency == 2
    assert worker.worker_id == "w9"
