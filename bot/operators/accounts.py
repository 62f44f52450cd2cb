"""Operator accounts: creating them, signing in (with a lock-out), and the audit table.

Passwords are salted scrypt hashes (bot.domain.hash_secret). Signing in reads the account,
checks the password with no transaction open (scrypt is slow on purpose), then records the
outcome under the account's row lock: `LOCK_AFTER` failures in a row lock it for
`lock_minutes`, like agents. An unknown email costs the same hash, so the time taken does
not say which emails exist. Every failure is counted (on the account, and in /metrics).

`audit` writes one row per admin action, in the caller's transaction: the action and its
audit entry commit together or not at all.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import metrics
from bot.domain import OPERATOR_ROLES, hash_secret, verify_secret
from bot.storage import db
from bot.storage.models import AuditEntry, Operator, utcnow

LOCK_AFTER = 5
LOCK_MINUTES = 15
MIN_PASSWORD, MAX_PASSWORD = 10, 128
MAX_EMAIL = 254
PASSWORD_RULE = f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"
CLI = "cli"
# Hashed once, lazily: what an unknown email is checked against.
_DUMMY: list[str] = []


class InvalidOperator(ValueError):
    pass


@dataclass(frozen=True)
class Login:
    """The outcome of a sign-in: `ok`, `wrong` (unknown email or wrong password: the
    same answer for both) or `locked` (until `locked_until`)."""

    outcome: str
    operator_id: int | None = None
    session_id: str | None = None
    locked_until: datetime | None = None


def normalise_email(email: str) -> str:
    value = email.strip().lower()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in value):
        raise InvalidOperator(f"not an email address: {email!r}")
    if len(value) > MAX_EMAIL:
        raise InvalidOperator(f"email must be at most {MAX_EMAIL} characters")
    return value


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidOperator(PASSWORD_RULE)


def add_operator(
    session: Session, email: str, password: str, role: str = "viewer", *, actor: str = CLI
) -> tuple[Operator, bool]:
    """Create the operator, or update one's password and role (signing its browsers out);
    returns (operator, created). Audited as `operator.add` in this transaction."""
    email = normalise_email(email)
    check_password(password)
    if role not in OPERATOR_ROLES:
        raise InvalidOperator(f"role must be one of {', '.join(OPERATOR_ROLES)}")
    operator = session.scalar(select(Operator).where(Operator.email == email).with_for_update())
    before = snapshot(operator) if operator is not None else None
    created = operator is None
    if operator is None:
        operator = Operator(email=email)
        session.add(operator)
    operator.password_hash = hash_secret(password)
    operator.role = role
    operator.session_token = secrets.token_hex(16)
    operator.failed_logins, operator.locked_until = 0, None
    session.flush()
    audit(session, actor, "operator.add", f"operator:{email}", before, snapshot(operator))
    return operator, created


def snapshot(operator: Operator) -> dict[str, Any]:
    """What the audit shows of an operator: never its hash or session token."""
    return {
        "email": operator.email,
        "role": operator.role,
        "locked_until": _iso(operator.locked_until),
    }


def authenticate(
    sessions: sessionmaker[Session],
    email: str,
    password: str,
    *,
    now: datetime | None = None,
    lock_minutes: int = LOCK_MINUTES,
) -> Login:
    """Check a sign-in and record its outcome (a failure counted, a success resets)."""
    now = now or utcnow()
    try:
        email = normalise_email(email)
    except InvalidOperator:
        email = ""
    with sessions() as session:
        found = session.scalar(select(Operator).where(Operator.email == email)) if email else None
        stored = found.password_hash if found is not None else _dummy_hash()
        operator_id = found.id if found is not None else None
    right = verify_secret(password, stored) and operator_id is not None
    if operator_id is None:
        metrics.console_login("wrong")
        return Login("wrong")
    with db.transaction(sessions) as session:
        operator = session.get(Operator, operator_id, with_for_update=True)
        if operator is None:  # removed meanwhile
            metrics.console_login("wrong")
            return Login("wrong")
        if operator.locked_until is not None and operator.locked_until > now:
            metrics.console_login("locked")
            return Login("locked", operator.id, locked_until=operator.locked_until)
        if not right:
            operator.failed_logins += 1
            if operator.failed_logins >= LOCK_AFTER:
                operator.failed_logins = 0
                operator.locked_until = now + timedelta(minutes=lock_minutes)
                metrics.console_login("locked")
                return Login("locked", operator.id, locked_until=operator.locked_until)
            metrics.console_login("wrong")
            return Login("wrong", operator.id)
        operator.failed_logins, operator.locked_until = 0, None
        operator.last_login_at = now
        metrics.console_login("ok")
        return Login("ok", operator.id, session_id=session_id(operator))


def session_id(operator: Operator) -> str:
    """What a signed-in browser's cookie holds: the id and the current session token."""
    return f"{operator.id}:{operator.session_token}"


def by_session_id(session: Session, value: str) -> Operator | None:
    """The operator a cookie names, if its session token is still the current one."""
    ident, _, token = value.partition(":")
    if not ident.isdigit() or not token:
        return None
    operator = session.get(Operator, int(ident))
    if operator is None or not secrets.compare_digest(operator.session_token, token):
        return None
    return operator


def unlock(session: Session, email: str, *, actor: str = CLI) -> Operator | None:
    operator = session.scalar(
        select(Operator).where(Operator.email == normalise_email(email)).with_for_update()
    )
    if operator is not None:
        before = snapshot(operator)
        operator.failed_logins, operator.locked_until = 0, None
        session.flush()
        audit(
            session,
            actor,
            "operator.unlock",
            f"operator:{operator.email}",
            before,
            snapshot(operator),
        )
    return operator


def audit(
    session: Session,
    actor: str | Operator,
    action: str,
    target: str,
    before: object,
    after: object,
) -> AuditEntry:
    """One audit row, in the caller's transaction (it commits with the action)."""
    operator_id = actor.id if isinstance(actor, Operator) else None
    who = actor.email if isinstance(actor, Operator) else actor
    entry = AuditEntry(
        operator_id=operator_id,
        actor=who,
        action=action,
        target=target,
        before=None if before is None else json.dumps(before, sort_keys=True, default=str),
        after=None if after is None else json.dumps(after, sort_keys=True, default=str),
    )
    session.add(entry)
    session.flush()
    return entry


def recent_audit(session: Session, limit: int = 100) -> list[AuditEntry]:
    return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))


def operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.email)))


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_secret(secrets.token_hex(8)))
    return _DUMMY[0]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
