"""Payments from payment systems (and operators): record once, mint, push the code.

`receive(deps, session, payment_in)` records a payment idempotently on its reference,
mints its code and queues the push to the owner; it answers with an outcome, which the
edge (webhooks/payments.py) turns into an HTTP status. A payment for a device we do not
know is kept as unmatched, never lost, until an operator assigns it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.deps import Deps
from bot.ledger import InvalidPayment, LedgerError, devices
from bot.ledger.outcome import attempt
from bot.outbox import queue as outbox
from bot.storage.models import Device, Payment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PaymentIn:
    """A payment as a payment system reports it, already checked field by field."""

    reference: str
    product_ref: str  # product id or serial, as the payer sent it
    days: int | None
    amount: Decimal | None
    phone: str | None


@dataclass(frozen=True)
class Answer:
    """What the payment system is told; `body["status"]` is the outcome:

    `credited` (the device has the days), `unmatched` (kept for an operator to assign) or
    `rejected` (recorded nothing; `field` and `error` say why).
    """

    body: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.body["status"])


def receive(deps: Deps, session: Session, data: PaymentIn) -> Answer:
    """Record `data` once per reference, mint its code and queue the push to the owner."""
    first = session.scalar(select(Payment).where(Payment.reference == data.reference))
    if first is not None:
        return _repeat(session, first)
    device = devices.find(session, data.product_ref)
    try:
        result = deps.ledger.record_payment(
            session,
            reference=data.reference,
            device=device,
            days=data.days,
            amount=data.amount,
            source="webhook",
            phone=data.phone,
            product_ref=data.product_ref,
        )
    except InvalidPayment as exc:  # e.g. an amount worth too many days at this device's price
        field = "amount" if data.amount is not None else "days"
        return Answer({"status": "rejected", "field": field, "error": str(exc)})
    if not result.created:  # a concurrent delivery recorded it first: it settles it too
        return _repeat(session, result.payment)
    answer = settle(deps, session, result.payment, channel="payments")
    result.payment.response = json.dumps(answer.body)
    return answer


def settle(deps: Deps, session: Session, payment: Payment, *, channel: str) -> Answer:
    """Mint the code for a recorded payment (when configured) and queue its push."""
    body: dict[str, Any] = {"status": "unmatched", "reference": payment.reference}
    if payment.device_id is None:
        body["message"] = "unknown device: payment kept until an operator assigns it"
        return Answer(body)
    device = session.get(Device, payment.device_id)
    if device is None:  # the foreign key forbids it
        raise LedgerError(f"payment {payment.reference}: device {payment.device_id} is gone")
    body.update(
        status="credited",
        product_id=device.product_id,
        days=payment.days,
        balance=str(device.balance),
    )
    if not deps.settings.mint_on_payment or payment.days == 0:
        body["code"] = "on request" if payment.days else "none (below one day)"
        return Answer(body)
    outcome = attempt(
        lambda: deps.ledger.mint_days(
            session,
            device,
            request_key=f"payment:{payment.reference}",
            channel=channel,
            timeout=deps.settings.reply_budget,
        ),
        f"payment {payment.reference} recorded; code deferred",
    )
    if outcome.result is None:
        body["code"] = "deferred"
        return Answer(body)
    codes = outcome.result.codes
    if outcome.result.held:  # the credit-ahead cap: minted when they fit
        body["held_days"] = outcome.result.held
    queued = outbox.notify_codes(session, deps.messages, device, codes)
    body["code"] = "sent" if queued else ("minted" if codes else "none")
    return Answer(body)


def _repeat(session: Session, payment: Payment) -> Answer:
    if payment.response:
        return Answer(json.loads(payment.response))
    status = "credited" if payment.device_id else "unmatched"
    return Answer({"status": status, "reference": payment.reference})


def unmatched(session: Session) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment).where(Payment.device_id.is_(None)).order_by(Payment.created_at)
        )
    )


def assign(deps: Deps, session: Session, reference: str, product_ref: str) -> Answer:
    """An operator gives an unmatched payment its device; its code then goes out."""
    payment = session.scalar(select(Payment).where(Payment.reference == reference))
    if payment is None:
        raise LedgerError(f"no payment with reference {reference}")
    device = devices.find(session, product_ref)
    if device is None:
        raise LedgerError(f"no device {product_ref} (run `ovbot sync-devices`?)")
    deps.ledger.assign_payment(session, payment, device)
    answer = settle(deps, session, payment, channel="cli")
    payment.response = json.dumps(answer.body)
    return answer
