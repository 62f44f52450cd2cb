"""Telegram: `POST /webhooks/telegram` → a sendMessage call in the response, or empty 200.

Guard (X-Telegram-Bot-Api-Secret-Token, constant time), parse the Update into an Inbound,
hand it to the core, render the Reply. Updates we don't handle get an empty 200, so
Telegram does not retry them.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from telegram import Message, Update

from bot.customers.conversation import RESPONDER
from bot.deps import Deps
from bot.inbound import Inbound, Reply, SharedContact, process
from bot.settings import Settings

bp = Blueprint("telegram", __name__)
IGNORED = Response(status=200)


@bp.post("/webhooks/telegram")
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    parsed = parse(request.get_json(silent=True))
    if parsed is None:
        return IGNORED
    inbound, chat_id = parsed
    return render(process(deps, inbound, RESPONDER), chat_id)


def guard(settings: Settings) -> None:
    secret = settings.telegram_secret_token
    if settings.demo and not secret:
        return
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        abort(403)


def parse(data: object) -> tuple[Inbound, int] | None:
    """An Inbound for a private text or contact message, and the chat to answer in;
    None for updates we ignore."""
    if not isinstance(data, dict) or not _is_int(data.get("update_id")):
        abort(400, description="body must be a Telegram Update with an integer update_id")
    try:
        update = Update.de_json(data, None)
    except Exception:  # noqa: BLE001 - whatever PTB cannot read is malformed, never a 500
        abort(400, description="malformed Telegram Update")
    message = update.message
    if message is None:
        return None
    if not _well_formed(message):
        abort(400, description="malformed Telegram message")
    if message.from_user is None or message.chat.type != "private":
        return None
    contact = message.contact
    if message.text is None and contact is None:
        return None
    shared = (
        SharedContact(phone=contact.phone_number, user_id=contact.user_id, chat_id=message.chat.id)
        if contact
        else None
    )
    inbound = Inbound(
        channel="telegram",
        provider_id=str(update.update_id),
        sender=str(message.from_user.id),
        text=message.text or "",
        contact=shared,
    )
    return inbound, message.chat.id


def _well_formed(message: Message) -> bool:
    """PTB does not check types: ids must be integers, texts and numbers strings."""
    contact = message.contact
    return (
        message.chat is not None
        and _is_int(message.chat.id)
        and (message.from_user is None or _is_int(message.from_user.id))
        and (message.text is None or isinstance(message.text, str))
        and (
            contact is None
            or (
                isinstance(contact.phone_number, str)
                and (contact.user_id is None or _is_int(contact.user_id))
            )
        )
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render(reply: Reply, chat_id: int) -> Response:
    if not reply.texts:
        return IGNORED
    call = {"method": "sendMessage", "chat_id": chat_id, "text": reply.text}
    if reply.request_contact:
        call["reply_markup"] = {
            "keyboard": [[{"text": reply.request_contact, "request_contact": True}]],
            "resize_keyboard": True,
            "one_time_keyboard": True,
        }
    return jsonify(call)
