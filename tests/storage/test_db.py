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
from sqlalchemy import event, inspect, select, text
from sqlalchemy.exc import IntegrityError

from bot.storage import db
from bot.storage.models import Base, Customer, Device
from tests.harness import terminate_backend

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


def test_postgres_urls_use_psycopg_and_ping_only_idle_connections():
    engine = db.make_engine("postgres://user@db.example/ovbot")
    assert engine.dialect.name == "postgresql"
    assert engine.dialect.driver == "psycopg"
    assert not engine.pool._pre_ping  # a ping per checkout is a round trip per request


@pytest.mark.postgres
def test_only_a_connection_idle_for_a_while_is_pinged(database_url, monkeypatch):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    pings = []
    real = db.ping
    monkeypatch.setattr(db, "ping", lambda conn: (pings.append(1), real(conn)))
    engine = db.make_engine(database_url, db.Pool(size=1, overflow=0, ping_after_idle=0.3))
    try:
        for _ in range(3):  # a new connection, then back in the pool a moment ago
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        assert pings == []
        time.sleep(0.4)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 2")).scalar() == 2
        assert pings == [1]
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_idle_connection_the_server_dropped_is_replaced_at_checkout(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = db.make_engine(database_url, db.Pool(size=1, overflow=0, ping_after_idle=0.1))
    try:
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        terminate_backend(database_url, pid)
        time.sleep(0.3)
        with engine.connect() as connection:  # pinged, found dead, connected afresh
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != pid
    finally:
        engine.dispose()


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
    head = db.head_revision()
    assert head is not None and db.current_revision(engine) == head
    assert TABLES <= set(inspect(engine).get_table_names())
    db.upgrade(engine)  # already at head: nothing to do
    assert db.current_revision(engine) == head
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


def test_0003_gives_every_device_its_product_id_as_api_id_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0002")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO customers (id, phone, language, opted_out, created_at, updated_at)"
                " VALUES (1, '+254712345678', 'en', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        for row_id, product_id, owner in ((1, 1001, 1), (2, 200001, None)):
            c.execute(
                text(
                    "INSERT INTO devices (id, product_id, oem_serial, owner_id, state, balance,"
                    " created_at) VALUES (:id, :pid, :sn, :owner, 'payg', 2.5, CURRENT_TIMESTAMP)"
                ),
                {"id": row_id, "pid": product_id, "sn": f"OVES{product_id:06d}", "owner": owner},
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
        rows = c.execute(
            text("SELECT id, product_id, api_id, oem_serial, owner_id FROM devices ORDER BY id")
        ).all()
        assert [tuple(r) for r in rows] == [
            (1, 1001, "1001", "OVES001001", 1),
            (2, 200001, "200001", "OVES200001", None),
        ]
        assert c.execute(text("SELECT device_id FROM codes")).scalar_one() == 1
    with pytest.raises(IntegrityError):  # one device per API id
        with engine.begin() as c:
            c.execute(text("UPDATE devices SET api_id = '1001' WHERE id = 2"))
    command.downgrade(db.alembic_config(engine.url), "0002")
    with engine.connect() as c:
        assert "api_id" not in {col["name"] for col in inspect(c).get_columns("devices")}
        rows = c.execute(text("SELECT id, product_id, owner_id FROM devices ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, 1001, 1), (2, 200001, None)]
        assert c.execute(text("SELECT device_id FROM codes")).scalar_one() == 1
    db.upgrade(engine)  # and up again
    with engine.connect() as c:
        assert c.execute(text("SELECT api_id FROM devices ORDER BY id")).scalars().all() == [
            "1001",
            "200001",
        ]
    engine.dispose()


def test_a_new_device_gets_its_product_id_as_api_id_unless_given_one(Session):
    with db.transaction(Session) as session:
        session.add_all([Device(product_id=1001), Device(product_id=1002, api_id="TEST1")])
    with Session() as session:
        assert dict(session.execute(select(Device.product_id, Device.api_id)).all()) == {
            1001: "1001",
            1002: "TEST1",
        }


def test_0005_receipts_carries_outbox_rows_over_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0004")
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO outbox (id, channel, recipient, body, status, attempts,"
                " next_attempt_at, provider_message_id, created_at) VALUES (1, 'sms',"
                " '+254712345678', 'Code *1#', 'sent', 1, CURRENT_TIMESTAMP, 'SM1',"
                " CURRENT_TIMESTAMP)"
            )
        )
    db.upgrade(engine, "0005")
    with engine.begin() as c:
        row = c.execute(
            text("SELECT body, provider_message_id, delivery_status, retry_of FROM outbox")
        ).one()
        assert tuple(row) == ("Code *1#", "SM1", None, None)
        c.execute(
            text(
                "INSERT INTO outbox (id, channel, recipient, body, status, attempts,"
                " next_attempt_at, retry_of, created_at) VALUES (2, 'telegram', '42',"
                " 'Code *1#', 'pending', 0, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP)"
            )
        )
        c.execute(text("UPDATE outbox SET delivery_status = 'undelivered' WHERE id = 1"))
    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as c:  # one retry each
        c.execute(
            text(
                "INSERT INTO outbox (id, channel, recipient, body, status, attempts,"
                " next_attempt_at, retry_of, created_at) VALUES (3, 'telegram', '42',"
                " 'again', 'pending', 0, CURRENT_TIMESTAMP, 1, CURRENT_TIMESTAMP)"
            )
        )
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        c.execute(text("UPDATE outbox SET delivery_status = 'read' WHERE id = 1"))
    command.downgrade(db.alembic_config(engine.url), "0004")
    with engine.connect() as c:
        assert c.execute(text("SELECT id, body FROM outbox ORDER BY id")).all() == [
            (1, "Code *1#"),
            (2, "Code *1#"),
        ]
        columns = {col["name"] for col in inspect(c).get_columns("outbox")}
        assert not {"delivery_status", "delivery_error", "receipt_at", "retry_of"} & columns
    engine.dispose()


def test_0006_keeps_existing_agents_active_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0005")
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
    command.downgrade(db.alembic_config(engine.url), "0005")
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


# --- tuning: WAL's advised synchronous level, read-only transactions, pools -------------


def test_sqlite_is_synchronous_normal_under_wal(sqlite_engine):
    with sqlite_engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_a_reading_session_takes_no_write_lock_and_commits_nothing(sqlite_engine, sqlite_url):
    path = sqlite_url.removeprefix("sqlite:///")
    Session = db.make_sessionmaker(sqlite_engine)
    with db.transaction(Session) as session:
        session.add(Customer(phone="+254712345678", name="Amina"))
    with db.reading(Session) as session:
        customer = session.scalars(select(Customer)).one()
        other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # a writer gets in while the read is open
        other.execute("ROLLBACK")
        other.close()
        customer.name = "Someone else"
        assert db.changed(session)
    with Session() as session:
        assert session.scalars(select(Customer.name)).one() == "Amina"


@pytest.mark.postgres
def test_a_postgres_read_runs_each_statement_on_its_own_with_no_transaction(engine):
    """No BEGIN and ROLLBACK around a read (two round trips): under READ COMMITTED each
    statement had its own snapshot anyway. Its statements still write nothing."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only")
    Session = db.make_sessionmaker(engine)
    with db.transaction(Session) as session:
        session.add(Customer(phone="+254712345678", name="Amina"))
    with db.reading(Session) as session:
        session.execute(text("SELECT pg_sleep(0.02)"))
        # In a transaction, now() is when it began; on its own, when the statement did.
        assert session.execute(text("SELECT now() = statement_timestamp()")).scalar()
        session.scalars(select(Customer)).one().name = "Someone else"
        with pytest.raises(db.WouldWrite):
            session.flush()
    with db.transaction(Session) as session:  # the pooled connection is back to normal
        session.execute(text("SELECT pg_sleep(0.02)"))
        assert not session.execute(text("SELECT now() = statement_timestamp()")).scalar()
        assert session.scalars(select(Customer.name)).one() == "Amina"


def test_setting_a_value_it_already_had_is_no_change(sqlite_engine):
    Session = db.make_sessionmaker(sqlite_engine)
    with db.transaction(Session) as session:
        session.add(Customer(phone="+254712345678", name="Amina"))
    with db.reading(Session) as session:
        customer = session.scalars(select(Customer)).one()
        customer.name = "Amina"
        assert not db.changed(session)


def test_a_reading_session_refuses_to_flush_before_any_sql_is_sent(sqlite_engine):
    Session = db.make_sessionmaker(sqlite_engine)
    sent: list[str] = []
    with db.reading(Session) as session:
        session.execute(select(Customer)).all()
        event.listen(sqlite_engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
        session.add(Customer(phone="+254712345678", name="Amina"))
        with pytest.raises(db.WouldWrite):
            session.flush()
    assert not [s for s in sent if s.startswith("INSERT")]
    with Session() as session:
        assert session.scalars(select(Customer)).all() == []


def test_a_writing_transaction_still_takes_the_write_lock_after_a_read(sqlite_engine, sqlite_url):
    Session = db.make_sessionmaker(sqlite_engine)
    with db.reading(Session) as session:
        session.execute(select(Customer)).all()
    test_sqlite_transaction_takes_the_write_lock_at_once(sqlite_engine, sqlite_url)


def test_postgres_pool_comes_from_its_settings():
    engine = db.make_engine(
        "postgresql://user@db.example/ovbot", db.Pool(size=7, overflow=3, recycle=60)
    )
    assert (engine.pool.size(), engine.pool._max_overflow, engine.pool._recycle) == (7, 3, 60)


@pytest.mark.postgres
def test_postgres_statements_are_bounded_by_the_statement_timeout(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = db.make_engine(database_url, db.Pool(statement_timeout=0.2))
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "200ms"
            with pytest.raises(Exception, match="statement timeout"):
                connection.exec_driver_sql("SELECT pg_sleep(2)")
    finally:
        engine.dispose()
    unbounded = db.make_engine(database_url, db.Pool(statement_timeout=0))
    with unbounded.connect() as connection:
        assert connection.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
    unbounded.dispose()


def test_the_index_migration_goes_down_and_up_again(database_url):
    """Every migration is reversible: down one step from head, and back."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    config = db.alembic_config(database_url)
    command.downgrade(config, "-1")
    assert db.current_revision(engine) != db.head_revision()
    db.upgrade(engine)
    names = {ix["name"] for ix in inspect(engine).get_indexes("codes")}
    assert "ix_codes_state_minted_at" in names
    engine.dispose()


@pytest.mark.postgres
def test_migrations_run_without_the_requests_statement_timeout(database_url):
    """DB_STATEMENT_TIMEOUT bounds requests; an index build in the release step may take
    longer, so the migrations' own transaction lifts it."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = db.make_engine(database_url, db.Pool(statement_timeout=0.5))
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def record(conn, cursor, statement, *args):
        if statement.startswith("CREATE INDEX"):
            cursor.execute("SHOW statement_timeout")
            seen.append(cursor.fetchone()[0])

    db.upgrade(engine)
    engine.dispose()
    assert seen and set(seen) == {"0"}
