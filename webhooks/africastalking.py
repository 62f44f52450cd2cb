"""Africa's Talking SMS: `POST /webhooks/africastalking/sms` and `/webhooks/africastalking/status`
→ an empty 200.

Guard (`?token=` equal to AFRICASTALKING_CALLBACK_TOKEN, constant time, fail closed),
parse the form into an Inbound (or a delivery report into a Receipt), hand it to the core,
answer 200.  Africa's Talking reads nothing in the answer to an inbound SMS: the core
queues the reply in the outbox, sent back through Africa's Talking with the message's
linkId (bot/customers/answered_by_sms.py).  Its field names stay in this module.

Africa's Talking does not sign its callbacks: the token in the registered URLs is the only
proof, so let only the gateway's addresses reach these routes (firewall or proxy
allow-list) and keep the token out of anything shared.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from flask import Blueprint, Response, abort, current_app, request

from bot.customers import answered_by_sms
from bot.deps import Deps
from bot.inbound import Inbound, Reply, process
from bot.outbox import receipts
from bot.settings import Settings

bp = Blueprint("africastalking", __name__)
SMS_PATH = "/webhooks/africastalking/sms"
STATUS_PATH = "/webhooks/africastalking/status"
MAX_FIELD = 128  # characters in an id, a phone number or a linkId
# Africa's Talking's delivery statuses; the final ones in the words of bot/outbox/receipts
# (Expired is not in its list, but gateways report it: a message that never arrived).
STATUSES = {
    "Success": "delivered",
    "Rejected": "undelivered",
    "Failed": "failed",
    "Expired": "failed",
    "Sent": "sent",
    "Submitted": "submitted",
    "Buffered": "buffered",
}
WORD = re.compile(r"[A-Za-z]{1,64}")  # a status or a failureReason: "UserInBlackList"


@bp.post(SMS_PATH)
def receive() -> Response:
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    return render(process(deps, parse(request.form), answered_by_sms.AFRICASTALKING))


@bp.post(STATUS_PATH)
def status() -> Response:
    """A delivery report: recorded on its outbox row; a 200 even when the id is unknown."""
    deps: Deps = current_app.extensions["ovbot"]
    guard(deps.settings)
    receipt = parse_report(request.form)
    if receipt is not None:
        receipts.receive(deps, receipt)
    return render(Reply())


def guard(settings: Settings) -> None:
    """403 unless `?token=` is the configured callback token (fail closed; open in the
    demo when no token is set)."""
    token = settings.africastalking_callback_token
    if settings.demo and not token:
        return
    given = request.args.get("token", "")
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        abort(403)


def _required(form: Mapping[str, str], *names: str) -> None:
    for name in names:
        if not form.get(name, "").strip():
            abort(400, description=f"missing form field {name}")
    for name, value in form.items():
        if "\x00" in value:  # no database text column takes NUL (PostgreSQL)
            abort(400, description=f"form field {name} holds a NUL character")


def parse(form: Mapping[str, str]) -> Inbound:
    """An Inbound for the message; a 400 naming the field unless `id`, `from` and `text`
    are there (`text` may be empty: it gets the help)."""
    _required(form, "id", "from")
    if "text" not in form:
        abort(400, description="missing form field text")
    for name in ("id", "from", "linkId"):
        if len(form.get(name, "")) > MAX_FIELD:
            abort(400, description=f"form field {name} is too long")
    return Inbound(
        channel="sms",
        provider_id=form["id"].strip(),
        sender=form["from"].strip(),
        text=form["text"],
        link_id=form.get("linkId", "").strip() or None,
    )


def parse_report(form: Mapping[str, str]) -> receipts.Receipt | None:
    """A Receipt from a delivery report; None for a status we do not know (answered and
    ignored); a 400 naming the field when it is malformed."""
    _required(form, "id", "status")
    if len(form["id"]) > MAX_FIELD:
        abort(400, description="form field id is too long")
    if not WORD.fullmatch(form["status"].strip()):
        abort(400, description="status is not an Africa's Talking delivery status")
    reason = form.get("failureReason", "").strip() or None
    if reason is not None and not WORD.fullmatch(reason):
        abort(400, description="failureReason is not an Africa's Talking failure reason")
    status = STATUSES.get(form["status"].strip())
    if status is None:
        return None
    return receipts.Receipt(form["id"].strip(), status, reason, provider="africastalking")


def render(reply: Reply) -> Response:
    """Africa's Talking reads nothing back: the reply went through the outbox."""
    return Response(b"", status=200, mimetype="text/plain")
