"""Helpers for the service, API and HTTP tests: a service over a scripted provider with two
applications (each with one key) and a system key, on a memory store."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from expert_jobs import Job, MemoryStore, Runtime, RuntimeSettings, ScriptedProvider
from expert_jobs.engine.worker import Worker
from expert_jobs.ports.provider import Provider, ProviderResolver
from expert_jobs.ports.store import JobStore
from expert_jobs.providers.scripted import Turn
from expert_jobs.service import Application, ExpertJobsService, KeyRing, generate_key, hash_key

APP_ID = "appone000000000000000001"
OTHER_APP_ID = "apptwo000000000000000002"
ORG_ID = "orgone000000000000000001"
UNKNOWN_ID = "zzzzzzzzzzzzzzzzzzzzzzzz"
PREFIX = "/api/studio/v1/expert_jobs/"
ASK_SCHEMA = {"type": "object", "properties": {"question": {"type": "string"}}, "required": ["question"]}
UNAUTHORIZED = {"code": 401, "error": "Unauthorized", "reason": "Failed to authenticate"}


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first
        b: the second
    """
    return a + b


class YieldingStore(MemoryStore):
    """A memory store whose every call yields to the event loop first, so concurrent requests
    really interleave between reading a job and writing it back (as with a real database)."""

    def __init__(self) -> None:
        super().__init__()
        self.stale_writes = 0

    async def get(self, job_id: str) -> Job | None:
        await asyncio.sleep(0)
        return await super().get(job_id)

    async def latest_checkpoints(self, job_id: str) -> Any:
        await asyncio.sleep(0)
        return await super().latest_checkpoints(job_id)

    async def save(
        self, job: Job, *, expected_version: int, checkpoint: Any = None, release_for: str | None = None
    ) -> None:
        await asyncio.sleep(0)
        try:
            await super().save(
                job, expected_version=expected_version, checkpoint=checkpoint, release_for=release_for
            )
        except Exception:
            self.stale_writes += 1
            raise


@dataclass
class Env:
    """A service and the credentials of its principals."""

    service: ExpertJobsService
    runtime: Runtime
    app: Application
    other: Application
    key: str
    other_key: str
    system_key: str

    @property
    def auth(self) -> dict[str, str]:
        """Headers of the first application (with the JSON content type)."""
        return {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}

    @property
    def other_auth(self) -> dict[str, str]:
        """Headers of the second application."""
        return {"Authorization": f"Bearer {self.other_key}", "Content-Type": "application/json"}

    @property
    def system_auth(self) -> dict[str, str]:
        """Headers of the system key."""
        return {"Authorization": f"Bearer {self.system_key}", "Content-Type": "application/json"}


def make_env(
    script: Sequence[Turn] | Mapping[str, Sequence[Turn]] | None = None,
    *,
    store: JobStore | None = None,
    providers: Provider | ProviderResolver | None = None,
    worker: bool = False,
    workspace: str | None = None,
    stream_poll_interval: float = 0.05,
) -> Env:
    """A service with experts ``main@1.0.0`` (tool ``add``, interactive ``ask``, delegate ``helper``),
    ``helper`` and ``writer@2.0.0``; with ``worker`` a fast-polling worker runs jobs once started."""
    from expert_jobs import Reply

    runtime = Runtime(
        providers=providers if providers is not None else ScriptedProvider(script or [Reply("done")]),
        store=store if store is not None else MemoryStore(),
        settings=RuntimeSettings(lease_seconds=5.0),
        workspace=workspace,
    )
    runtime.add_expert("helper", "You help.", description="A helper expert")
    runtime.add_expert("writer@2.0.0", "You write.")
    runtime.add_expert(
        "main@1.0.0",
        "You are the main expert.",
        tools=[add],
        interactive_tools=[{"name": "ask", "input_schema": ASK_SCHEMA}],
        delegates=["helper"],
    )
    key, other_key, system_key = generate_key(), generate_key(), generate_key(system=True)
    app = Application(id=APP_ID, organization_id=ORG_ID, name="one", key_hashes=(hash_key(key),))
    other = Application(
        id=OTHER_APP_ID, organization_id=ORG_ID, name="two", key_hashes=(hash_key(other_key),)
    )
    keyring = KeyRing([app, other], [hash_key(system_key)])
    service = ExpertJobsService(
        runtime,
        keyring,
        worker=Worker(runtime, poll_interval=0.02, sweep_interval=60.0) if worker else None,
        stream_poll_interval=stream_poll_interval,
    )
    return Env(service, runtime, app, other, key, other_key, system_key)


async def wait_for_status(env: Env, job_id: str, *statuses: str, within: float = 5.0) -> Job:
    """Poll the store until the job reaches one of ``statuses``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        job = await env.runtime.get(job_id)
        if job.status.value in statuses:
            return job
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} is {job.status.value}, expected one of {statuses}")
        await asyncio.sleep(0.01)


def body(data: Any) -> bytes:
    """A JSON request body."""
    return json.dumps(data).encode("utf-8")
