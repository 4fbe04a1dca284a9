"""Provider tests never depend on the SDKs' changing lists of retiring models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.providers.kit import without_sdk_model_warnings


@pytest.fixture(autouse=True)
def _no_sdk_model_warnings() -> Iterator[None]:
    """The ``anthropic`` SDK warns on every call to a model it lists as retiring (a list each release
    changes, and ``filterwarnings = error`` makes a failure): every test runs with those lists empty."""
    with without_sdk_model_warnings():
        yield
