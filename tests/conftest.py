"""Database fixtures shared by every test file.

- `database_url`: a fresh, empty database, once on SQLite and once on PostgreSQL (the
  PostgreSQL run needs TEST_DATABASE_URL and is skipped without it; it carries the
  `postgres` marker, so `-m "not postgres"` leaves it out).
- `engine`: that database migrated to head; `Session` (alias `sessionmaker`): a session
  factory on it; `session`: one open session, closed after the test.
- `sqlite_url` / `sqlite_engine`: the same, SQLite only, for tests that need SQLite.

Each PostgreSQL test gets its own schema (named in the URL's search_path) and drops it
afterwards, so test runs sharing one database do not trample on each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from bot.storage import db
from tests.harness import BACKENDS, build_world, postgres_schema_url, sqlite_file_url


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> Iterator[str]:
    """A fresh, empty (unmigrated) database URL, per backend."""
    if request.param == "sqlite":
        yield sqlite_file_url(tmp_path)
        return
    base_url = os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    with postgres_schema_url(base_url) as url:
        yield url


@pytest.fixture
def engine(database_url):
    """The database migrated to head."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def Session(engine):
    return db.make_sessionmaker(engine)


@pytest.fixture
def sessionmaker(Session):
    return Session


@pytest.fixture
def session(Session):
    with Session() as session:
        yield session


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return sqlite_file_url(tmp_path)


@pytest.fixture
def sqlite_engine(sqlite_url):
    engine = db.make_engine(sqlite_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def world(database_url, tmp_path):
    """The product on the embedded emulator, fleet synced, on each backend."""
    world = build_world(database_url, tmp_path)
    yield world
    world.services.close()


@pytest.fixture
def sqlite_world(sqlite_url, tmp_path):
    world = build_world(sqlite_url, tmp_path)
    yield world
    world.services.close()
