"""bot/outbox/receipts.py: delivery receipts recorded on the outbox, on both databases.

Each case plays a sequence of receipts (out of order, repeated, final or not) against one
sent SMS and checks what the row, the customer and the outbox end up holding.
"""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import func, select

from bot.outbox.delivery import drain
from bot.outbox.receipts import Receipt, record
from bot.outbox.senders import Undeliverable
from bot.storage import db
from bot.storage.models import Code, Customer, Device, OutboxMessage, TelegramLink, utcnow
from tests.fakes import FakeSender
from tests.harness import outbox_rows

PHONE = "+254712345678"
SID = "SM" + "a" * 32
CHAT = 4242


def sent_sms(
    Session,
    *,
    code: bool = True,
    telegram: bool = False,
    opted_out: bool = False,
    status: str = "sent",
):
    """One SMS the provider accepted (as SID) for a customer; its outbox id."""
    with db.transaction(Session) as s:
        customer = Customer(phone=PHONE, opted_out=opted_out)
        s.add(customer)
        s.flush()
        code_id = None
        if code:
            device = Device(product_id=1001, owner_id=customer.id)
            s.add(device)
            s.flush()
            row = Code(
                device_id=device.id,
                kind="days",
                days=7,
                code="*1#",
                state="minted",
                request_key="k:0",
                channel="cli",
            )
            s.add(row)
            s.flush()
            code_id = row.id
        if telegram:
            s.add(TelegramLink(customer_id=customer.id, telegram_user_id=CHAT, chat_id=CHAT))
        message = OutboxMessage(
            customer_id=customer.id,
            channel="sms",
            recipient=PHONE,
            body="New code *1#",
            code_id=code_id,
            status=status,
            attempts=1,
            provider_message_id=SID,
            sent_at=utcnow(),
        )
        s.add(message)
        s.flush()
        return message.id


def play(Session, *receipts: tuple[str, str | None]) -> list[str]:
    outcomes = []
    for status, error in receipts:
        with db.transaction(Session) as s:
            outcomes.append(record(s, Receipt(SID, status, error), now=utcnow()))
    return outcomes


def opted_out(Session) -> bool:
    with Session() as s:
        return s.scalar(select(Customer.opted_out).where(Customer.phone == PHONE))


# label, setup (code, telegram, opted_out), receipts, outcomes,
# (status, delivery_status, delivery_error) of the SMS row, opted out after, retries queued
CASES = [
    pytest.param(
        (True, False, False),
        [("queued", None), ("sent", None), ("delivered", None)],
        ["ignored", "ignored", "delivered"],
        ("sent", "delivered", None),
        False,
        0,
        id="in order: queued, sent, delivered",
    ),
    pytest.param(
        (True, False, False),
        [("delivered", None), ("sent", None), ("queued", None)],
        ["delivered", "ignored", "ignored"],
        ("sent", "delivered", None),
        False,
        0,
        id="out of order: sent after delivered does not regress it",
    ),
    pytest.param(
        (True, False, False),
        [("delivered", None), ("delivered", None)],
        ["delivered", "repeat"],
        ("sent", "delivered", None),
        False,
        0,
        id="delivered twice",
    ),
    pytest.param(
        (True, False, False),
        [("delivered", None), ("undelivered", "30003")],
        ["delivered", "conflict"],
        ("sent", "delivered", None),
        False,
        0,
        id="a second, different final status is not taken",
    ),
    pytest.param(
        (True, False, False),
        [("sent", None), ("undelivered", "30003")],
        ["ignored", "failed"],
        ("failed", "undelivered", "30003"),
        False,
        0,
        id="undelivered code, no other channel: listed as failed",
    ),
    pytest.param(
        (False, True, False),
        [("failed", "30008")],
        ["failed"],
        ("failed", "failed", "30008"),
        False,
        0,
        id="undelivered message without a code: failed, not retried",
    ),
    pytest.param(
        (True, True, False),
        [("undelivered", "30003")],
        ["retried"],
        ("sent", "undelivered", "30003"),
        False,
        1,
        id="undelivered code with a Telegram link: queued on Telegram",
    ),
    pytest.param(
        (True, True, False),
        [("undelivered", "30003"), ("undelivered", "30003"), ("failed", "30003")],
        ["retried", "repeat", "conflict"],
        ("sent", "undelivered", "30003"),
        False,
        1,
        id="repeated undelivered: retried once only",
    ),
    pytest.param(
        (True, True, False),
        [("failed", "21610")],
        ["opted_out"],
        ("failed", "failed", "21610"),
        True,
        0,
        id="21610: the customer is opted out, nothing sent elsewhere",
    ),
    pytest.param(
        (True, True, True),
        [("undelivered", "30005")],
        ["failed"],
        ("failed", "undelivered", "30005"),
        True,
        0,
        id="an opted-out customer gets no retry",
    ),
    pytest.param(
        (True, False, False),
        [("undelivered", None)],
        ["failed"],
        ("failed", "undelivered", None),
        False,
        0,
        id="undelivered without an error code",
    ),
    pytest.param(
        (True, False, False),
        [("read", None), ("partially_delivered", None), ("canceled", None)],
        ["ignored", "ignored", "ignored"],
        ("sent", None, None),
        False,
        0,
        id="statuses we do not track are ignored",
    ),
]


@pytest.mark.parametrize("setup, receipts, outcomes, row, out_after, retries", CASES)
def test_receipts(Session, setup, receipts, outcomes, row, out_after, retries):
    code, telegram, out = setup
    sms_id = sent_sms(Session, code=code, telegram=telegram, opted_out=out)
    assert play(Session, *receipts) == outcomes
    rows = outbox_rows(Session)
    sms = rows[sms_id]
    assert (sms.status, sms.delivery_status, sms.delivery_error) == row
    if sms.delivery_status is not None:
        assert sms.receipt_at is not None
    if sms.status == "failed":
        assert receipts[-1][0] in sms.last_error or sms.delivery_status in sms.last_error
    assert opted_out(Session) is out_after
    again = [m for m in rows.values() if m.retry_of is not None]
    assert len(again) == retries
    for m in again:
        assert (m.channel, m.recipient, m.body, m.code_id, m.status, m.retry_of) == (
            "telegram",
            str(CHAT),
            sms.body,
            sms.code_id,
            "pending",
            sms_id,
        )
        assert "telegram" in sms.last_error and str(m.id) in sms.last_error


def test_an_unknown_message_sid_changes_nothing_and_is_logged_at_info(Session, caplog):
    sent_sms(Session)
    before = {i: (m.status, m.delivery_status) for i, m in outbox_rows(Session).items()}
    with caplog.at_level(logging.INFO, logger="bot.outbox.receipts"):
        with db.transaction(Session) as s:
            outcome = record(s, Receipt("SM" + "b" * 32, "undelivered", "30003"), now=utcnow())
    assert outcome == "unknown"
    assert {i: (m.status, m.delivery_status) for i, m in outbox_rows(Session).items()} == before
    assert [r.levelno for r in caplog.records] == [logging.INFO]


def test_the_telegram_retry_is_sent_once_and_if_it_fails_too_the_code_is_listed_failed(Session):
    sms_id = sent_sms(Session, telegram=True)
    assert play(Session, ("undelivered", "30003")) == ["retried"]
    telegram = FakeSender(Undeliverable("telegram Forbidden: bot was blocked by the user"))
    sms = FakeSender()
    report = drain(Session, {"sms": sms, "telegram": telegram})
    assert (report.sent, report.failed) == (0, 1)
    assert telegram.sent == [(str(CHAT), "New code *1#")] and sms.sent == []
    rows = outbox_rows(Session)
    (retry,) = [m for m in rows.values() if m.retry_of == sms_id]
    assert retry.status == "failed" and "blocked" in retry.last_error
    assert play(Session, ("undelivered", "30003")) == ["repeat"]  # no second retry
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 2
    assert drain(Session, {"sms": sms, "telegram": telegram}).total == 0


def test_a_late_receipt_does_not_cancel_a_message_being_sent_again(Session):
    """An operator's `outbox retry` put the failed row back to pending: a late receipt of
    the old send changes nothing, and the new send's receipts count afresh."""
    sms_id = sent_sms(Session, telegram=True)
    assert play(Session, ("undelivered", "30003")) == ["retried"]
    with db.transaction(Session) as s:
        s.get(OutboxMessage, sms_id).status = "pending"  # what `ovbot outbox retry` does
    assert play(Session, ("failed", "30003")) == ["stale"]
    assert outbox_rows(Session)[sms_id].status == "pending"
    drain(Session, {"sms": FakeSender(), "telegram": FakeSender()})
    again = outbox_rows(Session)[sms_id]
    assert (again.status, again.delivery_status, again.delivery_error) == ("sent", None, None)
    with db.transaction(Session) as s:
        assert (
            record(s, Receipt(again.provider_message_id, "delivered"), now=utcnow()) == "delivered"
        )


@pytest.mark.parametrize(
    "telegram, wakes", [pytest.param(True, True, id="retried on Telegram: wakes the drain"),
                        pytest.param(False, False, id="listed failed: nothing to send")]
)  # fmt: skip
def test_only_a_receipt_that_queued_a_retry_marks_its_commit_for_the_drain(
    Session, telegram, wakes
):
    sent_sms(Session, telegram=telegram)
    with db.transaction(Session) as s:
        record(s, Receipt(SID, "undelivered", "30003"), now=utcnow())
        assert db.queued(s) is wakes
