"""bot/storage/models.py: the schema keeps the rules, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import CheckConstraint, delete, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError, StatementError

from bot.storage.models import (
    Agent,
    Base,
    Code,
    Customer,
    Device,
    InboundMessage,
    OutboxMessage,
    Payment,
    TelegramLink,
    utcnow,
)

PHONE = "+254700000001"


def device(product_id: int = 1001, **fields) -> Device:
    return Device(product_id=product_id, **fields)


def code(dev: Device, key: str = "req-1", **fields) -> Code:
    fields = {"kind": "days", "days": 7, "channel": "sms", **fields}
    return Code(device=dev, request_key=key, **fields)


def payment(reference: str = "pay-1", **fields) -> Payment:
    return Payment(reference=reference, **{"days": 7, "source": "cli", **fields})


def minted(dev: Device, key: str, value: str) -> Code:
    return code(dev, key, state="minted", code=value)


CODE_VALUE = "*024 413 975 593 119 504 641#"

# Each case adds rows that break one rule; the flush must raise IntegrityError.
VIOLATIONS = {
    "duplicate payment reference": lambda s: [payment("pay-1"), payment("pay-1")],
    "duplicate request_key": lambda s: [code(d := device(), "k"), code(d, "k")],
    "duplicate inbound message": lambda s: [
        InboundMessage(channel="sms", provider_id="SM1"),
        InboundMessage(channel="sms", provider_id="SM1"),
    ],
    "duplicate customer phone": lambda s: [Customer(phone=PHONE), Customer(phone=PHONE)],
    "duplicate product id": lambda s: [device(1001), device(1001)],
    "duplicate api id": lambda s: [device(1001, api_id="X1"), device(1002, api_id="X1")],
    "duplicate code on a device": lambda s: [
        minted(d := device(), "a", CODE_VALUE),
        minted(d, "b", CODE_VALUE),
    ],
    "duplicate telegram user": lambda s: [
        TelegramLink(customer=Customer(phone=PHONE), telegram_user_id=5, chat_id=5),
        TelegramLink(customer=Customer(phone="+254700000002"), telegram_user_id=5, chat_id=6),
    ],
    "bad code kind": lambda s: [code(device(), kind="bonus", days=None)],
    "days code with 0 days": lambda s: [code(device(), days=0)],
    "days code with 1096 days": lambda s: [code(device(), days=1096)],
    "days code without days": lambda s: [code(device(), days=None)],
    "free code with days": lambda s: [code(device(), kind="free", days=5)],
    "reset code with days": lambda s: [code(device(), kind="reset", days=5)],
    "minted code without its value": lambda s: [code(device(), state="minted")],
    "bad code state": lambda s: [code(device(), state="lost")],
    "bad code channel": lambda s: [code(device(), channel="email")],
    "negative payment days": lambda s: [payment(days=-1)],
    "zero payment amount": lambda s: [payment(amount=Decimal("0"))],
    "bad payment source": lambda s: [payment(source="bank")],
    "bad language": lambda s: [Customer(phone=PHONE, language="de")],
    "bad last channel": lambda s: [Customer(phone=PHONE, last_channel="ussd")],
    "bad device state": lambda s: [device(state="stolen")],
    "negative device balance": lambda s: [device(balance=Decimal("-1"))],
    "bad agent role": lambda s: [Agent(phone=PHONE, name="A", pin_hash="x", role="boss")],
    "negative failed attempts": lambda s: [
        Agent(phone=PHONE, name="A", pin_hash="x", failed_attempts=-1)
    ],
    "bad outbox status": lambda s: [
        OutboxMessage(channel="sms", recipient=PHONE, body="hi", status="lost")
    ],
    "bad outbox channel": lambda s: [OutboxMessage(channel="ussd", recipient=PHONE, body="hi")],
    "code for a missing device": lambda s: [
        Code(device_id=999, kind="free", request_key="k", channel="cli")
    ],
    "payment by a missing agent": lambda s: [payment(agent_id=999)],
    "payment into a missing code": lambda s: [payment(code_id=999)],
    "telegram link to a missing customer": lambda s: [
        TelegramLink(customer_id=999, telegram_user_id=5, chat_id=5)
    ],
    "device owned by a missing customer": lambda s: [device(owner_id=999)],
}


@pytest.mark.parametrize("rows", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_the_schema_refuses(session, rows):
    objects = rows(session)
    for obj in objects[:-1]:
        session.add(obj)
    session.flush()  # everything but the last row is fine
    session.add(objects[-1])
    with pytest.raises(IntegrityError):
        session.flush()


def test_the_schema_accepts_valid_codes(session):
    dev = device()
    session.add_all(
        [
            code(dev, "a", days=1),
            code(dev, "b", days=1095),
            code(dev, "c", kind="free", days=None, state="minted", code=CODE_VALUE),
            code(dev, "d", kind="reset", days=None, state="unknown"),
            code(dev, "e", state="failed"),
            code(dev, "f", state="pending"),  # several pending codes with no value yet
        ]
    )
    session.flush()
    assert len(session.scalars(select(Code)).all()) == 6


def test_defaults(session):
    customer, dev = Customer(phone=PHONE), device()
    c = code(dev, "a")
    out = OutboxMessage(channel="sms", recipient=PHONE, body="hi")
    agent = Agent(phone="+254700000002", name="Ann", pin_hash="x")
    session.add_all([customer, dev, c, out, agent])
    session.flush()
    assert (customer.language, customer.opted_out) == ("en", False)
    assert (dev.state, dev.balance) == ("payg", Decimal("0"))
    assert c.state == "pending"
    assert (out.status, out.attempts) == ("pending", 0)
    assert (agent.role, agent.failed_attempts) == ("agent", 0)
    assert out.next_attempt_at.tzinfo is not None


def test_server_defaults_cover_raw_inserts(session):
    """The defaults live in the schema too, not only in Python."""
    now = utcnow()
    session.execute(
        text("INSERT INTO customers (phone, created_at, updated_at) VALUES (:p, :t, :t)"),
        {"p": PHONE, "t": now.replace(tzinfo=None)},
    )
    row = session.execute(text("SELECT language, opted_out FROM customers")).one()
    assert row.language == "en" and not row.opted_out


def test_datetimes_round_trip_as_utc(Session):
    nairobi = timezone(timedelta(hours=3))
    until = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=nairobi)
    with Session() as session:
        session.add(device(credit_until=until))
        session.commit()
    with Session() as session:
        stored = session.scalars(select(Device.credit_until)).one()
        assert stored == until
        assert stored.utcoffset() == timedelta(0)
        assert stored.hour == 0  # 03:04 in Nairobi is 00:04 UTC
        created = session.scalars(select(Device.created_at)).one()
        assert created.tzinfo is not None and abs(utcnow() - created) < timedelta(minutes=1)


def test_datetimes_compare_in_queries(session):
    session.add_all(
        [
            device(1001, credit_until=utcnow() + timedelta(days=1)),
            device(1002, credit_until=utcnow() - timedelta(days=1)),
        ]
    )
    session.flush()
    live = session.scalars(select(Device.product_id).where(Device.credit_until > utcnow()))
    assert live.all() == [1001]


def test_naive_datetimes_are_refused(session):
    session.add(device(credit_until=datetime(2030, 1, 1)))
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_money_keeps_its_cents(Session):
    with Session() as session:
        session.add(device(balance=Decimal("12.50"), value_per_day=Decimal("33.33")))
        session.commit()
    with Session() as session:
        dev = session.scalars(select(Device)).one()
        assert (dev.balance, dev.value_per_day) == (Decimal("12.50"), Decimal("33.33"))


def test_deleting_a_customer_unlinks_telegram_and_frees_devices(session):
    customer = Customer(phone=PHONE)
    session.add_all(
        [
            customer,
            device(owner=customer),
            TelegramLink(customer=customer, telegram_user_id=5, chat_id=5),
        ]
    )
    session.flush()
    session.execute(delete(Customer))  # in the database: ON DELETE CASCADE / SET NULL
    session.expire_all()
    assert session.scalars(select(TelegramLink)).all() == []
    assert session.scalars(select(Device.owner_id)).one() is None


def test_relationships(session):
    customer = Customer(phone=PHONE)
    session.add_all([device(1002, owner=customer), device(1001, owner=customer)])
    session.flush()
    session.execute(
        insert(Code).values(
            device_id=customer.devices[0].id, kind="free", request_key="k", channel="cli"
        )
    )
    agent = Agent(phone="+254700000002", name="Ann", pin_hash="x")
    c = session.scalars(select(Code)).one()
    pay = payment(device=c.device, code=c, agent=agent)
    session.add(pay)
    session.flush()
    session.expire_all()
    assert [d.product_id for d in customer.devices] == [1001, 1002]
    assert c.device.owner is customer
    assert (pay.device, pay.code, pay.agent) == (c.device, c, agent)


def test_every_check_constraint_is_in_the_migrated_schema(engine):
    """Alembic's comparison skips CHECK constraints; compare them by name here."""
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        wanted = {c.name for c in table.constraints if isinstance(c, CheckConstraint)}
        found = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert wanted <= found, table.name
