"""Payment systems: `POST /webhooks/payments`, JSON signed with X-Signature → JSON.

Guard (hex HMAC-SHA256 of the raw body with PAYMENTS_SECRET, constant time), parse the
JSON into a `PaymentIn` (a 400 names the first bad field), hand it to the core in one
transaction, and map the core's outcome to a status: credited 200, unmatched 202 (kept
until an operator assigns it), rejected 422, conflict 409 (the reference is another
payment's: nothing changed, the first payment in the body).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from decimal import Decimal

from flask import Blueprint, Response, abort, current_app, jsonify, request

from bot.deps import Deps
from bot.ledger import InvalidPayment, money
from bot.ledger.book import MAX_PAYMENT_DAYS
from bot.payments import PaymentIn
from bot.payments import receive as receive_payment
from bot.settings import Settings
from bot.storage import db
from bot.text import phones

bp = Blueprint("payments", __name__)
MAX_REFERENCE = 128
MAX_PRODUCT_REF = 64  # the longest serial the devices table holds
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # "175", "175.50": not "1_000", "١٧٥" or "1e2"
HTTP_STATUS = {"credited": 200, "unmatched": 202, "rejected": 422, "conflict": 409}


@bp.post("/webhooks/payments")
def receive() -> tuple[Response, int]:
    deps: Deps = current_app.extensions["ovbot"]
    body = request.get_data(cache=False)
    guard(deps.settings, body)
    try:
        payload = json.loads(body.decode("utf-8"))  # strict: no lone surrogates
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return jsonify(status="rejected", field="body", error="not valid JSON"), 400
    try:
        data = parse(payload, deps.settings.default_region)
    except BadPayment as exc:
        return jsonify(status="rejected", field=exc.field, error=exc.reason), 400
    with db.transaction(deps.sessions) as session:
        answer = receive_payment(deps, session, data)
    deps.committed(session)
    return jsonify(answer.body), HTTP_STATUS[answer.outcome]


def guard(settings: Settings, body: bytes) -> None:
    """401 unless X-Signature is the HMAC of this exact body (fail closed without a secret)."""
    secret = settings.payments_secret
    if not secret and settings.demo:
        return
    given = request.headers.get("X-Signature", "").strip().lower()
    if not secret or not given:
        abort(401)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        abort(401)


class BadPayment(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse(payload: object, region: str) -> PaymentIn:
    """Validate a payment's JSON body; BadPayment names the first bad field.

    `region` reads a national phone number (the settings' default region).
    """
    if not isinstance(payload, dict):
        raise BadPayment("body", "must be a JSON object")
    reference = payload.get("reference")
    if (
        not isinstance(reference, str)
        or not reference.strip()
        or len(reference) > MAX_REFERENCE
        or not _unicode(reference)
    ):
        raise BadPayment("reference", f"must be a non-empty string of at most {MAX_REFERENCE}")
    product = payload.get("product_id")
    if product is None:
        product = payload.get("serial")
    if (
        isinstance(product, bool)
        or not isinstance(product, (int, str))
        or not str(product).strip()
        or len(str(product).strip()) > MAX_PRODUCT_REF
    ):
        raise BadPayment("product_id", "must be a product id or serial")
    if isinstance(product, str) and not _unicode(product):
        raise BadPayment("product_id", "must be a product id or serial")
    days, amount = payload.get("days"), payload.get("amount")
    if (days is None) == (amount is None):
        raise BadPayment("days", "give exactly one of days or amount")
    if days is not None and (
        isinstance(days, bool) or not isinstance(days, int) or not 0 < days <= MAX_PAYMENT_DAYS
    ):
        raise BadPayment("days", f"must be a whole number from 1 to {MAX_PAYMENT_DAYS}")
    if amount is not None:
        amount = _amount(amount)
    phone = payload.get("phone")
    if phone is not None:
        try:
            phone = phones.normalise(phone, region)
        except phones.InvalidPhone as exc:
            raise BadPayment("phone", str(exc)) from None
    return PaymentIn(reference.strip(), str(product).strip(), days, amount, phone)


def _amount(value: object) -> Decimal:
    """A positive amount in whole cents, from a JSON number or a numeric string."""
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidPayment("amount must be a number")
        if isinstance(value, str) and not _DECIMAL.fullmatch(value.strip()):
            raise InvalidPayment("amount must be written with the digits 0-9 and a point")
        return money(str(value))
    except InvalidPayment as exc:
        raise BadPayment("amount", str(exc)) from None


def _unicode(text: str) -> bool:
    """Whether `text` is real Unicode a database column takes: JSON's "\\ud800" escapes
    decode to lone surrogates, and PostgreSQL's text refuses NUL."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text
