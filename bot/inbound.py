"""The channel-neutral message types, and inbound idempotency.

Every edge turns its provider's payload into an `Inbound`, hands it to `handle()` inside
one transaction, and renders the `Reply`. A repeat of a provider id gets the stored reply
and causes nothing new.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Callable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.storage.models import InboundMessage


@dataclass(frozen=True)
class Inbound:
    channel: str  # "sms" | "telegram" | "ussd"
    provider_id: str  # MessageSid, update_id, sessionId + input path
    sender: str  # E.164 phone (sms, ussd) or Telegram user id
    text: str = ""
    chat_id: int | None = None  # Telegram
    contact_phone: str | None = None  # Telegram: a shared contact's number
    contact_user_id: int | None = None  # Telegram: whose contact it is


@dataclass(frozen=True)
class Reply:
    """What to answer; `texts` empty means no answer at all (e.g. after STOP)."""

    texts: tuple[str, ...] = ()
    request_contact: str | None = None  # Telegram: label of a share-contact button
    end: bool = True  # USSD: END (True) or CON (False)

    @classmethod
    def say(cls, *texts: str, **kwargs) -> "Reply":
        return cls(texts=tuple(t for t in texts if t), **kwargs)

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> "Reply":
        data = json.loads(raw)
        data["texts"] = tuple(data["texts"])
        return cls(**data)


def handle(session: Session, inbound: Inbound, respond: Callable[[Session, Inbound], Reply]
           ) -> Reply:
    """Answer `inbound` once: a repeat of its provider id gets the first answer back."""
    stored = _stored(session, inbound)
    if stored is not None:
        return Reply.from_json(stored.reply)
    reply = respond(session, inbound)
    try:
        with session.begin_nested():
            session.add(InboundMessage(channel=inbound.channel, provider_id=inbound.provider_id,
                                       reply=reply.to_json()))
    except IntegrityError:  # a concurrent duplicate answered first: use its answer
        winner = _stored(session, inbound)
        return Reply.from_json(winner.reply) if winner and winner.reply else reply
    return reply


def _stored(session: Session, inbound: Inbound) -> InboundMessage | None:
    return session.scalar(select(InboundMessage).where(
        InboundMessage.channel == inbound.channel,
        InboundMessage.provider_id == inbound.provider_id))
