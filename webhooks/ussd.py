"""USSD (Africa's Talking): `POST /webhooks/ussd` → `text/plain` "CON …" or "END …".

Guard (the configured service codes), parse the form into an Inbound, hand it to the agent
menu, render the Reply. The answer is always a 200 that starts with CON or END: the gateway
kills the agent's session on a 4xx or on a body without the prefix, so even a bad request
gets an END screen.

USSD requests carry no signature. Keep the callback URL unguessable and let only the
gateway's addresses reach it (firewall or proxy allow-list); agents still need their PIN.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from flask import Blueprint, Response, current_app, request

from bot.agents import menu as agent_menu
from bot.deps import Deps
from bot.inbound import Inbound, Reply, process
from bot.settings import Settings

bp = Blueprint("ussd", __name__)
REQUIRED = ("sessionId", "serviceCode", "phoneNumber")
MAX_INPUTS = 60  # inputs in one path ("1234*1*1001*30*1" is 5)
MAX_TEXT = 600  # characters in one path
MAX_FIELD = 128  # characters in a session id, service code or phone number


@bp.post("/webhooks/ussd")
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    refusal = guard(deps.settings, request.form)
    inbound = parse(request.form) if refusal is None else None
    if inbound is None:
        return render(agent_menu.refuse(deps, refusal or "ussd_bad_request"))
    return render(process(deps, inbound, agent_menu.RESPONDER))


def guard(settings: Settings, form: Mapping[str, str]) -> str | None:
    """The message key to end with when this request is not one to answer; None when it is.

    Not our service code; or a path no gateway sends (real paths are a few dozen inputs):
    bounded here, before any work, so one crafted request cannot hold the database.
    """
    codes = settings.ussd_service_codes
    if codes and form.get("serviceCode", "").strip() not in codes:
        return "ussd_wrong_service"
    text = form.get("text", "")
    if len(text) > MAX_TEXT or text.count("*") >= MAX_INPUTS:
        return "ussd_session_over"
    if any(len(form.get(name, "")) > MAX_FIELD for name in REQUIRED):
        return "ussd_bad_request"
    if any("\x00" in form.get(name, "") for name in (*REQUIRED, "text")):
        return "ussd_bad_request"  # no database text column takes NUL (PostgreSQL)
    return None


def parse(form: Mapping[str, str]) -> Inbound | None:
    """An Inbound for the menu; None when a required field is missing."""
    if any(not form.get(name, "").strip() for name in REQUIRED):
        return None
    # A session is the gateway's id on one service code for one phone: gateways may
    # reuse ids, so the other two are part of what makes a request this request.
    # The phone goes in as a digest: provider ids and request keys may be logged.
    phone = hashlib.sha256(form["phoneNumber"].strip().encode()).hexdigest()[:16]
    session = f"{form['serviceCode'].strip()}:{phone}:{form['sessionId'].strip()}"
    text = form.get("text", "").strip()
    return Inbound(
        channel="ussd",
        provider_id=agent_menu.provider_id(session, text),
        sender=form["phoneNumber"].strip(),
        text=text,
    )


def render(reply: Reply) -> Response:
    prefix = "END" if reply.end or not reply.texts else "CON"
    return Response(f"{prefix} {reply.text}".rstrip(), status=200, mimetype="text/plain")
