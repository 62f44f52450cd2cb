"""The conversation for SMS gateways that take no answer in their webhook's response.

Africa's Talking posts an inbound SMS and only wants a 200 back: the answer is a new
message, sent through its messaging API.  So the reply is the conversation's, queued in
the outbox in the same transaction (a crash loses neither), for the provider that brought
the message, with its linkId (on-demand numbers bill the answer to that link).  The Reply
says `pushed`; it is stored as the message's answer like any other, so a repeat of the
provider's id gets it back and queues nothing new.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from bot.customers import conversation
from bot.deps import Deps
from bot.inbound import Inbound, Reply, Responder
from bot.outbox import queue as outbox
from bot.text.phones import try_normalise


def responder(provider: str) -> Responder:
    """The conversation, its answers sent back through `provider` (a sender's key)."""

    def respond(deps: Deps, session: Session, inbound: Inbound) -> Reply:
        reply = conversation.respond(deps, session, inbound)
        if not reply.texts:
            return reply
        customer = conversation.identify(deps, session, inbound)
        phone = try_normalise(inbound.sender, deps.settings.default_region) or inbound.sender
        outbox.answer_by_sms(
            session, customer, phone, reply.texts, provider=provider, link_id=inbound.link_id
        )
        return dataclasses.replace(reply, pushed=True)

    # Never a read: even STATUS writes its answer to the outbox.
    return Responder(
        respond=respond, language=conversation.language, command=conversation.command_name
    )


AFRICASTALKING = responder("africastalking")
