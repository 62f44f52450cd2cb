"""Agents: creating them and checking their PINs (stored as salted scrypt hashes)."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.models import Agent

ROLES = ("agent", "admin")
_PIN = re.compile(r"^\d{4,8}$")
_N, _R, _P = 2**14, 8, 1


class InvalidAgent(ValueError):
    pass


def hash_pin(pin: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt),
                                   n=int(n), r=int(r), p=int(p), dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(candidate.hex(), digest)


def add_agent(session: Session, phone: str, name: str, pin: str, role: str = "agent"
              ) -> tuple[Agent, bool]:
    """Create or update the agent with this (already normalised) phone; returns (agent, created)."""
    if not _PIN.match(pin or ""):
        raise InvalidAgent("PIN must be 4 to 8 digits")
    if role not in ROLES:
        raise InvalidAgent(f"role must be one of {', '.join(ROLES)}")
    if not name.strip():
        raise InvalidAgent("name must not be empty")
    agent = session.scalar(select(Agent).where(Agent.phone == phone))
    created = agent is None
    if created:
        agent = Agent(phone=phone)
        session.add(agent)
    agent.name = name.strip()
    agent.role = role
    agent.pin_hash = hash_pin(pin)
    agent.failed_attempts = 0
    agent.locked_until = None
    session.flush()
    return agent, created
