"""Agents: creating, retiring them and checking their PINs (stored as salted scrypt hashes).

A retired agent is kept, not deleted (payments name the agent that sold them), with its
PIN hash wiped; the USSD menu refuses it like a stranger, and `add_agent` reinstates it.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.domain import AGENT_ROLES, PIN_RULE, hash_secret, is_pin, verify_secret
from bot.storage.models import Agent, utcnow

MAX_NAME = 200


class InvalidAgent(ValueError):
    pass


def hash_pin(pin: str) -> str:
    return hash_secret(pin)


def verify_pin(pin: str, stored: str) -> bool:
    return verify_secret(pin, stored)


def add_agent(
    session: Session, phone: str, name: str, pin: str, role: str = "agent"
) -> tuple[Agent, bool]:
    """Create or update the agent with this (already normalised) phone; returns (agent, created)."""
    if not is_pin(pin):
        raise InvalidAgent(PIN_RULE)
    if role not in AGENT_ROLES:
        raise InvalidAgent(f"role must be one of {', '.join(AGENT_ROLES)}")
    if not name.strip():
        raise InvalidAgent("name must not be empty")
    if len(name.strip()) > MAX_NAME:
        raise InvalidAgent(f"name must be at most {MAX_NAME} characters")
    agent = session.scalar(select(Agent).where(Agent.phone == phone))
    created = agent is None
    if agent is None:
        agent = Agent(phone=phone)
        session.add(agent)
    agent.name = name.strip()
    agent.role = role
    agent.pin_hash = hash_pin(pin)
    agent.failed_attempts = 0
    agent.locked_until = None
    agent.removed_at = None  # adding a retired agent again reinstates it
    session.flush()
    return agent, created


def remove(session: Session, phone: str) -> tuple[Agent | None, bool]:
    """Retire the agent with this phone: (agent, removed now); (None, False) if unknown.

    Not a DELETE: payments keep their agent, so who sold what stays answerable. The PIN
    hash is wiped, so nothing of the old PIN remains to be guessed or reused.
    """
    agent = session.scalar(select(Agent).where(Agent.phone == phone).with_for_update())
    if agent is None or agent.removed_at is not None:
        return agent, False
    agent.removed_at, agent.pin_hash = utcnow(), ""
    agent.failed_attempts, agent.locked_until = 0, None
    session.flush()
    return agent, True


def unlock(session: Session, phone: str) -> Agent | None:
    """Lift an agent's lock-out and clear its failure count; None if there is no such agent
    (a retired agent is returned unchanged: reinstate it with `add_agent`).

    USSD carries no signature: anyone who knows an agent's number can lock it with three
    wrong PINs, so an admin must be able to undo that at once.
    """
    agent = session.scalar(select(Agent).where(Agent.phone == phone))
    if agent is not None and agent.removed_at is None:
        agent.failed_attempts, agent.locked_until = 0, None
        session.flush()
    return agent


def agents(session: Session) -> list[Agent]:
    return list(session.scalars(select(Agent).order_by(Agent.phone)))
