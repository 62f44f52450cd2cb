"""Draining the outbox: claims, outcomes, crashes and concurrent workers, on both backends."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.outbox import delivery
from bot.outbox import queue as outbox
from bot.outbox.delivery import LEASE, claim, drain, pending_and_failed
from bot.outbox.senders import NotSent, OutcomeUnknown, Undeliverable, Unsubscribed
from bot.storage import db
from bot.storage.models import Customer, OutboxMessage, utcnow
from tests.fakes import FakeSender, twilio_sender
from tests.harness import outbox_rows, queue_messages

PHONE = "+254712345678"


def test_drain_sends_and_marks_sent(Session):
    first, second = queue_messages(Session, "one", "two")
    sender = FakeSender()
    assert drain(Session, {"sms": sender}) == delivery.DrainReport(sent=2)
    assert sender.sent == [(PHONE, "one"), (PHONE, "two")]
    done = outbox_rows(Session)
    assert [done[i].status for i in (first, second)] == ["sent", "sent"]
    assert (done[first].provider_message_id, done[first].attempts) == ("SM1", 1)
    assert done[first].sent_at is not None and done[first].last_error is None
    assert drain(Session, {"sms": sender}, now=utcnow() + timedelta(days=1)).total == 0


def test_not_sent_retries_after_a_backoff_then_succeeds(Session):
    [message] = queue_messages(Session, "code")
    sender = FakeSender(NotSent("connection refused"), NotSent("429", retry_after=300))
    t0 = utcnow()
    assert drain(Session, {"sms": sender}, now=t0) == delivery.DrainReport(retried=1)
    row = outbox_rows(Session)[message]
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "connection refused")
    assert row.next_attempt_at == t0 + delivery.BACKOFF
    assert drain(Session, {"sms": sender}, now=t0 + timedelta(seconds=29)).total == 0
    assert drain(Session, {"sms": sender}, now=t0 + timedelta(seconds=30)).retried == 1
    # The provider's own wait (300 s) beats the backoff (60 s).
    assert outbox_rows(Session)[message].next_attempt_at == t0 + timedelta(seconds=330)
    assert drain(Session, {"sms": sender}, now=t0 + timedelta(seconds=330)).sent == 1
    row = outbox_rows(Session)[message]
    assert (row.status, row.attempts, len(sender.sent)) == ("sent", 3, 3)


def test_a_permanent_failure_fails_and_is_never_resent(Session):
    [message] = queue_messages(Session, "code")
    sender = FakeSender(Undeliverable("twilio 400 error 21211: bad To"))
    assert drain(Session, {"sms": sender}) == delivery.DrainReport(failed=1)
    row = outbox_rows(Session)[message]
    assert row.status == "failed" and "undeliverable" in row.last_error
    assert drain(Session, {"sms": sender}, now=utcnow() + timedelta(days=1)).total == 0
    assert len(sender.sent) == 1


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(OutcomeUnknown("read timeout"), id="outcome unknown"),
        pytest.param(RuntimeError("a bug in a sender"), id="a sender's bug"),
    ],
)
def test_an_unknown_outcome_is_sent_again_after_a_backoff(Session, error):
    """A code sent twice is harmless; a code that never arrives is not."""
    [message] = queue_messages(Session, "code")
    sender = FakeSender(error)
    assert drain(Session, {"sms": sender}) == delivery.DrainReport(retried=1)
    row = outbox_rows(Session)[message]
    assert row.status == "pending" and "outcome unknown, sending again" in row.last_error
    assert drain(Session, {"sms": sender}).total == 0  # not before the backoff
    assert drain(Session, {"sms": sender}, now=utcnow() + timedelta(hours=1)).sent == 1
    assert len(sender.sent) == 2 and outbox_rows(Session)[message].status == "sent"


def test_messages_of_one_event_go_out_in_order_even_when_the_first_must_wait(Session):
    """The second code of a push never overtakes the first, whatever the first meets."""
    first, second = queue_messages(Session, "first code", "second code")
    with Session.begin() as s:
        s.get(OutboxMessage, second).after_id = first
    sender = FakeSender(NotSent("503"))
    assert drain(Session, {"sms": sender}) == delivery.DrainReport(retried=1)
    assert [b for _, b in sender.sent] == ["first code"]  # the second waited
    later = drain(Session, {"sms": sender}, now=utcnow() + timedelta(hours=1))
    assert later.sent == 2  # the first, then at once the one that waited on it
    assert [b for _, b in sender.sent] == ["first code", "first code", "second code"]


def test_max_attempts_ends_failed(Session):
    [message] = queue_messages(Session, "code")
    sender = FakeSender(*[NotSent("503")] * 10)
    now = utcnow()
    reports = [
        drain(Session, {"sms": sender}, now=now + timedelta(hours=2 * i), max_attempts=3)
        for i in range(5)
    ]
    assert [(r.retried, r.failed) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    row = outbox_rows(Session)[message]
    assert (row.status, row.attempts, len(sender.sent)) == ("failed", 3, 3)
    assert row.last_error == "gave up after 3 attempts: 503"
    with Session() as session:
        assert [m.id for m in pending_and_failed(session)] == [message]


def test_twilio_21610_marks_the_customer_opted_out(Session):
    [message] = queue_messages(Session, f"code for {PHONE}")
    sms, http = twilio_sender(
        (400, {"code": 21610, "status": 400, "message": f"Attempt to send to unsubscribed {PHONE}"})
    )
    assert drain(Session, {"sms": sms}).failed == 1
    row = outbox_rows(Session)[message]
    assert row.status == "failed" and "unsubscribed" in row.last_error
    assert PHONE not in row.last_error  # masked, like every phone we store in an error
    with db.transaction(Session) as session:
        customer = session.scalar(select(Customer).where(Customer.phone == PHONE))
        assert customer.opted_out
        assert outbox.enqueue(session, customer, "another push") is None


def test_a_customer_who_opted_out_after_queueing_gets_nothing(Session):
    [message] = queue_messages(Session, "code")
    with db.transaction(Session) as session:
        session.scalar(select(Customer)).opted_out = True
    sender = FakeSender()
    assert drain(Session, {"sms": sender}) == delivery.DrainReport(failed=1)
    assert sender.sent == []
    assert outbox_rows(Session)[message].last_error == "customer opted out: not sent"


def test_a_message_queued_in_a_rolled_back_transaction_never_exists(Session):
    queue_messages(Session)  # the customer
    with pytest.raises(RuntimeError), db.transaction(Session) as session:
        outbox.enqueue(session, session.scalar(select(Customer)), "code for a failed payment")
        raise RuntimeError("the payment failed after queueing")
    assert outbox_rows(Session) == {}
    assert drain(Session, {"sms": FakeSender()}).total == 0


def test_a_worker_killed_before_sending_loses_nothing(Session):
    [message] = queue_messages(Session, "code")
    now = utcnow()
    claimed, _ = claim(Session, {"sms"}, batch=10, now=now, lease=LEASE, max_attempts=8)
    assert [c.id for c in claimed] == [message]  # ...and the worker dies here
    sender = FakeSender()
    assert drain(Session, {"sms": sender}, now=now + LEASE - timedelta(seconds=1)).total == 0
    assert drain(Session, {"sms": sender}, now=now + LEASE).sent == 1
    assert len(sender.sent) == 1 and outbox_rows(Session)[message].attempts == 2
    assert drain(Session, {"sms": sender}, now=now + 10 * LEASE).total == 0


class Crash(BaseException):
    """The process dies (SIGKILL, power cut): nothing after this line runs."""


def test_a_worker_killed_after_sending_may_send_again_but_never_what_was_acknowledged(Session):
    acknowledged, unacknowledged = queue_messages(Session, "acked", "not acked")

    def die_on_second(body):
        if body == "not acked":
            raise Crash()

    dying = FakeSender(on_send=die_on_second)
    now = utcnow()
    with pytest.raises(Crash):
        drain(Session, {"sms": dying}, now=now)
    assert dying.sent == [(PHONE, "acked"), (PHONE, "not acked")]  # both left
    assert {i: m.status for i, m in outbox_rows(Session).items()} == {
        acknowledged: "sent",
        unacknowledged: "sending",
    }
    survivor = FakeSender()
    assert drain(Session, {"sms": survivor}, now=now + LEASE).sent == 1
    assert survivor.sent == [(PHONE, "not acked")]  # the documented double send
    assert drain(Session, {"sms": survivor}, now=now + 10 * LEASE).total == 0


def test_a_worker_whose_lease_expired_cannot_overwrite_the_new_owner(Session):
    [message] = queue_messages(Session, "code")
    now = utcnow()
    takeover = FakeSender()
    # The slow worker's send outlives its lease; another worker takes the row meanwhile.
    slow = FakeSender(on_send=lambda _: drain(Session, {"sms": takeover}, now=now + LEASE))
    drain(Session, {"sms": slow}, now=now)
    row = outbox_rows(Session)[message]
    assert (row.status, row.provider_message_id, row.attempts) == ("sent", "SM1", 2)
    assert len(takeover.sent) == 1 and len(slow.sent) == 1


def test_stopping_hands_the_rest_of_the_batch_back(Session):
    first, second = queue_messages(Session, "one", "two")
    stop = threading.Event()
    sender = FakeSender(on_send=lambda _: stop.set())
    assert drain(Session, {"sms": sender}, stop=stop) == delivery.DrainReport(sent=1)
    row = outbox_rows(Session)[second]
    assert (row.status, row.attempts) == ("pending", 0)
    assert drain(Session, {"sms": FakeSender()}).sent == 1


def test_a_channel_without_a_sender_waits_and_is_reported_once(Session, caplog, monkeypatch):
    monkeypatch.setattr(delivery, "_warned", set())
    [message] = queue_messages(Session, "by telegram", telegram_chat=987654321)
    with caplog.at_level(logging.WARNING, logger="bot.outbox.delivery"):
        for _ in range(3):
            assert drain(Session, {"sms": FakeSender()}).total == 0
    assert [r.getMessage() for r in caplog.records] == [
        "outbox: telegram messages stay pending: no telegram sender is configured"
    ]
    row = outbox_rows(Session)[message]
    assert (row.status, row.attempts, row.recipient) == ("pending", 0, "987654321")
    assert drain(Session, {"sms": FakeSender(), "telegram": FakeSender()}).sent == 1


def test_logs_mask_the_recipient(Session, caplog):
    queue_messages(Session, "code")
    with caplog.at_level(logging.INFO, logger="bot.outbox.delivery"):
        drain(Session, {"sms": FakeSender(Unsubscribed(f"21610 for {PHONE}"))})
    assert caplog.records and PHONE not in caplog.text and "+254*****678" in caplog.text


def test_several_workers_never_send_the_same_row_twice(Session):
    ids = set(queue_messages(Session, *(f"message {i}" for i in range(200))))
    sender = FakeSender()
    errors = []

    def worker():
        try:
            while drain(Session, {"sms": sender}, batch=7).total:
                pass
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    sends = Counter(body for _, body in sender.sent)
    assert len(sends) == 200 and set(sends.values()) == {1}
    done = outbox_rows(Session)
    assert set(done) == ids and {m.status for m in done.values()} == {"sent"}
    assert {m.attempts for m in done.values()} == {1}
    assert len({m.provider_message_id for m in done.values()}) == 200
