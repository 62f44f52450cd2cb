"""Telegram: linking a chat to a customer (only by sharing one's own registered contact),
pushing a button's answer to the chat, and the bot's command list per language."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.customers import commands
from bot.deps import Deps
from bot.inbound import Reply, SharedContact
from bot.outbox import queue as outbox
from bot.storage.models import Customer, TelegramLink
from bot.text.phones import try_normalise
from bot.text.templates import Messages

# The commands the Telegram client lists, in the order it shows them; each is named by
# the first keyword of its language (commands.KEYWORDS), so the parser reads it.
MENU = (
    commands.CODE,
    commands.RESEND,
    commands.STATUS,
    commands.HISTORY,
    commands.DEVICES,
    commands.LANG,
    commands.HELP,
    commands.STOP,
)


def customer_for(session: Session, telegram_user_id: str) -> Customer | None:
    if not telegram_user_id.lstrip("-").isdigit():
        return None
    return session.scalar(
        select(Customer)
        .join(TelegramLink)
        .where(TelegramLink.telegram_user_id == int(telegram_user_id))
    )


def ask_for_contact(deps: Deps) -> Reply:
    lang = deps.settings.default_language
    return Reply.say(
        deps.say(lang, "telegram_share_contact"),
        request_contact=deps.say(lang, "telegram_share_button"),
    )


def link(deps: Deps, session: Session, sender: str, contact: SharedContact) -> Reply:
    """Link the chat when the contact is the sender's own and its number is a customer's."""
    lang = deps.settings.default_language
    if str(contact.user_id) != sender:
        return Reply.say(
            deps.say(lang, "telegram_contact_not_yours"),
            request_contact=deps.say(lang, "telegram_share_button"),
        )
    customer = session.scalar(
        select(Customer).where(Customer.phone == _e164(contact.phone, deps.settings.default_region))
    )
    if customer is None:
        return Reply.say(deps.say(lang, "telegram_contact_unknown"))
    user_id = int(sender)
    row = session.scalar(select(TelegramLink).where(TelegramLink.telegram_user_id == user_id))
    if row is None:
        row = TelegramLink(
            telegram_user_id=user_id, customer_id=customer.id, chat_id=contact.chat_id
        )
        session.add(row)
    row.customer_id, row.chat_id = customer.id, contact.chat_id
    customer.last_channel = "telegram"
    session.flush()
    return Reply.say(
        deps.say(customer.language, "telegram_linked", name=customer.name or ""),
        remove_keyboard=True,
    )


def push(session: Session, customer: Customer, sender: str, reply: Reply) -> Reply:
    """Queue `reply`'s texts, in order, for the sender's own chat (a pressed button is
    answered with answerCallbackQuery, which carries no message). An opted-out customer's
    is not queued (the outbox would refuse it): the edge then sends it in its answer."""
    link = session.scalar(select(TelegramLink).where(TelegramLink.telegram_user_id == int(sender)))
    if link is None or not outbox.to_telegram_chat(session, customer, link.chat_id, reply.texts):
        return reply
    return dataclasses.replace(reply, pushed=True)


def bot_commands(messages: Messages) -> dict[str, list[tuple[str, str]]]:
    """(command, description) per language, for setMyCommands."""
    menu: dict[str, list[tuple[str, str]]] = {}
    for lang in messages.languages():
        words = commands.KEYWORDS.get(lang, commands.KEYWORDS["en"])
        menu[lang] = [
            (
                words.get(name, commands.KEYWORDS["en"][name])[0].lower(),
                messages.render(lang, f"telegram_command_{name}"),
            )
            for name in MENU
        ]
    return menu


def _e164(raw: str | None, region: str) -> str | None:
    """Telegram usually sends the number without its "+": try it as international first."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if not raw.startswith("+"):
        international = try_normalise("+" + raw, region)
        if international:
            return international
    return try_normalise(raw, region)
