"""Migration 0007 (channels) over and back, with rows in the tables, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from bot.storage import db

CUSTOMER = (
    "INSERT INTO customers (id, phone, language, opted_out, last_channel, created_at,"
    " updated_at) VALUES ({id}, '+2547123456{id:02d}', 'en', false, {channel},"
    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
)
OUTBOX = (
    "INSERT INTO outbox (id, customer_id, channel, recipient, body, status, attempts,"
    " next_attempt_at, created_at{extra_names}) VALUES ({id}, 1, '{channel}', '+254712345601',"
    " 'Code *1#', 'sent', 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP{extra_values})"
)
CODE = (
    "INSERT INTO codes (id, device_id, kind, days, code, state, request_key, channel,"
    " created_at) VALUES ({id}, 1, 'days', 3, '*1{id}#', 'minted', 'key-{id}', '{channel}',"
    " CURRENT_TIMESTAMP)"
)
DEVICE = (
    "INSERT INTO devices (id, product_id, api_id, state, balance, created_at)"
    " VALUES (1, 1001, '1001', 'payg', 0, CURRENT_TIMESTAMP)"
)


def _outbox(id: int, channel: str, **extra: str) -> str:
    names = "".join(f", {name}" for name in extra)
    values = "".join(f", '{value}'" for value in extra.values())
    return OUTBOX.format(id=id, channel=channel, extra_names=names, extra_values=values)


def _refused(engine, statement: str) -> None:
    with pytest.raises(Exception, match="(?i)check"), engine.begin() as c:
        c.execute(text(statement))


def test_0007_takes_whatsapp_and_africastalking_rows_and_goes_back(database_url):
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0006")
    with engine.begin() as c:
        c.execute(text(CUSTOMER.format(id=1, channel="'sms'")))
        c.execute(text(DEVICE))
        c.execute(text(CODE.format(id=1, channel="sms")))
        c.execute(text(_outbox(1, "sms", delivery_error="30003")))
    _refused(engine, CUSTOMER.format(id=9, channel="'whatsapp'"))  # not before 0007

    db.upgrade(engine, "0007")
    with engine.begin() as c:
        assert c.execute(
            text("SELECT last_channel, whatsapp_at FROM customers WHERE id = 1")
        ).one() == ("sms", None)
        assert c.execute(text("SELECT provider, link_id, delivery_error FROM outbox")).one() == (
            None,
            None,
            "30003",
        )
        c.execute(text(CUSTOMER.format(id=2, channel="'whatsapp'")))
        c.execute(text("UPDATE customers SET whatsapp_at = CURRENT_TIMESTAMP WHERE id = 2"))
        c.execute(text(CODE.format(id=2, channel="whatsapp")))
        c.execute(text(_outbox(2, "whatsapp")))
        c.execute(
            text(
                _outbox(
                    3,
                    "sms",
                    provider="africastalking",
                    link_id="SampleLinkId123",
                    delivery_error="UserAccountSuspended",
                )
            )
        )
    _refused(engine, CUSTOMER.format(id=8, channel="'fax'"))
    _refused(engine, _outbox(8, "fax"))
    _refused(engine, _outbox(8, "sms", provider="nexmo"))
    _refused(engine, CODE.format(id=8, channel="fax"))

    command.downgrade(db.alembic_config(engine.url), "0006")
    with engine.connect() as c:
        assert c.execute(text("SELECT id, last_channel FROM customers ORDER BY id")).all() == [
            (1, "sms"),
            (2, "sms"),
        ]
        assert c.execute(text("SELECT id, channel FROM codes ORDER BY id")).all() == [
            (1, "sms"),
            (2, "sms"),
        ]
        assert c.execute(
            text("SELECT id, channel, delivery_error FROM outbox ORDER BY id")
        ).all() == [(1, "sms", "30003"), (2, "sms", None), (3, "sms", "UserAccountSuspe")]
        assert not {"provider", "link_id"} & {
            col["name"] for col in inspect(c).get_columns("outbox")
        }
        assert "whatsapp_at" not in {col["name"] for col in inspect(c).get_columns("customers")}
    _refused(engine, CUSTOMER.format(id=7, channel="'whatsapp'"))  # the old rule is back

    db.upgrade(engine)  # and up again
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()
