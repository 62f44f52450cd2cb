"""The demo: seeding is idempotent, the printed PIN works, customers have days to claim."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.agents.pins import verify_pin
from bot.cli import demo
from bot.storage.models import Agent, Customer, Device, Operator, Payment, utcnow
from bot.text.phones import normalise


def snapshot(world) -> dict:
    with world.session() as s:
        return {
            "customers": sorted((c.phone, c.name, c.language) for c in s.scalars(select(Customer))),
            "owners": sorted(
                (d.product_id, d.owner.phone)
                for d in s.scalars(select(Device).where(Device.owner_id.is_not(None)))
            ),
            "payments": sorted(
                (p.reference, p.days, p.source, p.device.product_id)
                for p in s.scalars(select(Payment))
            ),
            "agents": sorted((a.phone, a.name, a.role) for a in s.scalars(select(Agent))),
            "devices": len(s.scalars(select(Device)).all()),
        }


def test_seed_twice_gives_the_same_rows(sqlite_world):
    demo.seed(sqlite_world.services)
    first = snapshot(sqlite_world)
    demo.seed(sqlite_world.services)
    assert snapshot(sqlite_world) == first
    assert first["devices"] == 100
    assert len(first["customers"]) == len(demo.CUSTOMERS)
    assert first["agents"] == [(demo.AGENT_PHONE, "Demo Agent", "admin")]
    assert len(first["payments"]) == sum(len(c.product_ids) for c in demo.CUSTOMERS)


def test_customers_own_their_devices_with_unspent_paid_days(sqlite_world):
    demo.seed(sqlite_world.services)
    ledger = sqlite_world.ledger
    with sqlite_world.session() as s:
        for c in demo.CUSTOMERS:
            customer = s.scalar(select(Customer).where(Customer.phone == c.phone))
            assert (customer.name, customer.language) == (c.name, c.language)
            assert [d.product_id for d in customer.devices] == list(c.product_ids)
            for device in customer.devices:
                assert ledger.unspent_days(s, device) == c.paid_days > 0


def test_the_agent_pin_works_even_after_a_lock_out(sqlite_world):
    demo.seed(sqlite_world.services)
    with sqlite_world.session() as s:
        agent = s.scalar(select(Agent).where(Agent.phone == demo.AGENT_PHONE))
        assert verify_pin(demo.AGENT_PIN, agent.pin_hash)
        agent.failed_attempts, agent.locked_until = 3, utcnow() + timedelta(minutes=15)
    demo.seed(sqlite_world.services)
    with sqlite_world.session() as s:
        agent = s.scalar(select(Agent).where(Agent.phone == demo.AGENT_PHONE))
        assert verify_pin(demo.AGENT_PIN, agent.pin_hash)
        assert (agent.failed_attempts, agent.locked_until) == (0, None)


def test_demo_data_is_valid():
    for phone in [demo.AGENT_PHONE, *(c.phone for c in demo.CUSTOMERS)]:
        assert normalise(phone, "KE") == phone
    products = [pid for c in demo.CUSTOMERS for pid in c.product_ids]
    assert len(set(products)) == len(products)
    assert all(1001 <= pid <= 1100 for pid in products), "the demo distributor's items"
    assert {c.language for c in demo.CUSTOMERS} == {"en", "fr", "sw"}


def test_instructions_say_how_to_try_it():
    text = demo.instructions("http://127.0.0.1:8123")
    assert "http://127.0.0.1:8123" in text
    assert "ovbot chat --url http://127.0.0.1:8123 --from" in text
    assert demo.AGENT_PHONE in text and f"PIN {demo.AGENT_PIN}" in text
    for c in demo.CUSTOMERS:
        assert c.phone in text
    for route in ("/webhooks/twilio/sms", "/webhooks/ussd", "/webhooks/payments"):
        assert f"http://127.0.0.1:8123{route}" in text


def test_the_demo_operator_signs_in_with_the_printed_password_even_after_a_lock_out(
    sqlite_world,
):
    from bot.operators.accounts import authenticate

    demo.seed(sqlite_world.services)
    sessions = sqlite_world.services.sessions
    for _ in range(5):
        authenticate(sessions, demo.OPERATOR_EMAIL, "not the password")
    assert authenticate(sessions, demo.OPERATOR_EMAIL, demo.OPERATOR_PASSWORD).outcome == "locked"
    demo.seed(sqlite_world.services)
    login = authenticate(sessions, demo.OPERATOR_EMAIL, demo.OPERATOR_PASSWORD)
    assert login.outcome == "ok"
    with sqlite_world.session() as s:
        assert s.get(Operator, login.operator_id).role == "admin"
    text = demo.instructions("http://127.0.0.1:8123")
    assert "http://127.0.0.1:8123/console/" in text
    assert demo.OPERATOR_EMAIL in text and demo.OPERATOR_PASSWORD in text
