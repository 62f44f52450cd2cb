"""Running one inbound message through the core, in one transaction, whatever happens."""
from __future__ import annotations

import logging
from functools import partial
from typing import Callable

from sqlalchemy.orm import Session

from bot.storage import db
from bot import inbound as inbox
from bot.inbound import Inbound, Reply
from bot.text.phones import mask

log = logging.getLogger(__name__)


def process(services, inbound: Inbound,
            respond: Callable | None = None) -> Reply:
    """Answer `inbound` in one transaction; an unexpected error becomes a polite reply.

    The provider gets a 200 either way: a 500 would make it retry into a half-done state,
    while a repeat of the same message is answered from the stored reply.
    """
    from bot.customers import conversation

    respond = respond or conversation.respond
    try:
        with db.transaction(services.sessions) as session:
            reply = inbox.handle(session, inbound, partial(_call, respond, services.core))
    except Exception:  # noqa: BLE001 - the customer must get an answer
        log.exception("%s message %s from %s failed", inbound.channel, inbound.provider_id,
                      mask(inbound.sender))
        return Reply.say(services.core.messages.render(_language(services, inbound),
                                                        "error_try_again"))
    after_commit(services)
    return reply


def _language(services, inbound: Inbound) -> str:
    """The sender's language if the database still answers; the default otherwise."""
    from bot.customers import conversation

    try:
        with services.sessions() as session:
            customer = conversation.identify(services.core, session, inbound)
            return customer.language if customer else services.settings.default_language
    except Exception:  # noqa: BLE001 - already answering an error: never raise here
        return services.settings.default_language


def after_commit(services) -> None:
    """Run the after-commit hook (the embedded outbox drain), never failing the caller."""
    after = services.extras.get("after_commit")
    if after is not None:
        try:
            after()
        except Exception:  # noqa: BLE001 - the work is committed; the worker retries later
            log.exception("after-commit work failed")


def _call(respond: Callable, core, session: Session, inbound: Inbound) -> Reply:
    return respond(core, session, inbound)
