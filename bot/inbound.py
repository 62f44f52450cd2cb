"""Inbound messages: the channel-neutral types, and answering each message once.

Every edge (webhooks/) parses its provider's payload into an `Inbound` and calls
`process(deps, inbound, responder)` with the responder of its use case (the customer
conversation or the agent menu); it renders the `Reply` it gets back.  `process` runs the
responder in one transaction and stores the reply under the message's provider id, so a
repeat of the same message gets the first answer and causes nothing new.

A message its responder calls a read (`Responder.reads`: STATUS, HISTORY, DEVICES, HELP)
is answered in a read-only transaction instead, with no write at all: no write lock, no
stored reply (a repeat of a read is answered afresh, which is as true and causes nothing).
If the answer turns out to change something after all (a customer's first message on a
channel records it), it is thrown away and the message is answered the writing way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import metrics
from bot.deps import Deps
from bot.storage import db
from bot.storage.models import InboundMessage
from bot.text.phones import mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedContact:
    """Telegram only: a contact card the sender shared (the request_contact button)."""

    phone: str
    user_id: int | None  # whose contact it is; a contact typed in by hand has none
    chat_id: int  # where it was shared, to push to later


@dataclass(frozen=True)
class Inbound:
    channel: str  # "sms" | "whatsapp" | "telegram" | "ussd"
    provider_id: str  # MessageSid, Africa's Talking id, update_id, sessionId + phone + path
    sender: str  # E.164 phone (sms, whatsapp, ussd) or Telegram user id
    text: str = ""
    contact: SharedContact | None = None
    # Telegram: `text` is the data of a button the bot offered (an inline keyboard's
    # callback_query), not typed; its reply is pushed (`Reply.pushed`).
    button: bool = False
    # Africa's Talking: the linkId of an on-demand (premium) message, to pass back with
    # the reply; its reply is pushed through the outbox (`Reply.pushed`).
    link_id: str | None = None


@dataclass(frozen=True)
class Reply:
    """What to answer; `texts` empty means no answer at all."""

    texts: tuple[str, ...] = ()
    request_contact: str | None = None  # Telegram: label of a share-contact button
    # Telegram: buttons under the reply, (label, what pressing it sends); other channels
    # ignore them (their texts say what to type instead).
    choices: tuple[tuple[str, str], ...] = ()
    remove_keyboard: bool = False  # Telegram: take the share-contact keyboard away
    pushed: bool = False  # the texts went out through the outbox: the edge only acknowledges
    end: bool = True  # USSD: END (True) or CON (False)
    # False for a reply that only says "still confirming" or "try again later": it is not
    # stored as the answer to its message, so a provider's retry gets the real one.
    final: bool = True

    @classmethod
    def say(
        cls,
        *texts: str,
        request_contact: str | None = None,
        end: bool = True,
        final: bool = True,
        choices: tuple[tuple[str, str], ...] = (),
        remove_keyboard: bool = False,
    ) -> Reply:
        return cls(
            texts=tuple(t for t in texts if t),
            request_contact=request_contact,
            end=end,
            final=final,
            choices=choices,
            remove_keyboard=remove_keyboard,
        )

    @property
    def text(self) -> str:
        return "\n".join(self.texts)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Reply:
        data: dict[str, Any] = json.loads(raw)
        data["texts"] = tuple(data["texts"])
        data["choices"] = tuple(tuple(choice) for choice in data.get("choices", ()))
        return cls(**data)


@dataclass(frozen=True)
class Responder:
    """A use case as the edge hands it to `process`."""

    respond: Callable[[Deps, Session, Inbound], Reply]
    # The sender's language, for the apology when `respond` failed.
    language: Callable[[Deps, Session, Inbound], str]
    # Whether answering `inbound` only reads (no mint, no payment, no setting changed).
    reads: Callable[[Inbound], bool] = lambda inbound: False
    # How to answer such a message in the read-only transaction, through its reader (it
    # may raise `db.WouldWrite` to have it answered the writing way); when not given,
    # `respond` on the reader's session.
    read: Callable[[Deps, db.Reader, Inbound], Reply] | None = None
    # What the message asks, as a metrics label (a command name; never the text itself).
    command: Callable[[Inbound], str] = lambda inbound: "other"


def process(deps: Deps, inbound: Inbound, responder: Responder) -> Reply:
    """Answer `inbound` once, in one transaction; an unexpected error becomes a polite reply.

    The provider gets a 200 either way: a 500 would make it retry into a half-done state,
    while a repeat of the same message is answered from the stored reply.
    """
    try:
        metrics.inbound(inbound.channel, responder.command(inbound))
        reply = None
        if responder.reads(inbound):
            try:
                with db.reads(deps.sessions) as reader:
                    if responder.read is not None:
                        reply = responder.read(deps, reader, inbound)
                    else:
                        reply = responder.respond(deps, reader.session, inbound)
                    if reader.changed():  # not a read after all: the writing way
                        reply = None
            except db.WouldWrite:
                reply = None
        if reply is None:
            with db.transaction(deps.sessions) as session:
                reply = answer_once(session, inbound, lambda s, i: responder.respond(deps, s, i))
            deps.committed(session)
    except Exception:
        log.exception(
            "%s message %s from %s failed",
            inbound.channel,
            inbound.provider_id,
            mask(inbound.sender),
        )
        metrics.inbound_failed(inbound.channel)
        reply = Reply.say(deps.say(_language(deps, inbound, responder), "error_try_again"))
    if reply.texts:
        metrics.replied(inbound.channel)
    return reply


def _language(deps: Deps, inbound: Inbound, responder: Responder) -> str:
    """The sender's language if the database still answers; the default otherwise."""
    try:
        with deps.sessions() as session:
            return responder.language(deps, session, inbound)
    except Exception:  # noqa: BLE001 - already answering an error: never raise here
        return deps.settings.default_language


def answer_once(
    session: Session, inbound: Inbound, respond: Callable[[Session, Inbound], Reply]
) -> Reply:
    """`respond` to `inbound`, unless its provider id was answered before: then that answer.

    Only final replies are stored: after "still confirming", a repeat is answered afresh.
    """
    stored = _stored(session, inbound)
    if stored is not None and stored.reply is not None:
        return Reply.from_json(stored.reply)
    reply = respond(session, inbound)
    if not reply.final:
        return reply
    try:
        with session.begin_nested():
            session.add(
                InboundMessage(
                    channel=inbound.channel, provider_id=inbound.provider_id, reply=reply.to_json()
                )
            )
    except IntegrityError:  # a concurrent duplicate answered first: use its answer
        winner = _stored(session, inbound)
        return Reply.from_json(winner.reply) if winner and winner.reply else reply
    return reply


def _stored(session: Session, inbound: Inbound) -> InboundMessage | None:
    return session.scalar(
        select(InboundMessage).where(
            InboundMessage.channel == inbound.channel,
            InboundMessage.provider_id == inbound.provider_id,
        )
    )
