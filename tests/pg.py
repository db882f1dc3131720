"""Helpers for the tests that need a PostgreSQL server.

The server is the one ``INCIDENT_FLOW_TEST_POSTGRES`` names (a libpq conninfo), by default
``host=127.0.0.1 port=5432 user=postgres dbname=test``. Each test gets a fresh schema of its own,
dropped afterwards, so runs never see each other's rows.

Without a server the tests are skipped, except in CI (``CI`` set and non-empty), where a missing
server is a failure: :func:`require_postgres` makes that decision for every PostgreSQL test.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from incident_flow.store.postgres import PostgresStore

__all__ = [
    "DEFAULT_CONNINFO",
    "fresh_postgres_store",
    "fresh_schema",
    "postgres_conninfo",
    "require_postgres",
    "server_available",
]

DEFAULT_CONNINFO = "host=127.0.0.1 port=5432 user=postgres dbname=test"
ENV_VAR = "INCIDENT_FLOW_TEST_POSTGRES"


def postgres_conninfo() -> str:
    """The conninfo of the test server: ``$INCIDENT_FLOW_TEST_POSTGRES`` or the default."""
    return os.environ.get(ENV_VAR) or DEFAULT_CONNINFO


@functools.cache
def _probe(conninfo: str) -> str | None:
    try:
        import psycopg
    except ImportError as error:
        return f"psycopg is not installed ({error}); install incident-flow[postgres]"
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return " ".join(str(error).split()) or type(error).__name__
    return None


def _without_password(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params: dict[str, Any] = dict(conninfo_to_dict(conninfo))
    except Exception:
        return ENV_VAR
    params.pop("password", None)
    return make_conninfo("", **params)


def server_available() -> str | None:
    """None when the test server answers, else why not (checked once per conninfo)."""
    return _probe(postgres_conninfo())


def require_postgres() -> str:
    """Return the test server's conninfo; skip the test when it is unreachable, or fail it in
    CI (the ``CI`` environment variable set), where a missing server must never pass silently."""
    conninfo = postgres_conninfo()
    reason = server_available()
    if reason is None:
        return conninfo
    if reason.startswith("psycopg is not installed"):
        message = f"PostgreSQL tests need psycopg: {reason}"
    else:
        message = (
            f"PostgreSQL is not reachable at {_without_password(conninfo)}: {reason}; "
            f"set {ENV_VAR} or start a server"
        )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_schema() -> Iterator[tuple[str, str]]:
    """Yield ``(conninfo, schema)`` for a new, uniquely named schema; drop it afterwards.

    The schema is not created here: opening a store on it creates it.
    """
    conninfo = require_postgres()
    import psycopg
    from psycopg import sql

    schema = f"t_{uuid.uuid4().hex}"
    try:
        yield conninfo, schema
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@contextmanager
def fresh_postgres_store(**kwargs: Any) -> Iterator[PostgresStore]:
    """Yield an open :class:`PostgresStore` on a fresh schema; close it and drop the schema.

    ``kwargs`` go to the store (``max_size=4`` unless given). Skips or fails like
    :func:`require_postgres` when there is no server.
    """
    from incident_flow.store.postgres import PostgresStore

    kwargs.setdefault("max_size", 4)
    with (
        fresh_schema() as (conninfo, schema),
        PostgresStore(conninfo, schema=schema, **kwargs) as store,
    ):
        yield store
