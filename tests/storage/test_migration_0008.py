"""Migration 0008 (M-Pesa payments), over and back with rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.storage import db


def insert(connection, id_: int, reference: str, source: str, days: int = 3) -> None:
    connection.execute(
        text(
            "INSERT INTO payments (id, reference, product_ref, days, amount, source, created_at)"
            " VALUES (:id, :reference, 'OVES001001', :days, 150, :source, CURRENT_TIMESTAMP)"
        ),
        {"id": id_, "reference": reference, "source": source, "days": days},
    )


def refused(engine, id_: int, reference: str, source: str, days: int = 3) -> None:
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        insert(c, id_, reference, source, days)


def test_0008_takes_mpesa_payments_and_gives_them_back_as_webhook(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0007")
    with engine.begin() as c:
        insert(c, 1, "QKL7ABC123", "webhook")
    refused(engine, 2, "mpesa:RKTQDM7W6S", "mpesa")  # not a source before 0008

    db.upgrade(engine, "0008")
    with engine.begin() as c:
        insert(c, 2, "mpesa:RKTQDM7W6S", "mpesa")
        rows = c.execute(text("SELECT reference, source FROM payments ORDER BY id")).all()
    assert rows == [("QKL7ABC123", "webhook"), ("mpesa:RKTQDM7W6S", "mpesa")]
    refused(engine, 3, "X-1", "paypal")  # the CHECK is still there, with its new value
    refused(engine, 3, "X-1", "mpesa", days=-1)  # and the table's other checks with it
    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as c:
        insert(c, 3, "mpesa:RKTQDM7W6S", "mpesa")  # a TransID once
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("payments")}
    assert {"ix_payments_device_id_code_id", "ix_payments_unminted"} <= indexes

    command.downgrade(db.alembic_config(engine.url), "0007")
    with engine.connect() as c:
        rows = c.execute(text("SELECT reference, source FROM payments ORDER BY id")).all()
    assert rows == [("QKL7ABC123", "webhook"), ("mpesa:RKTQDM7W6S", "webhook")]  # kept
    refused(engine, 3, "mpesa:RKTQDM7W7T", "mpesa")
    refused(engine, 3, "X-1", "webhook", days=-1)
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("payments")}
    assert {"ix_payments_device_id_code_id", "ix_payments_unminted"} <= indexes

    db.upgrade(engine)  # and up again
    with engine.begin() as c:
        insert(c, 3, "mpesa:RKTQDM7W7T", "mpesa")
    engine.dispose()
