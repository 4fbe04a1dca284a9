"""``expert-jobs serve``: the app of the configuration under uvicorn, host and port from the file or
the options, and the server's limits (uvicorn.run is replaced: the test checks the wiring, not a
listening socket; tests/http/test_hostile.py runs the same options on a real socket)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn

from expert_jobs.config import parse_config
from expert_jobs.domain.errors import UsageError
from expert_jobs.transports.cli._serve import ServerLimits, server_limits, uvicorn_options
from tests.cli.conftest import Invoke


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **options: Any) -> None:
        calls.append({"app": app, **options})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_serve_uses_the_files_server_table(
    invoke: Invoke, write_config: Callable[..., Path], served: list[dict[str, Any]]
) -> None:
    write_config(
        """
        store = "memory://"
        provider = "test"
        [server]
        host = "0.0.0.0"
        port = 9123
        [experts."x"]
        instruction = "x"
        """
    )
    out = invoke("serve")
    assert out.code == 0, out.stderr
    assert len(served) == 1
    assert (served[0]["host"], served[0]["port"]) == ("0.0.0.0", 9123)
    assert callable(served[0]["app"])  # an ASGI app


def test_options_override_host_port_and_store(invoke: Invoke, served: list[dict[str, Any]]) -> None:
    out = invoke("serve", "--host", "::1", "--port", "0", "--store", "memory://")
    assert out.code == 0, out.stderr
    assert (served[0]["host"], served[0]["port"]) == ("::1", 0)


def test_the_app_comes_from_app_from_config(
    invoke: Invoke, served: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    import expert_jobs.transports.http as http

    seen: list[Any] = []
    sentinel = object()

    def fake_app(config: Any, **options: Any) -> Any:
        seen.append(config)
        return sentinel

    monkeypatch.setattr(http, "app_from_config", fake_app)
    out = invoke("serve", "--store", "memory://")
    assert out.code == 0, out.stderr
    assert served[0]["app"] is sentinel
    assert seen[0].store == "memory://"
    assert (served[0]["host"], served[0]["port"]) == ("127.0.0.1", 8000)


def test_a_bad_config_is_an_error_not_a_traceback(
    invoke: Invoke, write_config: Callable[..., Path], served: list[dict[str, Any]]
) -> None:
    write_config("[server]\nport = 70000\n")
    out = invoke("serve")
    assert out.code == 2
    assert "server.port" in out.stderr
    assert served == []


def test_serve_runs_with_bounded_limits_by_default(invoke: Invoke, served: list[dict[str, Any]]) -> None:
    out = invoke("serve", "--store", "memory://")
    assert out.code == 0, out.stderr
    options = served[0]
    assert options["app"].state.api.max_body_bytes == 1_048_576
    assert {k: options[k] for k in options if k not in ("app", "host", "port")} == {
        "http": "h11",  # the protocol that bounds the request head
        "ws": "none",
        "lifespan": "on",  # a service that cannot start stops the server
        "h11_max_incomplete_event_size": 16_384,
        "timeout_keep_alive": 5,
        "limit_concurrency": 1_000,
        "backlog": 2_048,
        "timeout_graceful_shutdown": 10,  # open checkpoint streams do not hold a shutdown forever
        "proxy_headers": True,
        "server_header": False,
    }


def test_serve_options_change_the_limits(invoke: Invoke, served: list[dict[str, Any]]) -> None:
    out = invoke(
        "serve",
        "--store",
        "memory://",
        "--max-body-bytes",
        "2048",
        "--limit-concurrency",
        "50",
        "--timeout-keep-alive",
        "30",
        "--timeout-graceful-shutdown",
        "60",
        "--no-proxy-headers",
        "--forwarded-allow-ips",
        "10.0.0.0/8",
    )
    assert out.code == 0, out.stderr
    options = served[0]
    assert options["app"].state.api.max_body_bytes == 2048
    assert (options["limit_concurrency"], options["timeout_keep_alive"]) == (50, 30)
    assert (options["timeout_graceful_shutdown"], options["proxy_headers"]) == (60, False)
    assert options["forwarded_allow_ips"] == "10.0.0.0/8"


def test_serve_refuses_a_zero_limit(invoke: Invoke, served: list[dict[str, Any]]) -> None:
    out = invoke("serve", "--store", "memory://", "--max-body-bytes", "0")
    assert out.code == 2 and served == []


def test_limits_come_from_the_server_table_when_it_has_them() -> None:
    config = SimpleNamespace(server=SimpleNamespace(max_body_bytes=4096, limit_concurrency=7, backlog=None))
    limits = server_limits(config, limit_concurrency=9)  # type: ignore[arg-type]
    assert (limits.max_body_bytes, limits.limit_concurrency, limits.backlog) == (4096, 9, 2_048)
    assert server_limits(parse_config({})) == ServerLimits()
    with pytest.raises(UsageError, match=r"server\.timeout_keep_alive: must be at least 1"):
        ServerLimits(timeout_keep_alive=0)
    assert "forwarded_allow_ips" not in uvicorn_options(ServerLimits(), host="h", port=1)
