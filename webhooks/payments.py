"""Payment systems: `POST /webhooks/payments`, JSON signed with X-Signature → JSON.

Guard (hex HMAC-SHA256 of the raw body with PAYMENTS_SECRET, constant time), parse the
JSON, hand it to the core in one transaction, render its answer.
"""
from __future__ import annotations

import hashlib
import hmac
import json

from flask import Blueprint, Response, abort, current_app, jsonify, request

from bot.storage import db
from bot import payments
from bot.service import after_commit

bp = Blueprint("payments", __name__)


@bp.post("/webhooks/payments")
def receive() -> Response:
    services = current_app.extensions["ovbot"]
    body = request.get_data(cache=False)
    guard(services.settings, body)
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return jsonify(status="rejected", field="body", error="not valid JSON"), 400
    with db.transaction(services.sessions) as session:
        answer = payments.receive(services.core, session, payload)
    after_commit(services)
    return jsonify(answer.body), answer.status


def guard(settings, body: bytes) -> None:
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


def sign(secret: str, body: bytes) -> str:
    """The X-Signature a payment system sends (used by the demo and the tests)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
