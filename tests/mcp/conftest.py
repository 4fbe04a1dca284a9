"""Fixtures: the test MCP server (``tests/mcp/server.py``) over stdio and over streamable HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from expert_jobs.engine.mcp import McpHttpServer, McpStdioServer
from expert_jobs.engine.runtime import Runtime
from expert_jobs.providers.scripted import ScriptedProvider

SERVER = str(Path(__file__).with_name("server.py"))


def stdio_server(name: str = "demo", **options: object) -> McpStdioServer:
    """The test server as a stdio MCP server (``env``, ``pick``, ``omit`` passed on)."""
    return McpStdioServer(name, sys.executable, [SERVER], **options)  # type: ignore[arg-type]


@pytest.fixture
async def closing() -> AsyncIterator[list[Runtime]]:
    """Runtimes appended here are closed after the test (their servers stopped)."""
    made: list[Runtime] = []
    yield made
    for runtime in made:
        await runtime.close()


@pytest.fixture
def runtime_with(closing: list[Runtime]):  # type: ignore[no-untyped-def]
    """Make a runtime on a scripted provider, closed after the test."""

    def make(*turns: object) -> Runtime:
        runtime = Runtime(providers=ScriptedProvider(list(turns)))
        closing.append(runtime)
        return runtime

    return make


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The test server over streamable HTTP on 127.0.0.1 (a subprocess for the module's tests)."""
    yield from _serve_http()


@pytest.fixture
def own_http_url() -> Iterator[str]:
    """A test server over streamable HTTP for one test (one that may crash it)."""
    yield from _serve_http()


def _serve_http() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, SERVER, "--http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the MCP test server over HTTP did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_server(url: str, name: str = "remote", **options: object) -> McpHttpServer:
    """The HTTP test server as an :class:`McpHttpServer`."""
    return McpHttpServer(name, url, **options)  # type: ignore[arg-type]
