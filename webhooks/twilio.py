"""Twilio SMS: `POST /webhooks/twilio/sms` → TwiML.

Guard (X-Twilio-Signature over PUBLIC_BASE_URL + path), parse the form into an Inbound,
hand it to the core, render the Reply as TwiML. Twilio's field names stay in this module.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, abort, current_app, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.customers.conversation import RESPONDER
from bot.deps import Deps
from bot.inbound import Inbound, Reply, process
from bot.settings import Settings

bp = Blueprint("twilio", __name__)
PATH = "/webhooks/twilio/sms"


@bp.post(PATH)
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    return render(process(deps, parse(request.form), RESPONDER))


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
    if not RequestValidator(settings.twilio_auth_token).validate(url, request.form, signature):
        abort(403)


def parse(form: Mapping[str, str]) -> Inbound:
    for field in ("MessageSid", "From"):
        if not form.get(field, "").strip():
            abort(400, description=f"missing form field {field}")
    return Inbound(
        channel="sms",
        provider_id=form["MessageSid"].strip(),
        sender=form["From"].strip(),
        text=form.get("Body", ""),
    )


def render(reply: Reply) -> Response:
    twiml = MessagingResponse()
    for text in reply.texts:
        twiml.message(text)
    return Response(str(twiml), status=200, mimetype="text/xml")
