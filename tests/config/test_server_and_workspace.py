"""``[server]``'s limits reach ``expert-jobs serve`` (uvicorn's options and the app), and
``[workspace]``'s limits reach the runtime's :class:`Workspace`."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from expert_jobs import JobQuery, Reply, ScriptedProvider
from expert_jobs.config import (
    CONFIG_ENV_VAR,
    ConfigError,
    WorkspaceConfig,
    build_runtime,
    build_workspace,
    load_config,
    parse_config,
)
from expert_jobs.engine.files import (
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_TOTAL_BYTES,
    FileRefused,
)
from expert_jobs.engine.settings import DEFAULT_APPLICATION_ID
from expert_jobs.transports.cli import app as cli
from expert_jobs.transports.cli._serve import ServerLimits, server_limits, uvicorn_options
from tests.config.conftest import WriteFile

SERVER = """
store = "memory://"
provider = "test"

[server]
host = "127.0.0.2"
port = 9321
maxBodyBytes = 4096
maxHeaderBytes = 8192
timeoutKeepAlive = 65
limitConcurrency = 40
backlog = 128
timeoutGracefulShutdown = 3
proxyHeaders = false
forwardedAllowIps = ["10.0.0.0/8", "fd00::/8", "192.168.1.5"]

[experts."x"]
instruction = "x"
"""

CONFIGURED = ServerLimits(
    max_body_bytes=4096,
    max_header_bytes=8192,
    timeout_keep_alive=65,
    limit_concurrency=40,
    backlog=128,
    timeout_graceful_shutdown=3,
    proxy_headers=False,
    forwarded_allow_ips="10.0.0.0/8,fd00::/8,192.168.1.5",
)


# ---------------------------------------------------------------------------------------- [server]


def test_the_server_tables_limits_become_the_servers_limits(write: WriteFile) -> None:
    config = load_config(write(SERVER))
    assert server_limits(config) == CONFIGURED
    options = uvicorn_options(server_limits(config), host=config.server.host, port=config.server.port)
    assert {
        key: options[key] for key in options if key not in ("http", "ws", "lifespan", "server_header")
    } == {
        "host": "127.0.0.2",
        "port": 9321,
        "h11_max_incomplete_event_size": 8192,
        "timeout_keep_alive": 65,
        "limit_concurrency": 40,
        "backlog": 128,
        "timeout_graceful_shutdown": 3,
        "proxy_headers": False,
        "forwarded_allow_ips": "10.0.0.0/8,fd00::/8,192.168.1.5",
    }
    # The command line's options win over the file; the file's keys stay for the others.
    overridden = server_limits(config, limit_concurrency=7, max_body_bytes=100, proxy_headers=True)
    assert (overridden.limit_concurrency, overridden.max_body_bytes, overridden.proxy_headers) == (
        7,
        100,
        True,
    )
    assert (overridden.backlog, overridden.max_header_bytes) == (128, 8192)


def test_unset_server_limits_are_the_servers_defaults() -> None:
    config = parse_config({})
    assert config.server.model_dump(exclude={"host", "port"}) == dict.fromkeys(
        (
            "max_body_bytes", "max_header_bytes", "timeout_keep_alive", "limit_concurrency", "backlog",
            "timeout_graceful_shutdown", "proxy_headers", "forwarded_allow_ips",
        )
    )  # fmt: skip
    assert server_limits(config) == ServerLimits()


def test_app_from_config_takes_max_body_bytes_from_the_file(write: WriteFile) -> None:
    from expert_jobs.transports.http import app_from_config

    config = load_config(write(SERVER))
    assert app_from_config(config).state.api.max_body_bytes == 4096
    assert app_from_config(config, max_body_bytes=10).state.api.max_body_bytes == 10
    assert app_from_config(parse_config({"store": "memory://"})).state.api.max_body_bytes == 1 << 20


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """``uvicorn.run``'s calls (nothing listens), in a clean working directory."""
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    return calls


def _serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["serve", *args], catch_exceptions=False)
    return result.exit_code, result.stderr


def test_expert_jobs_serve_runs_with_the_files_limits(write: WriteFile, served: list[dict[str, Any]]) -> None:
    path = write(SERVER)
    code, stderr = _serve("--config", str(path))
    assert code == 0, stderr
    options = served[0]
    assert options["app"].state.api.max_body_bytes == 4096
    assert options == {
        **uvicorn_options(CONFIGURED, host="127.0.0.2", port=9321),
        "app": options["app"],
    }
    code, stderr = _serve("--config", str(path), "--max-body-bytes", "2048", "--limit-concurrency", "9")
    assert code == 0, stderr
    assert served[1]["app"].state.api.max_body_bytes == 2048
    assert (served[1]["limit_concurrency"], served[1]["backlog"]) == (9, 128)


def test_expert_jobs_serve_refuses_a_bad_limit_naming_the_key(
    write: WriteFile, served: list[dict[str, Any]]
) -> None:
    code, stderr = _serve("--config", str(write("[server]\nbacklog = 0\n")))
    assert code == 2
    assert "server.backlog" in stderr
    assert served == []


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("maxBodyBytes = 0", "server.maxBodyBytes", "greater than or equal to 1"),
        ("maxBodyBytes = true", "server.maxBodyBytes", "must be a whole number, not true or false"),
        ('maxBodyBytes = "1MB"', "server.maxBodyBytes", "valid integer"),
        ("maxHeaderBytes = -1", "server.maxHeaderBytes", "greater than or equal to 1"),
        ("timeoutKeepAlive = 1.5", "server.timeoutKeepAlive", "valid integer"),
        ("limitConcurrency = false", "server.limitConcurrency", "must be a whole number, not true or false"),
        ("limitConcurrency = 0", "server.limitConcurrency", "greater than or equal to 1"),
        ("backlog = 100000", "server.backlog", "less than or equal to 65535"),
        ("timeoutGracefulShutdown = 0", "server.timeoutGracefulShutdown", "greater than or equal to 1"),
        ('proxyHeaders = "yes"', "server.proxyHeaders", "valid boolean"),
        ("proxyHeaders = 1", "server.proxyHeaders", "valid boolean"),
        ('forwardedAllowIps = "10.0.0.1/8"', "server.forwardedAllowIps", "'10.0.0.1/8' is not an IP address"),
        (
            'forwardedAllowIps = "proxy.local"',
            "server.forwardedAllowIps",
            "'proxy.local' is not an IP address",
        ),
        (
            'forwardedAllowIps = "*, 10.0.0.5"',
            "server.forwardedAllowIps",
            "'*' (trust any address) must be alone",
        ),
        ('forwardedAllowIps = ""', "server.forwardedAllowIps", "at least one address"),
        ("forwardedAllowIps = [1]", "server.forwardedAllowIps", "a string or an array of strings"),
        ("maxBodyByte = 1", "server", "unknown key 'maxBodyByte' (did you mean 'maxBodyBytes'?)"),
    ],
)
def test_bad_server_limits_name_the_key(text: str, key: str, message: str) -> None:
    import tomllib

    with pytest.raises(ConfigError) as caught:
        parse_config(tomllib.loads(f"[server]\n{text}\n"))
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert message in problems[key]


def test_forwarded_allow_ips_forms() -> None:
    def allowed(value: Any) -> str | None:
        return parse_config({"server": {"forwardedAllowIps": value}}).server.forwarded_allow_ips

    assert allowed("*") == "*"
    assert allowed(" 10.0.0.5 , ::1") == "10.0.0.5,::1"
    assert allowed(["127.0.0.1"]) == "127.0.0.1"


# ------------------------------------------------------------------------------------- [workspace]


def test_the_workspace_shorthand_is_the_table_with_default_limits(write: WriteFile, tmp_path: Path) -> None:
    short = load_config(write('workspace = "files"\n'))
    table = load_config(write('[workspace]\npath = "files"\n'))
    assert short.workspace == table.workspace == WorkspaceConfig.model_validate({"path": tmp_path / "files"})
    assert short.workspace is not None
    assert (short.workspace.max_files, short.workspace.max_file_bytes, short.workspace.max_total_bytes) == (
        DEFAULT_MAX_FILES,
        DEFAULT_MAX_FILE_BYTES,
        DEFAULT_MAX_TOTAL_BYTES,
    )
    workspace = build_workspace(short)
    assert workspace is not None and workspace.root == tmp_path / "files"
    assert (workspace.max_files, workspace.max_file_bytes, workspace.max_total_bytes) == (
        DEFAULT_MAX_FILES,
        DEFAULT_MAX_FILE_BYTES,
        DEFAULT_MAX_TOTAL_BYTES,
    )
    assert build_workspace(parse_config({})) is None


async def test_the_workspace_tables_limits_bound_the_jobs_files(write: WriteFile, tmp_path: Path) -> None:
    files = tmp_path / "data" / DEFAULT_APPLICATION_ID
    files.mkdir(parents=True)
    for name, size in (("a.txt", 10), ("b.txt", 10), ("c.txt", 10), ("big.txt", 40)):
        (files / name).write_bytes(b"x" * size)
    config = load_config(
        write(
            textwrap.dedent(
                """
                store = "memory://"
                [workspace]
                path = "data"
                maxFiles = 2
                maxFileBytes = 32
                maxTotalBytes = 15
                [experts."reader"]
                instruction = "Read."
                """
            )
        )
    )
    runtime = build_runtime(config, providers=ScriptedProvider([Reply("read")]))
    try:
        workspace = runtime.workspace
        assert workspace is not None and workspace.root == tmp_path / "data"
        assert (workspace.max_files, workspace.max_file_bytes, workspace.max_total_bytes) == (2, 32, 15)
        refusals = {
            ("a.txt", "b.txt", "c.txt"): "at most 2 files may be given, got 3",
            ("big.txt",): "a file may hold at most 32 bytes",
            ("a.txt", "b.txt"): "at most 15 bytes together",
        }
        for names, why in refusals.items():
            with pytest.raises(FileRefused, match=why):
                await runtime.submit("reader", "q", names)
        assert (await runtime.store.list(JobQuery(DEFAULT_APPLICATION_ID)))[1] == 0
        job = await runtime.run("reader", "q", ["a.txt"])
        assert job.files == ("a.txt",)
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("workspace = 5", "workspace", "a directory path, or a [workspace] table"),
        ('workspace = ""', "workspace.path", "must name a directory"),
        ("[workspace]\nmaxFiles = 3", "workspace.path", "missing (this key is required)"),
        ('[workspace]\npath = "w"\nmaxFiles = 0', "workspace.maxFiles", "greater than or equal to 1"),
        ('[workspace]\npath = "w"\nmaxFileBytes = true', "workspace.maxFileBytes", "not true or false"),
        ('[workspace]\npath = "w"\nmaxTotalBytes = 1.5', "workspace.maxTotalBytes", "valid integer"),
        ('[workspace]\npath = "w"\nmaxFile = 3', "workspace", "did you mean 'maxFiles'?"),
    ],
)
def test_bad_workspace_keys_name_the_key(write: WriteFile, text: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(text + "\n"))
    problems = dict(caught.value.problems)
    assert key in problems, caught.value.problems
    assert message in problems[key]
