"""Fakes that stand in for the outside world in tests: what providers and payers send."""

from __future__ import annotations

import hashlib
import hmac


def payment_signature(secret: str, body: bytes) -> str:
    """The X-Signature a payment system sends: hex HMAC-SHA256 of the exact body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
