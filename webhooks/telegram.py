"""Telegram: `POST /webhooks/telegram` → a sendMessage call in the response, or empty 200.

Guard (X-Telegram-Bot-Api-Secret-Token, constant time), parse the Update into an Inbound,
hand it to the core, render the Reply. Updates we don't handle get an empty 200, so
Telegram does not retry them.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from telegram import Update

from bot.inbox import Inbound, Reply
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
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        abort(400, description="body must be a Telegram Update with an integer update_id")
    try:
        update = Update.de_json(data, None)
    except (KeyError, TypeError, ValueError, AttributeError):
        abort(400, description="malformed Telegram Update")
    message = update.message
    if message is None or message.from_user is None or message.chat.type != "private":
        return None
    contact = message.contact
    if message.text is None and contact is None:
        return None
    return Inbound(channel="telegram", provider_id=str(update.update_id),
                   sender=str(message.from_user.id), text=message.text or "",
                   chat_id=message.chat.id,
                   contact_phone=contact.phone_number if contact else None,
                   contact_user_id=contact.user_id if contact else None)


def render(reply: Reply, chat_id: int) -> Response:
    if not reply.texts:
        return IGNORED
    call = {"method": "sendMessage", "chat_id": chat_id, "text": reply.text}
    if reply.request_contact:
        call["reply_markup"] = {"keyboard": [[{"text": reply.request_contact,
                                               "request_contact": True}]],
                                "resize_keyboard": True, "one_time_keyboard": True}
    return jsonify(call)
