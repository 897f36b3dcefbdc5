"""Fixtures that run one test suite on every store: SQLite always, PostgreSQL when configured.

Set AGENTDECK_TEST_POSTGRES=postgresql://user@host:port/db (CI does) to run the PostgreSQL
half; each test then gets a fresh schema in that database. Without it those tests skip.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from agentdeck.backends.local.store import Store, open_store
from tests.helpers import postgres_schema, use_store


def _postgres_base() -> str:
    url = os.environ.get("AGENTDECK_TEST_POSTGRES")
    if not url:
        pytest.skip("PostgreSQL store tests need AGENTDECK_TEST_POSTGRES=postgresql://...")
    pytest.importorskip("psycopg")
    pytest.importorskip("psycopg_pool")
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of a fresh PostgreSQL schema, for tests that only apply to PostgreSQL."""
    with postgres_schema(_postgres_base()) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The store every config and process of the test uses: None is the SQLite default."""
    if request.param == "sqlite":
        use_store(None)
        yield None
        return
    with postgres_schema(_postgres_base()) as url:
        use_store(url)
        try:
            yield url
        finally:
            use_store(None)


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    """The test's store, opened, at the data dir tests.helpers gives `tmp_path`."""
    opened = open_store(store_url, tmp_path / "data")
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()
