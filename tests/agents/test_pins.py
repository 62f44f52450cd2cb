"""Agents: create or update by phone; PINs stored as salted hashes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.agents.pins import InvalidAgent, add_agent, hash_pin, verify_pin
from bot.storage.models import Agent, utcnow

PHONE = "+254700000100"


def test_hash_pin_is_salted_and_verifies():
    first, second = hash_pin("4821"), hash_pin("4821")
    assert first != second
    assert verify_pin("4821", first) and verify_pin("4821", second)
    assert "4821" not in first


@pytest.mark.parametrize("pin", ["4820", "48210", "", "482", " 4821", "4821 ", "０４８２１"])
def test_verify_pin_refuses_another_pin(pin):
    assert not verify_pin(pin, hash_pin("4821"))


GOOD = hash_pin("4821")
_, _n, _r, _p, _salt, _digest = GOOD.split("$")


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("", id="empty"),
        pytest.param("4821", id="the PIN itself"),
        pytest.param("garbage", id="garbage"),
        pytest.param("$$$$$", id="separators only"),
        pytest.param(GOOD.replace("scrypt", "bcrypt", 1), id="another scheme"),
        pytest.param(f"scrypt${_n}${_r}${_p}${_salt}", id="a field short"),
        pytest.param(f"scrypt${_n}${_r}${_p}${_salt}${_digest}$extra", id="a field too many"),
        pytest.param(f"scrypt$abc${_r}${_p}${_salt}${_digest}", id="n not a number"),
        pytest.param(f"scrypt$0${_r}${_p}${_salt}${_digest}", id="n zero"),
        pytest.param(f"scrypt$1000${_r}${_p}${_salt}${_digest}", id="n not a power of two"),
        pytest.param(f"scrypt${2**30}${_r}${_p}${_salt}${_digest}", id="more memory than allowed"),
        pytest.param(f"scrypt${_n}${_r}${_p}$nothex${_digest}", id="salt not hex"),
        pytest.param(f"scrypt${_n}${_r}${_p}${_salt}$", id="no digest"),
        pytest.param(f"scrypt${_n}${_r}${_p}${_salt}${_digest[:-2]}", id="digest a byte short"),
        pytest.param(f"scrypt${_n}${_r}${_p}${_salt}$zz{_digest[2:]}", id="digest not hex"),
        pytest.param(None, id="none"),
    ],
)
def test_verify_pin_is_false_for_garbage_stored_values(stored):
    assert verify_pin("4821", stored) is False


def test_verify_pin_without_a_pin_is_false():
    assert verify_pin(None, GOOD) is False  # type: ignore[arg-type]


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(Agent))


def test_add_agent_creates_then_updates_the_same_phone(session):
    agent, created = add_agent(session, PHONE, "  Jane  ", "4821")
    assert created and agent.role == "agent" and agent.name == "Jane"
    assert verify_pin("4821", agent.pin_hash)
    agent.failed_attempts, agent.locked_until = 3, utcnow() + timedelta(minutes=15)
    session.commit()

    again, created = add_agent(session, PHONE, "Jane W", "9999", "admin")
    session.commit()
    assert not created and again.id == agent.id and _count(session) == 1
    assert (again.name, again.role) == ("Jane W", "admin")
    assert verify_pin("9999", again.pin_hash) and not verify_pin("4821", again.pin_hash)
    assert again.failed_attempts == 0 and again.locked_until is None


def test_agents_are_told_apart_by_phone(session):
    add_agent(session, PHONE, "Jane", "4821")
    add_agent(session, "+254700000101", "Joe", "4821")
    assert _count(session) == 2


@pytest.mark.parametrize(
    "pin",
    [
        "123",
        "123456789",
        "12a4",
        "12 34",
        "1234\n",
        " 1234",
        "",
        None,
        "١٢٣٤",
        "12.4",
        "-123",
    ],
)
def test_bad_pins_are_refused(session, pin):
    with pytest.raises(InvalidAgent, match="PIN"):
        add_agent(session, PHONE, "Jane", pin)
    assert _count(session) == 0


@pytest.mark.parametrize("pin", ["0000", "12345678", "0123"])
def test_good_pins(session, pin):
    agent, _ = add_agent(session, PHONE, "Jane", pin)
    assert verify_pin(pin, agent.pin_hash)


@pytest.mark.parametrize(
    "name,role,reason",
    [
        ("Jane", "boss", "role"),
        ("Jane", "ADMIN", "role"),
        ("   ", "agent", "name"),
        ("J" * 201, "agent", "name"),
    ],
)
def test_bad_names_and_roles_are_refused(session, name, role, reason):
    with pytest.raises(InvalidAgent, match=reason):
        add_agent(session, PHONE, name, "4821", role)
    assert _count(session) == 0


def test_a_refused_update_leaves_the_agent_alone(session):
    agent, _ = add_agent(session, PHONE, "Jane", "4821", "admin")
    stored = agent.pin_hash
    with pytest.raises(InvalidAgent):
        add_agent(session, PHONE, "Jane", "12", "agent")
    assert (agent.role, agent.pin_hash) == ("admin", stored)
