"""Migration 0009 (reminders), over and back with rows in the tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.storage import db

DEVICE = (
    "INSERT INTO devices (id, product_id, api_id, state, balance, credit_until, created_at)"
    " VALUES (1, 1001, '1001', 'payg', 0, '2027-01-10 15:00:00+00:00', CURRENT_TIMESTAMP)"
)
CUSTOMER = (
    "INSERT INTO customers (id, phone, language, opted_out, created_at, updated_at)"
    " VALUES (1, '+254712345678', 'en', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)
REMINDER = (
    "INSERT INTO reminders (device_id, customer_id, credit_until, days_before, send_by,"
    " created_at) VALUES (1, 1, '2027-01-10 15:00:00+00:00', {days}, CURRENT_TIMESTAMP,"
    " CURRENT_TIMESTAMP)"
)


def test_0009_adds_reminders_and_the_credit_until_index_and_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0008")
    with engine.begin() as c:
        c.execute(text(DEVICE))
        c.execute(text(CUSTOMER))
    db.upgrade(engine, "0009")
    names = {ix["name"] for ix in inspect(engine).get_indexes("devices")}
    assert "ix_devices_credit_until" in names
    assert "ix_outbox_after_id" in {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    with engine.begin() as c:
        c.execute(text(REMINDER.format(days=3)))
        c.execute(text(REMINDER.format(days=-1)))
    # The same device, period and offset twice: refused (two workers never send one twice).
    with pytest.raises(Exception, match="(?i)unique|duplicate"), engine.begin() as c:
        c.execute(text(REMINDER.format(days=3)))
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        c.execute(text(REMINDER.format(days=-2)))
    with engine.connect() as c:
        assert c.execute(text("SELECT days_before FROM reminders ORDER BY 1")).scalars().all() == [
            -1,
            3,
        ]
    command.downgrade(db.alembic_config(engine.url), "0008")
    tables = set(inspect(engine).get_table_names())
    assert "reminders" not in tables
    names = {ix["name"] for ix in inspect(engine).get_indexes("devices")}
    assert "ix_devices_credit_until" not in names
    assert "ix_outbox_after_id" not in {ix["name"] for ix in inspect(engine).get_indexes("outbox")}
    with engine.connect() as c:  # the devices and their expression indexes are untouched
        assert c.execute(text("SELECT product_id FROM devices")).scalar_one() == 1001
    db.upgrade(engine)  # and up again
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()
