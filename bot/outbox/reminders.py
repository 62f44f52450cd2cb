"""Reminders in the outbox: checked again when claimed, withdrawn when no longer due.

A reminder is queued for the credit period it is about (bot/customers/reminders.py); by
the time the outbox claims it, a payment may have moved the period on, the device may
have changed hands or been freed, or the reminder may have waited (a retry's backoff)
past its `send_by` (the end of its window, or the start of the quiet hours). Such a
reminder is withdrawn in the claim's own transaction: its row says when and why, and its
message is deleted, so nothing lists it as failed and no retry can send it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from bot.ledger.periods import still_stands
from bot.storage.models import Device, OutboxMessage, Reminder

MOVED_ON = "its credit period moved on (a payment, or the device changed) before it went out"
TOO_LATE = "it could not go out before its send-by time (its window, or the quiet hours)"


def withdraw(session: Session, rows: Sequence[OutboxMessage], now: datetime) -> set[int]:
    """Withdraw the reminders among claimed `rows` that are no longer due; their ids."""
    if not rows:
        return set()
    found = session.execute(
        select(
            Reminder.id,
            Reminder.outbox_id,
            Reminder.send_by,
            exists(select(Device.id).where(still_stands())).label("stands"),
        ).where(Reminder.outbox_id.in_([r.id for r in rows]))
    ).all()
    reasons: dict[int, tuple[int, str]] = {
        outbox_id: (reminder_id, MOVED_ON if not stands else TOO_LATE)
        for reminder_id, outbox_id, send_by, stands in found
        if outbox_id is not None and (not stands or now >= send_by)
    }
    for reminder_id, reason in reasons.values():
        session.execute(
            update(Reminder)
            .where(Reminder.id == reminder_id)
            .values(outbox_id=None, cancelled_at=now, cancel_reason=reason)
        )
    for row in rows:
        if row.id in reasons:
            session.delete(row)
    return set(reasons)
