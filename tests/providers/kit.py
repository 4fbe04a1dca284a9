"""A mock HTTP API for provider tests: each SDK runs for real over an ``httpx2.MockTransport``.

``MockAPI`` serves queued responses (fixture bodies, error bodies, transport failures) and records
every request the SDK sent, decoded, so tests assert the wire shape of both directions.
"""

from __future__ import annotations

import json
from collections import deque
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
        return httpx2.Response(status, json=payload, headers=headers)

    def client(self) -> httpx2.AsyncClient:
        """An ``httpx2.AsyncClient`` on this mock transport."""
        return httpx2.AsyncClient(transport=httpx2.MockTransport(self.handle))

    @property
    def body(self) -> Any:
        """The JSON body of the last request."""
        return self.sent[-1].body
