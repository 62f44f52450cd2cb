"""What became of a payment's code, in honest words: minted, queued (not yet sent), or not.

`ovbot credit` and `ovbot payments assign` print this after `payments.settle`: the code
itself (the operator may have to read it out), and whether it is queued for the owner
(the worker sends it; `ovbot outbox` shows it) or was never queued, and why.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ledger import ENTRY_ORDER
from bot.payments import Answer
from bot.storage.models import Code, Customer, Device, OutboxMessage, Payment
from bot.text.phones import mask

NOT_MINTED = {
    "deferred": "code deferred: the code service did not answer; the worker mints it and "
    "pushes it to the owner later",
    "on request": "no code minted now (MINT_ON_PAYMENT is off): the customer sends CODE",
    "none (below one day)": "no code: the payment is worth less than a day (kept as balance)",
}


def payment(session: Session, reference: str) -> Payment:
    found = session.scalar(select(Payment).where(Payment.reference == reference))
    assert found is not None  # just assigned, in this transaction
    return found


def payment_codes(session: Session, payment: Payment) -> list[Code]:
    """The codes the payment's mint showed, in the order to enter them."""
    key = f"payment:{payment.reference}"
    return list(
        session.scalars(
            select(Code)
            .where(
                Code.state == "minted",
                Code.request_key.startswith(key + ":", autoescape=True) | (Code.adopted_by == key),
            )
            .order_by(*ENTRY_ORDER)
        )
    )


def describe(session: Session, payment: Payment, answer: Answer) -> list[str]:
    """Lines for the operator: each code, then where it went (or why it did not)."""
    said = str(answer.body.get("code"))
    lines = []
    held = answer.body.get("held_days")
    if held:
        lines.append(f"{held} paid days held as credit: a device may hold at most 1095 ahead")
    if said in NOT_MINTED:
        return [*lines, NOT_MINTED[said]]
    codes = payment_codes(session, payment)
    if not codes:
        return [*lines, "no new code: nothing left to mint"]
    lines += [f"code {c.code} ({_what(c)})" for c in codes]
    queued = session.scalars(
        select(OutboxMessage).where(OutboxMessage.code_id.in_([c.id for c in codes]))
    ).all()
    device = session.get(Device, payment.device_id) if payment.device_id else None
    owner = session.get(Customer, device.owner_id) if device and device.owner_id else None
    if queued:
        channel = queued[0].channel
        lines.append(
            f"queued for {_who(owner)} by {channel}, not sent yet: the worker sends it "
            "(`ovbot outbox` lists what is not sent)"
        )
    elif owner is None:
        lines.append("not sent: the device has no owner; give the code to the customer")
    elif owner.opted_out:
        lines.append(f"not sent: {_who(owner)} opted out of messages; give the code yourself")
    else:
        lines.append("not queued: the customer gets it with CODE")
    return lines


def _what(code: Code) -> str:
    return f"{code.days} days" if code.kind == "days" else code.kind


def _who(owner: Customer | None) -> str:
    if owner is None:
        return "the owner"
    return f"{owner.name} ({mask(owner.phone)})" if owner.name else mask(owner.phone)
