"""Job store adapters: memory (tests, experiments), SQLite (embedded default), PostgreSQL (many workers).

:func:`open_store` picks one from a URL (``memory://``, ``sqlite:///path``, ``postgresql://...``).
``PostgresStore`` is imported on first use, so psycopg is needed only by those who use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from expert_jobs.stores.memory import MemoryStore
from expert_jobs.stores.sqlite import SQLiteStore
from expert_jobs.stores.url import open_store

if TYPE_CHECKING:
    from expert_jobs.stores.postgres import PostgresStore

__all__ = ["MemoryStore", "PostgresStore", "SQLiteStore", "open_store"]


def __getattr__(name: str) -> Any:
    """Import ``PostgresStore`` (and psycopg) only when it is asked for."""
    if name == "PostgresStore":
        from expert_jobs.stores.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
