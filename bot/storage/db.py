"""The database: engines, sessions, one transaction per inbound message, migrations.

The composition roots build one engine with `make_engine(settings.database_url)` and one
`make_sessionmaker(engine)`; each inbound message is handled inside `transaction(...)`,
which commits when the handler returns and rolls back when it raises.  Handlers get the
session and leave committing to it, with one exception by design: the ledger commits a
mint attempt before it calls the API (bot/ledger/book.py), so a crash cannot lose a code.

SQLite (the embedded default) is set up so that it behaves: foreign keys on, WAL with
`synchronous=NORMAL` (SQLite's advice for WAL: a commit survives a crash of the process;
only a power cut can take the last few back), a busy timeout, and every writing
transaction starts with BEGIN IMMEDIATE.  SQLite has no row locks, so taking the write lock
up front is what stops two concurrent requests from reading the same credit and both
spending it; the second simply waits for the first to commit.  `reading(...)` is the
exception: a transaction that only reads (a STATUS) starts with a plain BEGIN, takes no
write lock and waits for no writer; `reads(...)` is the same transaction for the
hottest reads, on the driver connection with `Prepared` statements.  On PostgreSQL the
core locks rows with SELECT ... FOR UPDATE instead; its engine's pool and a statement
timeout come from the settings.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Select, create_engine, event
from sqlalchemy.engine import URL, Connection, Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
# The execution option that marks a read-only transaction (plain BEGIN on SQLite).
READ_ONLY = "ovbot_read_only"


@dataclass(frozen=True)
class Pool:
    """How a server engine pools its connections (PostgreSQL; SQLite pools per file)."""

    size: int = 5
    overflow: int = 10
    recycle: float = 1800.0  # seconds; below the usual idle timeouts of proxies and hosts
    statement_timeout: float = 30.0  # seconds; 0 for none
    # A connection idle this long is pinged when checked out (one round trip); one back
    # in the pool sooner was working a moment ago and is not, so a busy server pays no
    # ping per request. A connection that dies in between fails one statement: SQLAlchemy
    # then invalidates the pool, and the next checkout connects afresh.
    ping_after_idle: float = 5.0  # seconds; 0 pings every checkout


def make_engine(url: str | URL, pool: Pool | None = None) -> Engine:
    """An engine for `url`, set up for this project (see the module docstring)."""
    url = _normalise(make_url(url))
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    pool = pool or Pool()
    engine = create_engine(
        url,
        pool_size=pool.size,
        max_overflow=pool.overflow,
        pool_recycle=pool.recycle,
    )
    _ping_when_idle(engine, pool.ping_after_idle)
    if pool.statement_timeout > 0 and url.get_backend_name() == "postgresql":
        timeout_ms = int(pool.statement_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _bound(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            # Every statement is bounded, a lock wait included: no request hangs on one.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET statement_timeout = {timeout_ms}")
            cursor.close()
            dbapi_connection.commit()

    return engine


IDLE_SINCE = "ovbot_idle_since"


def _ping_when_idle(engine: Engine, after: float) -> None:
    """Pessimistic disconnect handling, for idle connections only (Pool.ping_after_idle)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(
        dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry, _proxy: object
    ) -> None:
        idle_since = record.info.pop(IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after:
            return  # just connected, or back in the pool a moment ago
        try:
            ping(dbapi_connection)
        except Exception as error:  # any failure: the connection is gone
            # The pool discards the connection and checks out another (a new one).
            raise DisconnectionError(f"idle connection did not answer: {error}") from error


def ping(dbapi_connection: DBAPIConnection) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    finally:
        cursor.close()
    dbapi_connection.rollback()  # end the transaction the driver began for it


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
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get(READ_ONLY):
            # Straight to the driver: a deferred BEGIN never waits for a lock nor fails
            # for one, and SQLAlchemy's execution costs more than it on a read path. A
            # Reader may have begun it already, on the driver connection it then wraps.
            driver = connection.connection.driver_connection
            if not driver.in_transaction:  # type: ignore[union-attr]
                driver.execute("BEGIN")  # type: ignore[union-attr]
        else:  # may wait for the write lock, and fail as SQLAlchemy's OperationalError
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(
    engine: Engine, info: dict[str, object] | None = None
) -> sessionmaker[Session]:
    """Sessions on `engine`; each starts with a copy of `info` in its `Session.info`."""
    return sessionmaker(engine, expire_on_commit=False, info=info)


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


_readers: weakref.WeakKeyDictionary[sessionmaker[Session], sessionmaker[Session]] = (
    weakref.WeakKeyDictionary()
)


def _reading_sessions(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The reading sessions of `factory`'s engine: read-only transactions (see `reading`)."""
    readers = _readers.get(factory)
    if readers is None:  # built once per factory: a session's own listeners cost per request
        engine = factory.kw["bind"]
        options: dict[str, object] = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            # Under READ COMMITTED each statement reads its own snapshot, in a transaction
            # or not: BEGIN and ROLLBACK would be two round trips that buy nothing.
            options["isolation_level"] = "AUTOCOMMIT"
        reader = engine.execution_options(**options)
        readers = _readers[factory] = sessionmaker(
            reader,
            class_=ReadingSession,
            autoflush=False,
            expire_on_commit=False,
            info=factory.kw.get("info"),
        )
    return readers


@contextmanager
def reading(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for reads only: no write lock taken, nothing committed, closed.

    A flush raises `WouldWrite` before any SQL goes out, and the caller checks `changed`
    before trusting a reply built here: either way, a change is never written here, so the
    caller must redo that work in `transaction(...)`.
    """
    session = _reading_sessions(factory)()
    try:
        yield session
    finally:
        session.close()  # rolls the read-only transaction back


@contextmanager
def reads(factory: sessionmaker[Session]) -> Iterator[Reader]:
    """`reading`, for the hottest reads: a `Reader` (see there)."""
    sessions = _reading_sessions(factory)
    reader = Reader(sessions.kw["bind"], lambda connection: sessions(bind=connection))
    try:
        yield reader
    finally:
        reader.close()


class Reader:
    """What a read reads through: the pooled driver connection, for `Prepared` statements,
    and only when a handler needs more, a SQLAlchemy connection and an ORM session on it,
    in the same read-only transaction.

    `reads(...)` makes one on the reading engine (`reading`); `Reader.over(session)` reads
    through a writing transaction's session (a read answered the writing way). Checking
    out a SQLAlchemy connection costs about as much CPU as the STATUS statement itself: a
    read that needs only prepared statements (STATUS, DEVICES, HELP) makes none."""

    def __init__(
        self,
        engine: Engine | None,
        open_session: Callable[[Connection], Session],
        connection: Connection | None = None,
    ) -> None:
        self._engine, self._open_session = engine, open_session
        self._connection = connection
        self._driver: PoolProxiedConnection | None = None
        self._session: Session | None = None

    @classmethod
    def over(cls, session: Session) -> Reader:
        return cls(None, lambda _connection: session, connection=session.connection())

    @property
    def connection(self) -> Connection:
        if self._connection is None:
            assert self._engine is not None
            # On the driver connection already begun, if any (`_begun_driver`).
            self._connection = Connection(self._engine, connection=self._driver)
        return self._connection

    @property
    def session(self) -> Session:
        if self._session is None:
            self._session = self._open_session(self.connection)
        return self._session

    def rows(self, statement: Prepared, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        engine = self._engine
        if self._connection is not None or engine is None or engine.dispatch.before_cursor_execute:
            return statement.rows(self.connection, params)  # listeners get their Connection
        return statement.run(self._begun_driver(engine), engine.dialect, None, params)

    def _begun_driver(self, engine: Engine) -> PoolProxiedConnection:
        """The pooled driver connection, in its read-only transaction (as `reading`'s)."""
        if self._driver is None:
            driver = engine.raw_connection()
            try:
                if engine.dialect.name == "postgresql":
                    driver.driver_connection.autocommit = True  # type: ignore[union-attr]
                elif engine.dialect.name == "sqlite":
                    driver.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
            except BaseException:
                driver.close()
                raise
            self._driver = driver
        return self._driver

    def changed(self) -> bool:
        """Whether the session (if one was opened) holds changes: see `changed`."""
        return self._session is not None and changed(self._session)

    def close(self) -> None:
        if self._engine is None:
            return  # over a writing session: not the reader's to close
        try:
            if self._session is not None:
                self._session.close()
        finally:
            if self._connection is not None:
                self._connection.close()  # rolls back, and hands the driver connection back
            elif self._driver is not None:
                self._hand_back(self._engine, self._driver)

    @staticmethod
    def _hand_back(engine: Engine, driver: PoolProxiedConnection) -> None:
        try:
            if engine.dialect.name == "postgresql" and driver.is_valid:
                driver.driver_connection.autocommit = False  # type: ignore[union-attr]
        finally:
            driver.close()  # the pool rolls the read-only transaction back


class Prepared:
    """A Core SELECT compiled once per dialect and run on the driver's own cursor.

    For the hottest read (STATUS): executing even a cached statement through SQLAlchemy
    costs more CPU than the query itself does (scripts/bench_http.py). What that execution
    does for us is kept: the statement's own bound values and each type's processing of
    parameters and results, the engine's `before_cursor_execute` listeners, the driver's
    errors raised as SQLAlchemy's (a lost connection invalidated). Plain parameters only:
    no expanding IN, no values rendered at execution."""

    def __init__(self, statement: Select[Any]) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of the statement with `params` bound, in `connection`'s transaction
        (begun here if none is)."""
        if not connection.in_transaction():
            connection.begin()  # one snapshot with what the reader reads next (SQLite)
        return self.run(connection.connection, connection.dialect, connection, params)

    def run(
        self,
        driver: PoolProxiedConnection,
        dialect: Dialect,
        connection: Connection | None,
        params: Mapping[str, Any],
    ) -> list[tuple[Any, ...]]:
        """`rows` on a pooled driver connection; `connection`, when given, is the
        SQLAlchemy connection over it, for the listeners and to invalidate."""
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = _Compiled(self.statement, dialect)
        arguments = compiled.arguments(params)
        cursor = driver.cursor()
        sql = compiled.sql
        try:
            if connection is not None:
                for listener in connection.dispatch.before_cursor_execute:
                    sql, arguments = listener(connection, cursor, sql, arguments, None, False)
            cursor.execute(sql, arguments)
            fetched = cursor.fetchall()
        except dialect.loaded_dbapi.Error as error:
            lost = dialect.is_disconnect(error, driver, cursor)
            if lost:
                (connection or driver).invalidate(error)
            raise DBAPIError.instance(
                sql,
                arguments,
                error,
                dialect.loaded_dbapi.Error,
                connection_invalidated=lost,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
        return compiled.results(fetched)


class _Compiled:
    """A statement as one dialect runs it: its SQL, how to bind and how to read back."""

    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.literal_execute_params or compiled.post_compile_params:
            raise ValueError("Prepared takes plain parameters only")
        self.sql = compiled.string
        binds = compiled.binds
        self.required = frozenset(key for key, bind in binds.items() if bind.required)
        for key in self.required:
            if binds[key].key != key:
                raise ValueError(f"parameter {key!r} is renamed when compiled")
        self.processors: dict[str, Callable[[Any], Any]] = {}
        for key, bind in binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[key] = processor
        defaults = compiled.construct_params(dict.fromkeys(self.required))
        self.defaults = {
            key: self._bound(key, value)
            for key, value in defaults.items()
            if key not in self.required
        }
        self.order = tuple(compiled.positiontup or ()) if compiled.positional else None
        readers = [
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in statement.selected_columns
        ]
        self.readers = readers if any(readers) else None

    def _bound(self, key: str, value: Any) -> Any:
        processor = self.processors.get(key)
        return processor(value) if processor is not None else value

    def arguments(self, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        if params.keys() != self.required:
            raise ValueError(f"parameters {sorted(params)} are not {sorted(self.required)}")
        values = dict(self.defaults)
        for key, value in params.items():
            values[key] = self._bound(key, value)
        if self.order is None:
            return values
        return tuple(values[key] for key in self.order)

    def results(self, fetched: Sequence[Any]) -> list[tuple[Any, ...]]:
        readers = self.readers
        if readers is None:
            return [tuple(row) for row in fetched]
        return [
            tuple(
                value if read is None else read(value)
                for read, value in zip(readers, row, strict=True)
            )
            for row in fetched
        ]


class ReadingSession(Session):
    """A session of `reading`: any flush raises `WouldWrite` (listener below)."""


class WouldWrite(RuntimeError):
    """A reading session was asked to write: redo the work in `transaction(...)`."""


@event.listens_for(ReadingSession, "before_flush")
def _flushing(session: Session, *_: object) -> None:
    # Before any SQL is sent: a read-only transaction never writes (on SQLite it could
    # not take the write lock it did not ask for).
    raise WouldWrite("a reading session was asked to write")


def changed(session: Session) -> bool:
    """Whether `session` holds changes (an attribute set to the value it already had is
    no change)."""
    if session.new or session.deleted:
        return True
    return any(session.is_modified(instance) for instance in session.dirty)


# Set on a session by the outbox when it queued a message, so that only a commit that
# queued something wakes the drain (see Deps.committed).
QUEUED = "ovbot_queued"


def mark_queued(session: Session) -> None:
    session.info[QUEUED] = True


def queued(session: Session) -> bool:
    return bool(session.info.get(QUEUED))


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
