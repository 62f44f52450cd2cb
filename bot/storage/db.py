"""The database: engines, sessions, one transaction per inbound message, migrations.

The composition roots build one engine with `make_engine(settings.database_url)` and one
`make_sessionmaker(engine)`; each inbound message is handled inside `transaction(...)`,
which commits when the handler returns and rolls back when it raises.  Handlers get the
session and leave committing to it, with one exception by design: the ledger commits a
mint attempt before it calls the API (bot/ledger/book.py), so a crash cannot lose a code.

SQLite (the embedded default) is set up so that it behaves: foreign keys on, WAL, a busy
timeout, and every transaction starts with BEGIN IMMEDIATE.  SQLite has no row locks, so
taking the write lock up front is what stops two concurrent requests from reading the same
credit and both spending it; the second simply waits for the first to commit.  On
PostgreSQL the core locks rows with SELECT ... FOR UPDATE instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: str | URL) -> Engine:
    """An engine for `url`, set up for this project (see the module docstring)."""
    url = _normalise(make_url(url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(url, pool_pre_ping=True)


def _normalise(url: URL) -> URL:
    # Hosting platforms hand out postgres:// URLs; we ship the psycopg 3 driver.
    if url.drivername in {"postgres", "postgresql"}:
        return url.set(drivername="postgresql+psycopg")
    return url


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 driver; _on_begin below emits it.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")
        dbapi_connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error, closed.

    The ledger may commit part-way (a mint attempt must be on disk before the API call),
    so this is a plain session with commit/rollback at the end, not `factory.begin()`.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# --- migrations ----------------------------------------------------------------------


def alembic_config(url: str | URL | None = None) -> Config:
    """Alembic's configuration, built in code: no alembic.ini needed in the cwd."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        # The config is an ini file underneath: a literal % must be doubled.
        rendered = make_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(target: Engine | str | URL, revision: str = "head") -> None:
    """Run the migrations up to `revision` on an engine or a database URL."""
    engine = target if isinstance(target, Engine) else make_engine(target)
    try:
        with engine.connect() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if engine is not target:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at; None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision the code ships."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The head and every revision the code ships, read once from the scripts."""
    script = ScriptDirectory.from_config(alembic_config())
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def schema_problem(engine: Engine) -> str | None:
    """Why the database cannot serve this code yet (None: its schema is at head).

    For `/readyz`: a web process started before `ovbot db upgrade` would otherwise answer
    every message "Something went wrong".  Database errors propagate to the caller."""
    head, known = _revisions()
    current = current_revision(engine)
    if current is None:
        return "no schema: run `ovbot db upgrade`"
    if current not in known:
        return f"schema at {current}, which this code does not know (its head is {head})"
    if current != head:
        return f"schema at {current}, head is {head}: run `ovbot db upgrade`"
    return None
