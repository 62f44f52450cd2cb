"""The demo: a seeded database on the embedded emulator, and the console chat.

`seed()` is idempotent: running the demo twice keeps the same customers, agent and credit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click
from sqlalchemy import select

from bot.agents.pins import add_agent
from bot.ledger.fleet import sync_devices
from bot.operators.accounts import add_operator
from bot.storage import db
from bot.storage.models import Customer, Device

if TYPE_CHECKING:
    from bot.deps import Deps

AGENT_PHONE, AGENT_PIN = "+254700000100", "1234"
# The console's demo operator (an admin): printed with its password, like the agent's PIN.
OPERATOR_EMAIL, OPERATOR_PASSWORD = "admin@demo.example", "demo-console"


@dataclass(frozen=True)
class DemoCustomer:
    phone: str
    name: str
    language: str
    product_ids: tuple[int, ...]
    paid_days: int


CUSTOMERS = (
    DemoCustomer("+254700000001", "Amina", "en", (1001,), 30),
    DemoCustomer("+254700000002", "Baraka", "sw", (1002, 1003), 7),
    DemoCustomer("+254700000003", "Claire", "fr", (1004,), 14),
)


def seed(deps: Deps) -> None:
    db.upgrade(deps.engine)
    with db.transaction(deps.sessions) as session:
        sync_devices(session, deps.omnivoltaic)
        for c in CUSTOMERS:
            customer = session.scalar(select(Customer).where(Customer.phone == c.phone))
            if customer is None:
                customer = Customer(phone=c.phone, name=c.name, language=c.language)
                session.add(customer)
                session.flush()
            for pid in c.product_ids:
                device = session.scalar(select(Device).where(Device.product_id == pid))
                if device is None:  # the emulator's fleet lacks a demo device
                    raise click.ClickException(f"no device {pid} to seed the demo with")
                device.owner_id = customer.id
                deps.ledger.record_payment(
                    session, reference=f"demo-{pid}", device=device, days=c.paid_days, source="demo"
                )
        # Every run: the printed PIN must work, even after a lock-out or a changed PIN.
        add_agent(session, AGENT_PHONE, "Demo Agent", AGENT_PIN, "admin")
        add_operator(session, OPERATOR_EMAIL, OPERATOR_PASSWORD, "admin", actor="demo")


def instructions(base_url: str) -> str:
    first = CUSTOMERS[0]
    payment = json.dumps({"reference": "try-1", "product_id": 1001, "days": 5})
    lines = [
        f"OVES token bot demo on {base_url} (embedded Omnivoltaic emulator; webhooks unsigned)",
        "",
        "Customers (each has paid days: their codes are minted and pushed at start, see the log):",
        *(
            f"  {c.phone}  {c.name} [{c.language}]  devices {', '.join(map(str, c.product_ids))}"
            f"  {c.paid_days} days paid"
            for c in CUSTOMERS
        ),
        f"Agent (admin): {AGENT_PHONE}  PIN {AGENT_PIN}",
        f"Operator console: {base_url}/console/  sign in as {OPERATOR_EMAIL}"
        f" / {OPERATOR_PASSWORD} (admin)",
        "",
        "Try:",
        f"  ovbot chat --url {base_url} --from {first.phone}   then type CODE, STATUS, HELP",
        f"  ovbot chat --url {base_url} --from {first.phone} --channel whatsapp",
        f"  curl -d From={first.phone} -d MessageSid=SM{'0' * 31}1 -d Body=CODE"
        f" {base_url}/webhooks/twilio/sms",
        f"  curl -d id=at-1 --data-urlencode from={first.phone} -d text=STATUS"
        f" {base_url}/webhooks/africastalking/sms   (the reply is pushed: see the log)",
        f"  curl -d sessionId=s1 -d phoneNumber={AGENT_PHONE} -d serviceCode='*384#'"
        f" -d text={AGENT_PIN} {base_url}/webhooks/ussd",
        f"  curl -H 'Content-Type: application/json' -d '{payment}' {base_url}/webhooks/payments",
        "",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
