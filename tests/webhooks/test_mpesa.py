"""M-Pesa C2B (Daraja) over HTTP: labelled tables of payloads shaped as Safaricom's Daraja
documentation shows them, negatives included, on SQLite and PostgreSQL.

Every refusal is checked for what it must NOT do as much as for its answer: no payment, no
code, no outbox row, no change to the device, no call that mints upstream. Validation
never writes, whatever it answers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from bot import payments
from bot.storage.models import Code, Customer, Device, OutboxMessage, Payment, TelegramLink
from tests.harness import SECRETS
from webhooks import mpesa
from webhooks.app import create_app

VALIDATION = "/webhooks/mpesa/validation"
CONFIRMATION = "/webhooks/mpesa/confirmation"
TOKEN = SECRETS["mpesa_callback_token"]
SHORTCODE = SECRETS["mpesa_shortcode"]
OWNER = "+254712345678"
HASHED_MSISDN = "2b0e6cc8e32c8f1a2c5b40d8a5c0f5a9b4f1b7c3e9d2a6f0e1c4b7a8d9e2f3a4"

ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
BAD_ACCOUNT = {"ResultCode": "C2B00012", "ResultDesc": "Rejected"}
BAD_AMOUNT = {"ResultCode": "C2B00013", "ResultDesc": "Rejected"}
OTHER = {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}


def daraja(**changes) -> dict:
    """A C2B body as Daraja posts it (Pay Bill, the v2 masked MSISDN); `changes` replace
    fields, and a field given as `None` is left out."""
    body = {
        "TransactionType": "Pay Bill",
        "TransID": "RKTQDM7W6S",
        "TransTime": "20191122063845",
        "TransAmount": "150",
        "BusinessShortCode": SHORTCODE,
        "BillRefNumber": "OVES001001",
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "25470****149",
        "FirstName": "John",
        "MiddleName": "",
        "LastName": "Doe",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def confirmed(**changes) -> dict:
    """The confirmation of the same payment: Daraja adds the paybill's balance."""
    return daraja(OrgAccountBalance="49197.00", **changes)


def post(client, path, payload=None, *, raw: bytes | None = None, token: str | None = TOKEN):
    body = raw if raw is not None else json.dumps(payload).encode()
    url = path if token is None else f"{path}?token={token}"
    return client.post(url, data=body, headers={"Content-Type": "application/json"})


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


def minted_codes(world, product_id: int = 1001) -> list[Code]:
    with world.session() as s:
        return list(
            s.scalars(
                select(Code)
                .join(Device)
                .where(Device.product_id == product_id, Code.state == "minted")
                .order_by(Code.id)
            )
        )


def the_payment(world) -> Payment:
    with world.session() as s:
        [payment] = s.scalars(select(Payment)).all()
        return payment


@pytest.fixture
def client(world):
    world.customer(OWNER, 1001)
    return world.client()


# -- done when: validates, confirms, credits exactly 3 days, pushes, a repeat is nothing ---


def test_a_payment_of_150_at_50_a_day_validates_confirms_and_credits_3_days(world, client):
    before = snapshot(world)
    checked = post(client, VALIDATION, daraja())
    assert (checked.status_code, checked.get_json()) == (200, ACCEPTED)
    assert snapshot(world) == before  # validation writes nothing

    response = post(client, CONFIRMATION, confirmed())

    assert (response.status_code, response.get_json()) == (200, ACCEPTED)
    payment = the_payment(world)
    assert (payment.reference, payment.source, payment.days, payment.amount) == (
        "mpesa:RKTQDM7W6S",
        "mpesa",
        3,
        150,
    )
    assert payment.phone is None  # MSISDN is never kept
    assert world.device(1001).balance == 0
    [code] = minted_codes(world)
    assert code.channel == "payments" and payment.code_id == code.id
    entry = world.simulator(1001).enter(code.code)
    assert (entry.outcome, entry.days) == ("days", 3)
    with world.session() as s:
        [message] = s.scalars(select(OutboxMessage)).all()
        assert (message.channel, message.recipient, message.code_id) == ("sms", OWNER, code.id)
        assert code.code in message.body

    after = snapshot(world)
    again = post(client, CONFIRMATION, confirmed())

    assert (again.status_code, again.get_json()) == (200, ACCEPTED)
    assert snapshot(world) == after


def test_the_urls_to_register_with_daraja_have_no_mpesa_in_them(world, client):
    """Daraja refuses to register a URL naming M-Pesa: /webhooks/c2b/... answers the same."""
    assert post(client, "/webhooks/c2b/validation", daraja()).get_json() == ACCEPTED
    assert post(client, "/webhooks/c2b/validation", daraja(BillRefNumber="X")).get_json() == (
        BAD_ACCOUNT
    )
    assert post(client, "/webhooks/c2b/confirmation", confirmed()).get_json() == ACCEPTED
    assert post(client, "/webhooks/c2b/confirmation", confirmed(), token="x").status_code == 401
    assert post(client, CONFIRMATION, confirmed()).get_json() == ACCEPTED  # the same TransID
    assert snapshot(world)["payments"] == 1 and the_payment(world).days == 3
    [code] = minted_codes(world)
    assert world.simulator(1001).enter(code.code).days == 3


def test_the_code_goes_out_on_the_channel_the_customer_last_used(world):
    customer_id = world.customer(OWNER, 1001)
    with world.session() as s:
        s.get(Customer, customer_id).last_channel = "telegram"
        s.add(TelegramLink(customer_id=customer_id, telegram_user_id=4242, chat_id=4242))

    response = post(world.client(), CONFIRMATION, confirmed())

    assert response.get_json() == ACCEPTED
    [code] = minted_codes(world)
    with world.session() as s:
        [message] = s.scalars(select(OutboxMessage)).all()
    assert (message.channel, message.recipient, message.code_id) == ("telegram", "4242", code.id)


# -- validation ------------------------------------------------------------------------------

# label, payload, Daraja's answer
VALIDATIONS = [
    ("by OEM serial", daraja(), ACCEPTED),
    ("by product id", daraja(BillRefNumber="1001"), ACCEPTED),
    ("lower case and spaces forgiven", daraja(BillRefNumber=" oves 001 001 "), ACCEPTED),
    ("by PAYG serial", daraja(BillRefNumber="PAYG001001"), ACCEPTED),
    ("the product id as a JSON number", daraja(BillRefNumber=1001), ACCEPTED),
    ("exactly one day", daraja(TransAmount="50.00"), ACCEPTED),
    ("the amount as a JSON number", daraja(TransAmount=150), ACCEPTED),
    ("the shortcode as a JSON number", daraja(BusinessShortCode=int(SHORTCODE)), ACCEPTED),
    ("a hashed MSISDN", daraja(MSISDN=HASHED_MSISDN), ACCEPTED),
    ("no names, no MSISDN", daraja(FirstName=None, LastName=None, MSISDN=None), ACCEPTED),
    ("unknown account", daraja(BillRefNumber="OVES999999"), BAD_ACCOUNT),
    ("another distributor's device", daraja(BillRefNumber="1101"), BAD_ACCOUNT),
    ("empty account (a till payment)", daraja(BillRefNumber=""), BAD_ACCOUNT),
    ("no BillRefNumber", daraja(BillRefNumber=None), BAD_ACCOUNT),
    ("BillRefNumber an object", daraja(BillRefNumber={"id": 1001}), BAD_ACCOUNT),
    ("BillRefNumber true", daraja(BillRefNumber=True), BAD_ACCOUNT),
    ("below one day", daraja(TransAmount="49.99"), BAD_AMOUNT),
    ("zero", daraja(TransAmount="0"), BAD_AMOUNT),
    ("negative", daraja(TransAmount="-150"), BAD_AMOUNT),
    ("negative JSON number", daraja(TransAmount=-150), BAD_AMOUNT),
    ("not a number", daraja(TransAmount="abc"), BAD_AMOUNT),
    ("empty amount", daraja(TransAmount=""), BAD_AMOUNT),
    ("no TransAmount", daraja(TransAmount=None), BAD_AMOUNT),
    ("exponent", daraja(TransAmount="1e3"), BAD_AMOUNT),
    ("a fraction of a cent", daraja(TransAmount="150.005"), BAD_AMOUNT),
    ("Arabic-Indic digits", daraja(TransAmount="١٥٠"), BAD_AMOUNT),
    ("amount true", daraja(TransAmount=True), BAD_AMOUNT),
    ("more days than one payment may carry", daraja(TransAmount="182550"), BAD_AMOUNT),
    ("no TransID", daraja(TransID=None), OTHER),
    ("empty TransID", daraja(TransID=""), OTHER),
    ("TransID with a space", daraja(TransID="RKT QDM7W6S"), OTHER),
    ("TransID a number", daraja(TransID=12345), OTHER),
]


@pytest.mark.parametrize("payload, answer", [pytest.param(*c[1:], id=c[0]) for c in VALIDATIONS])
def test_validation_answers_in_darajas_codes_and_writes_nothing(world, client, payload, answer):
    before = snapshot(world)

    response = post(client, VALIDATION, payload)

    assert (response.status_code, response.get_json()) == (200, answer)
    assert snapshot(world) == before


def test_validation_counts_the_balance_the_device_already_holds(world, client):
    assert post(client, CONFIRMATION, confirmed(TransAmount="30")).get_json() == ACCEPTED
    assert world.device(1001).balance == 30

    assert post(client, VALIDATION, daraja(TransID="RKTQDM7W7T", TransAmount="20")).get_json() == (
        ACCEPTED
    )
    assert post(client, VALIDATION, daraja(TransID="RKTQDM7W7U", TransAmount="19")).get_json() == (
        BAD_AMOUNT
    )


# -- confirmation ----------------------------------------------------------------------------

# label, payload, (days, balance after, product_ref kept) of the recorded payment
CONFIRMED = [
    ("150 at 50 a day", confirmed(), (3, 0, "OVES001001")),
    ("the remainder is kept", confirmed(TransAmount="175.50"), (3, 25.5, "OVES001001")),
    ("by product id", confirmed(BillRefNumber="1001"), (3, 0, "1001")),
    ("spaces and case forgiven", confirmed(BillRefNumber="oves 001001"), (3, 0, "oves001001")),
    ("a hashed MSISDN", confirmed(MSISDN=HASHED_MSISDN), (3, 0, "OVES001001")),
    ("the amount as a number", confirmed(TransAmount=150.0), (3, 0, "OVES001001")),
    ("below one day: kept as balance", confirmed(TransAmount="30"), (0, 30, "OVES001001")),
]


@pytest.mark.parametrize("payload, recorded", [pytest.param(*c[1:], id=c[0]) for c in CONFIRMED])
def test_a_confirmation_records_the_payment_and_answers_success(world, client, payload, recorded):
    response = post(client, CONFIRMATION, payload)

    assert (response.status_code, response.get_json()) == (200, ACCEPTED)
    payment = the_payment(world)
    days, balance, ref = recorded
    assert (payment.days, payment.product_ref, payment.source) == (days, ref, "mpesa")
    assert world.device(1001).balance == pytest.approx(balance)
    codes = minted_codes(world)
    assert [c.days for c in codes] == ([days] if days else [])
    if days:
        assert world.simulator(1001).enter(codes[0].code).days == days
    assert snapshot(world)["outbox"] == len(codes)


def test_an_unknown_account_is_refused_at_validation_and_if_confirmed_kept_unmatched(world, client):
    payload = confirmed(BillRefNumber="OVES999999", TransAmount="150")
    assert post(client, VALIDATION, payload).get_json() == BAD_ACCOUNT

    response = post(client, CONFIRMATION, payload)

    assert (response.status_code, response.get_json()) == (200, ACCEPTED)
    payment = the_payment(world)
    assert (payment.device_id, payment.product_ref, payment.amount) == (None, "OVES999999", 150)
    assert snapshot(world)["codes"] == 0
    before = snapshot(world)
    assert post(client, CONFIRMATION, payload).get_json() == ACCEPTED  # Daraja again
    assert snapshot(world) == before
    with world.session() as s:  # what `ovbot payments assign mpesa:RKTQDM7W6S 1001` does
        assert [p.reference for p in payments.unmatched(s)] == ["mpesa:RKTQDM7W6S"]
        answer = payments.assign(world.services, s, "mpesa:RKTQDM7W6S", "1001")
    assert (answer.body["days"], answer.body["code"]) == (3, "sent")
    [code] = minted_codes(world)
    assert world.simulator(1001).enter(code.code).days == 3


# label, payload: money received that no device can take as it is: kept, never lost
KEPT = [
    ("a till payment with no account", confirmed(TransactionType="Buy Goods", BillRefNumber="")),
    ("no BillRefNumber", confirmed(BillRefNumber=None)),
    ("more days than one payment may carry", confirmed(TransAmount="182550")),
    ("an account that is not text", confirmed(BillRefNumber=["OVES001001"])),
    ("an account with a NUL and a lone surrogate", confirmed(BillRefNumber="OV\x00\ud800")),
]


@pytest.mark.parametrize("payload", [pytest.param(c[1], id=c[0]) for c in KEPT])
def test_a_confirmation_no_device_can_take_is_kept_unmatched(world, client, payload):
    response = post(client, CONFIRMATION, payload)

    assert (response.status_code, response.get_json()) == (200, ACCEPTED)
    payment = the_payment(world)
    assert (payment.device_id, payment.days, payment.source) == (None, 0, "mpesa")
    assert str(payment.amount) == f"{float(payload['TransAmount']):.2f}"
    assert world.device(1001).balance == 0 and snapshot(world)["codes"] == 0


def test_a_repeated_transid_with_other_content_changes_nothing(world, client):
    post(client, CONFIRMATION, confirmed())
    before = snapshot(world), snapshot(world, 1002)

    response = post(client, CONFIRMATION, confirmed(TransAmount="1500", BillRefNumber="1002"))

    assert (response.status_code, response.get_json()) == (200, ACCEPTED)
    assert (snapshot(world), snapshot(world, 1002)) == before


def test_concurrent_deliveries_of_one_confirmation_credit_and_push_once(world, client):
    app = create_app(deps=world.services)
    post(client, CONFIRMATION, confirmed(TransID="WARMUP0001", TransAmount="50"))
    body = json.dumps(confirmed()).encode()
    start, answers = threading.Barrier(6), []

    def deliver():
        start.wait()
        response = post(app.test_client(), CONFIRMATION, raw=body)
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert answers == [(200, ACCEPTED)] * 6
    after = snapshot(world)
    assert (after["payments"], after["codes"], after["outbox"], after["history"]) == (2, 2, 2, 2)
    assert [c.days for c in minted_codes(world)] == [1, 3]


# label, payload, the field the 400 names: nothing could be recorded
UNRECORDABLE = [
    ("no TransID", confirmed(TransID=None), "TransID"),
    ("TransID too long", confirmed(TransID="R" * 41), "TransID"),
    ("no TransAmount", confirmed(TransAmount=None), "TransAmount"),
    ("non-numeric amount", confirmed(TransAmount="KES 150"), "TransAmount"),
    ("negative amount", confirmed(TransAmount="-150"), "TransAmount"),
    ("zero amount", confirmed(TransAmount="0.00"), "TransAmount"),
    ("amount null", {**confirmed(), "TransAmount": None}, "TransAmount"),
    ("absurd amount", confirmed(TransAmount=10**12), "TransAmount"),
]


@pytest.mark.parametrize("payload, field", [pytest.param(*c[1:], id=c[0]) for c in UNRECORDABLE])
def test_a_confirmation_that_cannot_be_recorded_is_a_400_naming_the_field(
    world, client, payload, field
):
    before = snapshot(world)

    response = post(client, CONFIRMATION, payload)

    assert response.status_code == 400
    body = response.get_json()
    assert (body["ResultCode"], body["field"]) == ("C2B00016", field) and body["error"]
    assert snapshot(world) == before


# -- the guard, the body ---------------------------------------------------------------------

ROUTES = [pytest.param(VALIDATION, id="validation"), pytest.param(CONFIRMATION, id="confirmation")]

# label, query token (None: no ?token=), payload, status
GUARDED = [
    ("no token", None, confirmed(), 401),
    ("empty token", "", confirmed(), 401),
    ("wrong token", "not-the-token", confirmed(), 401),
    ("the token with a suffix", TOKEN + "x", confirmed(), 401),
    ("the token's prefix", TOKEN[:-1], confirmed(), 401),
    ("another shortcode", TOKEN, confirmed(BusinessShortCode="174379"), 403),
    ("no shortcode", TOKEN, confirmed(BusinessShortCode=None), 403),
    ("shortcode true", TOKEN, confirmed(BusinessShortCode=True), 403),
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("token, payload, status", [pytest.param(*c[1:], id=c[0]) for c in GUARDED])
def test_a_request_past_the_guard_only_with_the_token_and_our_shortcode(
    world, client, path, token, payload, status
):
    before = snapshot(world)

    response = post(client, path, payload, token=token)

    assert response.status_code == status
    assert response.get_json()["ResultCode"] == "C2B00016"
    assert snapshot(world) == before


def test_the_token_is_not_taken_from_a_header(world, client):
    response = client.post(
        CONFIRMATION, json=confirmed(), headers={"X-Token": TOKEN, "Authorization": TOKEN}
    )
    assert response.status_code == 401 and snapshot(world)["payments"] == 0


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"mpesa_callback_token": None}, id="no token configured"),
        pytest.param({"mpesa_callback_token": ""}, id="empty token configured"),
        pytest.param({"mpesa_shortcode": None}, id="no shortcode configured"),
    ],
)
def test_unconfigured_the_routes_refuse_everything(world, path, changes):
    world.customer(OWNER, 1001)
    client = world.client(**changes)
    before = snapshot(world)
    for token in (None, "", TOKEN):
        assert post(client, path, confirmed(), token=token).status_code in (401, 403)
    assert snapshot(world) == before


def test_the_demo_is_open_while_unconfigured(world):
    world.customer(OWNER, 1001)
    client = world.client(mpesa_callback_token=None, mpesa_shortcode=None, demo=True)
    assert post(client, VALIDATION, daraja(BusinessShortCode="174379"), token=None).get_json() == (
        ACCEPTED
    )
    assert post(client, CONFIRMATION, confirmed(), token=None).get_json() == ACCEPTED
    assert the_payment(world).days == 3


# label, raw body, status
BODIES = [
    ("not JSON", b"TransID=RKTQDM7W6S&TransAmount=150", 400),
    ("truncated JSON", json.dumps(confirmed()).encode()[:-5], 400),
    ("empty body", b"", 400),
    ("a JSON array", json.dumps([confirmed()]).encode(), 400),
    ("JSON null", b"null", 400),
    ("not UTF-8", json.dumps(confirmed()).encode().replace(b"John", b"J\xffhn"), 400),
    ("deeply nested", b"[" * 1500 + b"]" * 1500, 400),
    ("over the size bound", json.dumps(confirmed(FirstName="J" * mpesa.MAX_BODY)).encode(), 413),
]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("raw, status", [pytest.param(*c[1:], id=c[0]) for c in BODIES])
def test_a_body_that_is_not_a_daraja_c2b_body_is_refused(world, client, path, raw, status):
    before = snapshot(world)

    response = post(client, path, raw=raw)

    assert response.status_code == status
    assert response.get_json()["ResultCode"] == "C2B00016"
    assert snapshot(world) == before


@pytest.mark.parametrize("path", ROUTES)
def test_other_methods_are_not_allowed(client, path):
    response = client.get(f"{path}?token={TOKEN}")
    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.get_json()["ResultCode"] == "C2B00016"


# -- the database, the logs, the start-up warning ----------------------------------------------


def test_a_database_failure_is_a_5xx_and_records_nothing_until_daraja_retries(world, client):
    before = snapshot(world)

    def fail(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("INSERT INTO PAYMENTS"):
            raise OperationalError(statement, None, Exception("disk I/O error"))

    event.listen(world.services.engine, "before_cursor_execute", fail)
    try:
        response = post(client, CONFIRMATION, confirmed())
    finally:
        event.remove(world.services.engine, "before_cursor_execute", fail)

    assert response.status_code == 500
    assert response.get_json()["ResultCode"] == "C2B00016"
    assert snapshot(world) == before  # nothing half-recorded: no payment, code, push, balance

    retried = post(client, CONFIRMATION, confirmed())  # Daraja delivers it again

    assert (retried.status_code, retried.get_json()) == (200, ACCEPTED)
    [code] = minted_codes(world)
    assert world.simulator(1001).enter(code.code).days == 3
    assert snapshot(world)["outbox"] == 1


def test_the_payers_number_and_names_are_never_logged_nor_the_token(world, client, caplog):
    payload = confirmed(MSISDN="254708374149", FirstName="Wanjiku", LastName="Kamau")
    with caplog.at_level(logging.DEBUG):
        post(client, VALIDATION, payload)
        post(client, CONFIRMATION, payload)
        post(client, CONFIRMATION, confirmed(TransID=None, MSISDN="254708374149"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "RKTQDM7W6S" in logged  # the receipt number is what an operator looks for
    for secret in ("708374149", "Wanjiku", "Kamau", TOKEN):
        assert secret not in logged


def test_start_up_names_m_pesa_as_off_without_its_token_or_shortcode(sqlite_world, caplog):
    services = sqlite_world.services
    for changes, named in (
        ({"mpesa_callback_token": None}, "M-Pesa (set MPESA_CALLBACK_TOKEN)"),
        ({"mpesa_shortcode": None}, "M-Pesa (set MPESA_SHORTCODE)"),
    ):
        caplog.clear()
        settings = services.settings.replace(**changes)
        with caplog.at_level(logging.WARNING, logger="webhooks.app"):
            create_app(deps=dataclasses.replace(services, settings=settings))
        [warning] = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert named in warning.getMessage()
