"""Examples in the documentation show values as the API sends them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
ISO = re.compile(r'^"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z"$')


@pytest.mark.parametrize("page", ["api.md", "cli.md"])
def test_timestamps_in_examples_are_iso_strings(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    values = re.findall(r'"(?:createdAt|updatedAt)":\s*([^,}\n]+)', text)
    assert values, page
    for value in values:
        assert ISO.match(value.strip()), f"{page}: a timestamp shown as {value.strip()}, not an ISO string"
