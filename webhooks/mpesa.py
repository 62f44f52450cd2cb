"""M-Pesa C2B (Daraja): `POST /webhooks/mpesa/validation` and `/webhooks/mpesa/confirmation`.

Daraja posts the same JSON to both (TransactionType, TransID, TransTime, TransAmount,
BusinessShortCode, BillRefNumber, InvoiceNumber, OrgAccountBalance, ThirdPartyTransID,
MSISDN, FirstName, MiddleName, LastName) and reads the answer's `ResultCode`: "0" accepts,
a `C2B000xx` code rejects (validation only; "Rejected" is the description Daraja shows).

Guard: `?token=` equal to MPESA_CALLBACK_TOKEN, in constant time (Daraja does not sign its
callbacks: the token is part of the registered URLs), then `BusinessShortCode` equal to
MPESA_SHORTCODE; fail closed, open only in the demo while unset. Bodies are a few hundred
bytes: more than MAX_BODY is a 413.

- Validation (before the money moves; Safaricom calls it only where external validation is
  enabled) accepts when BillRefNumber names a device of the fleet (product id or serial;
  case and spaces forgiven) and the amount, with the device's balance, buys a whole day:
  else C2B00012 (account) or C2B00013 (amount). It only reads.
- Confirmation (the money has moved) records the payment once per TransID (reference
  `mpesa:<TransID>`, source `mpesa`) through the payment use case, which converts at the
  device's price keeping the remainder, mints within the credit-ahead cap and queues the
  code for the owner; an unknown account is kept unmatched for `ovbot payments assign`.
  It answers success whatever became of the code, so that Daraja stops; only a payment
  the database could not record is a 5xx, so that Daraja delivers it again.

MSISDN may be masked ("2547 ***** 126") or hashed: it is never read, stored or logged, nor
are the payer's names; the device comes from BillRefNumber alone.

Daraja refuses to register a URL with "mpesa" (or "safaricom") in it, so each route also
answers under `/webhooks/c2b/...`: those are the URLs to register.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from bot.deps import Deps
from bot.ledger import InvalidPayment, money
from bot.payments import PaymentIn, check
from bot.payments import receive as receive_payment
from bot.settings import Settings
from bot.storage import db

bp = Blueprint("mpesa", __name__)
log = logging.getLogger(__name__)

MAX_BODY = 4 * 1024
REFERENCE = "mpesa:{}"  # a payment's reference: one per TransID, apart from other sources
_TRANS_ID = re.compile(r"[A-Za-z0-9]{1,40}")  # e.g. RKTQDM7W6S
_AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")  # "10", "150.00": not "1e2", "-5" or "١٥٠"

ACCEPTED = "0"
INVALID_ACCOUNT = "C2B00012"
INVALID_AMOUNT = "C2B00013"
OTHER_ERROR = "C2B00016"
REJECTED_FOR = {"device": INVALID_ACCOUNT, "amount": INVALID_AMOUNT, "TransAmount": INVALID_AMOUNT}


@dataclass(frozen=True)
class C2B:
    """What we read of a Daraja C2B body (nothing about the payer)."""

    trans_id: str
    amount: Decimal
    account: str  # BillRefNumber without spaces; "" when there was none (a till payment)


class BadField(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@bp.post("/webhooks/mpesa/validation")
@bp.post("/webhooks/c2b/validation")  # the URL to register: Daraja refuses "mpesa" in one
def validation() -> tuple[Response, int]:
    deps: Deps = current_app.extensions["ovbot"]
    try:
        c2b = parse(guard(deps.settings))
    except BadField as exc:
        return result(REJECTED_FOR.get(exc.field, OTHER_ERROR)), 200
    with db.reading(deps.sessions) as session:
        refused = check(deps, session, c2b.account, c2b.amount)
    if refused is not None:
        log.info("M-Pesa %s for %r refused at validation: %s", c2b.trans_id, c2b.account, refused)
        return result(REJECTED_FOR[refused]), 200
    return result(ACCEPTED), 200


@bp.post("/webhooks/mpesa/confirmation")
@bp.post("/webhooks/c2b/confirmation")
def confirmation() -> tuple[Response, int]:
    deps: Deps = current_app.extensions["ovbot"]
    try:
        c2b = parse(guard(deps.settings))
    except BadField as exc:  # the money moved, but there is nothing we could record
        log.warning("M-Pesa confirmation not recorded: %s", exc)
        return result(OTHER_ERROR, field=exc.field, error=exc.reason), 400
    data = PaymentIn(
        REFERENCE.format(c2b.trans_id), c2b.account, None, c2b.amount, None, "mpesa", keep=True
    )
    with db.transaction(deps.sessions) as session:  # a failure to record it: a 5xx
        answer = receive_payment(deps, session, data)
    deps.committed(session)
    log.info("M-Pesa %s for %r: %s", c2b.trans_id, c2b.account, answer.outcome)
    return result(ACCEPTED), 200


def guard(settings: Settings) -> dict[str, object]:
    """The JSON body, once the token, its size and the shortcode it names are right."""
    secret = settings.mpesa_callback_token
    if secret or not settings.demo:
        given = request.args.get("token", "")
        if not secret or not given or not hmac.compare_digest(given.encode(), secret.encode()):
            abort(401)
    if (request.content_length or 0) > MAX_BODY:
        abort(413)
    body = request.get_data(cache=False)
    if len(body) > MAX_BODY:  # no Content-Length (chunked): counted as read
        abort(413)
    try:
        payload = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        abort(400, description="not valid JSON")
    if not isinstance(payload, dict):
        abort(400, description="must be a JSON object")
    shortcode = payload.get("BusinessShortCode")
    expected = settings.mpesa_shortcode
    if expected or not settings.demo:
        if isinstance(shortcode, bool) or str(shortcode).strip() != expected:
            log.warning("M-Pesa callback for another shortcode refused: %r", shortcode)
            abort(403, description="not our BusinessShortCode")
    return payload


def parse(payload: dict[str, object]) -> C2B:
    """TransID and TransAmount must be right; a BillRefNumber that names nothing is ""."""
    trans_id = payload.get("TransID")
    if not isinstance(trans_id, str) or not _TRANS_ID.fullmatch(trans_id.strip()):
        raise BadField("TransID", "must be the M-Pesa receipt number")
    amount = payload.get("TransAmount")
    try:
        if isinstance(amount, bool) or not isinstance(amount, int | float | str):
            raise InvalidPayment("must be a number")
        if isinstance(amount, str) and not _AMOUNT.fullmatch(amount.strip()):
            raise InvalidPayment("must be written with the digits 0-9 and a point")
        value = money(str(amount).strip())
    except InvalidPayment as exc:
        raise BadField("TransAmount", str(exc)) from None
    return C2B(trans_id.strip(), value, _account(payload.get("BillRefNumber")))


def _account(value: object) -> str:
    """BillRefNumber as the payer typed it, without spaces, in plain printable ASCII (a
    database column takes it whatever it holds); "" when it is not text or a number."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return ""
    text = "".join(str(value).split()).encode("ascii", "backslashreplace").decode()
    return "".join(c if c.isprintable() else "?" for c in text)


def result(code: str, **extra: str) -> Response:
    return jsonify(
        ResultCode=code, ResultDesc="Accepted" if code == ACCEPTED else "Rejected", **extra
    )


def refusal(error: HTTPException) -> Response:
    """A refused request (guard, size, body, a failure) in Daraja's shape."""
    reason = error.description
    if not reason or reason == type(error).description:
        reason = error.name
    return result(OTHER_ERROR, error=reason)
