"""Payments from payment systems (and operators): record once, mint, push the code.

`receive(core, session, payload)` validates a JSON payment, records it idempotently on its
reference, mints its code and queues the push to the owner. A payment for a device we do
not know is kept as unmatched, never lost, until an operator assigns it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ledger import devices
from bot.outbox import queue as outbox
from bot.text import phones
from bot.ledger import (
    MAX_PAYMENT_DAYS, InvalidPayment, LedgerError, MintPending, Refused, ServiceUnavailable,
    money,
)
from bot.storage.models import Device, Payment

log = logging.getLogger(__name__)
MAX_REFERENCE = 128
MAX_PRODUCT_REF = 64  # the longest serial the devices table holds


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict


class BadPayment(ValueError):
    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class PaymentIn:
    reference: str
    product_ref: str
    days: int | None
    amount: Decimal | None
    phone: str | None


def parse(payload: object, region: str) -> PaymentIn:
    """Validate a payment's JSON body; BadPayment names the first bad field.

    `region` reads a national phone number (the settings' default region).
    """
    if not isinstance(payload, dict):
        raise BadPayment("body", "must be a JSON object")
    reference = payload.get("reference")
    if not isinstance(reference, str) or not reference.strip() or len(reference) > MAX_REFERENCE:
        raise BadPayment("reference", f"must be a non-empty string of at most {MAX_REFERENCE}")
    product = payload.get("product_id")
    if product is None:
        product = payload.get("serial")
    if isinstance(product, bool) or not isinstance(product, (int, str)) \
            or not str(product).strip() or len(str(product).strip()) > MAX_PRODUCT_REF:
        raise BadPayment("product_id", "must be a product id or serial")
    days, amount = payload.get("days"), payload.get("amount")
    if (days is None) == (amount is None):
        raise BadPayment("days", "give exactly one of days or amount")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int)
                             or not 0 < days <= MAX_PAYMENT_DAYS):
        raise BadPayment("days", f"must be a whole number from 1 to {MAX_PAYMENT_DAYS}")
    if amount is not None:
        amount = _amount(amount)
    phone = payload.get("phone")
    if phone is not None:
        try:
            phone = phones.normalise(phone, region)
        except phones.InvalidPhone as exc:
            raise BadPayment("phone", str(exc)) from None
    return PaymentIn(reference.strip(), str(product).strip(), days, amount, phone)


def _amount(value: object) -> Decimal:
    """A positive amount in whole cents, from a JSON number or a numeric string."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidPayment("amount must be a number")
        return money(str(value))
    except InvalidPayment as exc:
        raise BadPayment("amount", str(exc)) from None


def receive(core, session: Session, payload: object) -> Answer:
    try:
        data = parse(payload, core.settings.default_region)
    except BadPayment as exc:
        return Answer(400, {"status": "rejected", "field": exc.field, "error": exc.reason})
    first = session.scalar(select(Payment).where(Payment.reference == data.reference))
    if first is not None:
        return _repeat(session, first)
    device = devices.find(session, data.product_ref)
    try:
        result = core.ledger.record_payment(
            session, reference=data.reference, device=device, days=data.days,
            amount=data.amount, source="webhook", phone=data.phone, product_ref=data.product_ref)
    except InvalidPayment as exc:  # e.g. an amount worth too many days at this device's price
        field = "amount" if data.amount is not None else "days"
        return Answer(422, {"status": "rejected", "field": field, "error": str(exc)})
    if not result.created:  # a concurrent delivery recorded it first: it settles it too
        return _repeat(session, result.payment)
    answer = settle(core, session, result.payment, channel="payments")
    result.payment.response = json.dumps(answer.body)
    return answer


def settle(core, session: Session, payment: Payment, *, channel: str) -> Answer:
    """Mint the code for a recorded payment (when configured) and queue its push."""
    body = {"status": "unmatched", "reference": payment.reference}
    if payment.device_id is None:
        body["message"] = "unknown device: payment kept until an operator assigns it"
        return Answer(202, body)
    device = session.get(Device, payment.device_id)
    body.update(status="credited", product_id=device.product_id, days=payment.days,
                balance=str(device.balance))
    if not core.settings.mint_on_payment or payment.days == 0:
        body["code"] = "on request" if payment.days else "none (below one day)"
        return Answer(200, body)
    try:
        minted = core.ledger.mint_days(session, device, request_key=f"payment:{payment.reference}",
                                       channel=channel)
    except (MintPending, ServiceUnavailable, Refused) as exc:
        log.warning("payment %s recorded; code deferred: %s", payment.reference, exc)
        body["code"] = "deferred"
        return Answer(200, body)
    queued = outbox.notify_codes(session, core.messages, device, minted.codes)
    body["code"] = "sent" if queued else ("minted" if minted.codes else "none")
    return Answer(200, body)


def _repeat(session: Session, payment: Payment) -> Answer:
    if payment.response:
        body = json.loads(payment.response)
        return Answer(202 if body.get("status") == "unmatched" else 200, body)
    status = "credited" if payment.device_id else "unmatched"
    return Answer(200 if payment.device_id else 202,
                  {"status": status, "reference": payment.reference})


def unmatched(session: Session) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.device_id.is_(None))
                                .order_by(Payment.created_at)))


def assign(core, session: Session, reference: str, product_ref: str) -> Answer:
    """An operator gives an unmatched payment its device; its code then goes out."""
    payment = session.scalar(select(Payment).where(Payment.reference == reference))
    if payment is None:
        raise LedgerError(f"no payment with reference {reference}")
    device = devices.find(session, product_ref)
    if device is None:
        raise LedgerError(f"no device {product_ref} (run `ovbot sync-devices`?)")
    core.ledger.assign_payment(session, payment, device)
    answer = settle(core, session, payment, channel="cli")
    payment.response = json.dumps(answer.body)
    return answer
