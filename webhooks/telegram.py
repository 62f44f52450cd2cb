"""Telegram: `POST /webhooks/telegram` → a sendMessage call in the response, or empty 200.

Guard (X-Telegram-Bot-Api-Secret-Token, constant time), parse the Update into an Inbound,
hand it to the core, render the Reply. Updates we don't handle get an empty 200, so
Telegram does not retry them; a malformed one gets a 400 (`Malformed`, naming the field
when it can), answered as JSON by the app's error handler.
"""

from __future__ import annotations

import hmac
import json

from flask import Blueprint, Response, abort, current_app, jsonify, request
from telegram import Message, Update
from werkzeug.exceptions import BadRequest

from bot.customers.conversation import RESPONDER
from bot.deps import Deps
from bot.inbound import Inbound, Reply, SharedContact, process
from bot.settings import Settings

bp = Blueprint("telegram", __name__)
IGNORED = Response(status=200)
ID_LIMIT = 2**63  # ids are stored as signed 64-bit integers: |id| < 2**63


class Malformed(BadRequest):
    """A 400 for an Update we cannot read; `field` names what is wrong, when known."""

    def __init__(self, description: str, field: str | None = None) -> None:
        super().__init__(description)
        self.field = field


@bp.post("/webhooks/telegram")
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    try:
        data = json.loads(request.get_data(cache=False).decode("utf-8"))  # strict UTF-8
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise Malformed("body must be JSON", "body") from None
    parsed = parse(data)
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
    if not isinstance(data, dict):
        raise Malformed("body must be a Telegram Update (a JSON object)", "body")
    if not _is_id(data.get("update_id")):
        raise Malformed("must be an integer of at most 64 bits", "update_id")
    try:
        update = Update.de_json(data, None)
    except Exception:  # noqa: BLE001 - whatever PTB cannot read is malformed, never a 500
        raise Malformed("malformed Telegram Update") from None
    message = update.message
    if message is None:
        return None
    bad = _bad_field(message)
    if bad:
        raise Malformed("malformed Telegram message", bad)
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


def _bad_field(message: Message) -> str | None:
    """The first field of the message we would misread, None when all are well formed.

    PTB does not check types: ids must be integers that fit 64 bits, texts and numbers
    strings."""
    contact = message.contact
    if message.chat is None or not _is_id(message.chat.id):
        return "message.chat.id"
    if message.from_user is not None and not _is_id(message.from_user.id):
        return "message.from.id"
    if message.text is not None and not isinstance(message.text, str):
        return "message.text"
    if contact is not None:
        if not isinstance(contact.phone_number, str):
            return "message.contact.phone_number"
        if contact.user_id is not None and not _is_id(contact.user_id):
            return "message.contact.user_id"
    return None


def _is_id(value: object) -> bool:
    """An integer id that fits a signed 64-bit column (a boolean is not an id)."""
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < ID_LIMIT


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
