"""A mock HTTP API for provider tests: each SDK runs for real over an ``httpx2.MockTransport``.

``MockAPI`` serves queued responses (fixture bodies, error bodies, transport failures) and records
every request the SDK sent, decoded, so tests assert the wire shape of both directions.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2

from expert_jobs.domain.messages import Message, UserMessage
from expert_jobs.ports.provider import GenerationRequest, ReasoningSettings, ToolDeclaration

FIXTURES = Path(__file__).parent / "fixtures"

WEATHER = ToolDeclaration(
    "get_weather",
    "Current weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
TIME = ToolDeclaration("get_time", "Local time in a city.", {"properties": {"city": {"type": "string"}}})


def fixture(provider: str, name: str) -> Any:
    """The JSON body recorded in ``fixtures/<provider>/<name>.json``."""
    return json.loads((FIXTURES / provider / f"{name}.json").read_text())


def request(
    model: str,
    *messages: Message,
    tools: tuple[ToolDeclaration, ...] = (),
    temperature: float | None = 0.0,
    max_output_tokens: int | None = None,
    reasoning: ReasoningSettings | None = None,
    system: str = "You are terse.",
) -> GenerationRequest:
    """A generation request; the history defaults to one user question."""
    history = messages or (UserMessage.text("What is the weather in Paris?"),)
    return GenerationRequest(
        model,
        system,
        history,
        tools,
        temperature,
        max_output_tokens,
        reasoning,
        timeout=30.0,
    )


@dataclass(frozen=True)
class RawBody:
    """Bytes to answer with as they are."""

    content: bytes


@dataclass
class Sent:
    """One request the SDK sent."""

    method: str
    url: str
    headers: httpx2.Headers
    body: Any


class MockAPI:
    """Queued responses in, recorded requests out."""

    def __init__(self) -> None:
        self._queue: deque[tuple[int, Any, dict[str, str]] | str] = deque()
        self.sent: list[Sent] = []

    def reply(self, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> MockAPI:
        """Queue a JSON response."""
        self._queue.append((status, body, headers or {}))
        return self

    def raw(self, content: bytes, status: int = 200, content_type: str = "application/json") -> MockAPI:
        """Queue a response of exactly these bytes (a body that is not JSON, or not valid JSON)."""
        self._queue.append((status, RawBody(content), {"content-type": content_type}))
        return self

    def fail(self, kind: str) -> MockAPI:
        """Queue a transport failure: ``"connect"`` or ``"timeout"``."""
        self._queue.append(kind)
        return self

    def handle(self, req: httpx2.Request) -> httpx2.Response:
        """The mock transport's handler."""
        body = json.loads(req.content) if req.content else None
        self.sent.append(Sent(req.method, str(req.url), req.headers, body))
        item = self._queue.popleft()
        if item == "connect":
            raise httpx2.ConnectError("connection refused", request=req)
        if item == "timeout":
            raise httpx2.ReadTimeout("read timed out", request=req)
        assert not isinstance(item, str)
        status, payload, headers = item
        if isinstance(payload, RawBody):
            return httpx2.Response(status, content=payload.content, headers=headers)
        return httpx2.Response(status, json=payload, headers=headers)

    def client(self) -> httpx2.AsyncClient:
        """An ``httpx2.AsyncClient`` on this mock transport."""
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))

    @property
    def body(self) -> Any:
        """The JSON body of the last request."""
        return self.sent[-1].body


def anthropic_model_tables() -> list[dict[str, str] | list[str]]:
    """The ``anthropic`` SDK's own tables of models it warns about on every call (retiring models;
    models whose ``thinking.type=enabled`` is deprecated), as the installed release has them.

    They change with every SDK release, so tests empty them (``tests/providers/conftest.py``) and
    never depend on what they list. The tables are module globals of the Messages resources (read
    at call time); a release without them yields none.
    """
    import importlib

    tables: dict[int, dict[str, str] | list[str]] = {}
    for name in ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attribute in ("DEPRECATED_MODELS", "MODELS_TO_WARN_WITH_THINKING_ENABLED"):
            table = getattr(module, attribute, None)
            if isinstance(table, dict | list):
                tables[id(table)] = table
    return list(tables.values())


@contextmanager
def without_sdk_model_warnings() -> Iterator[None]:
    """Empty the SDK's model tables (see :func:`anthropic_model_tables`) and restore them after."""
    saved = [(table, table.copy()) for table in anthropic_model_tables()]
    for table, _ in saved:
        table.clear()
    try:
        yield
    finally:
        for table, copy in saved:
            table.clear()
            if isinstance(table, dict):
                table.update(copy)  # type: ignore[call-overload]
            else:
                table.extend(copy)  # type: ignore[arg-type]
