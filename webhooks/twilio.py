"""Twilio SMS and WhatsApp: `POST /webhooks/twilio/sms` → TwiML; `POST /webhooks/twilio/status`
→ empty 200.

Guard (X-Twilio-Signature over PUBLIC_BASE_URL + path), parse the form into an Inbound,
hand it to the core, render the Reply as TwiML. Twilio's field names stay in this module.

WhatsApp comes to the same route: Twilio posts the same form with `From=whatsapp:+254…`.
The customer is the phone number after the prefix (channel "whatsapp"); the reply is the
same TwiML, which Twilio sends back on WhatsApp inside the session the customer opened.

The signature joins names and values with no separator, so it cannot tell where one field
ends: `MessageSid=<sid>NumMedia0` without `NumMedia` is signed alike. `parse` therefore
takes only a MessageSid of Twilio's exact shape, and only this account's AccountSid.

The status route takes Twilio's delivery receipts (StatusCallback: MessageSid, MessageStatus,
ErrorCode), signed and checked the same way, and hands them to bot/outbox/receipts.py.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from xml.sax.saxutils import escape

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator

from bot.customers.conversation import RESPONDER
from bot.deps import Deps
from bot.inbound import Inbound, Reply, process
from bot.outbox import receipts
from bot.outbox.senders import STATUS_CALLBACK_PATH
from bot.settings import Settings

bp = Blueprint("twilio", __name__)
PATH = "/webhooks/twilio/sms"
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-f]{32}")  # an SMS's or an MMS's, nothing around it
WHATSAPP = "whatsapp:"  # Twilio's prefix of a WhatsApp address
STATUS = re.compile(r"[a-z_]{1,32}")  # queued, sent, delivered, partially_delivered, ...
ERROR_CODE = re.compile(r"[0-9]{1,8}")


@bp.post(PATH)
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    return render(process(deps, parse(request.form, deps.settings.twilio_account_sid), RESPONDER))


@bp.post(STATUS_CALLBACK_PATH)
def status() -> Response:
    """A delivery receipt: recorded on its outbox row; an empty 200 even when unknown."""
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    receipts.receive(deps, parse_receipt(request.form, deps.settings.twilio_account_sid))
    return Response(b"", status=200, mimetype="text/plain")


def guard(settings: Settings) -> None:
    """403 unless the request carries Twilio's signature of the public URL (fail closed)."""
    if settings.demo and not settings.twilio_auth_token:
        return
    signature = request.headers.get("X-Twilio-Signature", "")
    if not (settings.twilio_auth_token and settings.public_base_url and signature):
        abort(403)
    url = settings.public_base_url.rstrip("/") + request.path
    if request.query_string:
        url += "?" + request.query_string.decode("latin-1")
    if any(not isinstance(name, str) for name in request.form):  # a nameless multipart part
        abort(403)
    validator = RequestValidator(settings.twilio_auth_token)
    # One HMAC for a request signed over our URL as configured; Twilio's own check (the
    # URL with and without its port, two more HMACs) only when that one does not match.
    expected = validator.compute_signature(url, request.form)
    if hmac.compare_digest(expected.encode(), signature.encode()):
        return
    if not validator.validate(url, request.form, signature):
        abort(403)


def parse(form: Mapping[str, str], account_sid: str | None = None) -> Inbound:
    """An Inbound for the message; a 400 naming the field unless it is well formed and,
    when `account_sid` is given, sent to that account."""
    for field in ("MessageSid", "From"):
        if not form.get(field, "").strip():
            abort(400, description=f"missing form field {field}")
    if not MESSAGE_SID.fullmatch(form["MessageSid"]):
        abort(400, description="MessageSid is not a Twilio message SID")
    if account_sid and form.get("AccountSid") != account_sid:
        abort(400, description="AccountSid is not this account's")
    channel, sender = "sms", form["From"].strip()
    if sender.lower().startswith(WHATSAPP):
        channel, sender = "whatsapp", sender[len(WHATSAPP) :].strip()
        if not sender:
            abort(400, description="From is a WhatsApp address without a number")
    return Inbound(
        channel=channel,
        provider_id=form["MessageSid"],
        sender=sender,
        text=form.get("Body", ""),
    )


def parse_receipt(form: Mapping[str, str], account_sid: str | None = None) -> receipts.Receipt:
    """A Receipt from Twilio's StatusCallback form; a 400 naming the field otherwise."""
    for field in ("MessageSid", "MessageStatus"):
        if not form.get(field, "").strip():
            abort(400, description=f"missing form field {field}")
    if not MESSAGE_SID.fullmatch(form["MessageSid"]):
        abort(400, description="MessageSid is not a Twilio message SID")
    if not STATUS.fullmatch(form["MessageStatus"]):
        abort(400, description="MessageStatus is not a Twilio message status")
    if account_sid and form.get("AccountSid") != account_sid:
        abort(400, description="AccountSid is not this account's")
    error_code = form.get("ErrorCode", "").strip() or None
    if error_code is not None and not ERROR_CODE.fullmatch(error_code):
        abort(400, description="ErrorCode is not a Twilio error code")
    return receipts.Receipt(form["MessageSid"], form["MessageStatus"], error_code)


TWIML = '<?xml version="1.0" encoding="UTF-8"?>'


def render(reply: Reply) -> Response:
    """The reply as TwiML, one <Message> per text: what twilio's MessagingResponse writes
    (a test holds them equal), without building an element tree per request."""
    if not reply.texts:
        return Response(TWIML + "<Response />", status=200, mimetype="text/xml")
    messages = "".join(f"<Message>{escape(text)}</Message>" for text in reply.texts)
    return Response(f"{TWIML}<Response>{messages}</Response>", status=200, mimetype="text/xml")
