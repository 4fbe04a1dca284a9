"""``expert-jobs serve``: the app of the configuration under uvicorn, host and port from the file or
the options (uvicorn.run is replaced: the test checks the wiring, not a listening socket)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

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

    def fake_app(config: Any) -> Any:
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
