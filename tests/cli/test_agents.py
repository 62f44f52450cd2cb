"""`ovbot agent add|list|unlock|remove`, as an operator runs them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.agents.pins import verify_pin
from bot.storage.models import Agent, Payment
from tests.harness import count_rows, ovbot


def add(phone="0700000100", name="Jane", pin="4821"):
    assert ovbot("agent", "add", phone, "--name", name, "--pin", pin).exit_code == 0


def test_remove_retires_the_agent_keeps_the_row_and_wipes_the_pin(home, Session):
    add()
    done = ovbot("agent", "remove", "0700000100")
    assert done.exit_code == 0 and "removed Jane (+254*****100)" in done.stdout
    assert "700000100" not in done.stdout
    with Session() as session:
        agent = session.scalar(select(Agent))
    assert agent.removed_at is not None and not verify_pin("4821", agent.pin_hash)
    listed = ovbot("agent", "list").stdout
    assert "+254*****100\tagent\tJane\tremoved " in listed and "1 agent(s)" in listed


def test_remove_keeps_the_payments_that_name_the_agent(home, Session):
    add()
    from bot.storage import db

    with db.transaction(Session) as session:
        agent = session.scalar(select(Agent))
        session.add(Payment(reference="R-1", days=3, source="agent", agent_id=agent.id))
    assert ovbot("agent", "remove", "+254700000100").exit_code == 0
    with Session() as session:
        payment = session.scalar(select(Payment))
        assert payment.agent.name == "Jane" and payment.agent.removed_at is not None


def test_removing_twice_says_so_and_changes_nothing(home, Session):
    add()
    ovbot("agent", "remove", "0700000100")
    with Session() as session:
        first = session.scalar(select(Agent.removed_at))
    again = ovbot("agent", "remove", "0700000100")
    assert again.exit_code == 0 and "already removed; nothing changed" in again.stdout
    with Session() as session:
        assert session.scalar(select(Agent.removed_at)) == first


@pytest.mark.parametrize(
    "args, exit_code, said",
    [
        pytest.param(("+254700000999",), 1, "no agent +254*****999: nothing removed", id="unknown"),
        pytest.param(("12",), 2, "PHONE", id="not a phone number"),
    ],
)
def test_remove_refuses_plainly(home, Session, args, exit_code, said):
    add()
    result = ovbot("agent", "remove", *args)
    assert result.exit_code == exit_code and said in result.stderr
    with Session() as session:
        assert session.scalar(select(Agent.removed_at)) is None
    assert count_rows(Session, Agent) == 1


def test_add_reinstates_a_removed_agent_with_a_new_pin(home, Session):
    add()
    ovbot("agent", "remove", "0700000100")
    add(pin="97531")
    with Session() as session:
        agent = session.scalar(select(Agent))
    assert agent.removed_at is None and verify_pin("97531", agent.pin_hash)
    assert "\tactive" in ovbot("agent", "list").stdout


def test_unlock_refuses_a_removed_agent(home):
    add()
    ovbot("agent", "remove", "0700000100")
    result = ovbot("agent", "unlock", "0700000100")
    assert result.exit_code == 1 and "was removed" in result.stderr


def test_add_without_pin_asks_twice_hidden_and_refuses_a_mismatch(home, Session):
    result = ovbot("agent", "add", "0700000100", "--name", "Jane", input="4821\n4822\n4821\n4821\n")
    assert result.exit_code == 0 and "do not match" in result.output.lower()
    assert "4821" not in result.output
    with Session() as session:
        assert verify_pin("4821", session.scalar(select(Agent.pin_hash)))


def test_add_help_warns_that_pin_lands_in_the_shell_history(home):
    assert "history" in " ".join(ovbot("agent", "add", "--help").stdout.split())
