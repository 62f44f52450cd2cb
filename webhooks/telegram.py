"""Telegram: `POST /webhooks/telegram` → a Bot API call in the response, or empty 200.

Guard (X-Telegram-Bot-Api-Secret-Token, constant time), parse the Update into an Inbound,
hand it to the core, render the Reply. Updates we don't handle get an empty 200, so
Telegram does not retry them; a malformed one gets a 400 (`Malformed`, naming the field
when it can), answered as JSON by the app's error handler.

A message is answered with sendMessage, its keyboards built as python-telegram-bot's
objects (`ReplyKeyboardMarkup`, `InlineKeyboardMarkup`, ...) serialised with `to_dict()`.
A pressed inline button (a callback_query) is answered with answerCallbackQuery, which
stops the button's progress bar; the core pushes its reply to the chat.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request
from telegram import (
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    Update,
)
from werkzeug.exceptions import BadRequest

from bot.customers.conversation import RESPONDER
from bot.deps import Deps
from bot.inbound import Inbound, Reply, SharedContact, process
from bot.settings import Settings

bp = Blueprint("telegram", __name__)
IGNORED = Response(status=200)
ID_LIMIT = 2**63  # ids are stored as signed 64-bit integers: |id| < 2**63
CALLBACK_DATA_LIMIT = 64  # bytes: the Bot API's bound on a button's callback_data
CALLBACK_ID_LIMIT = 64  # characters; Telegram's query ids are about 20 digits


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
    inbound, chat_id, callback_id = parsed
    return render(process(deps, inbound, RESPONDER), chat_id, callback_id)


def guard(settings: Settings) -> None:
    secret = settings.telegram_secret_token
    if settings.demo and not secret:
        return
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
    if not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        abort(403)


def parse(data: object) -> tuple[Inbound, int, str | None] | None:
    """An Inbound for a private text or contact message or a pressed button, the chat to
    answer in and the callback query to answer (None for a message); None for updates we
    ignore."""
    if not isinstance(data, dict):
        raise Malformed("body must be a Telegram Update (a JSON object)", "body")
    if not _is_id(data.get("update_id")):
        raise Malformed("must be an integer of at most 64 bits", "update_id")
    try:
        update = Update.de_json(data, None)
    except Exception:  # noqa: BLE001 - whatever PTB cannot read is malformed, never a 500
        raise Malformed("malformed Telegram Update") from None
    if update.callback_query is not None:
        return _pressed(update.update_id, update.callback_query)
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
    return inbound, message.chat.id, None


def _pressed(update_id: int, query: CallbackQuery) -> tuple[Inbound, int, str | None] | None:
    """A button pressed under one of our messages in a private chat; None for any other
    callback (inline mode, games, groups). The data is bounded and must be printable."""
    bad = _bad_callback(query)
    if bad:
        raise Malformed("malformed Telegram callback_query", bad)
    message = query.message
    if not isinstance(message, Message) or message.chat.type != "private":
        return None  # an inline-mode or inaccessible message: nothing of ours
    if query.data is None:
        return None
    inbound = Inbound(
        channel="telegram",
        provider_id=str(update_id),
        sender=str(query.from_user.id),
        text=query.data,
        button=True,
    )
    return inbound, message.chat.id, query.id


def _bad_callback(query: CallbackQuery) -> str | None:
    """The first field of the callback query we would misread, None when all are well formed."""
    if not isinstance(query.id, str) or not 0 < len(query.id) <= CALLBACK_ID_LIMIT:
        return "callback_query.id"
    if query.from_user is None or not _is_id(query.from_user.id):
        return "callback_query.from.id"
    data = query.data
    if data is not None and (
        not isinstance(data, str)
        or len(data.encode("utf-8", "surrogatepass")) > CALLBACK_DATA_LIMIT
        or not data.isprintable()
    ):
        return "callback_query.data"
    message = query.message
    if isinstance(message, Message) and (message.chat is None or not _is_id(message.chat.id)):
        return "callback_query.message.chat.id"
    return None


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


def render(reply: Reply, chat_id: int, callback_id: str | None = None) -> Response:
    """The Bot API call that answers: answerCallbackQuery for a pressed button whose reply
    was pushed (or that gets none), else sendMessage; an empty 200 for no reply at all."""
    if callback_id is not None and (reply.pushed or not reply.texts):
        return jsonify({"method": "answerCallbackQuery", "callback_query_id": callback_id})
    if not reply.texts:
        return IGNORED
    call: dict[str, Any] = {"method": "sendMessage", "chat_id": chat_id, "text": reply.text}
    markup = _markup(reply)
    if markup is not None:
        call["reply_markup"] = markup.to_dict()
    return jsonify(call)


def _markup(
    reply: Reply,
) -> ReplyKeyboardMarkup | InlineKeyboardMarkup | ReplyKeyboardRemove | None:
    if reply.request_contact:
        button = KeyboardButton(reply.request_contact, request_contact=True)
        return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
    if reply.choices:
        return InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=data)] for label, data in reply.choices]
        )
    if reply.remove_keyboard:
        return ReplyKeyboardRemove()
    return None
