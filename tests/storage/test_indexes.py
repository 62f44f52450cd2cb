"""Every lookup a request or the worker makes is served by an index (SQLite's query plans).

Each flow below runs for real on SQLite while its statements are recorded; each recorded
statement is then explained (`EXPLAIN QUERY PLAN`, with its own parameters) and no plan may
read a whole table that grows with the fleet: at 100,000 devices a scan is a slow request.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from bot.agents import menu as agent_menu
from bot.customers import answered_by_sms, reminders
from bot.inbound import Inbound
from bot.outbox import receipts
from bot.outbox.delivery import drain
from bot.outbox.worker import sweep
from bot.storage.models import Device
from tests.fakes import FakeSender, payment_signature
from tests.harness import (
    AGENT,
    CONSOLE_ADMIN,
    OWNER,
    PIN,
    SECRETS,
    add_operators,
    build_world,
    console_login,
    converse,
    populate_agents,
)

# The tables that grow with the fleet and its history.
GROWING = (
    "devices",
    "customers",
    "codes",
    "payments",
    "outbox",
    "inbound_messages",
    "telegram_links",
    "agents",
    "integrity_alarms",
    "reminders",
)
SCAN = re.compile(r"\bSCAN (\w+)")


@pytest.fixture
def w(tmp_path):
    world = build_world(f"sqlite:///{tmp_path / 'plans.db'}", tmp_path)
    populate_agents(world)
    yield world
    world.services.close()


class Recorder:
    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        verb = statement.split()[0].upper()
        if verb in {"SELECT", "UPDATE", "DELETE"} and not executemany:
            self.statements.append((statement, parameters))


def scans(engine, statements) -> list[str]:
    """'table: statement' for every plan that reads a whole growing table."""
    found = []
    with engine.connect() as connection:
        raw = connection.connection.driver_connection
        for statement, parameters in statements:
            plan = raw.execute("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            for row in plan:
                match = SCAN.search(row[-1])
                if match and match.group(1) in GROWING:
                    found.append(f"{match.group(1)}: {_where(statement)}")
    return found


def sms(w, text: str):
    inbound = Inbound("sms", f"SM{uuid.uuid4().hex}", OWNER, text)
    return converse(w.services, inbound)


def ussd(w, session_id: str, path: str):
    inbound = Inbound("ussd", agent_menu.provider_id(session_id, path), AGENT, path)
    return converse(w.services, inbound, agent_menu.RESPONDER)


def customer_commands(w):
    w.pay(1001, 3, "plan-1")
    for text in ("CODE", "RESEND", "STATUS", "HISTORY", "DEVICES", "HELP", "LANG sw", "STOP"):
        sms(w, text)
    sms(w, "START")


def agent_sale(w):
    session_id = uuid.uuid4().hex
    path = []
    for value in (PIN, "1", "OVES001001", "2", "1"):
        path.append(value)
        ussd(w, session_id, "*".join(path))


def payment_webhook(w):
    body = json.dumps({"reference": "plan-pay", "product_id": 1001, "days": 2}).encode()
    signature = payment_signature(SECRETS["payments_secret"], body)
    response = w.client().post(
        "/webhooks/payments",
        data=body,
        headers={"X-Signature": signature, "Content-Type": "application/json"},
    )
    assert response.status_code < 300, response.get_json()


def mpesa_payment(w):
    """Daraja's validation, then its confirmation (by serial, in lower case)."""
    body = {"TransID": "RKTQDM7W6S", "TransAmount": "150", "BillRefNumber": "oves001001"}
    body["BusinessShortCode"] = SECRETS["mpesa_shortcode"]
    client, query = w.client(), f"?token={SECRETS['mpesa_callback_token']}"
    for path in ("/webhooks/mpesa/validation", "/webhooks/mpesa/confirmation"):
        response = client.post(path + query, json=body)
        assert response.get_json() == {"ResultCode": "0", "ResultDesc": "Accepted"}


def worker_pass(w):
    sweep(w.services)
    drain(w.services.sessions, {"sms": FakeSender(), "telegram": FakeSender()})


def reminder_pass(w):
    """A pass when 1003's credit ends in three days, the dry run, and a drain that
    withdraws the reminder (a payment came first)."""
    with w.session() as s:
        until = s.scalar(select(Device.credit_until).where(Device.product_id == 1003))
    zone = ZoneInfo(w.services.settings.timezone)
    now = datetime.combine(until.astimezone(zone).date() - timedelta(days=3), time(12), zone)
    assert reminders.run(w.services, now=now).queued == 1
    reminders.preview(w.services, now=now)
    w.pay(1003, 2, "plan-remind")
    drain(w.services.sessions, {"sms": FakeSender(), "telegram": FakeSender()}, now=now)


def other_channels(w):
    """WhatsApp and Africa's Talking: answers, pushes routed by provider, reports."""
    w.pay(1001, 3, "plan-2")
    for text in ("CODE", "STATUS", "HELP"):
        converse(w.services, Inbound("whatsapp", f"SM{uuid.uuid4().hex}", OWNER, text))
        at = Inbound("sms", str(uuid.uuid4()), OWNER, text, link_id="0309044507580424")
        converse(w.services, at, answered_by_sms.AFRICASTALKING)
    senders = {name: FakeSender() for name in ("sms", "telegram", "whatsapp", "africastalking")}
    drain(w.services.sessions, senders)
    receipts.receive(
        w.services, receipts.Receipt("SM1", "failed", "UserInBlackList", "africastalking")
    )


def console_pages(w):
    """What an operator opens most: find a device (product id, phone), its page, the lists."""
    add_operators(w)
    client = w.client()
    assert console_login(client, CONSOLE_ADMIN).status_code == 302
    for path in (
        "/console/find?q=1001",
        "/console/find?q=0712345678",
        "/console/devices/1001",
        "/console/devices/1003",
        "/console/payments",
        "/console/outbox",
        "/console/outbox?status=pending",
        "/console/audit",
    ):
        assert client.get(path).status_code in (200, 302), path


FLOWS = [
    pytest.param(customer_commands, id="customer commands over SMS"),
    pytest.param(agent_sale, id="an agent's sale over USSD"),
    pytest.param(payment_webhook, id="a payment webhook"),
    pytest.param(mpesa_payment, id="an M-Pesa payment (validation, confirmation)"),
    pytest.param(worker_pass, id="a worker pass (sweep and drain)"),
    pytest.param(reminder_pass, id="a reminder pass, its dry run, a withdrawn reminder"),
    pytest.param(other_channels, id="WhatsApp and Africa's Talking"),
    pytest.param(console_pages, id="the console's device pages and lists"),
]


# The code coach (bot/customers/coach.py): the sender's codes in one statement, the newest
# of each device read from the end of its (device_id, created_at) index.
def code_coach(w):
    w.pay(1001, 3, "plan-coach")
    code = sms(w, "CODE").texts[0].split(": ", 1)[1].split("\n")[0]
    for text in (code, code.replace("#", "9#"), "1" * 21, "0" * 20):
        sms(w, text)


FLOWS.append(pytest.param(code_coach, id="the code coach over SMS"))


@pytest.mark.parametrize("flow", FLOWS)
def test_no_request_reads_a_whole_growing_table(w, flow):
    worker_pass(w)  # the seeded code's push, out of the way
    with Recorder(w.services.engine) as recorder:
        flow(w)
    assert recorder.statements, "the flow ran no statement: it tested nothing"
    assert scans(w.services.engine, recorder.statements) == []


def test_the_console_overview_scans_only_the_small_tables(w):
    """Its figures come from indexes (payments and codes by time, the outbox by status),
    except two counts over tables that stay small: integrity alarms (that should never
    happen) and the agents locked out (a distributor has hundreds, not a fleet's worth)."""
    add_operators(w)
    client = w.client()
    assert console_login(client, CONSOLE_ADMIN).status_code == 302
    with Recorder(w.services.engine) as recorder:
        assert client.get("/console/").status_code == 200
    scanned = {found.split(":")[0] for found in scans(w.services.engine, recorder.statements)}
    assert scanned <= {"integrity_alarms", "agents"}, scanned


def _where(statement: str) -> str:
    """The statement from its FROM on, on one line: what the lookup is."""
    flat = " ".join(statement.split())
    return flat[flat.find(" FROM ") :][:200]
