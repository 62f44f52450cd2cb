"""`ovbot reminders [--dry-run]`: what is due now, masked; without --dry-run, one pass."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.storage import db
from bot.storage.models import Customer, Device, OutboxMessage, Reminder
from tests.harness import count_rows, ovbot

PHONE, OTHER = "+254712345678", "+254722000333"


@pytest.fixture
def due(fleet, Session):
    """1001 (English) ends in two days: its 3-days reminder is due; 1002 (Swahili) ended
    yesterday: its day-after one; 1003 is owned but its credit ends in a week."""
    now = datetime.now(ZoneInfo("Africa/Nairobi"))
    yesterday = (now - timedelta(days=1)).replace(hour=12, minute=0)
    with db.transaction(Session) as s:
        first = Customer(phone=PHONE, language="en")
        second = Customer(phone=OTHER, language="sw")
        s.add_all([first, second])
        s.flush()
        for product_id, owner, until in (
            (1001, first, now + timedelta(days=2)),
            (1002, second, yesterday),
            (1003, first, now + timedelta(days=7)),
        ):
            device = s.scalar(select(Device).where(Device.product_id == product_id))
            device.owner_id, device.credit_until = owner.id, until
    return fleet


def quiet_now(monkeypatch) -> None:
    """QUIET_HOURS around the current hour in Nairobi."""
    hour = datetime.now(ZoneInfo("Africa/Nairobi")).hour
    monkeypatch.setenv("QUIET_HOURS", f"{(hour - 1) % 24}-{(hour + 2) % 24}")


def test_dry_run_lists_what_is_due_masked_and_queues_nothing(due, Session, monkeypatch):
    monkeypatch.setenv("QUIET_HOURS", "off")
    result = ovbot("reminders", "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "+254*****678\t1001\t3 days before\ten" in lines
    assert "+254*****333\t1002\tthe day after\tsw" in lines
    assert "2 reminder(s) due now" in lines and "0 wait for the quiet hours" in lines
    assert PHONE not in result.output and OTHER not in result.output
    assert count_rows(Session, Reminder) == 0 and count_rows(Session, OutboxMessage) == 0


def test_without_dry_run_one_pass_queues_them_once(due, Session, monkeypatch):
    monkeypatch.setenv("QUIET_HOURS", "off")
    result = ovbot("reminders")
    assert result.exit_code == 0, result.output
    assert "2 reminder(s) queued; the worker sends them" in result.output
    with Session() as s:
        bodies = sorted(s.scalars(select(OutboxMessage.body)))
    assert bodies[0].startswith("1001: your solar credit ends in 2 days")
    assert bodies[1].startswith("1002 imefungwa")
    assert "0 reminder(s) queued" in ovbot("reminders").output
    assert "0 reminder(s) due now" in ovbot("reminders", "--dry-run").output


def test_in_quiet_hours_they_wait_for_the_morning(due, Session, monkeypatch):
    quiet_now(monkeypatch)
    result = ovbot("reminders", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "2 reminder(s) due now" in result.output
    assert "2 wait for the quiet hours to end at " in result.output
    assert "(Africa/Nairobi)" in result.output
    result = ovbot("reminders")
    assert "0 reminder(s) queued" in result.output and "2 wait for the quiet hours" in result.output
    assert count_rows(Session, OutboxMessage) == 0


@pytest.mark.parametrize(
    "name, value, says",
    [
        pytest.param("REMINDER_DAYS", "3,x", "REMINDER_DAYS must be", id="days"),
        pytest.param("QUIET_HOURS", "21h-8h", "QUIET_HOURS must be", id="quiet"),
        pytest.param("TIMEZONE", "Nairobi", "TIMEZONE must be an IANA time zone", id="zone"),
    ],
)
def test_a_bad_setting_is_refused_plainly(due, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    result = ovbot("reminders", "--dry-run")
    assert result.exit_code == 1 and says in result.output and "Traceback" not in result.output


def test_reminders_off_means_none_due(due, monkeypatch):
    monkeypatch.setenv("REMINDER_DAYS", "off")
    monkeypatch.setenv("QUIET_HOURS", "off")
    assert "0 reminder(s) due now" in ovbot("reminders", "--dry-run").output
