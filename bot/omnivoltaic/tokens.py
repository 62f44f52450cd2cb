"""What an access token looks like, without trusting it: opaque text, or a JWT.

The API documents a token valid for one hour. When the token is a JWT its own `exp`
(and `iat`) say how long it really lives, so the client renews before that instead. The
signature is never checked (we hold no key, and we only read the dates); the token itself
is never printed or logged, only its shape.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BEARER = "bearer "


@dataclass(frozen=True)
class TokenShape:
    kind: str  # "JWT" or "opaque"
    length: int
    algorithm: str | None = None
    claims: tuple[str, ...] = ()  # the claim names, never their values
    issued_at: datetime | None = None
    expires_at: datetime | None = None

    @property
    def lifetime(self) -> float | None:
        """Seconds from `iat` to `exp`, when the token says both (independent of our clock)."""
        if self.issued_at is None or self.expires_at is None:
            return None
        return (self.expires_at - self.issued_at).total_seconds()


def strip_scheme(token: str) -> str:
    """A token handed back as `Bearer <token>` is stored bare: the scheme is ours to add."""
    token = token.strip()
    return token[len(BEARER) :].strip() if token[: len(BEARER)].lower() == BEARER else token


def authorization(token: str, scheme: str) -> str:
    """The `Authorization` header value: the raw token, or `Bearer <token>`."""
    return f"Bearer {token}" if scheme == "bearer" else token


def describe(token: str) -> TokenShape:
    """The token's shape: a JWT's header and dates when it is one, else opaque."""
    parts = token.split(".")
    header = _segment(parts[0]) if len(parts) == 3 else None
    payload = _segment(parts[1]) if header is not None else None
    if header is None or payload is None:
        return TokenShape(kind="opaque", length=len(token))
    algorithm = header.get("alg")
    return TokenShape(
        kind="JWT",
        length=len(token),
        algorithm=algorithm if isinstance(algorithm, str) else None,
        claims=tuple(sorted(str(k) for k in payload)),
        issued_at=_date(payload.get("iat")),
        expires_at=_date(payload.get("exp")),
    )


def _segment(text: str) -> dict[str, Any] | None:
    """One base64url JSON segment of a JWT (unpadded, as RFC 7515 writes it), or None."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _date(value: Any) -> datetime | None:
    """A NumericDate (seconds since the epoch), or None when absent or unreadable."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
