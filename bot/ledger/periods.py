"""Credit periods: whether a device's credit may be reminded, and whether a reminder stands.

A credit period is a device's `credit_until`: a days code moves it, so a reminder about
one period (`Reminder.credit_until`) no longer stands once a code has moved it on. One
home for the rule, used where reminders are chosen (bot/customers/reminders.py) and again
when the outbox is about to send one (bot/outbox/reminders.py):

- the device is owned, pay-as-you-go (not free for ever, not locked by a reset code), and
  has a `credit_until`;
- no paid days wait for a code (a payment arrived: its code is coming, or the customer
  gets it with CODE): a payment cancels the reminder even before it is minted.

Opted-out customers are left out by the callers (the outbox already refuses them).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, select

from bot.storage.models import Device, Payment, Reminder


def remindable() -> ColumnElement[bool]:
    """The devices whose current credit period may be reminded (SQL, on `Device`)."""
    return and_(
        Device.owner_id.is_not(None),
        Device.state == "payg",
        Device.credit_until.is_not(None),
        ~paid_days_waiting(),
    )


def paid_days_waiting() -> ColumnElement[bool]:
    """Whether paid days of the device wait for a code (ix_payments_unminted serves it)."""
    return exists(
        select(Payment.id).where(
            Payment.device_id == Device.id, Payment.code_id.is_(None), Payment.days > 0
        )
    )


def still_stands() -> ColumnElement[bool]:
    """Whether a reminder (joined to its device) is about the device's current period,
    still owned by the same customer, and still remindable."""
    return and_(
        Device.id == Reminder.device_id,
        Device.credit_until == Reminder.credit_until,
        Device.owner_id == Reminder.customer_id,
        remindable(),
    )
