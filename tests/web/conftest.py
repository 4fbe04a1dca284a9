"""Helpers for the dashboard's tests: a service on an in-memory store with two applications and a
system key, the ASGI app of ``create_app`` over it, and signed-in clients."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from expert_jobs.config import build_service, parse_config
from expert_jobs.domain.job import Job
from expert_jobs.service import ExpertJobsService, generate_key, hash_key
from expert_jobs.transports.http import create_app

APP_A = "applicationaaaaaaaaaaaaa"
APP_B = "applicationbbbbbbbbbbbbb"
HOSTILE = "<script>alert('pwned')</script>"
"""Text that would run if a page put it in the document unescaped."""

_ASK_SCHEMA = '{"type": "object", "properties": {"question": {"type": "string"}}}'


def config_data(keys: dict[str, str]) -> dict[str, Any]:
    """Two experts (one asks a person, one answers with hostile markup) and three keys."""
    return {
        "store": "memory://",
        "provider": {
            "providerName": "scripted",
            "scripts": {
                "asker@1.0.0": [
                    {
                        "text": "Let me ask.",
                        "toolCalls": [{"name": "ask", "arguments": {"question": "Publish?"}}],
                    },
                    {"text": "Done: published."},
                ],
                "writer@1.0.0": [
                    {
                        "thinking": f"thinking {HOSTILE}",
                        "text": f"Here: {HOSTILE} <img src=x onerror=alert(2)>",
                    }
                ],
            },
        },
        "systemKeys": [{"keyHash": hash_key(keys["system"])}],
        "applications": {
            APP_A: {"name": "alpha", "keyHashes": [hash_key(keys["a"])]},
            APP_B: {"name": "beta", "keyHashes": [hash_key(keys["b"])]},
        },
        "experts": {
            "asker": {
                "version": "1.0.0",
                "instruction": "Ask, then answer.",
                "skills": {
                    "people": {
                        "type": "interactiveSkill",
                        "tools": {"ask": {"description": "Ask the user", "inputJsonSchema": _ASK_SCHEMA}},
                    }
                },
            },
            "writer": {"version": "1.0.0", "instruction": "Write."},
        },
    }


@dataclass
class Env:
    """The service, its app, the keys, and a way to sign clients in."""

    service: ExpertJobsService
    app: Any
    keys: dict[str, str]

    def client(self) -> httpx.AsyncClient:
        """A client of the app (cookies kept), not signed in."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://testserver")

    async def signed_in(self, who: str) -> Browser:
        """A client signed in with the key ``who`` (``a``, ``b`` or ``system``)."""
        client = self.client()
        answer = await client.post("/ui/login", data={"key": self.keys[who]})
        assert answer.status_code == 303, answer.text
        page = await client.get("/ui/")
        assert page.status_code == 200
        return Browser(client, csrf_of(page.text))

    async def run(self, job_id: str) -> Job:
        """Run the job here until it rests."""
        return await self.service.runtime.drive(job_id)


@dataclass
class Browser:
    """A signed-in client and its session's CSRF token."""

    client: httpx.AsyncClient
    csrf: str

    async def post(self, path: str, data: dict[str, str], **options: Any) -> httpx.Response:
        """A same-origin form post carrying the token."""
        return await self.client.post(path, data={"csrf": self.csrf, **data}, **options)

    async def start(self, expert: str, query: str) -> str:
        """Start a job through the dashboard's form; its id."""
        answer = await self.post("/ui/jobs", {"expertKey": expert, "query": query})
        assert answer.status_code == 303, answer.text
        return answer.headers["location"].rsplit("/", 1)[-1]


def csrf_of(html: str) -> str:
    """The CSRF token a page carries."""
    found = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', html)
    assert found is not None, "the page has no CSRF token"
    return found.group(1)


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    keys = {"a": generate_key(), "b": generate_key(), "system": generate_key(system=True)}
    service = build_service(parse_config(config_data(keys)))
    try:
        yield Env(service, create_app(service), keys)
    finally:
        await service.close()
