"""`ovbot outbox [--failed]` and `ovbot outbox retry ID...|--failed`; `ovbot worker`'s help."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.outbox import receipts
from bot.storage import db
from bot.storage.models import Customer, OutboxMessage, utcnow
from tests.harness import outbox_rows, ovbot, queue_messages


@pytest.fixture
def rows(home, Session):
    """Four messages: pending, sending, sent and failed (8 attempts), ids in that order."""
    assert ovbot("db", "upgrade").exit_code == 0
    ids = queue_messages(Session, "one", "two", "three", "four")
    with db.transaction(Session) as session:
        for message_id, status in zip(ids, ("pending", "sending", "sent", "failed"), strict=True):
            row = session.get(OutboxMessage, message_id)
            row.status, row.attempts = status, 8 if status == "failed" else 1
            row.last_error = "twilio HTTP 500 error 20500: down" if status == "failed" else None
            row.created_at = utcnow() - timedelta(hours=3)
    return ids


def test_outbox_lists_what_is_not_sent_masked_with_age_and_error(rows):
    result = ovbot("outbox")
    assert result.exit_code == 0
    *lines, total = result.stdout.splitlines()
    assert total == "3 message(s) pending or failed"
    assert [line.split("\t")[:2] for line in lines] == [
        [str(rows[0]), "pending"],
        [str(rows[1]), "sending"],
        [str(rows[3]), "failed"],
    ]
    failed = lines[2].split("\t")
    assert failed[2:6] == ["sms", "+254*****678", "attempts 8", "3h old"]
    assert failed[6] == "twilio HTTP 500 error 20500: down"
    assert "712345678" not in result.stdout


def test_outbox_failed_lists_only_the_failed(rows):
    result = ovbot("outbox", "--failed")
    *lines, total = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(rows[3])]
    assert total == "1 message(s) failed"


def test_retry_puts_a_failed_row_back_to_pending_now_with_fresh_attempts(rows, Session):
    result = ovbot("outbox", "retry", str(rows[3]))
    assert result.exit_code == 0 and "1 message(s) back to pending" in result.stdout
    row = outbox_rows(Session)[rows[3]]
    assert (row.status, row.attempts) == ("pending", 0)
    assert row.next_attempt_at <= utcnow()


@pytest.mark.parametrize(
    "position, why",
    [
        pytest.param(0, "it is pending, not failed", id="pending"),
        pytest.param(1, "it is sending, not failed", id="in flight"),
        pytest.param(2, "it is sent, not failed", id="sent"),
    ],
)
def test_retry_refuses_a_row_that_is_not_failed_and_changes_it_not(rows, Session, position, why):
    before = {i: (r.status, r.attempts, r.next_attempt_at) for i, r in outbox_rows(Session).items()}
    result = ovbot("outbox", "retry", str(rows[position]))
    assert result.exit_code == 1
    assert f"message {rows[position]} not retried: {why}" in result.stderr
    assert "0 message(s) back to pending" in result.stdout
    after = {i: (r.status, r.attempts, r.next_attempt_at) for i, r in outbox_rows(Session).items()}
    assert after == before


def test_retry_of_an_unknown_id_says_so(rows, Session):
    result = ovbot("outbox", "retry", "4242")
    assert result.exit_code == 1 and "message 4242 not retried: no such message" in result.stderr


def test_retry_of_several_retries_the_failed_and_names_the_others(rows, Session):
    result = ovbot("outbox", "retry", str(rows[3]), str(rows[2]))
    assert result.exit_code == 1 and "1 message(s) back to pending" in result.stdout
    assert f"message {rows[2]} not retried" in result.stderr
    assert outbox_rows(Session)[rows[3]].status == "pending"
    assert outbox_rows(Session)[rows[2]].status == "sent"


def test_retry_failed_retries_every_failed_row_but_an_opted_out_customers(rows, Session):
    [other] = queue_messages(Session, "five", phone="+254722000333")
    with db.transaction(Session) as session:
        row = session.get(OutboxMessage, other)
        row.status = "failed"
        session.scalar(select(Customer).where(Customer.phone == "+254722000333")).opted_out = True
    result = ovbot("outbox", "retry", "--failed")
    assert result.exit_code == 0 and "1 message(s) back to pending" in result.stdout
    assert "its customer opted out" in result.stderr
    statuses = {i: r.status for i, r in outbox_rows(Session).items()}
    assert statuses[rows[3]] == "pending" and statuses[other] == "failed"


@pytest.mark.parametrize(
    "args", [pytest.param((), id="nothing"), pytest.param(("5", "--failed"), id="both")]
)
def test_retry_needs_ids_or_failed_but_not_both(rows, Session, args):
    result = ovbot("outbox", "retry", *args)
    assert result.exit_code == 2 and "--failed" in result.stderr
    assert outbox_rows(Session)[rows[3]].status == "failed"


def test_retry_refuses_an_unmigrated_database(home):
    result = ovbot("outbox", "retry", "--failed")
    assert result.exit_code == 1 and "ovbot db upgrade" in result.stderr


def test_worker_help_says_what_the_sweep_does(home):
    text = " ".join(ovbot("worker", "--help").stdout.split())
    assert "--sweep-every FLOAT Seconds between sweeps:" in text and "code history" in text


def test_outbox_failed_shows_undelivered_codes_from_both_providers(home, Session):
    """A Twilio receipt and an Africa's Talking report, both final failures: each row is
    listed with the provider's own error (Twilio's digits, Africa's Talking's reason)."""
    assert ovbot("db", "upgrade").exit_code == 0
    twilio, at = queue_messages(Session, "Code *111#", "Code *222#")
    with db.transaction(Session) as session:
        for message_id, sid in ((twilio, "SM" + "1" * 32), (at, "ATXid_" + "2" * 32)):
            row = session.get(OutboxMessage, message_id)
            row.status, row.attempts, row.provider_message_id = "sent", 1, sid
        session.get(OutboxMessage, at).provider = "africastalking"
        now = utcnow()
        receipts.record(session, receipts.Receipt("SM" + "1" * 32, "undelivered", "30003"), now=now)
        report = receipts.Receipt(
            "ATXid_" + "2" * 32, "failed", "UserInBlackList", "africastalking"
        )
        receipts.record(session, report, now=now)
    result = ovbot("outbox", "--failed")
    *lines, total = result.stdout.splitlines()
    assert total == "2 message(s) failed"
    errors = {line.split("\t")[0]: line.split("\t")[6] for line in lines}
    channels = {line.split("\t")[0]: line.split("\t")[2] for line in lines}
    assert channels == {str(twilio): "sms", str(at): "sms/africastalking"}
    assert "undelivered (Twilio error 30003)" in errors[str(twilio)]
    assert "failed (Africa's Talking: UserInBlackList)" in errors[str(at)]
