"""`POST /webhooks/payments` over HTTP: labelled tables of real payloads, negatives included.

Every negative is checked for what it must NOT do as much as for its answer: no payment,
no code, no outbox row, no change to the device, no call that mints upstream.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
from sqlalchemy import func, select

from bot.storage.models import Code, Device, OutboxMessage, Payment
from tests.fakes import payment_signature as sign
from tests.harness import SECRETS
from webhooks.app import MAX_BODY, create_app

PATH = "/webhooks/payments"
SECRET = SECRETS["payments_secret"]
OWNER = "+254712345678"


# -- helpers ----------------------------------------------------------------------------


def post(
    client,
    payload=None,
    *,
    raw: bytes | None = None,
    secret: str | None = SECRET,
    signature: str | None = None,
):
    """POST a payment as a payment system does: JSON body, X-Signature of those bytes."""
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    elif secret is not None:
        headers["X-Signature"] = sign(secret, body)
    return client.post(PATH, data=body, headers=headers)


def snapshot(world, product_id: int = 1001) -> dict:
    """Everything a payment could change: row counts, the device, the upstream history."""
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == product_id))
        return dict(
            payments=s.scalar(select(func.count()).select_from(Payment)),
            codes=s.scalar(select(func.count()).select_from(Code)),
            outbox=s.scalar(select(func.count()).select_from(OutboxMessage)),
            balance=device.balance,
            credit_until=device.credit_until,
            history=len(world.services.omnivoltaic.code_history(product_id)),
        )


def minted_codes(world, product_id: int) -> list[Code]:
    with world.session() as s:
        return list(
            s.scalars(
                select(Code)
                .join(Device)
                .where(Device.product_id == product_id, Code.state == "minted")
                .order_by(Code.id)
            )
        )


@pytest.fixture
def client(world):
    world.customer(OWNER, 1001)
    return create_app(deps=world.services).test_client()


# -- the happy paths ----------------------------------------------------------------------

# label, payload, expected subset of the JSON answer, days the simulator must credit
VALID = [
    (
        "by days",
        {"reference": "QKL7ABC123", "product_id": 1001, "days": 7},
        {"status": "credited", "product_id": 1001, "days": 7, "code": "sent"},
        7,
    ),
    (
        "product id as text",
        {"reference": "QKL7ABC124", "product_id": "1001", "days": 30},
        {"status": "credited", "product_id": 1001, "days": 30, "code": "sent"},
        30,
    ),
    (
        "by amount, remainder kept",
        {"reference": "QKL7ABC125", "product_id": 1001, "amount": 175},
        {"status": "credited", "days": 3, "balance": "25.00", "code": "sent"},
        3,
    ),
    (
        "amount as text with cents",
        {"reference": "QKL7ABC126", "product_id": 1001, "amount": "175.50"},
        {"status": "credited", "days": 3, "balance": "25.50", "code": "sent"},
        3,
    ),
    (
        "exact amount, nothing left over",
        {"reference": "QKL7ABC127", "product_id": 1001, "amount": 500.0},
        {"status": "credited", "days": 10, "balance": "0.00", "code": "sent"},
        10,
    ),
    (
        "by oem serial",
        {"reference": "QKL7ABC128", "serial": "OVES001001", "days": 2},
        {"status": "credited", "product_id": 1001, "days": 2, "code": "sent"},
        2,
    ),
    (
        "by payg serial, lower case",
        {"reference": "QKL7ABC129", "serial": "payg001001", "days": 2},
        {"status": "credited", "product_id": 1001, "days": 2, "code": "sent"},
        2,
    ),
    (
        "serial given in product_id",
        {"reference": "QKL7ABC130", "product_id": "OVES001001", "days": 1},
        {"status": "credited", "product_id": 1001, "days": 1, "code": "sent"},
        1,
    ),
    (
        "product_id null, serial given",
        {"reference": "QKL7ABC131", "product_id": None, "serial": "OVES001001", "days": 4},
        {"status": "credited", "product_id": 1001, "days": 4, "code": "sent"},
        4,
    ),
    (
        "with the payer's phone",
        {"reference": "QKL7ABC132", "product_id": 1001, "days": 5, "phone": "0712 345 678"},
        {"status": "credited", "days": 5, "code": "sent"},
        5,
    ),
    (
        "extra provider fields ignored",
        {
            "reference": "QKL7ABC133",
            "product_id": 1001,
            "days": 6,
            "currency": "KES",
            "channel": "mpesa",
            "transaction_time": "2025-03-01T10:00:00Z",
        },
        {"status": "credited", "days": 6, "code": "sent"},
        6,
    ),
    (
        "reference padded with spaces",
        {"reference": "  QKL7ABC134 ", "product_id": 1001, "days": 1},
        {"status": "credited", "reference": "QKL7ABC134", "days": 1},
        1,
    ),
    (
        "the most days in one code",
        {"reference": "QKL7ABC135", "product_id": 1001, "days": 1095},
        {"status": "credited", "days": 1095, "code": "sent"},
        1095,
    ),
]


@pytest.mark.parametrize("payload, expected, days", [pytest.param(*c[1:], id=c[0]) for c in VALID])
def test_a_valid_payment_credits_the_device_and_pushes_its_code(
    world, client, payload, expected, days
):
    response = post(client, payload)

    assert response.status_code == 200, response.get_json()
    assert expected.items() <= response.get_json().items()
    [code] = minted_codes(world, 1001)
    entry = world.simulator(1001).enter(code.code)
    assert (entry.outcome, entry.days) == ("days", days)
    with world.session() as s:
        [message] = s.scalars(select(OutboxMessage)).all()
        assert (message.recipient, message.channel, message.code_id) == (OWNER, "sms", code.id)
        assert code.code in message.body
        [payment] = s.scalars(select(Payment)).all()
        assert (payment.reference, payment.days, payment.source) == (
            payload["reference"].strip(),
            days,
            "webhook",
        )
        assert payment.code_id == code.id


def test_the_payers_phone_is_stored_in_e164(world, client):
    post(client, {"reference": "QKL7PH1", "product_id": 1001, "days": 1, "phone": "0712 345 678"})
    with world.session() as s:
        assert s.scalar(select(Payment.phone)) == "+254712345678"


def test_an_upper_case_hex_signature_is_accepted(world, client):
    body = json.dumps({"reference": "QKL7UP1", "product_id": 1001, "days": 1}).encode()
    response = post(client, raw=body, signature=sign(SECRET, body).upper())
    assert response.status_code == 200


def test_amounts_carry_their_remainder_to_the_next_payment(world, client):
    first = post(client, {"reference": "AMT-1", "product_id": 1001, "amount": 175}).get_json()
    second = post(client, {"reference": "AMT-2", "product_id": 1001, "amount": 25}).get_json()

    assert (first["days"], first["balance"]) == (3, "25.00")
    assert (second["days"], second["balance"]) == (1, "0.00")
    assert world.device(1001).balance == 0
    simulator = world.simulator(1001)
    assert [simulator.enter(c.code).days for c in minted_codes(world, 1001)] == [3, 1]


def test_an_amount_below_one_day_is_kept_as_balance_and_mints_nothing(world, client):
    response = post(client, {"reference": "AMT-S", "product_id": 1001, "amount": 30})

    assert response.status_code == 200
    assert {
        "status": "credited",
        "days": 0,
        "balance": "30.00",
    }.items() <= response.get_json().items()
    assert snapshot(world)["codes"] == 0 and snapshot(world)["outbox"] == 0
    later = post(client, {"reference": "AMT-T", "product_id": 1001, "amount": 20}).get_json()
    assert (later["days"], later["balance"]) == (1, "0.00")


# -- refusals: bad signature ---------------------------------------------------------------

GOOD = json.dumps({"reference": "SIG-1", "product_id": 1001, "days": 7}).encode()
OTHER = json.dumps({"reference": "SIG-1", "product_id": 1001, "days": 700}).encode()

# label, body, X-Signature (None: no header)
UNSIGNED = [
    ("no X-Signature header", GOOD, None),
    ("empty signature", GOOD, ""),
    ("signed with another secret", GOOD, sign("not-the-secret", GOOD)),
    ("signature of a different body", OTHER, sign(SECRET, GOOD)),
    ("truncated signature", GOOD, sign(SECRET, GOOD)[:32]),
    ("prefixed signature", GOOD, "sha256=" + sign(SECRET, GOOD)),
    ("base64 instead of hex", GOOD, "c2lnbmF0dXJl"),
    ("non-ASCII signature", GOOD, "é" * 64),
    ("bad signature on a bad body", b"not json", sign("nope", b"not json")),
]


@pytest.mark.parametrize("body, signature", [pytest.param(*c[1:], id=c[0]) for c in UNSIGNED])
def test_a_request_without_a_valid_signature_is_refused_and_writes_nothing(
    world, client, body, signature
):
    before = snapshot(world)
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Signature"] = signature
    response = client.post(PATH, data=body, headers=headers)

    assert response.status_code == 401
    assert response.is_json and response.get_json()["status"] == "rejected"
    assert snapshot(world) == before


@pytest.mark.parametrize("secret", [None, ""])
def test_with_no_secret_configured_every_request_is_refused(world, secret):
    settings = world.services.settings.replace(payments_secret=secret)
    app = create_app(deps=dataclasses.replace(world.services, settings=settings))
    before = snapshot(world)
    for signature in (sign("", GOOD), sign(SECRET, GOOD), None):
        response = post(app.test_client(), raw=GOOD, signature=signature, secret=None)
        assert response.status_code == 401 and response.get_json()["status"] == "rejected"
    assert snapshot(world) == before


def test_the_demo_accepts_unsigned_payments_when_no_secret_is_set(world):
    settings = world.services.settings.replace(payments_secret=None, demo=True)
    app = create_app(deps=dataclasses.replace(world.services, settings=settings))
    assert post(app.test_client(), raw=GOOD, secret=None).status_code == 200


# -- refusals: bad payloads ----------------------------------------------------------------


def j(value) -> bytes:
    return json.dumps(value).encode()


def pay(**fields) -> bytes:
    return j({"reference": "BAD-1", "product_id": 1001} | fields)


# label, raw body (signed correctly), status, field the answer must name
INVALID = [
    ("form-encoded, not JSON", b"reference=BAD-1&product_id=1001&days=7", 400, "body"),
    ("empty body", b"", 400, "body"),
    ("truncated JSON", b'{"reference": "BAD-1", "days": 7', 400, "body"),
    ("not UTF-8", b'{"reference": "\xff\xfe", "product_id": 1001, "days": 7}', 400, "body"),
    ("deeply nested JSON", b"[" * 30_000 + b"]" * 30_000, 400, "body"),  # under MAX_BODY
    ("JSON array", j([{"reference": "BAD-1", "product_id": 1001, "days": 7}]), 400, "body"),
    ("JSON string", j("BAD-1"), 400, "body"),
    ("JSON null", b"null", 400, "body"),
    ("missing reference", j({"product_id": 1001, "days": 7}), 400, "reference"),
    ("empty reference", pay(days=7).replace(b'"BAD-1"', b'""'), 400, "reference"),
    ("blank reference", pay(days=7).replace(b'"BAD-1"', b'"   "'), 400, "reference"),
    ("numeric reference", pay(days=7).replace(b'"BAD-1"', b"12345"), 400, "reference"),
    ("reference too long", pay(days=7).replace(b"BAD-1", b"R" * 129), 400, "reference"),
    ("missing product", j({"reference": "BAD-1", "days": 7}), 400, "product_id"),
    ("empty product id", pay(product_id="", days=7), 400, "product_id"),
    ("boolean product id", pay(product_id=True, days=7), 400, "product_id"),
    ("float product id", pay(product_id=1001.0, days=7), 400, "product_id"),
    ("object product id", pay(product_id={"id": 1001}, days=7), 400, "product_id"),
    ("product id too long", pay(product_id="9" * 200, days=7), 400, "product_id"),
    ("both days and amount", pay(days=7, amount=350), 400, "days"),
    ("neither days nor amount", pay(), 400, "days"),
    ("days null, no amount", pay(days=None), 400, "days"),
    ("days 0", pay(days=0), 400, "days"),
    ("days -5", pay(days=-5), 400, "days"),
    ("days 1.5", pay(days=1.5), 400, "days"),
    ('days "5"', pay(days="5"), 400, "days"),
    ("days true", pay(days=True), 400, "days"),
    ("days a list", pay(days=[7]), 400, "days"),
    ("absurd days", pay(days=100_000), 400, "days"),
    ("days beyond any integer column", pay(days=10**30), 400, "days"),
    ("amount 0", pay(amount=0), 400, "amount"),
    ("amount -1", pay(amount=-1), 400, "amount"),
    ('amount "abc"', pay(amount="abc"), 400, "amount"),
    ('amount ""', pay(amount=""), 400, "amount"),
    ("amount NaN", pay(days=None).replace(b'"days": null', b'"amount": NaN'), 400, "amount"),
    ('amount "NaN"', pay(amount="NaN"), 400, "amount"),
    (
        "amount Infinity",
        pay(days=None).replace(b'"days": null', b'"amount": Infinity'),
        400,
        "amount",
    ),
    ("amount 1e400", pay(days=None).replace(b'"days": null', b'"amount": 1e400'), 400, "amount"),
    ("amount true", pay(amount=True), 400, "amount"),
    ("amount a list", pay(amount=[175]), 400, "amount"),
    ("amount an object", pay(amount={"value": 175, "currency": "KES"}), 400, "amount"),
    ("amount with a fraction of a cent", pay(amount=175.005), 400, "amount"),
    ("amount of a tenth of a cent", pay(amount=0.001), 400, "amount"),
    ("absurd amount", pay(amount=10**12), 400, "amount"),
    ("amount worth more days than one payment may carry", pay(amount=9_000_000), 422, "amount"),
    ("phone a number, not text", pay(days=7, phone=254712345678), 400, "phone"),
    ("phone not a phone number", pay(days=7, phone="call me"), 400, "phone"),
    ("phone far too long", pay(days=7, phone="+254" + "7" * 60), 400, "phone"),
]


@pytest.mark.parametrize("body, status, field", [pytest.param(*c[1:], id=c[0]) for c in INVALID])
def test_a_bad_payment_gets_a_4xx_naming_the_field_and_writes_nothing(
    world, client, body, status, field
):
    before = snapshot(world)

    response = post(client, raw=body)

    assert response.status_code == status, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["status"] == "rejected" and answer["field"] == field, answer
    assert answer["error"]
    assert snapshot(world) == before


def test_an_amount_refused_for_too_many_days_leaves_the_device_balance_alone(world, client):
    post(client, {"reference": "AMT-1", "product_id": 1001, "amount": 30})
    before = snapshot(world)

    response = post(client, {"reference": "AMT-2", "product_id": 1001, "amount": 9_000_000.5})

    assert response.status_code == 422
    assert snapshot(world) == before
    assert world.device(1001).balance == 30


# -- idempotency -------------------------------------------------------------------------------

# label, first payload, repeated payload (same reference, same content as the payer meant it)
REPEATS = [
    (
        "same body",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "product_id": 1001, "days": 7},
    ),
    (
        "amount again",
        {"reference": "REP-1", "product_id": 1001, "amount": 175},
        {"reference": "REP-1", "product_id": 1001, "amount": 175},
    ),
    (
        "the same amount written otherwise",
        {"reference": "REP-1", "product_id": 1001, "amount": 175},
        {"reference": "REP-1", "product_id": 1001, "amount": "175.00"},
    ),
    (
        "the device by serial instead of product id",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "serial": "oves001001", "days": 7},
    ),
    (
        "unmatched again",
        {"reference": "REP-1", "product_id": 999999, "days": 7},
        {"reference": "REP-1", "product_id": 999999, "days": 7},
    ),
    (
        "padded reference",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": " REP-1 ", "product_id": 1001, "days": 7},
    ),
    (
        "another phone",
        {"reference": "REP-1", "product_id": 1001, "days": 7, "phone": "+254712345678"},
        {"reference": "REP-1", "product_id": 1001, "days": 7, "phone": "+254799000000"},
    ),
]


@pytest.mark.parametrize("first, repeat", [pytest.param(*c[1:], id=c[0]) for c in REPEATS])
def test_a_repeated_reference_returns_the_first_answer_and_changes_nothing(
    world, client, first, repeat
):
    original = post(client, first)
    before = snapshot(world), snapshot(world, 1002)

    again = post(client, repeat)

    assert (again.status_code, again.get_json()) == (original.status_code, original.get_json())
    assert (snapshot(world), snapshot(world, 1002)) == before


# label, first payload, repeated payload with other content, the field the 409 names
CONFLICTS = [
    (
        "more days",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "product_id": 1001, "days": 300},
        "days",
    ),
    (
        "another device",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "product_id": 1002, "days": 7},
        "product_id",
    ),
    (
        "amount instead of days",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "product_id": 1001, "amount": 1000},
        "amount",
    ),
    (
        "days instead of amount",
        {"reference": "REP-1", "product_id": 1001, "amount": 175},
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        "days",
    ),
    (
        "another amount",
        {"reference": "REP-1", "product_id": 1001, "amount": 175},
        {"reference": "REP-1", "product_id": 1001, "amount": 175.01},
        "amount",
    ),
    (
        "unmatched, then a known device",
        {"reference": "REP-1", "product_id": 999999, "days": 7},
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        "product_id",
    ),
    (
        "a known device, then an unknown one",
        {"reference": "REP-1", "product_id": 1001, "days": 7},
        {"reference": "REP-1", "serial": "OVES999999", "days": 7},
        "product_id",
    ),
]


@pytest.mark.parametrize("first, repeat, field", [pytest.param(*c[1:], id=c[0]) for c in CONFLICTS])
def test_a_reference_repeated_with_other_content_is_a_409_showing_the_first(
    world, client, first, repeat, field
):
    original = post(client, first)
    before = snapshot(world), snapshot(world, 1002)

    again = post(client, repeat)

    assert again.status_code == 409
    body = again.get_json()
    assert (body["status"], body["reference"], body["field"]) == ("conflict", "REP-1", field)
    assert field in body["error"]
    shown = body["first"]
    assert shown["reference"] == "REP-1"
    assert shown["product_ref"] == str(first.get("product_id"))
    assert shown["product_id"] == original.get_json().get("product_id")
    assert shown["days"] == original.get_json().get("days", first.get("days"))
    assert shown["amount"] == (None if "amount" not in first else f"{first['amount']:.2f}")
    assert (snapshot(world), snapshot(world, 1002)) == before
    third = post(client, first)  # the first content still gets the first answer
    assert (third.status_code, third.get_json()) == (original.status_code, original.get_json())


def test_concurrent_deliveries_of_one_payment_mint_and_push_once(world, client):
    """Payment systems retry eagerly: racing copies of one payment mint and push once, and
    the copies that lost the race do not claim the code was deferred while it went out."""
    app = create_app(deps=world.services)
    post(client, {"reference": "WARM-1", "product_id": 1001, "days": 1})  # chain hashed once
    body = json.dumps({"reference": "RACE-1", "product_id": 1001, "days": 7}).encode()
    start, answers = threading.Barrier(8), []

    def deliver():
        start.wait()
        response = post(app.test_client(), raw=body)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [status for status, _ in answers] == [200] * 8
    assert all(a["status"] == "credited" and a.get("code") != "deferred" for _, a in answers), (
        answers
    )
    after = snapshot(world)
    assert (after["payments"], after["codes"], after["outbox"], after["history"]) == (2, 2, 2, 2)
    with world.session() as s:
        stored = s.scalar(select(Payment.response).where(Payment.reference == "RACE-1"))
    assert json.loads(stored)["code"] == "sent"


# -- never a 5xx -----------------------------------------------------------------------------


def test_the_upstream_being_down_still_records_the_payment(world, client):
    world.emulator.fail_next(1, 503)

    response = post(client, {"reference": "DOWN-1", "product_id": 1001, "days": 7})

    assert response.status_code == 200
    assert response.get_json()["code"] == "deferred"
    assert snapshot(world)["payments"] == 1 and snapshot(world)["outbox"] == 0


def test_an_unknown_device_is_kept_as_unmatched(world, client):
    response = post(client, {"reference": "UNK-1", "product_id": 999999, "days": 7})

    assert response.status_code == 202
    assert response.get_json()["status"] == "unmatched"
    with world.session() as s:
        payment = s.scalar(select(Payment))
        assert (payment.device_id, payment.product_ref, payment.days) == (None, "999999", 7)


METHODS = [pytest.param(method, id=method) for method in ("GET", "PUT", "DELETE", "PATCH")]


@pytest.mark.parametrize("method", METHODS)
def test_other_methods_are_not_allowed_in_json(client, method):
    response = client.open(PATH, method=method)
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.get_json() == {"status": "rejected", "error": "Method Not Allowed"}


def test_a_body_over_the_limit_is_a_json_413_and_writes_nothing(world, client):
    before = snapshot(world)
    response = post(client, raw=GOOD + b" " * MAX_BODY)
    assert response.status_code == 413
    assert response.get_json() == {"status": "rejected", "error": "Request Entity Too Large"}
    assert snapshot(world) == before


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'{"reference":"\xed\xa0\x80R","product_id":1001,"days":1}',
            id="an encoded surrogate: not UTF-8",
        ),
        pytest.param(b'{"reference":"\xffR","product_id":1001,"days":1}', id="a stray byte"),
        pytest.param(
            b'{"reference":"R\\ud800","product_id":1001,"days":1}', id="an escaped lone surrogate"
        ),
    ],
)
def test_a_body_that_is_not_unicode_is_refused_with_400_and_changes_nothing(world, client, raw):
    before = snapshot(world)
    response = post(client, raw=raw)
    assert response.status_code == 400
    assert response.get_json()["status"] == "rejected"
    assert snapshot(world) == before
