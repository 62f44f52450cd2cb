"""bot/storage/db.py: engines, transactions and migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text

from bot.storage import db
from bot.storage.models import Base, Customer, Device

TABLES = {
    "integrity_alarms",
    "customers",
    "telegram_links",
    "devices",
    "agents",
    "codes",
    "payments",
    "inbound_messages",
    "outbox",
}


# --- engines -------------------------------------------------------------------------


def test_sqlite_file_gets_its_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    engine = db.make_engine("sqlite:///instance/ovbot.db")  # the default, relative to cwd
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    assert (tmp_path / "instance" / "ovbot.db").is_file()


def test_sqlite_connections_are_set_up(sqlite_engine):
    with sqlite_engine.connect() as connection:
        pragma = lambda name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("foreign_keys") == 1
        assert pragma("journal_mode") == "wal"
        assert pragma("busy_timeout") == db.SQLITE_BUSY_TIMEOUT_MS


def test_sqlite_transaction_takes_the_write_lock_at_once(sqlite_engine, sqlite_url):
    """Even a transaction that has only read holds the write lock (BEGIN IMMEDIATE)."""
    path = sqlite_url.removeprefix("sqlite:///")
    with db.transaction(db.make_sessionmaker(sqlite_engine)) as session:
        session.execute(select(Customer)).all()
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_concurrent_sqlite_writers_serialise(sqlite_engine):
    """Two read-modify-write transactions at once: both succeed, neither update is lost."""
    Session = db.make_sessionmaker(sqlite_engine)
    with db.transaction(Session) as session:
        session.add(Device(product_id=1001, balance=Decimal("0")))
    start, errors = threading.Barrier(2), []

    def add_one() -> None:
        start.wait()
        try:
            with db.transaction(Session) as session:
                device = session.scalars(select(Device)).one()
                time.sleep(0.2)  # the other thread tries to get in meanwhile
                device.balance += 1
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=add_one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Session() as session:
        assert session.scalars(select(Device.balance)).one() == Decimal("2")


def test_postgres_urls_use_psycopg_and_pre_ping():
    engine = db.make_engine("postgres://user@db.example/ovbot")
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    assert engine.pool._pre_ping


# --- one transaction per inbound message ----------------------------------------------


def test_transaction_commits(Session):
    with db.transaction(Session) as session:
        session.add(Customer(phone="+254700000001"))
    with Session() as session:
        assert session.scalars(select(Customer.phone)).all() == ["+254700000001"]


def test_transaction_rolls_back_on_error(Session):
    with pytest.raises(RuntimeError):
        with db.transaction(Session) as session:
            session.add(Customer(phone="+254700000001"))
            session.flush()
            raise RuntimeError("handler failed")
    with Session() as session:
        assert session.scalars(select(Customer)).all() == []


def test_objects_stay_readable_after_commit(Session):
    with db.transaction(Session) as session:
        customer = Customer(phone="+254700000001")
        session.add(customer)
    assert customer.phone == "+254700000001" and customer.id is not None


# --- migrations ----------------------------------------------------------------------


def test_upgrade_to_head(database_url):
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision() == "0003_agents_removed"
    assert TABLES <= set(inspect(engine).get_table_names())
    db.upgrade(engine)  # already at head: nothing to do
    assert db.current_revision(engine) == "0003_agents_removed"
    engine.dispose()


def test_0002_carries_existing_codes_and_messages_over_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0001")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO devices (id, product_id, state, balance, created_at) "
                "VALUES (1, 1001, 'payg', 0, CURRENT_TIMESTAMP)"
            )
        )
        c.execute(
            text(
                "INSERT INTO codes (id, device_id, kind, days, code, state, request_key,"
                " channel, created_at) VALUES (1, 1, 'days', 5, '*0#', 'minted', 'k:0',"
                " 'sms', CURRENT_TIMESTAMP)"
            )
        )
    db.upgrade(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT code, send_deadline, adopted_by FROM codes")).all() == [
            ("*0#", None, None)
        ]
    config = db.alembic_config(engine.url)
    command.downgrade(config, "0001")
    with engine.connect() as c:
        assert c.execute(text("SELECT code FROM codes")).scalar_one() == "*0#"
    engine.dispose()


def test_0003_keeps_existing_agents_active_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0002")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO agents (id, phone, name, pin_hash, role, failed_attempts, created_at)"
                " VALUES (1, '+254700000100', 'Jane', 'scrypt$x', 'agent', 0, CURRENT_TIMESTAMP)"
            )
        )
    db.upgrade(engine)
    with engine.connect() as c:
        assert c.execute(text("SELECT name, removed_at FROM agents")).all() == [("Jane", None)]
    command.downgrade(db.alembic_config(engine.url), "0002")
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM agents")).scalar_one() == "Jane"
    engine.dispose()


def test_upgrade_from_a_url_in_another_directory(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no alembic.ini here: the configuration is built in code
    db.upgrade(database_url)
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


def test_alembic_commands_work_from_the_url_alone(database_url):
    config = db.alembic_config(database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
    command.upgrade(config, "head")


def test_migrated_schema_matches_the_models(engine):
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_foreign_keys_stay_on_after_migrating(sqlite_engine):
    # The migration turns them off on its connection; the pool must not get it back so.
    for _ in range(3):
        with sqlite_engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
