"""Stores: where incidents' events and their outbox are kept.

:class:`MemoryStore` for tests and demos, :class:`SQLiteStore` (one file) as the embedded default,
and ``incident_flow.store.postgres.PostgresStore`` (the ``postgres`` extra) for several processes
or hosts. All implement :class:`Store` and pass the same contract tests.
"""

from __future__ import annotations

import os

from incident_flow.errors import StoreError
from incident_flow.store.base import Delivery, DeliveryStatus, Outcome, Store
from incident_flow.store.memory import MemoryStore
from incident_flow.store.sqlite import SQLiteStats, SQLiteStore

__all__ = [
    "Delivery",
    "DeliveryStatus",
    "MemoryStore",
    "Outcome",
    "SQLiteStats",
    "SQLiteStore",
    "Store",
    "is_postgres",
    "open_store",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(database: str) -> bool:
    """True when ``database`` is a PostgreSQL connection string (a URL or ``key=value`` pairs)
    rather than an SQLite file's path."""
    text = database.strip()
    return text.startswith(_POSTGRES_SCHEMES) or (
        "=" in text and any(part.partition("=")[0] in _KEYWORDS for part in text.split())
    )


_KEYWORDS = frozenset({"host", "hostaddr", "port", "dbname", "user", "password", "service"})


def open_store(database: str, *, schema: str = "public", create: bool = True) -> Store:
    """Open the store that ``database`` names.

    ``postgresql://…`` URLs and libpq ``key=value`` strings open a ``PostgresStore`` in
    ``schema``; anything else is the path of an SQLite file.

    Raises:
        StoreError: ``create`` is false and the SQLite file does not exist, or the database
            cannot be opened.
        ImportError: a PostgreSQL database was named without the ``postgres`` extra installed.
    """
    if is_postgres(database):
        from incident_flow.store.postgres import PostgresStore

        return PostgresStore(database, schema=schema)
    if not create and not os.path.isfile(database):
        raise StoreError(
            f"no incident database at {database!r}; check the path, or run "
            f"`incident-flow demo --db {database}` to make one"
        )
    return SQLiteStore(database)
