"""PostgreSQL for the replicas, claims, notification and wake-up rows: which server, and a fresh schema for each run.

The server is the one AGENTDECK_BENCH_POSTGRES names, else AGENTDECK_TEST_POSTGRES (the store
tests' server); with neither set the PostgreSQL rows are skipped. Each benchmark creates its
own schema (bench_<random>) in that database, points agentdeck at it with a URL whose
search_path is that schema (AGENTDECK_STORE), and drops it at the end.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from urllib.parse import quote, urlsplit, urlunsplit

from agentdeck.backends.local.store import describe_store

__all__ = ["ENV_VARS", "SKIPPED", "describe", "fresh_schema", "postgres_url"]

ENV_VARS = ("AGENTDECK_BENCH_POSTGRES", "AGENTDECK_TEST_POSTGRES")
SKIPPED = (
    "PostgreSQL rows (23.2 two replicas, 23.4 claims, 23.7 notification across replicas; wake-up with --all) skipped: set AGENTDECK_BENCH_POSTGRES=postgresql://user@host:port/db"
    " (or AGENTDECK_TEST_POSTGRES) to measure them beside SQLite"
)


def postgres_url() -> str | None:
    for var in ENV_VARS:
        if os.environ.get(var):
            return os.environ[var]
    return None


def describe(url: str) -> str:
    """The server for humans and results.json: scheme, host, port and database, never a password."""
    return describe_store(url)


def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = "&".join(p for p in (parts.query, "options=" + quote(f"-csearch_path={schema}")) if p)
    return urlunsplit(parts._replace(query=query))


@contextlib.contextmanager
def fresh_schema(base_url: str, warn: Callable[[str], None] = print) -> Iterator[str]:
    """A new empty schema in the database at `base_url`; yields a URL whose search_path is it.

    The schema is dropped afterwards; if that fails (a straggling process still holds it),
    `warn` is called with what to drop by hand.
    """
    import psycopg

    schema = f"bench_{secrets.token_hex(6)}"
    with psycopg.connect(base_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(base_url, schema)
    finally:
        try:
            with psycopg.connect(base_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute("SET lock_timeout = '10s'")
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        except psycopg.Error as exc:
            warn(f"could not drop schema {schema} in {describe(base_url)} ({type(exc).__name__}); drop it by hand")
