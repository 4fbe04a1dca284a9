"""docs/api.md keeps up with the API: every route of the OpenAPI document is documented, and the
error bodies it shows are the ones the code sends."""

from __future__ import annotations

import json
import re
from pathlib import Path

from expert_jobs.api import openapi_document
from expert_jobs.service import PROVIDER_KEY_NOT_FOUND, QUERY_OR_FILES_REQUIRED

DOC = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")


def test_every_route_is_in_the_route_table() -> None:
    table = set(re.findall(r"^\| `(GET|POST)` \| `([^`]+)` \|", DOC, flags=re.MULTILINE))
    routes = {(m.upper(), p) for p, item in openapi_document()["paths"].items() for m in item}
    assert routes - {("GET", "/openapi.json")} <= table, routes - table
    assert ("GET", "/openapi.json") in table


def test_the_documented_reasons_are_the_codes() -> None:
    for reason in (
        QUERY_OR_FILES_REQUIRED,
        PROVIDER_KEY_NOT_FOUND,
        "Current status is unable to continue",
        "No checkpoint found",
        "Failed to authenticate",
    ):
        assert f'"reason": "{reason}"' in DOC, reason


def test_each_document_is_a_fresh_copy_sharing_nothing() -> None:
    first = openapi_document()
    get = first["paths"]["/api/studio/v1/expert_jobs/{expertJobId}"]["get"]
    get["responses"]["200"]["description"] = "changed"
    assert openapi_document() == openapi_document()
    again = openapi_document()["paths"]["/api/studio/v1/expert_jobs/{expertJobId}"]["get"]
    assert again["responses"]["200"]["description"] == "Response for status 200"
    # Within one document, operations do not share response objects either.
    cancel = first["paths"]["/api/studio/v1/expert_jobs/{expertJobId}/cancel"]["post"]
    assert cancel["responses"]["200"]["description"] == "Response for status 200"


def test_every_operation_with_a_body_declares_the_413() -> None:
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert operation["responses"]["413"]["content"]["application/json"], (method, path)
    assert "| 413 | `Payload Too Large` |" in DOC


def test_the_documented_checkpoints_match_the_checkpoint_schema() -> None:
    from expert_jobs.domain.wire import CheckpointListResponse, CheckpointWire, JobErrorWire

    blocks = re.findall(r"```json\n(.*?)```", DOC, flags=re.DOTALL)
    pages = [json.loads(b) for b in blocks if '"checkpoints": [' in b]
    assert pages, "docs/api.md shows a page of checkpoints"
    for page in pages:
        CheckpointListResponse.model_validate(page)
        assert '"call_id"' not in json.dumps(page) and '"is_error"' not in json.dumps(page)
    streamed = re.findall(r"^data: (\{.*\})$", DOC, flags=re.MULTILINE)
    assert streamed
    for line in streamed:
        CheckpointWire.model_validate(json.loads(line))
    errors = [json.loads(b) for b in blocks if b.lstrip().startswith('{\n  "kind"')]
    assert errors
    for error in errors:
        JobErrorWire.model_validate(error)
