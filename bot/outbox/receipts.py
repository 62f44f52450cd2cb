"""Delivery receipts: what the provider says became of a message it accepted.

Twilio posts a status callback for each change (queued, sent, delivered, undelivered,
failed, read on WhatsApp, ...), possibly out of order and possibly more than once; Africa's
Talking posts delivery reports, its final statuses mapped by the edge (Success:
delivered, Rejected: undelivered, Failed: failed).  Only the final ones are
recorded, on the outbox row whose `provider_message_id` the receipt names, and the first
final one wins: a later "sent" never regresses "delivered", and a repeat changes nothing.

What a final "undelivered" or "failed" does, in one transaction (no provider call here;
the worker sends what is queued):

- error 21610 (the recipient texted STOP to the carrier): the customer is opted out, the
  row is `failed` with that reason, and nothing is sent elsewhere;
- a message that carries a code, for a customer with a linked Telegram chat: the same
  text is queued once on Telegram (`retry_of`, unique, so only once whatever arrives);
  a WhatsApp one with no Telegram chat is queued once by SMS instead (outside the
  session window WhatsApp refuses free text: SMS is the fallback);
- anything else: the row becomes `failed` with the reason, so `ovbot outbox --failed`
  lists it for an operator.

A receipt for a message we do not know (another system's, or one recorded before this
column existed) is answered like the others and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import metrics
from bot.deps import Deps
from bot.storage import db
from bot.storage.models import Customer, OutboxMessage, TelegramLink

log = logging.getLogger(__name__)

FINAL = ("delivered", "undelivered", "failed")  # the final statuses, in Twilio's words
UNSUBSCRIBED = "21610"  # Twilio: the recipient replied STOP (carrier opt-out)
# The outbox rows each provider's receipts may name, and how its errors are written.
CHANNELS = {"twilio": ("sms", "whatsapp"), "africastalking": ("sms",)}
NAMES = {"twilio": "Twilio error", "africastalking": "Africa's Talking:"}


@dataclass(frozen=True)
class Receipt:
    """A provider's status callback, already checked by the edge."""

    provider_id: str  # Twilio's MessageSid, Africa's Talking's message id
    status: str  # lower case: delivered, undelivered, failed, sent, queued, ...
    # Twilio's digits ("30003"), Africa's Talking's failureReason ("UserInBlackList");
    # None when the provider gave none.
    error_code: str | None = None
    provider: str = "twilio"  # a key of CHANNELS


def receive(deps: Deps, receipt: Receipt) -> str:
    """Record `receipt` in its own transaction; then run the after-commit work (a retry)."""
    metrics.delivery_receipt(receipt.provider, receipt.status)
    with db.transaction(deps.sessions) as session:
        outcome = record(session, receipt, now=deps.clock())
    deps.committed(session)
    return outcome


def record(session: Session, receipt: Receipt, *, now: datetime) -> str:
    """Apply one receipt; returns what it did: unknown, ignored, repeat, conflict,
    delivered, opted_out, retried, failed, or stale (the row is being sent again)."""
    row = session.scalar(
        select(OutboxMessage)
        .where(
            OutboxMessage.provider_message_id == receipt.provider_id,
            OutboxMessage.channel.in_(CHANNELS[receipt.provider]),  # Telegram has none
        )
        .order_by(OutboxMessage.id)
        .limit(1)
        .with_for_update()
    )
    if row is None:
        log.info("receipt %s (%s): no such message; ignored", receipt.provider_id, receipt.status)
        return "unknown"
    if receipt.status not in FINAL:
        return "ignored"  # intermediate: never regresses a final state
    if row.status in ("pending", "sending"):
        # Sent again since (ovbot outbox retry): the new send gets its own sid and receipts.
        log.info("outbox %s: receipt %s is for an earlier send; ignored", row.id, receipt.status)
        return "stale"
    if row.delivery_status is not None:
        if row.delivery_status == receipt.status:
            return "repeat"
        log.warning(
            "outbox %s: receipt %s says %s after %s; the first final status stays",
            row.id,
            receipt.provider_id,
            receipt.status,
            row.delivery_status,
        )
        return "conflict"
    row.delivery_status, row.delivery_error, row.receipt_at = (
        receipt.status,
        receipt.error_code,
        now,
    )
    if receipt.status == "delivered":
        return "delivered"
    return _undelivered(session, row, receipt, now)


def _undelivered(session: Session, row: OutboxMessage, receipt: Receipt, now: datetime) -> str:
    reason = f"{receipt.status} ({NAMES[receipt.provider]} {receipt.error_code or 'none given'})"
    customer = session.get(Customer, row.customer_id) if row.customer_id else None
    if receipt.provider == "twilio" and receipt.error_code == UNSUBSCRIBED:
        if customer is not None:
            customer.opted_out = True
        _fail(row, f"{reason}: the recipient unsubscribed; customer opted out")
        return "opted_out"
    retry = _retry_elsewhere(session, row, customer, now)
    if retry is not None:
        row.last_error = f"{reason}; sent again on {retry.channel} as outbox {retry.id}"
        log.warning(
            "outbox %s: %s; queued again on %s as %s", row.id, reason, retry.channel, retry.id
        )
        return "retried"
    _fail(row, f"{reason}: not delivered, and no other channel to try")
    return "failed"


def _fail(row: OutboxMessage, reason: str) -> None:
    row.status, row.last_error = "failed", reason
    log.warning("outbox %s: %s", row.id, reason)


def _retry_elsewhere(
    session: Session, row: OutboxMessage, customer: Customer | None, now: datetime
) -> OutboxMessage | None:
    """The same code once more on the customer's Telegram chat, if they have one; for a
    WhatsApp message without one, by SMS."""
    if row.code_id is None or row.channel == "telegram" or row.retry_of is not None:
        return None
    if customer is None or customer.opted_out:
        return None
    already = session.scalar(select(OutboxMessage.id).where(OutboxMessage.retry_of == row.id))
    if already is not None:
        return None
    link = session.scalar(
        select(TelegramLink)
        .where(TelegramLink.customer_id == customer.id)
        .order_by(TelegramLink.linked_at.desc())
        .limit(1)
    )
    if link is not None:
        channel, recipient = "telegram", str(link.chat_id)
    elif row.channel == "whatsapp":
        channel, recipient = "sms", customer.phone
    else:
        return None
    retry = OutboxMessage(
        customer_id=customer.id,
        channel=channel,
        recipient=recipient,
        body=row.body,
        code_id=row.code_id,
        retry_of=row.id,
        next_attempt_at=now,
    )
    session.add(retry)
    session.flush()
    db.mark_queued(session)  # the commit wakes the drain (Deps.committed)
    return retry
