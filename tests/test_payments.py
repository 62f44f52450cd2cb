"""bot/payments.py: receive, settle, unmatched, assign, and the `ovbot payments` commands.

Parsing the JSON (webhooks/payments.py `parse`) is tested here too, as a pure function.

The HTTP edge (signature, status codes, the full table of bad payloads) is in
tests/webhooks/test_payments.py; here the core is called directly, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from bot import payments
from bot.inbound import Inbound
from bot.ledger import LedgerError
from bot.payments import PaymentIn
from bot.storage.models import Code, Device, OutboxMessage, Payment
from tests.harness import build_world, converse
from webhooks.payments import HTTP_STATUS, BadPayment, parse

OWNER = "+254712345678"


# -- parse: a pure function of the JSON payload ----------------------------------------------

# label, payload, what it parses to
PARSED = [
    (
        "days",
        {"reference": "QKL7ABC123", "product_id": 1001, "days": 7},
        PaymentIn("QKL7ABC123", "1001", 7, None, None),
    ),
    (
        "amount as a number",
        {"reference": "R", "product_id": 1001, "amount": 175},
        PaymentIn("R", "1001", None, Decimal("175"), None),
    ),
    (
        "amount as text",
        {"reference": "R", "product_id": "1001", "amount": "175.50"},
        PaymentIn("R", "1001", None, Decimal("175.50"), None),
    ),
    (
        "amount as a float",
        {"reference": "R", "product_id": 1001, "amount": 0.1},
        PaymentIn("R", "1001", None, Decimal("0.1"), None),
    ),
    (
        "serial",
        {"reference": "R", "serial": " OVES001001 ", "days": 1},
        PaymentIn("R", "OVES001001", 1, None, None),
    ),
    (
        "null product id falls back to serial",
        {"reference": "R", "product_id": None, "serial": "OVES001001", "days": 1},
        PaymentIn("R", "OVES001001", 1, None, None),
    ),
    (
        "product id wins over serial",
        {"reference": "R", "product_id": 1002, "serial": "OVES001001", "days": 1},
        PaymentIn("R", "1002", 1, None, None),
    ),
    (
        "national phone",
        {"reference": "R", "product_id": 1001, "days": 1, "phone": "0712 345 678"},
        PaymentIn("R", "1001", 1, None, OWNER),
    ),
    (
        "international phone without +",
        {"reference": "R", "product_id": 1001, "days": 1, "phone": "254712345678"},
        PaymentIn("R", "1001", 1, None, OWNER),
    ),
    (
        "reference trimmed",
        {"reference": "  R-1 ", "product_id": 1001, "days": 1},
        PaymentIn("R-1", "1001", 1, None, None),
    ),
    (
        "most days one payment may carry",
        {"reference": "R", "product_id": 1001, "days": 3650},
        PaymentIn("R", "1001", 3650, None, None),
    ),
]


@pytest.mark.parametrize("payload, expected", [pytest.param(*c[1:], id=c[0]) for c in PARSED])
def test_parse_reads_a_payment(payload, expected):
    assert parse(payload, "KE") == expected


# label, payload, the field BadPayment names
UNPARSED = [
    ("a list", [], "body"),
    ("no reference", {"product_id": 1001, "days": 1}, "reference"),
    ("no device", {"reference": "R", "days": 1}, "product_id"),
    ("both null", {"reference": "R", "product_id": None, "serial": None, "days": 1}, "product_id"),
    ("days and amount", {"reference": "R", "product_id": 1001, "days": 1, "amount": 50}, "days"),
    ("days 3651", {"reference": "R", "product_id": 1001, "days": 3651}, "days"),
    (
        "amount in tenths of a cent",
        {"reference": "R", "product_id": 1001, "amount": "50.001"},
        "amount",
    ),
    (
        "amount above the ceiling",
        {"reference": "R", "product_id": 1001, "amount": 10_000_000.01},
        "amount",
    ),
    ("amount -0", {"reference": "R", "product_id": 1001, "amount": "-0"}, "amount"),
    # Below the decimal context's smallest exponent: `% 0.01` rounds it to 0 (issue 9 #4).
    ("amount 1e-1000027", {"reference": "R", "product_id": 1001, "amount": "1e-1000027"}, "amount"),
    ("amount 1e-30", {"reference": "R", "product_id": 1001, "amount": 1e-30}, "amount"),
    # JSON's "\ud800" escape decodes to a lone surrogate, which no database column takes.
    (
        "lone surrogate reference",
        {"reference": "R\ud800", "product_id": 1001, "days": 1},
        "reference",
    ),
    ("lone surrogate serial", {"reference": "R", "serial": "OVES\udc00", "days": 1}, "product_id"),
    (
        "phone with letters",
        {"reference": "R", "product_id": 1001, "days": 1, "phone": "0712 ABC DEF"},
        "phone",
    ),
]


@pytest.mark.parametrize("payload, field", [pytest.param(*c[1:], id=c[0]) for c in UNPARSED])
def test_parse_names_the_bad_field(payload, field):
    with pytest.raises(BadPayment) as caught:
        parse(payload, "KE")
    assert caught.value.field == field


# -- helpers ------------------------------------------------------------------------------


def receive(world, payload) -> payments.Answer:
    with world.session() as s:
        return payments.receive(world.services, s, parse(payload, "KE"))


def assign(world, reference, product_ref) -> payments.Answer:
    with world.session() as s:
        return payments.assign(world.services, s, reference, product_ref)


def rows(world, model, *where) -> list:
    with world.session() as s:
        return list(s.scalars(select(model).where(*where).order_by(model.id)))


def count(world, model) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(model))


def state(world, product_id: int = 1001) -> dict:
    device = world.device(product_id)
    return dict(
        payments=count(world, Payment),
        codes=count(world, Code),
        outbox=count(world, OutboxMessage),
        balance=device.balance,
        credit_until=device.credit_until,
        history=len(world.services.omnivoltaic.code_history(product_id)),
    )


def unspent(world, product_id: int = 1001) -> int:
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        return world.ledger.unspent_days(s, device)


def sms(world, text: str, sid: str, sender: str = OWNER) -> str:
    return converse(
        world.services, Inbound(channel="sms", provider_id=sid, sender=sender, text=text)
    ).text


def code_in(text: str) -> str:
    start = text.index("*")
    return text[start : text.index("#", start) + 1]


def minted(world, product_id: int = 1001) -> list[Code]:
    return rows(world, Code, Code.state == "minted", Code.device_id == world.device(product_id).id)


# -- a matched payment: minted and pushed ---------------------------------------------------


def test_a_payment_mints_exactly_its_days_and_pushes_the_code_to_the_owner(world):
    owner_id = world.customer(OWNER, 1001, language="fr")

    answer = receive(world, {"reference": "QKL7ABC123", "product_id": 1001, "days": 7})

    assert HTTP_STATUS[answer.outcome] == 200
    assert answer.body == {
        "status": "credited",
        "reference": "QKL7ABC123",
        "product_id": 1001,
        "days": 7,
        "balance": "0.00",
        "code": "sent",
    }
    [code] = minted(world)
    assert (code.days, code.channel, code.request_key) == (7, "payments", "payment:QKL7ABC123:0")
    [message] = rows(world, OutboxMessage)
    assert (message.customer_id, message.recipient, message.code_id) == (owner_id, OWNER, code.id)
    assert code.code in message.body and "jours" in message.body  # the owner's language
    assert world.simulator(1001).enter(code.code).days == 7
    assert world.device(1001).credit_until == code.credit_until_after
    assert unspent(world) == 0


def test_the_owners_code_request_after_a_payment_returns_the_pushed_code(world):
    world.customer(OWNER, 1001)
    receive(world, {"reference": "P-1", "product_id": 1001, "days": 7})
    [code] = minted(world)

    reply = sms(world, "CODE", "SM-after-payment")

    assert code_in(reply) == code.code
    assert len(minted(world)) == 1


def test_more_than_1095_days_ahead_are_kept_as_credit_and_the_answer_says_how_many(world):
    world.customer(OWNER, 1001)

    answer = receive(world, {"reference": "P-LONG", "product_id": 1001, "days": 1200})

    assert (HTTP_STATUS[answer.outcome], answer.body["days"], answer.body["code"]) == (
        200,
        1200,
        "sent",
    )
    assert answer.body["held_days"] == 105
    (code,) = minted(world)
    assert code.days == 1095
    bodies = [m.body for m in rows(world, OutboxMessage)]
    assert len(bodies) == 1 and code.code in bodies[0]
    assert world.simulator(1001).enter(code.code).days == 1095


def test_an_amount_converts_at_the_device_price_and_keeps_the_remainder(world):
    world.customer(OWNER, 1001)

    first = receive(world, {"reference": "A-1", "product_id": 1001, "amount": 175})
    second = receive(world, {"reference": "A-2", "product_id": 1001, "amount": "25"})

    assert (first.body["days"], first.body["balance"]) == (3, "25.00")
    assert (second.body["days"], second.body["balance"]) == (1, "0.00")
    [p1, p2] = rows(world, Payment)
    assert (p1.amount, p1.days, p2.amount, p2.days) == (175, 3, 25, 1)
    simulator = world.simulator(1001)
    assert [simulator.enter(c.code).days for c in minted(world)] == [3, 1]
    assert simulator.days_credited == 4


def test_a_device_without_an_owner_gets_its_code_minted_and_stored_but_pushed_to_nobody(world):
    answer = receive(
        world, {"reference": "P-NOBODY", "product_id": 1001, "days": 7, "phone": "+254700000001"}
    )

    assert (HTTP_STATUS[answer.outcome], answer.body["status"], answer.body["code"]) == (
        200,
        "credited",
        "minted",
    )
    [code] = minted(world)
    assert count(world, OutboxMessage) == 0  # not even to the payer's unverified phone
    # Once the owner is registered, CODE hands over the stored code; nothing new is minted.
    world.customer(OWNER, 1001)
    assert code_in(sms(world, "CODE", "SM-owner-later")) == code.code
    assert len(minted(world)) == 1
    assert world.simulator(1001).enter(code.code).days == 7


def test_an_opted_out_owner_gets_no_push_but_the_code_is_minted(world):
    world.customer(OWNER, 1001)
    sms(world, "STOP", "SM-stop")

    answer = receive(world, {"reference": "P-OPTOUT", "product_id": 1001, "days": 3})

    assert answer.body["code"] == "minted"
    assert len(minted(world)) == 1 and count(world, OutboxMessage) == 0


def test_with_minting_on_payment_off_the_payment_waits_for_the_customer(database_url, tmp_path):
    world = build_world(database_url, tmp_path, mint_on_payment=False)
    try:
        world.customer(OWNER, 1001)

        answer = receive(world, {"reference": "P-LATER", "product_id": 1001, "days": 7})

        assert (HTTP_STATUS[answer.outcome], answer.body["status"], answer.body["code"]) == (
            200,
            "credited",
            "on request",
        )
        assert count(world, Payment) == 1
        assert (count(world, Code), count(world, OutboxMessage), unspent(world)) == (0, 0, 7)
        assert world.services.omnivoltaic.code_history(1001) == []
        entry = world.simulator(1001).enter(code_in(sms(world, "CODE", "SM-later")))
        assert (entry.outcome, entry.days) == ("days", 7)
    finally:
        world.services.close()


def test_an_amount_for_a_device_without_a_price_is_refused_and_changes_nothing(world):
    with world.session() as s:
        s.scalar(select(Device).where(Device.product_id == 1001)).value_per_day = None
    before = state(world)

    answer = receive(world, {"reference": "A-NOPRICE", "product_id": 1001, "amount": 175})

    assert (HTTP_STATUS[answer.outcome], answer.body["status"], answer.body["field"]) == (
        422,
        "rejected",
        "amount",
    )
    assert "price" in answer.body["error"]
    assert state(world) == before


# -- idempotency ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "repeat, field",
    [
        pytest.param({"reference": "R-1", "product_id": 1001, "amount": 175}, None, id="same"),
        pytest.param(
            {"reference": "R-1", "serial": "OVES001001", "amount": 175}, None, id="serial"
        ),
        pytest.param(
            {"reference": "R-1", "product_id": 1001, "amount": 5000}, "amount", id="larger amount"
        ),
        pytest.param(
            {"reference": "R-1", "product_id": 1002, "days": 9}, "product_id", id="other device"
        ),
        pytest.param(
            {"reference": "R-1", "serial": "OVES999999", "days": 9},
            "product_id",
            id="unknown device",
        ),
        pytest.param({"reference": "R-1", "product_id": 1001, "days": 7}, "days", id="days"),
    ],
)
def test_a_repeated_reference_changes_nothing_and_says_when_it_differs(world, repeat, field):
    world.customer(OWNER, 1001, 1002)
    first = receive(world, {"reference": "R-1", "product_id": 1001, "amount": 175})
    before = state(world), state(world, 1002)

    again = receive(world, repeat)

    if field is None:
        assert again.body == first.body
    else:
        assert (again.outcome, HTTP_STATUS[again.outcome], again.body["field"]) == (
            "conflict",
            409,
            field,
        )
        assert again.body["first"]["amount"] == "175.00"
        assert again.body["first"]["product_id"] == 1001
    assert (state(world), state(world, 1002)) == before
    assert world.device(1001).balance == 25


def test_a_reference_the_agents_or_operators_used_is_not_credited_again(world):
    world.pay(1001, 5, "shared-ref")  # recorded by the CLI, no stored answer
    before = state(world)

    answer = receive(world, {"reference": "shared-ref", "product_id": 1001, "days": 5})

    assert (HTTP_STATUS[answer.outcome], answer.body["status"]) == (200, "credited")
    assert state(world) == before


# -- the upstream API failing ------------------------------------------------------------------


def test_an_api_outage_during_the_mint_keeps_the_payment_and_loses_no_credit(world):
    world.customer(OWNER, 1001)
    world.emulator.fail_next(1, 503)  # the mint call: a 5xx, outcome unknown to the client

    answer = receive(world, {"reference": "P-DOWN", "product_id": 1001, "days": 7})

    assert (HTTP_STATUS[answer.outcome], answer.body["status"], answer.body["code"]) == (
        200,
        "credited",
        "deferred",
    )
    [payment] = rows(world, Payment)
    assert (payment.days, payment.device_id) == (7, world.device(1001).id)
    assert json.loads(payment.response) == answer.body
    assert count(world, OutboxMessage) == 0 and minted(world) == []
    assert world.services.omnivoltaic.code_history(1001) == []  # the fault minted nothing
    # A repeat of the payment is answered as before and mints nothing either.
    before = state(world)
    assert (
        receive(world, {"reference": "P-DOWN", "product_id": 1001, "days": 7}).body == answer.body
    )
    assert state(world) == before
    # The credit is not spent: once the attempt is reconciled, all 7 days are there to mint.
    with world.session() as s:
        world.ledger.reconcile(s, s.get(Device, payment.device_id))
    assert unspent(world) == 7
    entry = world.simulator(1001).enter(code_in(sms(world, "CODE", "SM-after-outage")))
    assert (entry.outcome, entry.days) == ("days", 7)


def test_a_refused_mint_call_leaves_the_credit_unspent_at_once(world):
    world.customer(OWNER, 1001)
    world.emulator.fail_next(1, 429)  # surely not minted

    answer = receive(world, {"reference": "P-BUSY", "product_id": 1001, "days": 7})

    assert (HTTP_STATUS[answer.outcome], answer.body["code"]) == (200, "deferred")
    assert count(world, Payment) == 1 and unspent(world) == 7
    assert count(world, OutboxMessage) == 0


def test_a_later_payment_also_mints_the_days_a_failed_mint_left_behind(world):
    world.customer(OWNER, 1001)
    world.emulator.fail_next(1, 429)
    receive(world, {"reference": "P-1", "product_id": 1001, "days": 7})

    answer = receive(world, {"reference": "P-2", "product_id": 1001, "days": 3})

    assert answer.body["code"] == "sent"
    [code] = minted(world)
    assert code.days == 10 and world.simulator(1001).enter(code.code).days == 10
    assert unspent(world) == 0


# -- unmatched payments and assigning them --------------------------------------------------


def test_a_payment_for_an_unknown_device_is_kept_as_unmatched(world):
    answer = receive(
        world, {"reference": "U-1", "serial": "OVES999999", "amount": 175, "phone": "0712345678"}
    )

    assert HTTP_STATUS[answer.outcome] == 202
    assert answer.body["status"] == "unmatched" and answer.body["reference"] == "U-1"
    [payment] = rows(world, Payment)
    assert (
        payment.device_id,
        payment.product_ref,
        payment.amount,
        payment.days,
        payment.phone,
    ) == (None, "OVES999999", 175, 0, OWNER)
    assert count(world, Code) == 0 and count(world, OutboxMessage) == 0


def test_a_device_of_another_distributor_is_unmatched(world):
    answer = receive(world, {"reference": "U-OTHER", "product_id": 1101, "days": 7})
    assert (HTTP_STATUS[answer.outcome], answer.body["status"]) == (202, "unmatched")


def test_unmatched_lists_only_payments_without_a_device_oldest_first(world):
    receive(world, {"reference": "U-1", "product_id": 999999, "days": 7})
    receive(world, {"reference": "M-1", "product_id": 1001, "days": 7})
    receive(world, {"reference": "U-2", "serial": "NOPE", "amount": 100})

    with world.session() as s:
        assert [p.reference for p in payments.unmatched(s)] == ["U-1", "U-2"]


def test_assigning_an_unmatched_payment_mints_and_pushes_its_code(world):
    world.customer(OWNER, 1001)
    receive(world, {"reference": "U-1", "product_id": 999999, "days": 7})

    answer = assign(world, "U-1", "1001")

    assert HTTP_STATUS[answer.outcome] == 200
    assert answer.body | {"balance": None} == {
        "status": "credited",
        "reference": "U-1",
        "product_id": 1001,
        "days": 7,
        "balance": None,
        "code": "sent",
    }
    [code] = minted(world)
    assert code.channel == "cli"
    [message] = rows(world, OutboxMessage)
    assert message.recipient == OWNER and code.code in message.body
    assert world.simulator(1001).enter(code.code).days == 7
    with world.session() as s:
        assert payments.unmatched(s) == []
    [payment] = rows(world, Payment)
    assert (payment.device_id, payment.code_id) == (world.device(1001).id, code.id)


def test_assigning_an_unmatched_amount_converts_it_at_that_devices_price(world):
    world.customer(OWNER, 1001)
    receive(world, {"reference": "U-1", "product_id": "OVES-1001", "amount": "175"})

    answer = assign(world, "U-1", "OVES001001")

    assert (answer.body["days"], answer.body["balance"], answer.body["code"]) == (
        3,
        "25.00",
        "sent",
    )
    assert world.device(1001).balance == 25
    assert world.simulator(1001).enter(minted(world)[0].code).days == 3


def test_after_assignment_a_repeat_of_the_payment_changes_nothing(world):
    world.customer(OWNER, 1001)
    receive(world, {"reference": "U-1", "product_id": 999999, "days": 7})
    assigned = assign(world, "U-1", "1001")
    before = state(world)

    again = receive(world, {"reference": "U-1", "product_id": 999999, "days": 7})

    assert (again.outcome, again.body) == ("credited", assigned.body)
    assert state(world) == before


UNKNOWN_7 = {"reference": "U-1", "product_id": 999999, "days": 7}

# label, payments received first, assignments made first, the assignment, error fragment
ASSIGN_ERRORS = [
    ("assigned twice", [UNKNOWN_7], [("U-1", "1001")], ("U-1", "1002"), "already"),
    (
        "a matched payment",
        [{"reference": "M-1", "product_id": 1002, "days": 7}],
        [],
        ("M-1", "1001"),
        "already",
    ),
    ("unknown device", [UNKNOWN_7], [], ("U-1", "999999"), "no device 999999"),
    ("another distributor's device", [UNKNOWN_7], [], ("U-1", "1101"), "no device 1101"),
    ("unknown reference", [], [], ("U-404", "1001"), "no payment with reference U-404"),
    (
        "an amount worth too many days",
        [{"reference": "U-1", "product_id": 999999, "amount": 9_000_000}],
        [],
        ("U-1", "1001"),
        "3650",
    ),
]


@pytest.mark.parametrize(
    "received, assigned, attempt, message", [pytest.param(*c[1:], id=c[0]) for c in ASSIGN_ERRORS]
)
def test_an_assignment_that_cannot_be_done_says_why_and_changes_nothing(
    world, received, assigned, attempt, message
):
    world.customer(OWNER, 1001)
    for payload in received:
        receive(world, payload)
    for reference, device in assigned:
        assign(world, reference, device)
    before = state(world), state(world, 1002)
    with world.session() as s:
        unmatched_before = [p.reference for p in payments.unmatched(s)]

    with pytest.raises(LedgerError, match=message):
        assign(world, *attempt)

    assert (state(world), state(world, 1002)) == before
    with world.session() as s:
        assert [p.reference for p in payments.unmatched(s)] == unmatched_before


# -- the operator's commands -------------------------------------------------------------------


@pytest.fixture
def ovbot(world, database_url, tmp_path):
    """Run `ovbot ...` against the world's database and emulator state."""
    from bot.cli.main import main

    env = {
        "DATABASE_URL": database_url,
        "OMNIVOLTAIC_API_URL": None,
        "OMNIVOLTAIC_USERNAME": None,
        "OMNIVOLTAIC_PASSWORD": None,
        "OMNIVOLTAIC_EMULATOR_STATE": str(tmp_path / "emulator.db"),
        "OMNIVOLTAIC_EMULATOR_SEED": "test-seed",
        "DEFAULT_REGION": "KE",
    }

    def run(*args: str):
        return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)

    return run


def test_the_operator_lists_and_assigns_an_unmatched_payment(world, ovbot):
    world.customer(OWNER, 1001)
    receive(
        world,
        {"reference": "MPESA-QX1", "serial": "OVES991001", "amount": 175, "phone": "+254700000001"},
    )
    receive(world, {"reference": "MPESA-QX2", "product_id": 1001, "days": 1})
    receive(world, {"reference": "MPESA-QX3", "product_id": 7, "days": 2})  # no phone

    listed = ovbot("payments", "unmatched")

    assert listed.exit_code == 0, listed.output
    *lines, total = listed.output.splitlines()
    assert total == "2 unmatched payment(s)"
    [row, other] = lines
    assert row.split("\t")[:3] == ["MPESA-QX1", "OVES991001", "175.00 (amount)"]
    assert "700000001" not in row  # the payer's number is masked
    assert other.split("\t")[:3] == ["MPESA-QX3", "7", "2 days"]

    done = ovbot("payments", "assign", "MPESA-QX1", "1001")

    assert done.exit_code == 0, done.output
    assert "MPESA-QX1" in done.output and "3 days" in done.output and "sent" in done.output
    assert world.device(1001).balance == 25
    codes = minted(world)
    assert [c.days for c in codes] == [1, 3]
    assert codes[1].code in rows(world, OutboxMessage)[-1].body
    assert world.simulator(1001).enter(codes[1].code).days == 4  # the skipped 1-day code too
    assert ovbot("payments", "unmatched").output.splitlines()[-1] == "1 unmatched payment(s)"


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(("MPESA-QX1", "1001"), "already belongs", id="assigned twice"),
        pytest.param(
            ("MPESA-QX9", "1001"), "no payment with reference MPESA-QX9", id="unknown ref"
        ),
        pytest.param(("MPESA-QX1", "424242"), "no device 424242", id="unknown device"),
    ],
)
def test_the_operator_gets_a_clear_error_and_nothing_changes(world, ovbot, args, message):
    world.customer(OWNER, 1001)
    receive(world, {"reference": "MPESA-QX1", "product_id": 999999, "days": 2})
    if message == "already belongs":
        assert ovbot("payments", "assign", "MPESA-QX1", "1001").exit_code == 0
    before = state(world)

    result = ovbot("payments", "assign", *args)

    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert state(world) == before


@pytest.mark.parametrize(
    "payload, field",
    [
        pytest.param(
            {"reference": "R\x00", "product_id": 1001, "days": 1},
            "reference",
            id="NUL in the reference (PostgreSQL's text refuses it)",
        ),
        pytest.param(
            {"reference": "R", "serial": "OVES\x00", "days": 1},
            "product_id",
            id="NUL in the serial",
        ),
        pytest.param(
            {"reference": "R", "product_id": 1001, "amount": "1_000"},
            "amount",
            id="an amount with an underscore",
        ),
        pytest.param(
            {"reference": "R", "product_id": 1001, "amount": "١٧٥"},
            "amount",
            id="an amount in Arabic-Indic digits",
        ),
        pytest.param(
            {"reference": "R", "product_id": 1001, "amount": "1e2"},
            "amount",
            id="an amount with an exponent",
        ),
    ],
)
def test_parse_refuses_what_a_database_or_a_payer_would_misread(payload, field):
    with pytest.raises(BadPayment) as caught:
        parse(payload, "KE")
    assert caught.value.field == field


# -- money already taken (M-Pesa): `check` before it moves, `keep` once it has ------------------


def set_price(world, product_id: int, price) -> None:
    with world.session() as s:
        s.scalar(select(Device).where(Device.product_id == product_id)).value_per_day = price


def checked(world, product_ref: str, amount: str) -> str | None:
    with world.session() as s:
        return payments.check(world.services, s, product_ref, Decimal(amount))


# label, product ref, amount, what `check` says (None: it would credit a day)
CHECKS = [
    pytest.param("OVES001001", "150", None, id="three days"),
    pytest.param("1001", "50.00", None, id="exactly one day, by product id"),
    pytest.param("oves001001", "50", None, id="serial in lower case"),
    pytest.param("OVES001001", "49.99", "amount", id="below one day"),
    pytest.param("OVES001001", "182550", "amount", id="more days than one payment carries"),
    pytest.param("OVES999999", "150", "device", id="unknown device"),
    pytest.param("", "150", "device", id="no device named"),
]


@pytest.mark.parametrize("product_ref, amount, answer", CHECKS)
def test_check_says_whether_an_amount_would_credit_a_day(world, product_ref, amount, answer):
    before = state(world)
    assert checked(world, product_ref, amount) == answer
    assert state(world) == before


def test_check_counts_the_balance_and_refuses_a_device_without_a_price(world):
    receive(world, {"reference": "BAL-1", "product_id": 1001, "amount": 30})
    assert checked(world, "1001", "20") is None and checked(world, "1001", "19.99") == "amount"
    set_price(world, 1001, None)
    assert checked(world, "1001", "500") == "amount"


def kept(reference: str, product_ref: str, amount: str, keep: bool) -> PaymentIn:
    return PaymentIn(reference, product_ref, None, Decimal(amount), None, "mpesa", keep=keep)


def test_money_already_taken_that_the_device_cannot_take_is_kept_unmatched(world):
    world.customer(OWNER, 1001)
    set_price(world, 1001, None)
    before = state(world)
    with world.session() as s:
        refused = payments.receive(world.services, s, kept("mpesa:A1", "1001", "150", False))
    assert refused.outcome == "rejected" and state(world) == before

    with world.session() as s:
        answer = payments.receive(world.services, s, kept("mpesa:A1", "1001", "150", True))

    assert answer.outcome == "unmatched"
    [payment] = rows(world, Payment)
    assert (payment.device_id, payment.product_ref, payment.source) == (None, "1001", "mpesa")
    assert (payment.days, payment.amount, world.device(1001).balance) == (0, 150, 0)
    with world.session() as s:  # the same again: the first answer, nothing new
        again = payments.receive(world.services, s, kept("mpesa:A1", "1001", "150", True))
    assert again.body == answer.body and count(world, Payment) == 1
    set_price(world, 1001, 50)  # the operator fixes the price, then assigns it
    assert assign(world, "mpesa:A1", "1001").body["days"] == 3
    [code] = minted(world)
    assert world.simulator(1001).enter(code.code).days == 3
