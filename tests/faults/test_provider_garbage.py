"""A provider answering garbage over real HTTP (issue 12, "no job stuck"): a local server on 127.0.0.1
answers every call with a 200 that is not a valid answer (not JSON, JSON of the wrong shape, absurd
usage figures). Each adapter reaches it through its real SDK and real sockets; each job ends
``failed`` within a bounded time with error kind ``invalid_response`` after ``maxRetries`` retries,
and with a final checkpoint. No traffic leaves the loopback interface."""

from __future__ import annotations

import asyncio
import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import pytest

from expert_jobs import JobStatus, Runtime, RuntimeSettings, Usage
from expert_jobs.ports.provider import Provider
from expert_jobs.providers._common import MAX_CALL_TOKENS
from expert_jobs.providers.anthropic import AnthropicProvider
from expert_jobs.providers.deepseek import DeepSeekProvider
from expert_jobs.providers.gemini import GeminiProvider
from expert_jobs.providers.openai import OpenAIProvider
from tests.providers.kit import fixture, without_sdk_model_warnings

BOUND = 60.0  # seconds a job may take to fail here (each takes well under one)
MAX_RETRIES = 2


def error_data(error: Any) -> dict[str, Any]:
    """A job's or checkpoint's error as plain data (camelCase keys), whether it is kept as a
    ``JobError`` or as that data."""
    assert error is not None
    return dict(error.to_data()) if hasattr(error, "to_data") else dict(error)


@dataclass
class Garbage:
    """What the server answers to every request, and the paths it was asked for."""

    content_type: str = "application/json"
    body: bytes = b"{}"
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    garbage: Garbage

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        garbage = self.server.garbage  # type: ignore[attr-defined]
        with garbage.lock:
            garbage.paths.append(self.path)
            body, content_type = garbage.body, garbage.content_type
        self.send_response(200)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output quiet
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, Garbage]]:
    """A threaded HTTP server on 127.0.0.1 (a free port), stopped after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    garbage = Garbage()
    httpd.garbage = garbage  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", garbage
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


Make = Callable[[str, httpx2.AsyncClient], Provider]
ADAPTERS: dict[str, tuple[str, str, Make, tuple[str, str]]] = {
    # provider: (fixture folder, model, adapter at the server's URL, where its usage keeps input tokens)
    "openai": (
        "openai",
        "gpt-5",
        lambda url, http: OpenAIProvider(base_url=f"{url}/v1", api_key="x", http_client=http),
        ("usage", "input_tokens"),
    ),
    "anthropic": (
        "anthropic",
        "claude-haiku-4-5",
        lambda url, http: AnthropicProvider(base_url=url, api_key="x", http_client=http),
        ("usage", "input_tokens"),
    ),
    "google": (
        "gemini",
        "gemini-2.5-flash",
        lambda url, http: GeminiProvider(base_url=f"{url}/", api_key="x", http_client=http),
        ("usageMetadata", "promptTokenCount"),
    ),
    "deepseek": (
        "deepseek",
        "deepseek-chat",
        lambda url, http: DeepSeekProvider(base_url=url, api_key="x", http_client=http),
        ("usage", "prompt_tokens"),
    ),
}


def garbage_body(kind: str, provider: str) -> tuple[str, bytes]:
    """The content type and body of one kind of garbage for ``provider``."""
    if kind == "not JSON":
        return "text/html", b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"
    if kind == "wrong shape":
        return "application/json", json.dumps({"object": "list", "data": [1, 2, 3]}).encode()
    folder, _, _, (section, name) = ADAPTERS[provider]
    body = copy.deepcopy(fixture(folder, "text"))
    body[section][name] = MAX_CALL_TOKENS * 1000  # a trillion tokens for one short answer
    return "application/json", json.dumps(body).encode()


@pytest.mark.parametrize("kind", ["not JSON", "wrong shape", "absurd usage"])
@pytest.mark.parametrize("provider", list(ADAPTERS))
async def test_a_provider_answering_garbage_fails_the_job_after_its_retries(
    server: tuple[str, Garbage], provider: str, kind: str
) -> None:
    url, garbage = server
    garbage.content_type, garbage.body = garbage_body(kind, provider)
    _, model, make, _ = ADAPTERS[provider]
    # trust_env=False: a proxy configured in the environment must not see loopback traffic.
    async with httpx2.AsyncClient(trust_env=False, timeout=30.0) as http:
        runtime = Runtime(providers=make(url, http), settings=RuntimeSettings(backoff_base=0.0))
        runtime.add_expert("plain", "You answer in one word.")

        with without_sdk_model_warnings():
            job = await asyncio.wait_for(
                runtime.run("plain", "Is the sky blue?", model=model, max_retries=MAX_RETRIES), BOUND
            )

    assert job.status is JobStatus.FAILED, job.error
    assert job.error is not None and error_data(job.error)["kind"] == "invalid_response", job.error
    assert error_data(job.error)["provider"] == provider
    assert (
        f"{MAX_RETRIES + 1} consecutive failed attempts exhausted maxRetries={MAX_RETRIES}"
        in (error_data(job.error)["message"])
    )
    assert len(garbage.paths) == MAX_RETRIES + 1  # one call per attempt: the SDK itself did not retry
    assert job.usage == Usage()  # garbage counts no tokens
    checkpoints, _ = await runtime.store.list_checkpoints(job.id)
    final = checkpoints[-1]
    assert (final.kind, final.status) == ("stop", JobStatus.FAILED)
    assert final.error is not None and error_data(final.error)["kind"] == "invalid_response"
