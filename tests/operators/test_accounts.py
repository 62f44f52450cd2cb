"""Operator accounts: hashed passwords, roles, the lock-out, the audit rows."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.operators import accounts
from bot.operators.accounts import InvalidOperator, add_operator, authenticate
from bot.storage import db
from bot.storage.models import AuditEntry, Operator, utcnow

PASSWORD = "correct horse battery"


def _add(Session, email="Ops@Example.com", password=PASSWORD, role="viewer"):
    with db.transaction(Session) as s:
        operator, created = add_operator(s, email, password, role)
        return operator.id, created


def test_an_operator_is_stored_with_a_salted_hash_and_audited(Session):
    _, created = _add(Session)
    _add(Session, email="other@example.com")
    with Session() as s:
        ops = {o.email: o for o in s.scalars(select(Operator))}
        entries = s.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert created and set(ops) == {"ops@example.com", "other@example.com"}
    hashes = [o.password_hash for o in ops.values()]
    assert PASSWORD not in hashes[0] and hashes[0].startswith("scrypt$")
    assert hashes[0] != hashes[1]  # the same password, another salt
    assert (entries[0].actor, entries[0].action, entries[0].target) == (
        "cli",
        "operator.add",
        "operator:ops@example.com",
    )
    assert entries[0].before is None
    assert json.loads(entries[0].after) == {
        "email": "ops@example.com",
        "role": "viewer",
        "locked_until": None,
    }
    assert "scrypt" not in (entries[0].after or "")


def test_adding_again_updates_role_and_password_and_signs_the_old_sessions_out(Session):
    first_id, _ = _add(Session)
    with Session() as s:
        old = accounts.session_id(s.get(Operator, first_id))
    second_id, created = _add(Session, password="another long one", role="admin")
    assert (second_id, created) == (first_id, False)
    with Session() as s:
        assert accounts.by_session_id(s, old) is None
        operator = s.get(Operator, first_id)
        assert operator.role == "admin"
        assert accounts.by_session_id(s, accounts.session_id(operator)) is operator
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert json.loads(last.before)["role"] == "viewer"
    assert json.loads(last.after)["role"] == "admin"
    assert authenticate(Session, "ops@example.com", PASSWORD).outcome == "wrong"
    assert authenticate(Session, "OPS@example.com ", "another long one").outcome == "ok"


@pytest.mark.parametrize(
    ("email", "password", "role", "why"),
    [
        pytest.param("not-an-email", PASSWORD, "viewer", "not an email", id="bad-email"),
        pytest.param("a@b.c", "short", "viewer", "password must be", id="short-password"),
        pytest.param("a@b.c", "x" * 129, "viewer", "password must be", id="long-password"),
        pytest.param("a@b.c", PASSWORD, "root", "role must be", id="bad-role"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(Session, email, password, role, why):
    with pytest.raises(InvalidOperator, match=why), db.transaction(Session) as s:
        add_operator(s, email, password, role)
    with Session() as s:
        assert s.scalars(select(Operator)).all() == []
        assert s.scalars(select(AuditEntry)).all() == []


def test_sign_in_answers_the_same_for_an_unknown_email_and_a_wrong_password(Session):
    _add(Session)
    assert authenticate(Session, "nobody@example.com", PASSWORD).outcome == "wrong"
    assert authenticate(Session, "ops@example.com", "wrong password").outcome == "wrong"
    assert authenticate(Session, "", "").outcome == "wrong"
    ok = authenticate(Session, "ops@example.com", PASSWORD)
    assert ok.outcome == "ok" and ok.session_id and ok.session_id.startswith(f"{ok.operator_id}:")
    with Session() as s:
        operator = s.get(Operator, ok.operator_id)
        assert operator.failed_logins == 0 and operator.last_login_at is not None


def test_five_wrong_passwords_lock_the_account_for_fifteen_minutes(Session):
    _add(Session)
    now = utcnow()
    outcomes = [
        authenticate(Session, "ops@example.com", f"wrong {n}", now=now).outcome for n in range(5)
    ]
    assert outcomes == ["wrong"] * 4 + ["locked"]
    # Locked: even the right password is refused, until the lock runs out.
    later = now + timedelta(minutes=14)
    assert authenticate(Session, "ops@example.com", PASSWORD, now=later).outcome == "locked"
    after = now + timedelta(minutes=15, seconds=1)
    assert authenticate(Session, "ops@example.com", PASSWORD, now=after).outcome == "ok"


def test_a_success_resets_the_count_of_failures(Session):
    _add(Session)
    for _ in range(4):
        authenticate(Session, "ops@example.com", "nope nope nope")
    assert authenticate(Session, "ops@example.com", PASSWORD).outcome == "ok"
    for _ in range(4):
        assert authenticate(Session, "ops@example.com", "nope nope nope").outcome == "wrong"


def test_unlock_lifts_the_lock_and_is_audited(Session):
    _add(Session)
    for _ in range(5):
        authenticate(Session, "ops@example.com", "nope nope nope")
    with db.transaction(Session) as s:
        assert accounts.unlock(s, "ops@example.com", actor="boss@example.com") is not None
        assert accounts.unlock(s, "ghost@example.com") is None
    assert authenticate(Session, "ops@example.com", PASSWORD).outcome == "ok"
    with Session() as s:
        entry = accounts.recent_audit(s, 1)[0]
    assert (entry.actor, entry.action) == ("boss@example.com", "operator.unlock")
    assert json.loads(entry.before)["locked_until"] is not None
    assert json.loads(entry.after)["locked_until"] is None


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param("", id="empty"),
        pytest.param("1", id="no-token"),
        pytest.param("x:abc", id="not-an-id"),
        pytest.param("1:forged", id="wrong-token"),
        pytest.param("99:abc", id="no-such-operator"),
    ],
)
def test_a_cookie_names_an_operator_only_with_the_current_token(Session, cookie):
    _add(Session)
    with Session() as s:
        assert accounts.by_session_id(s, cookie) is None
