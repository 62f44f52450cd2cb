"""bot/storage/db.py's read path for the hottest reads: `Prepared` statements run on the
driver's cursor, and the `Reader` of `db.reads`, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, column, event, func, select, table, text
from sqlalchemy.exc import DBAPIError

from bot.customers import conversation
from bot.inbound import Inbound
from bot.storage import db
from bot.storage.models import Code, Customer, Device
from tests.harness import converse, terminate_backend

OWNER = "+254712345678"


def sms(text_: str, sid: str) -> Inbound:
    return Inbound("sms", sid, OWNER, text_)


def core_rows(engine, statement, params):
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(statement, params)]


@pytest.fixture
def one_connection(database_url):
    """PostgreSQL only: a migrated engine whose pool holds one connection, never pinged."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    engine = db.make_engine(database_url, db.Pool(size=1, overflow=0, ping_after_idle=3600))
    db.upgrade(engine)
    yield engine
    engine.dispose()


def prepared_rows(engine, prepared, params):
    with engine.connect() as connection:
        return prepared.rows(connection, params)


def test_the_status_statement_reads_back_as_sqlalchemy_reads_it(world):
    """Every column as SQLAlchemy's own execution returns it: ids, texts, the paid and
    reserved days, and the datetimes (UTC-aware, from SQLite's text and PostgreSQL's
    timestamps alike), with and without a code."""
    world.customer(OWNER, 1001, 1002)
    world.pay(1001, 5, "pay-1")
    converse(world.services, sms("CODE 1001", "SM-code"))
    engine = world.services.sessions.kw["bind"]
    prepared = conversation._FACTS_AND_FIGURES
    params = {"phone": OWNER}

    rows = prepared_rows(engine, prepared, params)
    with db.reads(world.services.sessions) as reader:  # on the driver connection alone
        assert reader.rows(prepared, params) == rows

    assert rows == core_rows(engine, prepared.statement, params)
    minted, never = rows
    assert (minted[5], minted[12], minted[13]) == (world.device(1001).id, 5, 5)
    assert minted[14].tzinfo is not None and minted[14].utcoffset().total_seconds() == 0
    assert minted[11] is not None and minted[11] > datetime(2020, 1, 1, tzinfo=UTC)
    assert (never[12], never[13], never[14]) == (0, 0, None)


def test_a_stranger_has_no_rows_and_the_statement_binds_its_own_values(world):
    """`status_columns` carries literal values (a code's kind and state, the LIMIT) that
    are bound by the statement itself, not by the caller."""
    world.customer(OWNER, 1001)
    engine = world.services.sessions.kw["bind"]
    assert prepared_rows(engine, conversation._FACTS_AND_FIGURES, {"phone": "+254700000000"}) == []
    latest = select(Code.id).where(Code.state == "minted").order_by(Code.id.desc()).limit(1)
    assert prepared_rows(engine, db.Prepared(latest), {}) == []


def test_the_engines_listeners_see_what_is_sent(engine):
    """Statement recorders (the tests' EXPLAIN of every lookup) see the SQL and the
    parameters exactly as the driver gets them."""
    seen = []
    listener = lambda conn, cursor, sql, params, *rest: seen.append((sql, params))  # noqa: E731
    prepared = db.Prepared(select(Customer.id).where(Customer.phone == bindparam("phone")))
    event.listen(engine, "before_cursor_execute", listener)
    try:
        assert prepared_rows(engine, prepared, {"phone": OWNER}) == []
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    ((sql, params),) = [(s, p) for s, p in seen if "customers" in s]
    assert sql.startswith("SELECT customers.id")
    assert OWNER in (params.values() if isinstance(params, dict) else params)


def test_wrong_parameters_are_refused_before_anything_is_sent(engine):
    prepared = db.Prepared(select(Customer.id).where(Customer.phone == bindparam("phone")))
    seen = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    with engine.connect() as connection:
        for wrong in ({}, {"phone": OWNER, "extra": 1}, {"number": OWNER}):
            with pytest.raises(ValueError, match="parameters"):
                prepared.rows(connection, wrong)
    assert [s for s in seen if "customers" in s] == []


def test_an_expanding_parameter_is_refused_when_first_compiled(engine):
    prepared = db.Prepared(select(Customer.id).where(Customer.id.in_(bindparam("ids"))))
    with engine.connect() as connection, pytest.raises(ValueError, match="plain parameters"):
        prepared.rows(connection, {"ids": [1, 2]})


def test_a_driver_error_is_sqlalchemys_and_the_connection_goes_on(engine):
    missing = db.Prepared(select(table("no_such_table", column("x")).c.x))
    with engine.connect() as connection:
        with pytest.raises(DBAPIError) as raised:
            missing.rows(connection, {})
        assert "no_such_table" in str(raised.value) and not raised.value.connection_invalidated
        connection.rollback()
        assert connection.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.postgres
def test_a_connection_lost_mid_read_is_invalidated_and_replaced(one_connection, database_url):
    prepared = db.Prepared(select(Customer.id).where(Customer.phone == bindparam("phone")))
    with one_connection.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        terminate_backend(database_url, pid)
        with pytest.raises(DBAPIError) as raised:
            prepared.rows(connection, {"phone": OWNER})
        assert raised.value.connection_invalidated
    with one_connection.connect() as connection:  # the pool connects afresh
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != pid
        assert prepared.rows(connection, {"phone": OWNER}) == []


# --- the Reader of db.reads ------------------------------------------------------------


def test_a_reader_opens_no_session_unless_asked_and_shares_its_connection(engine, Session):
    with db.transaction(Session) as session:
        session.add(Customer(phone=OWNER, name="Amina"))
    by_phone = db.Prepared(select(Customer.name).where(Customer.phone == bindparam("phone")))
    opened: list[object] = []
    event.listen(engine, "engine_connect", opened.append)
    with db.reads(Session) as reader:
        assert reader.rows(by_phone, {"phone": OWNER}) == [("Amina",)]
        assert opened == [] and not reader.changed()  # the driver connection alone
        customer = reader.session.scalars(select(Customer)).one()
        assert len(opened) == 1
        assert reader.session.connection() is reader.connection
        customer.name = "Someone else"
        assert reader.changed()
        with pytest.raises(db.WouldWrite):
            reader.session.flush()
    with Session() as session:
        assert session.scalars(select(Customer.name)).one() == "Amina"


def test_a_sqlite_reader_takes_no_write_lock_and_reads_one_snapshot(sqlite_engine, sqlite_url):
    Session = db.make_sessionmaker(sqlite_engine)
    with db.transaction(Session) as session:
        session.add(Customer(phone=OWNER, name="Amina"))
    names = db.Prepared(select(Customer.name).order_by(Customer.id))
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0.05)
    other.isolation_level = None
    try:
        with db.reads(Session) as reader:
            assert reader.rows(names, {}) == [("Amina",)]
            other.execute("BEGIN IMMEDIATE")  # a writer gets in while the read is open
            other.execute("UPDATE customers SET name = 'Baraka'")
            other.execute("COMMIT")
            assert reader.rows(names, {}) == [("Amina",)]  # the snapshot the read began
            assert reader.session.scalars(select(Customer.name)).all() == ["Amina"]
        with db.reads(Session) as reader:
            assert reader.rows(names, {}) == [("Baraka",)]
    finally:
        other.close()


def test_a_reader_over_a_writing_session_reads_its_uncommitted_rows(Session):
    by_phone = db.Prepared(select(Customer.name).where(Customer.phone == bindparam("phone")))
    with db.transaction(Session) as session:
        session.add(Customer(phone=OWNER, name="Amina"))
        session.flush()
        reader = db.Reader.over(session)
        assert reader.rows(by_phone, {"phone": OWNER}) == [("Amina",)]
        assert reader.session is session
        reader.close()  # not the reader's to close
        session.add(Device(product_id=77, oem_serial="X77"))
    with Session() as session:
        assert session.scalar(select(Device.oem_serial).where(Device.product_id == 77)) == "X77"


@pytest.mark.postgres
def test_a_postgres_reader_reads_in_autocommit_and_hands_back_a_transactional_connection(
    one_connection,
):
    """Each statement on its own (no BEGIN, no ROLLBACK), then the pooled connection is a
    transactional one again for the next writer."""
    Session = db.make_sessionmaker(one_connection)
    pause = db.Prepared(select(func.pg_sleep(0.02)))
    on_its_own = db.Prepared(select(func.now() == func.statement_timestamp()))
    for _ in range(2):
        with db.reads(Session) as reader:
            reader.rows(pause, {})
            assert reader.rows(on_its_own, {}) == [(True,)]
        with db.transaction(Session) as session:
            session.execute(text("SELECT pg_sleep(0.02)"))
            assert not session.execute(text("SELECT now() = statement_timestamp()")).scalar()


@pytest.mark.postgres
def test_a_reader_that_lost_its_connection_closes_cleanly_and_the_next_connects(
    one_connection, database_url
):
    Session = db.make_sessionmaker(one_connection)
    pid = db.Prepared(select(func.pg_backend_pid()))
    with db.reads(Session) as reader:
        ((first,),) = reader.rows(pid, {})
        terminate_backend(database_url, first)
        with pytest.raises(DBAPIError) as raised:
            reader.rows(pid, {})
        assert raised.value.connection_invalidated
    with db.reads(Session) as reader:
        ((second,),) = reader.rows(pid, {})
    assert second != first
