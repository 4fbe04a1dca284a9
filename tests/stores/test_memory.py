"""The store contract against ``MemoryStore``, the reference implementation."""

from __future__ import annotations

import pytest

from expert_jobs.ports.store import JobStore
from expert_jobs.stores.memory import MemoryStore
from tests.stores.contract import StoreContract, StoreFactory


@pytest.fixture
def store_factory() -> StoreFactory:
    """Fresh in-memory stores."""

    async def open_store() -> JobStore:
        return MemoryStore()

    return open_store


class TestMemoryStore(StoreContract):
    """Every contract test, against ``MemoryStore``."""

    state_machine_examples = 150
