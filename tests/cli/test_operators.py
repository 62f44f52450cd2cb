"""`ovbot operator add|list|unlock`, as an operator runs them."""

from __future__ import annotations

from sqlalchemy import select

from bot.domain import verify_secret
from bot.operators.accounts import authenticate
from bot.storage.models import AuditEntry, Operator
from tests.harness import ovbot

PASSWORD = "a long enough one"


def test_add_prompts_for_the_password_hidden_and_twice(home, Session):
    done = ovbot("operator", "add", "Ops@Example.com", "--role", "admin", input=f"{PASSWORD}\n" * 2)
    assert done.exit_code == 0, done.output
    assert "created admin ops@example.com" in done.stdout
    assert PASSWORD not in done.output  # hidden
    assert "CONSOLE_SECRET_KEY" in done.stderr  # the console is off without it
    with Session() as session:
        operator = session.scalar(select(Operator))
        assert operator.role == "admin" and verify_secret(PASSWORD, operator.password_hash)
        assert session.scalar(select(AuditEntry.action)) == "operator.add"


def test_a_mismatched_confirmation_is_asked_again(home, Session):
    assert ovbot("db", "upgrade").exit_code == 0
    done = ovbot("operator", "add", "ops@example.com", input=f"{PASSWORD}\nother one!!\n")
    assert done.exit_code != 0 and "do not match" in done.output
    with Session() as session:
        assert session.scalar(select(Operator)) is None


def test_a_short_password_is_refused_and_nothing_is_stored(home, Session):
    assert ovbot("db", "upgrade").exit_code == 0
    done = ovbot("operator", "add", "ops@example.com", "--password", "short")
    assert done.exit_code == 2 and "password must be 10 to 128 characters" in done.output
    with Session() as session:
        assert session.scalar(select(Operator)) is None


def test_a_bad_email_is_refused(home, Session):
    done = ovbot("operator", "add", "nobody", "--password", PASSWORD)
    assert done.exit_code == 2 and "not an email address" in done.output


def test_list_and_unlock(home, Session):
    assert ovbot("operator", "add", "ops@example.com", "--password", PASSWORD).exit_code == 0
    for _ in range(5):
        authenticate(Session, "ops@example.com", "wrong password")
    assert "locked until" in ovbot("operator", "list").stdout
    done = ovbot("operator", "unlock", "ops@example.com")
    assert done.exit_code == 0 and "unlocked ops@example.com" in done.stdout
    listed = ovbot("operator", "list").stdout
    assert "ops@example.com\tviewer\tactive" in listed and "1 operator(s)" in listed
    assert ovbot("operator", "unlock", "ghost@example.com").exit_code == 1
