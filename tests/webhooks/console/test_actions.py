"""What an admin does from the console: each action changes what the CLI's would, writes
its audit row with before and after, and is refused (changing nothing) to a viewer, to a
request without its CSRF token and to one with a wrong token."""

from __future__ import annotations

import csv
import io
import json

import pytest
from sqlalchemy import select

from bot.agents.pins import add_agent, verify_pin
from bot.storage.models import Agent, AuditEntry, Code, Customer, OutboxMessage, Payment, utcnow
from tests.harness import CONSOLE_ADMIN, OWNER, console_post, queue_messages


def audit(ops) -> list[AuditEntry]:
    """The audit rows of console actions (not the operators' creation)."""
    with ops.session() as s:
        return list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action != "operator.add")
                .order_by(AuditEntry.id)
            )
        )


@pytest.fixture
def lost(ops):
    """An unmatched payment (R-LOST, 7 days, for "99x"); 1001 owned by OWNER."""
    ops.customer(OWNER, 1001)
    with ops.session() as s:
        ops.ledger.record_payment(
            s, reference="R-LOST", device=None, days=7, source="webhook", product_ref="99x"
        )
    return "R-LOST"


def _payment(ops, reference):
    with ops.session() as s:
        return s.scalar(select(Payment).where(Payment.reference == reference))


def test_assign_gives_the_payment_its_device_and_its_code_goes_out(admin, ops, lost):
    answer = console_post(admin, f"/console/payments/{lost}/assign", product_id="1001")
    assert answer.status_code == 302 and answer.headers["Location"] == "/console/devices/1001"
    payment = _payment(ops, lost)
    assert payment.device_id == ops.device(1001).id and payment.code_id is not None
    with ops.session() as s:
        code = s.get(Code, payment.code_id)
        queued = s.scalars(select(OutboxMessage).where(OutboxMessage.code_id == code.id)).all()
    assert code.state == "minted" and code.days == 7 and len(queued) == 1
    assert code.code in queued[0].body
    (entry,) = audit(ops)
    assert (entry.actor, entry.action, entry.target) == (
        CONSOLE_ADMIN,
        "payment.assign",
        "payment:R-LOST",
    )
    assert json.loads(entry.before) == {"device": None, "product_ref": "99x", "days": 7}
    assert json.loads(entry.after) == {
        "product_id": 1001,
        "days": 7,
        "code": "sent",
        "held_days": None,
    }
    page = admin.get(answer.headers["Location"]).text  # the code, in the timeline
    assert code.code in page and "Payment R-LOST assigned to device 1001" in page


def test_assign_to_an_unknown_device_changes_nothing(admin, ops, lost):
    answer = console_post(admin, f"/console/payments/{lost}/assign", product_id="424242")
    assert answer.status_code == 302
    assert "no device 424242" in admin.get("/console/payments").text
    assert _payment(ops, lost).device_id is None and audit(ops) == []


def test_assign_an_already_matched_payment_is_a_conflict(admin, ops, lost):
    ops.pay(1001, 2, "R-MATCHED")
    answer = console_post(admin, "/console/payments/R-MATCHED/assign", product_id="1002")
    assert answer.status_code == 409 and audit(ops) == []


# Every admin action, as (path, form): refused alike to viewers and without a good token.
ACTIONS = [
    pytest.param("/console/payments/R-LOST/assign", {"product_id": "1001"}, id="assign"),
    pytest.param("/console/outbox/{failed}/retry", {}, id="retry"),
    pytest.param("/console/devices/1003/resend", {}, id="resend"),
    pytest.param("/console/customers/{customer}/preferences", {"language": "fr"}, id="preferences"),
    pytest.param(
        "/console/agents/add",
        {"phone": "0700000555", "name": "Zawadi", "pin": "4321", "role": "agent"},
        id="agent add",
    ),
    pytest.param("/console/agents/{agent}/unlock", {}, id="agent unlock"),
    pytest.param("/console/agents/{agent}/remove", {}, id="agent remove"),
    pytest.param("/console/exports/payments.csv", {}, id="export"),
]


@pytest.fixture
def everything(ops, lost):
    """Something for each action to change: a failed message, a device with a code, an
    agent locked out."""
    (failed,) = queue_messages(ops.services.sessions, "failed once", phone=OWNER)
    ops.customer("+254722000333", 1003, name="Juma")
    ops.pay(1003, 5, "R-1003")
    with ops.session() as s:
        s.get(OutboxMessage, failed).status = "failed"
        from bot.ledger import devices

        ops.ledger.mint_days(s, devices.find(s, "1003"), request_key="seed:1", channel="cli")
        agent, _ = add_agent(s, "+254700000101", "Wanjiru", "2468")
        agent.locked_until = utcnow().replace(year=2099)
        customer = s.scalar(select(Customer).where(Customer.phone == OWNER))
        return {"failed": failed, "customer": customer.id, "agent": agent.id}


def state(ops) -> dict:
    """Everything an action could change."""
    with ops.session() as s:
        return {
            "payments": sorted(
                (p.reference, p.device_id, p.code_id) for p in s.scalars(select(Payment))
            ),
            "outbox": sorted(
                (m.id, m.status, m.attempts) for m in s.scalars(select(OutboxMessage))
            ),
            "customers": sorted(
                (c.id, c.language, c.opted_out) for c in s.scalars(select(Customer))
            ),
            "agents": sorted(
                (a.phone, a.name, a.pin_hash, a.locked_until, a.removed_at)
                for a in s.scalars(select(Agent))
            ),
            "audit": len(s.scalars(select(AuditEntry)).all()),
        }


@pytest.mark.parametrize(("path", "form"), ACTIONS)
def test_a_viewer_is_refused_every_action_and_nothing_changes(viewer, ops, everything, path, form):
    before = state(ops)
    answer = console_post(viewer, path.format(**everything), **form)
    assert answer.status_code == 403 and "needs an admin" in answer.text
    assert state(ops) == before


@pytest.mark.parametrize("token", [False, "forged-token"], ids=["no token", "wrong token"])
@pytest.mark.parametrize(("path", "form"), ACTIONS)
def test_an_action_without_its_csrf_token_is_refused_and_nothing_changes(
    admin, ops, everything, path, form, token
):
    before = state(ops)
    answer = console_post(admin, path.format(**everything), csrf=token, **form)
    assert answer.status_code == 400 and "CSRF" in answer.text
    assert state(ops) == before


@pytest.mark.parametrize(("path", "form"), ACTIONS)
def test_every_action_is_audited_with_its_operator(admin, ops, everything, path, form):
    answer = console_post(admin, path.format(**everything), **form)
    assert answer.status_code in (200, 302), answer.text
    entries = audit(ops)
    assert len(entries) == 1 and entries[0].actor == CONSOLE_ADMIN
    assert entries[0].operator_id is not None and entries[0].after is not None


def test_retry_puts_a_failed_message_back_and_refuses_others(admin, ops, everything):
    failed = everything["failed"]
    assert console_post(admin, f"/console/outbox/{failed}/retry").status_code == 302
    with ops.session() as s:
        row = s.get(OutboxMessage, failed)
        assert row.status in ("pending", "sending", "sent") and row.attempts <= 1
    (entry,) = audit(ops)
    assert json.loads(entry.before) == {"status": "failed", "attempts": 0}
    assert json.loads(entry.after) == {"status": "pending"}
    again = console_post(admin, f"/console/outbox/{failed}/retry")  # not failed any more
    assert again.status_code == 302 and len(audit(ops)) == 1
    assert "only failed messages are retried" in admin.get("/console/outbox").text


def test_resend_queues_the_latest_code_for_the_owner(admin, ops, everything):
    with ops.session() as s:
        code = s.scalar(select(Code).where(Code.device_id == ops.device(1003).id))
        before = s.scalars(select(OutboxMessage).where(OutboxMessage.code_id == code.id)).all()
    assert console_post(admin, "/console/devices/1003/resend").status_code == 302
    with ops.session() as s:
        after = s.scalars(select(OutboxMessage).where(OutboxMessage.code_id == code.id)).all()
    (new,) = [m for m in after if m.id not in {b.id for b in before}]
    assert code.code in new.body and new.recipient == "+254722000333"
    (entry,) = audit(ops)
    assert json.loads(entry.after) == {"codes": [code.id], "messages": [new.id]}


def test_resend_without_a_code_says_so_and_changes_nothing(admin, ops, everything):
    before = state(ops)
    assert console_post(admin, "/console/devices/1005/resend").status_code == 302
    assert "has no code to resend" in admin.get("/console/").text
    assert state(ops) == before


def test_preferences_set_language_and_opt_out_and_refuse_a_bad_language(admin, ops, everything):
    customer = everything["customer"]
    path = f"/console/customers/{customer}/preferences"
    assert console_post(admin, path, language="sw", opted_out="on").status_code == 302
    with ops.session() as s:
        c = s.get(Customer, customer)
        assert (c.language, c.opted_out) == ("sw", True)
    (entry,) = audit(ops)
    assert json.loads(entry.before) == {"language": "en", "opted_out": False}
    assert json.loads(entry.after) == {"language": "sw", "opted_out": True}
    before = state(ops)
    assert console_post(admin, path, language="xx").status_code == 400
    assert state(ops) == before


def test_agents_added_their_pin_reset_unlocked_and_removed(admin, ops, everything):
    form = {"phone": "0700000555", "name": "Zawadi", "pin": "4321", "role": "agent"}
    assert console_post(admin, "/console/agents/add", **form).status_code == 302
    form["pin"] = "9876"  # the same phone again: the PIN is reset
    assert console_post(admin, "/console/agents/add", **form).status_code == 302
    with ops.session() as s:
        agent = s.scalar(select(Agent).where(Agent.phone == "+254700000555"))
        assert verify_pin("9876", agent.pin_hash) and not verify_pin("4321", agent.pin_hash)
    locked = everything["agent"]
    assert console_post(admin, f"/console/agents/{locked}/unlock").status_code == 302
    assert console_post(admin, f"/console/agents/{locked}/remove").status_code == 302
    with ops.session() as s:
        wanjiru = s.get(Agent, locked)
        assert wanjiru.locked_until is None and wanjiru.removed_at is not None
    entries = audit(ops)
    assert [e.action for e in entries] == [
        "agent.add",
        "agent.update",
        "agent.unlock",
        "agent.remove",
    ]
    assert all("4321" not in (e.after or "") and "9876" not in (e.after or "") for e in entries)
    assert json.loads(entries[0].after)["phone"] == "+254*****555"
    assert json.loads(entries[3].before)["removed_at"] is None


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"phone": "12", "name": "X", "pin": "4321"}, id="bad phone"),
        pytest.param({"phone": "0700000555", "name": "X", "pin": "12"}, id="bad pin"),
        pytest.param({"phone": "0700000555", "name": " ", "pin": "4321"}, id="no name"),
        pytest.param(
            {"phone": "0700000555", "name": "X", "pin": "4321", "role": "boss"}, id="bad role"
        ),
    ],
)
def test_a_bad_agent_is_refused_and_nothing_changes(admin, ops, everything, form):
    before = state(ops)
    assert console_post(admin, "/console/agents/add", **form).status_code == 302
    assert "Agent not saved" in admin.get("/console/agents").text
    assert state(ops) == before


def test_the_export_is_the_clis_csv_masked_unless_asked(admin, ops, everything):
    answer = console_post(admin, "/console/exports/payments.csv")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["reference"] for r in rows} == {"R-LOST", "R-1003"}
    clear = console_post(admin, "/console/exports/codes.csv", clear_phones="on", since="2000-01-01")
    assert clear.status_code == 200 and "seed:1" not in clear.text
    assert console_post(admin, "/console/exports/codes.csv", since="yesterday").status_code == 400
    entries = audit(ops)
    assert [e.action for e in entries] == ["export.payments", "export.codes"]
    assert json.loads(entries[1].after)["clear_phones"] is True
