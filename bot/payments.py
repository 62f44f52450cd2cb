"""Payments from payment systems (and operators): record once, mint, push the code.

`receive(deps, session, payment_in)` records a payment idempotently on its reference,
mints its code and queues the push to the owner; it answers with an outcome, which the
edge (webhooks/payments.py) turns into an HTTP status. A payment for a device we do not
know is kept as unmatched, never lost, until an operator assigns it.

A reference is the payment's identity: sent again with the same content it gets the first
answer; sent again with other content (another device, other days or amount) it is a
`conflict` that changes nothing and shows the first payment. Content is compared as the
payer meant it: the device a reference resolves to (so product id and serial of one
device are the same), or the reference as typed when a side matched no device; days with
days and amounts with amounts (to the cent). The phone is not compared: it credits nothing.

Money already taken (an M-Pesa confirmation: `keep`) is never refused: a payment the
device cannot take as given (no price per day, too many days) is kept unmatched, with
what the payer typed, for an operator to assign. `check` is the look before the money
moves (M-Pesa's validation): whether a payment for this device of this amount would credit
at least one day. It only reads.
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
from bot.ledger import InvalidPayment, LedgerError, PaymentResult, devices
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
    source: str = "webhook"  # bot/storage/models.py PAYMENT_SOURCES
    keep: bool = False  # the money is already taken: keep what cannot be credited unmatched


@dataclass(frozen=True)
class Answer:
    """What the payment system is told; `body["status"]` is the outcome:

    `credited` (the device has the days), `unmatched` (kept for an operator to assign),
    `rejected` (recorded nothing; `field` and `error` say why) or `conflict` (the reference
    is another payment's: nothing changed; `first` is that payment, `field` what differs).
    """

    body: dict[str, Any]

    @property
    def outcome(self) -> str:
        return str(self.body["status"])


def receive(deps: Deps, session: Session, data: PaymentIn) -> Answer:
    """Record `data` once per reference, mint its code and queue the push to the owner."""
    device = devices.find(session, data.product_ref)
    first = session.scalar(select(Payment).where(Payment.reference == data.reference))
    if first is not None:
        return _repeat(session, first, data, device)
    try:
        result = _record(deps, session, data, device)
    except InvalidPayment as exc:  # e.g. an amount worth too many days at this device's price
        if not data.keep or device is None:
            field = "amount" if data.amount is not None else "days"
            return Answer({"status": "rejected", "field": field, "error": str(exc)})
        log.warning("payment %s kept unmatched: %s", data.reference, exc)
        result = _record(deps, session, data, None)  # nothing was written: keep it whole
    if not result.created:  # a concurrent delivery recorded it first: it settles it too
        return _repeat(session, result.payment, data, device)
    answer = settle(deps, session, result.payment, channel="payments")
    result.payment.response = json.dumps(answer.body)
    return answer


def _record(deps: Deps, session: Session, data: PaymentIn, device: Device | None) -> PaymentResult:
    return deps.ledger.record_payment(
        session,
        reference=data.reference,
        device=device,
        days=data.days,
        amount=data.amount,
        source=data.source,
        phone=data.phone,
        product_ref=data.product_ref,
    )


def check(deps: Deps, session: Session, product_ref: str, amount: Decimal) -> str | None:
    """Why a payment of `amount` for `product_ref` would not credit a day, or None.

    `"device"`: no device of the fleet answers to it; `"amount"`: with the device's
    balance it buys no whole day (or more than one payment may carry, or the device has no
    price per day). Reads only.
    """
    device = devices.find(session, product_ref)
    if device is None:
        return "device"
    try:
        days = deps.ledger.quote(device, amount)
    except InvalidPayment:
        return "amount"
    return None if days >= 1 else "amount"


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


def _repeat(session: Session, payment: Payment, data: PaymentIn, device: Device | None) -> Answer:
    field = differs(payment, device, data.product_ref, days=data.days, amount=data.amount)
    if field is not None:
        log.warning("payment %s repeated with another %s: refused", payment.reference, field)
        return Answer(
            {
                "status": "conflict",
                "reference": payment.reference,
                "field": field,
                "error": f"reference already used for a payment with another {field}",
                "first": describe(session, payment),
            }
        )
    if payment.response:
        return Answer(json.loads(payment.response))
    status = "credited" if payment.device_id else "unmatched"
    return Answer({"status": status, "reference": payment.reference})


def differs(
    first: Payment,
    device: Device | None,
    product_ref: str | None,
    *,
    days: int | None,
    amount: Decimal | None,
) -> str | None:
    """The field in which a repeat of `first`'s reference asks for something else, or None."""
    same_device = (device is not None and first.device_id == device.id) or (
        first.product_ref is not None
        and product_ref is not None
        and first.product_ref.strip().upper() == product_ref.strip().upper()
    )
    if not same_device:
        return "product_id"
    if amount is not None:
        return None if first.amount is not None and first.amount == amount else "amount"
    return None if first.amount is None and first.days == days else "days"


def describe(session: Session, payment: Payment) -> dict[str, Any]:
    """A recorded payment as a payer may see it (a conflict shows the first one)."""
    device = session.get(Device, payment.device_id) if payment.device_id else None
    return {
        "reference": payment.reference,
        "product_id": device.product_id if device else None,
        "product_ref": payment.product_ref,
        "days": payment.days,
        "amount": None if payment.amount is None else str(payment.amount),
        "recorded_at": payment.created_at.isoformat(),
    }


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
