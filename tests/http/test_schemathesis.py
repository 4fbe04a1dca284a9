"""schemathesis against the app's own ``/openapi.json``: generated requests (valid and invalid),
with the application's key (the system key for the status update), never get a server error, and
every response conforms to the status codes, content types and schemas the document declares.

A job with the id the document gives as its example (``test12345678901234567890``) is paused on
an interactive question before the run, so the example phase reaches real jobs and checkpoints.
Examples are bounded (``max_examples``) to keep the run well under a minute.
"""

from __future__ import annotations

import asyncio
from unittest import mock

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.checks import response_headers_conformance

from expert_jobs import Reply, ToolCalls
from expert_jobs.transports.http import create_app
from tests.service.kit import PREFIX, make_env

EXAMPLE_ID = "test12345678901234567890"

ENV = make_env(
    {"main@1.0.0": [ToolCalls.of(("ask", {"question": "ok?"})), Reply("done")], "*": [Reply("ok")]}
)


async def _seed() -> None:
    with mock.patch("expert_jobs.engine.runtime.new_id", return_value=EXAMPLE_ID):
        job = await ENV.service.start_job(ENV.app, {"expertKey": "main@1.0.0", "query": "seed"})
    await ENV.runtime.drive(job.id)


asyncio.run(_seed())
APP = create_app(ENV.service, manage_service=False)
SCHEMA = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path_regex=r"/checkpoints/stream$")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def test_the_document_names_every_route() -> None:
    paths = set(SCHEMA.raw_schema["paths"])
    assert {PREFIX, PREFIX + "{expertJobId}", PREFIX + "{expertJobId}/checkpoints/stream"} <= paths


STATUSES: dict[str, set[int]] = {}


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_own_document(case: schemathesis.Case) -> None:
    system = case.method.upper() == "POST" and case.path == PREFIX + "{expertJobId}"
    key = ENV.system_key if system else ENV.key
    response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS)
    STATUSES.setdefault(f"{case.method.upper()} {case.path}", set()).add(response.status_code)


def test_generated_requests_reached_real_jobs() -> None:
    """Runs after the generated tests (file order): the example job made some of them succeed."""
    if not STATUSES:
        pytest.skip("run together with test_api_conforms_to_its_own_document")
    assert 200 in STATUSES[f"GET {PREFIX}{{expertJobId}}"], STATUSES
    assert 200 in STATUSES[f"GET {PREFIX}{{expertJobId}}/checkpoints"], STATUSES
    assert any(422 in codes for codes in STATUSES.values()), STATUSES
