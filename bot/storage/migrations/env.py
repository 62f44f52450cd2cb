"""Alembic environment.

bot.storage.db.upgrade() passes an open connection in config.attributes["connection"]; the alembic
command line may instead set "sqlalchemy.url".  Either way all pending migrations run in
one transaction.  On SQLite, foreign keys are switched off while migrating (a batch
operation copies and drops tables, and a DROP must not cascade) and checked before commit.
"""

from contextlib import contextmanager

from alembic import context
from sqlalchemy import Connection

from bot.storage import db
from bot.storage.models import Base

config = context.config
target_metadata = Base.metadata


@contextmanager
def sqlite_foreign_keys_off(connection: Connection):
    # PRAGMA foreign_keys is ignored inside a transaction, so it goes straight to the driver.
    if connection.dialect.name != "sqlite" or connection.in_transaction():
        yield
        return
    driver = connection.connection.driver_connection
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def check_foreign_keys(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration broke foreign keys: {broken[:5]}")


def run_migrations(connection: Connection) -> None:
    with sqlite_foreign_keys_off(connection):
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,
            transactional_ddl=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # A migration may rebuild an index on a large table: no statement timeout
                # (DB_STATEMENT_TIMEOUT bounds requests, not the release step).
                connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            context.run_migrations()
            check_foreign_keys(connection)


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = db.make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as connection:
            run_migrations(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
