"""The rules of the domain that several layers share: one home for each, nothing imported.

Settings, the schema's CHECK constraints, the parsers and the ledger all read these; a
change here changes them all.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

# The most days one code can carry: a jump of 1096 or more reads as FREE on the device
# (OMNIVOLTAIC.md section 2; bot/omnivoltaic/acp1.py walks the same chain).
MAX_CODE_DAYS = 1095

LANGUAGES = ("en", "fr", "sw")  # every reply template exists in these
AGENT_ROLES = ("agent", "admin")
ADMIN = "admin"
# Operators of the web console (bot/operators/): a viewer reads, an admin also acts.
OPERATOR_ROLES = ("viewer", "admin")

# An agent's PIN: 4 to 8 ASCII digits, what a phone keypad sends.
PIN_PATTERN = re.compile(r"[0-9]{4,8}")
PIN_RULE = "PIN must be 4 to 8 digits"


def is_pin(value: object) -> bool:
    """Whether `value` has the shape of a PIN (not whether it is anyone's)."""
    return isinstance(value, str) and PIN_PATTERN.fullmatch(value) is not None


# Secrets people type (agents' PINs, operators' passwords) are stored as salted scrypt
# hashes, a fresh salt each: `scrypt$N$r$p$salt$digest`, compared in constant time.
_N, _R, _P = 2**14, 8, 1
_DKLEN = 32


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or len(digest) != 2 * _DKLEN:  # a shorter digest is weaker
            return False
        candidate = hashlib.scrypt(
            secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p), dklen=_DKLEN
        )
    except (ValueError, TypeError, AttributeError):  # garbage stored, or no secret at all
        return False
    return hmac.compare_digest(candidate.hex(), digest)
