"""Store URLs: one string picks the backend, in the library, the config file and the CLI.

- ``memory://``: a :class:`~expert_jobs.stores.memory.MemoryStore` (nothing survives the process).
- ``sqlite:///path/to/jobs.db``: a :class:`~expert_jobs.stores.sqlite.SQLiteStore`; what follows
  ``sqlite:///`` is the path, so ``sqlite:///jobs.db`` is relative to the working directory and
  ``sqlite:////var/lib/jobs.db`` is absolute. ``sqlite:///:memory:`` is a private in-memory
  database. Options go in the query string: ``?synchronous=NORMAL&busy_timeout=5&readers=4``
  (also ``max_batch`` and ``writer=process``).
- ``postgresql://user@host:5432/db`` (or ``postgres://``): a ``PostgresStore`` (psycopg 3, imported
  only then); the URL is passed to it as is.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from expert_jobs.domain.errors import UsageError
from expert_jobs.ports.store import JobStore

__all__ = ["SCHEMES", "open_store"]

SCHEMES: tuple[str, ...] = ("memory://", "sqlite:///path", "postgresql://...", "postgres://...")
"""The accepted URL forms, as error messages name them."""

_SQLITE_OPTIONS: dict[str, type] = {
    "synchronous": str,
    "busy_timeout": float,
    "readers": int,
    "max_batch": int,
    "writer": str,
}


def open_store(url: str) -> JobStore:
    """The store ``url`` names (see the module docstring); ``UsageError`` for anything else.

    SQLite files are opened (created, migrated) here, synchronously; PostgreSQL stores connect
    lazily, on their first use.
    """
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise UsageError(f"store URL {url!r} has no scheme; expected one of {', '.join(SCHEMES)}")
    if scheme == "memory":
        from expert_jobs.stores.memory import MemoryStore

        return MemoryStore()
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("postgresql", "postgres"):
        from expert_jobs.stores.postgres import PostgresStore

        store: JobStore = PostgresStore(url)
        return store
    raise UsageError(f"store URL {url!r}: unknown scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def _open_sqlite(url: str) -> JobStore:
    from expert_jobs.stores.sqlite import SQLiteStore

    rest = url[len("sqlite://") :]
    if not rest.startswith("/"):
        raise UsageError(
            f"store URL {url!r}: a SQLite URL is sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    parts = urlsplit("sqlite://" + rest)
    path = unquote(parts.path[1:])
    if not path:
        raise UsageError(f"store URL {url!r}: no database path after sqlite:///")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        kind = _SQLITE_OPTIONS.get(name)
        if kind is None:
            raise UsageError(
                f"store URL {url!r}: unknown SQLite option {name!r}; known: {', '.join(_SQLITE_OPTIONS)}"
            )
        try:
            options[name] = kind(value)
        except ValueError:
            raise UsageError(
                f"store URL {url!r}: option {name}={value!r} is not valid ({kind.__name__} expected)"
            ) from None
    if path != ":memory:":
        path = os.path.expanduser(path)
    return SQLiteStore(path, **options)
