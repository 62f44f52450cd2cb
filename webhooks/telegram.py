"""Telegram: `POST /webhooks/telegram` → a sendMessage call in the response, or empty 200.

Guard (X-Telegram-Bot-Api-Secret-Token, constant time), parse the Update into an Inbound,
hand it to the core, render the Reply. Updates we don't handle get an empty 200, so
Telegram does not retry them.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from telegram import Update

from bot.inbound import Inbound, Reply
from bot.service import process

bp = Blueprint("telegram", __name__)
IGNORED = Response(status=200)


@bp.post("/webhooks/telegram")
def receive() -> Response:
    services = current_app.extensions["ovbot"]
    guard(services.settings)
    inbound = parse(request.get_json(silent=True))
    if inbound is None:
        return IGNORED
    return render(process(services, inbound), inbound.chat_id)


def guard(settings) -> None:
    secret = settings.telegram_secret_token
    if settings.demo and not secret:
        return
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        abort(403)


def parse(data) -> Inbound | None:
    """An Inbound for a private text or contact message; None for updates we ignore."""
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
    return Inbound(channel="telegram", provider_id=str(update.update_id),
                   sender=str(message.from_user.id), text=message.text or "",
                   chat_id=message.chat.id,
                   contact_phone=contact.phone_number if contact else None,
                   contact_user_id=contact.user_id if contact else None)


def _well_formed(message) -> bool:
    """PTB does not check types: ids must be integers, texts and numbers strings."""
    contact = message.contact
    return (message.chat is not None and _is_int(message.chat.id)
            and (message.from_user is None or _is_int(message.from_user.id))
            and (message.text is None or isinstance(message.text, str))
            and (contact is None or (isinstance(contact.phone_number, str)
                                     and (contact.user_id is None
                                          or _is_int(contact.user_id)))))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def render(reply: Reply, chat_id: int) -> Response:
    if not reply.texts:
        return IGNORED
    call = {"method": "sendMessage", "chat_id": chat_id, "text": reply.text}
    if reply.request_contact:
        call["reply_markup"] = {"keyboard": [[{"text": reply.request_contact,
                                               "request_contact": True}]],
                                "resize_keyboard": True, "one_time_keyboard": True}
    return jsonify(call)
