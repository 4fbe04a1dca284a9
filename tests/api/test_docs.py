"""docs/api.md keeps up with the API: every route of the OpenAPI document is documented, and the
error bodies it shows are the ones the code sends."""

from __future__ import annotations

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
