"""The outbox: messages to push, written in the same transaction as the event behind them.

A payment rolled back takes its message with it; a committed one is sent by the worker
(or, in the embedded default, by the web process right after the commit).

The channel of a push is the one the customer last wrote on: Telegram when they did
there (and their chat is linked); WhatsApp when they did there inside WhatsApp's 24-hour
session window and WhatsApp pushes are on (a business may write first outside the window
only with a template Meta approved: we fall back to SMS instead); SMS otherwise.  Whether
WhatsApp pushes are on travels with the session (`session_info`, set by bot/bootstrap.py
from TWILIO_WHATSAPP_FROM), so every push, whoever queues it, decides alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ledger import devices
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import Code, Customer, Device, OutboxMessage, TelegramLink, utcnow
from bot.text.codes import code_texts
from bot.text.templates import Messages, format_date

WHATSAPP_WINDOW = timedelta(hours=24)  # Meta's customer service window
# `customers.whatsapp_at` moves only when this much older, so a read (STATUS) on WhatsApp
# writes at most once an hour; a push then keeps this much margin inside the window.
WHATSAPP_REFRESH = timedelta(hours=1)
WHATSAPP_PUSHES = "ovbot.whatsapp_pushes"  # the session.info key


def session_info(settings: Settings) -> dict[str, object]:
    """What every session must know to choose a push's channel (bot/bootstrap.py)."""
    return {WHATSAPP_PUSHES: settings.whatsapp_pushes}


def wrote_on_whatsapp(customer: Customer, now: datetime) -> None:
    """The customer wrote on WhatsApp at `now`: their session window is open from then."""
    if whatsapp_window_stale(customer.whatsapp_at, now):
        customer.whatsapp_at = now


def whatsapp_window_stale(whatsapp_at: datetime | None, now: datetime) -> bool:
    """Whether a message on WhatsApp at `now` must record it (the recorded time is older
    than WHATSAPP_REFRESH): a read that must is answered the writing way."""
    return whatsapp_at is None or now - whatsapp_at >= WHATSAPP_REFRESH


def in_whatsapp_window(customer: Customer, now: datetime) -> bool:
    """Whether a push to `customer` may go on WhatsApp now (they wrote there last, lately)."""
    if customer.last_channel != "whatsapp" or customer.whatsapp_at is None:
        return False
    return now - customer.whatsapp_at < WHATSAPP_WINDOW - WHATSAPP_REFRESH


def enqueue(
    session: Session,
    customer: Customer,
    body: str,
    *,
    code_id: int | None = None,
    after_id: int | None = None,
) -> OutboxMessage | None:
    """Queue `body` for `customer` on the channel they last used (see above); None if
    they opted out."""
    if customer.opted_out:
        return None
    channel, recipient = "sms", customer.phone
    if session.info.get(WHATSAPP_PUSHES) and in_whatsapp_window(customer, utcnow()):
        channel = "whatsapp"
    elif customer.last_channel == "telegram":
        link = session.scalar(
            select(TelegramLink)
            .where(TelegramLink.customer_id == customer.id)
            .order_by(TelegramLink.linked_at.desc())
            .limit(1)
        )
        if link is not None:
            channel, recipient = "telegram", str(link.chat_id)
    message = OutboxMessage(
        customer_id=customer.id,
        channel=channel,
        recipient=recipient,
        body=body,
        code_id=code_id,
        after_id=after_id,
        next_attempt_at=utcnow(),
    )
    session.add(message)
    session.flush()
    db.mark_queued(session)  # this commit wakes the drain (Deps.committed)
    return message


def to_telegram_chat(
    session: Session, customer: Customer, chat_id: int, texts: Sequence[str]
) -> list[OutboxMessage]:
    """Queue `texts` for one Telegram chat of `customer`, in order (each after the one
    before); nothing if they opted out."""
    if customer.opted_out:
        return []
    return _in_order(
        session, texts, customer_id=customer.id, channel="telegram", recipient=str(chat_id)
    )


def answer_by_sms(
    session: Session,
    customer: Customer | None,
    phone: str,
    texts: Sequence[str],
    *,
    provider: str,
    link_id: str | None = None,
) -> list[OutboxMessage]:
    """Queue the answer to an SMS that came through `provider`, back through it, in order.

    An answer is owed even to an opted-out customer or to a number we do not know (they
    wrote to us): such a row names no customer, so the claim's opt-out check does not
    hold it and no receipt acts on a customer.
    """
    owner = customer.id if customer is not None and not customer.opted_out else None
    return _in_order(
        session,
        texts,
        customer_id=owner,
        channel="sms",
        provider=provider,
        link_id=link_id,
        recipient=phone,
    )


def _in_order(session: Session, texts: Sequence[str], **fields: Any) -> list[OutboxMessage]:
    """One row per text, each after the one before (entry order), all with `fields`."""
    queued: list[OutboxMessage] = []
    for text in texts:
        message = OutboxMessage(
            body=text,
            after_id=queued[-1].id if queued else None,
            next_attempt_at=utcnow(),
            **fields,
        )
        session.add(message)
        session.flush()
        queued.append(message)
    if queued:
        db.mark_queued(session)  # this commit wakes the drain (Deps.committed)
    return queued


def notify_codes(
    session: Session, messages: Messages, device: Device, codes: Sequence[Code]
) -> list[OutboxMessage]:
    """Push new codes to the device's owner, one message per code, in their language."""
    owner = session.get(Customer, device.owner_id) if device.owner_id else None
    if owner is None or not codes:
        return []

    def say(key: str, **values: object) -> str:
        return messages.render(owner.language, key, **values)

    texts = code_texts(say, devices.reference(session, device), codes)
    code_ids = [codes[0].id] * (len(texts) - len(codes)) + [c.id for c in codes]
    queued: list[OutboxMessage] = []
    for text, code_id in zip(texts, code_ids, strict=True):
        after = queued[-1].id if queued else None  # each after the one before: entry order
        message = enqueue(session, owner, text, code_id=code_id, after_id=after)
        if message is None:
            return []  # opted out: none of them
        queued.append(message)
    return queued


def resend_codes(
    session: Session, messages: Messages, device: Device, codes: Sequence[Code]
) -> list[OutboxMessage]:
    """The codes of a mint again (`code_resent`, with the date each was minted) for the
    device's owner, chained in the order to enter them; nothing if no owner or opted out.
    The USSD menu's "Resend code" and the console's "Resend latest code" both queue this."""
    owner = session.get(Customer, device.owner_id) if device.owner_id else None
    if owner is None or not codes:
        return []
    ref = devices.reference(session, device)
    queued: list[OutboxMessage] = []
    for code in codes:
        body = messages.render(
            owner.language,
            "code_resent",
            code=code.code,
            device=ref,
            date=format_date(code.minted_at),
        )
        after = queued[-1].id if queued else None
        message = enqueue(session, owner, body, code_id=code.id, after_id=after)
        if message is None:
            break  # opted out
        queued.append(message)
    return queued
