"""The customer conversation, through `converse()` with channel-neutral Inbound messages.

Replies are compared with the operators' templates filled with the values the database
holds, so a wrong code, day count, date or device shows up as a different text.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from bot.inbound import Inbound
from bot.outbox import queue as outbox
from bot.storage.models import Code, Customer, Device, TelegramLink, utcnow
from bot.text import gsm7
from bot.text.templates import Messages
from tests.harness import build_world, converse, sqlite_file_url

AMINA, BARAKA, STRANGER = "+254712345678", "+254722000111", "+254733999888"
CODE_RE = re.compile(r"\*0\d\d(?: \d{3}){6}#")
MESSAGES = Messages.load()
_ids = itertools.count(1)


def en(key: str, **values) -> str:
    return MESSAGES.render("en", key, **values)


def day(value) -> str:
    return value.strftime("%Y-%m-%d")


@pytest.fixture
def w(sqlite_world):
    return sqlite_world


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """One world for tables whose messages must not change what they ask about (SQLite):
    Amina owns 1001, paid 5 days and has that code."""
    directory = tmp_path_factory.mktemp("conversation")
    world = build_world(sqlite_file_url(directory), directory)
    world.customer(AMINA, 1001)
    world.pay(1001, 5, "p1")
    send(world, "CODE")
    yield world
    world.services.close()


def send(world, text: str, sender: str = AMINA, provider_id: str | None = None):
    inbound = Inbound(
        channel="sms", provider_id=provider_id or f"SM{next(_ids):032d}", sender=sender, text=text
    )
    return converse(world.services, inbound)


def codes_of(world, product_id: int) -> list[Code]:
    with world.session() as s:
        return list(
            s.scalars(
                select(Code).join(Device).where(Device.product_id == product_id).order_by(Code.id)
            )
        )


def code_count(world) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(Code))


def upstream_count(world, product_id: int) -> int:
    return world.emulator.store.history_page(1, product_id, 0, 100)[1]


def customer(world, phone: str) -> Customer | None:
    with world.session() as s:
        return s.scalar(select(Customer).where(Customer.phone == phone))


# -- CODE -------------------------------------------------------------------------------


def test_code_mints_what_was_paid_and_says_the_days_and_the_new_credit_until(w):
    w.customer(AMINA, 1001)
    w.pay(1001, 7, "p1")
    reply = send(w, "CODE")
    (code,) = codes_of(w, 1001)
    assert reply.texts == (
        en(
            "code_minted",
            device="1001",
            code=code.code,
            days=7,
            until=day(w.device(1001).credit_until),
        ),
    )
    assert reply.text.startswith("New code for 1001: *0")
    assert "\n7 days, credit until" in reply.text
    assert w.simulator(1001).enter(CODE_RE.search(reply.text).group()).days == 7


def test_code_with_no_payment_ever_says_how_to_pay(w):
    w.customer(AMINA, 1001)
    assert send(w, "code").texts == (en("no_code_yet", device="1001"),)
    assert code_count(w) == 0


def test_code_with_nothing_new_returns_the_latest_code_saying_no_new_payment(w):
    w.customer(AMINA, 1001)
    w.pay(1001, 3, "p1")
    send(w, "CODE")
    (code,) = codes_of(w, 1001)
    reply = send(w, "CODE")
    assert reply.texts == (
        en("code_latest", device="1001", code=code.code, date=day(code.minted_at)),
    )
    assert reply.text.startswith("No new payment found.")
    assert code_count(w) == 1 and upstream_count(w, 1001) == 1


def test_code_above_1095_days_mints_what_fits_and_holds_the_rest_until_it_fits(w):
    """The credit-ahead cap: never more than 1095 days ahead, so no code reads as FREE."""
    w.customer(AMINA, 1001)
    w.pay(1001, 1200, "p1")
    reply = send(w, "CODE")
    (first,) = codes_of(w, 1001)
    assert first.days == 1095
    assert reply.texts == (
        en(
            "code_minted",
            code=first.code,
            device="1001",
            days=1095,
            until=day(first.credit_until_after),
        ),
        en("codes_held", held=105, device="1001"),
    )
    sim = w.simulator(1001)
    assert (sim.enter(first.code).outcome, sim.days_credited) == ("days", 1095)
    again = send(w, "CODE", provider_id="SM-again")
    assert again.texts[-1] == en("codes_held", held=105, device="1001")
    assert len(codes_of(w, 1001)) == 1  # nothing fits yet: nothing minted

    later = utcnow() + timedelta(days=200)  # 895 days ahead: 105 more fit
    w.ledger.clock = lambda: later
    reply = send(w, "CODE", provider_id="SM-later")
    second = codes_of(w, 1001)[1]
    assert (second.days, reply.texts[-1]) == (
        105,
        en(
            "code_minted",
            code=second.code,
            device="1001",
            days=105,
            until=day(second.credit_until_after),
        ),
    )
    assert (sim.enter(second.code).outcome, sim.days_credited) == ("days", 1200)


API_TROUBLE = [
    pytest.param(
        lambda e: e.fail_next(1, 429), "api_unavailable", "failed", id="API busy (429): try later"
    ),
    pytest.param(
        lambda e: e.fail_next(1, 503),
        "code_pending",
        "unknown",
        id="API 503 on the mint: outcome unknown, being confirmed",
    ),
]


@pytest.mark.parametrize("fault, key, state", API_TROUBLE)
def test_code_when_the_api_misbehaves_tells_the_customer_plainly(w, fault, key, state):
    w.customer(AMINA, 1001)
    w.pay(1001, 5, "p1")
    fault(w.emulator)
    reply = send(w, "CODE")
    wanted = en(key, device="1001") if "{device}" in MESSAGES.template("en", key) else en(key)
    assert reply.texts == (wanted,)
    assert [c.state for c in codes_of(w, 1001)] == [state]
    assert not CODE_RE.search(reply.text)
    # the next CODE gets the paid days, minted once
    assert "5 days" in send(w, "CODE").text
    assert upstream_count(w, 1001) == 1


def test_code_refused_upstream_says_to_contact_the_agent(w):
    with w.session() as s:
        s.add(Device(product_id=1101, oem_serial="OVES001101", value_per_day=Decimal(50)))
    w.customer(AMINA, 1101)
    w.pay(1101, 5, "p1")
    assert send(w, "CODE").texts == (en("code_refused", device="1101"),)


# -- RESEND, STATUS, HISTORY, DEVICES -------------------------------------------------------


def test_resend_returns_the_latest_code_and_never_mints(w):
    w.customer(AMINA, 1001)
    assert send(w, "RESEND").texts == (en("no_code_yet", device="1001"),)
    w.pay(1001, 4, "p1")
    send(w, "CODE")
    (code,) = codes_of(w, 1001)
    w.pay(1001, 6, "p2")  # paid but not asked for: RESEND must not mint it
    for text in ("RESEND", "resend 1001", "again", "renvoyer", "tuma tena"):
        assert send(w, text).texts == (
            en("code_resent", device="1001", code=code.code, date=day(code.minted_at)),
        ), text
    assert code_count(w) == 1 and upstream_count(w, 1001) == 1


def test_status_of_a_running_device_shows_days_left_unredeemed_days_and_the_last_code(w):
    w.customer(AMINA, 1001)
    w.pay(1001, 10, "p1")
    send(w, "CODE")
    w.pay(1001, 3, "p2")
    device, (code,) = w.device(1001), codes_of(w, 1001)
    assert send(w, "STATUS").texts == (
        en(
            "status_active",
            device="1001",
            days_left=10,
            until=day(device.credit_until),
            unredeemed=3,
            last_date=day(code.minted_at),
        ),
    )


STATES = [
    pytest.param(dict(state="free"), "status_free", id="unlocked for ever"),
    pytest.param(dict(state="locked"), "status_locked", id="locked"),
]


@pytest.mark.parametrize("change, key", STATES)
def test_status_of_a_free_or_locked_device(w, change, key):
    w.customer(AMINA, 1001)
    with w.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1001))
        for name, value in change.items():
            setattr(device, name, value)
    assert send(w, "status").texts == (en(key, device="1001"),)


def test_status_of_an_expired_device(w):
    w.customer(AMINA, 1001)
    w.pay(1001, 1, "p1")
    send(w, "CODE")
    ended = utcnow() - timedelta(days=3)
    with w.session() as s:
        s.scalar(select(Device).where(Device.product_id == 1001)).credit_until = ended
    (code,) = codes_of(w, 1001)
    assert send(w, "STATUS").texts == (
        en(
            "status_expired",
            device="1001",
            until=day(ended),
            unredeemed=0,
            last_date=day(code.minted_at),
        ),
    )


def test_history_lists_the_last_three_codes_in_the_order_to_enter_them(w):
    w.customer(AMINA, 1001)
    for days in (1, 2, 3, 4):
        w.pay(1001, days, f"p{days}")
        send(w, "CODE")
    codes = codes_of(w, 1001)
    assert [c.days for c in codes] == [1, 2, 3, 4]
    lines = send(w, "HISTORY").text.split("\n")
    assert lines == [en("history_header", device="1001")] + [
        en("history_line", date=day(c.minted_at), days=c.days, code=c.code) for c in codes[1:]
    ]
    assert codes[0].code not in "\n".join(lines)
    device = w.simulator(1001)  # entered as shown, after the first: each adds its own days
    device.enter(codes[0].code)
    assert [device.enter(c.code).days for c in codes[1:]] == [2, 3, 4]


def test_history_with_no_code(w):
    w.customer(AMINA, 1001)
    assert send(w, "HISTORY").texts == (en("history_empty"),)


def test_devices_lists_the_references_the_customer_can_type(w):
    w.customer(AMINA, 1002, 1001)
    assert send(w, "DEVICES").text == "\n".join(
        [en("devices_header"), "1001 OVES001001", "1002 OVES001002"]
    )


# -- several devices, other people's devices -------------------------------------------------


def test_a_customer_with_several_devices_is_asked_which_one(w):
    w.customer(AMINA, 1001, 1002)
    w.pay(1002, 5, "p1")
    for text in ("CODE", "RESEND", "STATUS", "HISTORY"):
        assert send(w, text).texts == (en("choose_device", refs="1001, 1002"),), text
    assert code_count(w) == 0
    reply = send(w, "CODE 1002")
    assert reply.text.startswith("New code for 1002:") and "5 days" in reply.text
    assert [c.days for c in codes_of(w, 1002)] == [5] and codes_of(w, 1001) == []
    assert send(w, "code oves001002").texts[0].startswith("No new payment found.")


OTHER_DEVICES = [
    pytest.param("1003", id="someone else's device by product id"),
    pytest.param("OVES001003", id="someone else's device by serial"),
    pytest.param("1050", id="a device nobody owns"),
    pytest.param("1101", id="another distributor's device"),
    pytest.param("9999", id="a device that does not exist"),
    pytest.param("OVES009999", id="a serial that does not exist"),
]


@pytest.mark.parametrize("command", ["CODE", "RESEND", "STATUS", "HISTORY"])
def test_a_device_that_is_not_yours_gets_the_same_answer_as_one_that_does_not_exist(w, command):
    w.customer(AMINA, 1001)
    w.customer(BARAKA, 1003, name="Baraka")
    w.pay(1003, 9, "baraka-paid")
    send(w, "CODE", sender=BARAKA)
    before = code_count(w)
    answers = {
        ref: send(w, f"{command} {ref}").texts
        for ref in ("1003", "OVES001003", "1050", "1101", "9999", "OVES009999")
    }
    assert set(answers.values()) == {(en("unknown_device"),)}, answers
    assert code_count(w) == before


# -- who is asking ------------------------------------------------------------------------------

UNKNOWN_SENDER_TEXTS = [
    pytest.param("CODE", id="code"),
    pytest.param("CODE 1001", id="code for a paid device"),
    pytest.param("CODE 9999", id="code for a device that does not exist"),
    pytest.param("STATUS 1001", id="status"),
    pytest.param("HISTORY OVES001001", id="history by serial"),
    pytest.param("DEVICES", id="devices"),
    pytest.param("RESEND 1001", id="resend"),
    pytest.param("HELP", id="help"),
    pytest.param("LANG fr", id="lang"),
    pytest.param("hello", id="chatter"),
]


@pytest.mark.parametrize("text", UNKNOWN_SENDER_TEXTS)
def test_an_unknown_sender_learns_only_how_to_register(quiet, text):
    reply = send(quiet, text, sender=STRANGER)
    assert reply.texts == (en("not_registered"),)
    assert code_count(quiet) == 1 and customer(quiet, STRANGER) is None


def test_an_unparseable_sender_is_treated_as_unknown(w):
    assert send(w, "CODE", sender="not-a-number").texts == (en("not_registered"),)


def test_stop_from_an_unknown_sender_is_confirmed_and_records_nothing(w):
    assert send(w, "STOP", sender=STRANGER).texts == (en("opted_out"),)
    assert customer(w, STRANGER) is None


# -- help, language, opt-out ------------------------------------------------------------

HELP_TEXTS = [
    pytest.param("HELP", id="help"),
    pytest.param("aide", id="french aide"),
    pytest.param("?", id="question mark"),
    pytest.param("hello there", id="chatter"),
    pytest.param("", id="empty"),
    pytest.param("\U0001f600\U0001f31e", id="emoji"),
    pytest.param("CODE " * 100, id="very long"),
    pytest.param("'; DROP TABLE customers; --", id="sql injection"),
    pytest.param("<Response><Message>x</Message></Response>", id="twiml injection"),
    pytest.param("CODE 1001 1002", id="two devices"),
]


@pytest.mark.parametrize("text", HELP_TEXTS)
def test_help_and_anything_unreadable_get_the_short_help(quiet, text):
    assert send(quiet, text).texts == (en("help"),)
    assert code_count(quiet) == 1 and customer(quiet, AMINA).language == "en"


def test_lang_changes_the_language_of_every_later_reply(w):
    w.customer(AMINA, 1001)
    w.pay(1001, 2, "p1")
    assert send(w, "LANG fr").texts == (MESSAGES.render("fr", "lang_set"),)
    assert customer(w, AMINA).language == "fr"
    reply = send(w, "CODE")
    (code,) = codes_of(w, 1001)
    assert reply.texts == (
        MESSAGES.render(
            "fr",
            "code_minted",
            device="1001",
            code=code.code,
            days=2,
            until=day(w.device(1001).credit_until),
        ),
    )
    assert "jours" in reply.text
    assert send(w, "lugha sw").texts == (MESSAGES.render("sw", "lang_set"),)
    assert customer(w, AMINA).language == "sw"


@pytest.mark.parametrize("text", ["LANG", "LANG de", "langue klingon"])
def test_lang_without_a_known_language_lists_the_choices_and_changes_nothing(quiet, text):
    assert send(quiet, text).texts == (en("lang_choose"),)
    assert customer(quiet, AMINA).language == "en"


# label, the customer's language, channel, the STOP word, the START word
STOP_START = [
    pytest.param("en", "sms", "STOP", "START", id="en sms STOP START"),
    pytest.param("en", "telegram", "/stop", "/start", id="en telegram /stop /start"),
    pytest.param("en", "sms", "unsubscribe please", "unstop", id="en sms with words, UNSTOP"),
    pytest.param("fr", "sms", "ARRÊT", "DÉMARRER", id="fr sms ARRÊT DÉMARRER"),
    pytest.param("fr", "telegram", "arret", "demarrer", id="fr telegram arret demarrer"),
    pytest.param("fr", "sms", "Arrêter", "reprendre", id="fr sms Arrêter reprendre"),
    pytest.param("sw", "sms", "SIMAMA", "ANZA", id="sw sms SIMAMA ANZA"),
    pytest.param("sw", "telegram", "/simama", "anza", id="sw telegram /simama anza"),
    pytest.param("sw", "sms", "STOP", "START", id="sw customer, English words: answered in sw"),
]


@pytest.mark.parametrize("lang, channel, stop_word, start_word", STOP_START)
def test_stop_and_start_are_confirmed_in_the_customers_language(
    w, lang, channel, stop_word, start_word
):
    customer_id = w.customer(AMINA, 1001, language=lang)
    sender = AMINA
    if channel == "telegram":
        with w.session() as s:
            s.add(TelegramLink(customer_id=customer_id, telegram_user_id=4242, chat_id=4242))
        sender = "4242"

    def say(text):
        inbound = Inbound(channel=channel, provider_id=f"{next(_ids)}", sender=sender, text=text)
        return converse(w.services, inbound).texts

    stopped = say(stop_word)
    assert stopped == (MESSAGES.render(lang, "opted_out"),)
    assert gsm7.fits_one_sms(stopped[0]) and "START" in stopped[0]
    assert customer(w, AMINA).opted_out is True
    with w.session() as s:  # no pushes while opted out
        assert outbox.enqueue(s, s.get(Customer, customer_id), "a reminder") is None
    assert say("HELP") == (MESSAGES.render(lang, "help"),)  # what they write is answered
    assert customer(w, AMINA).opted_out is True
    assert say(start_word) == (MESSAGES.render(lang, "opted_in"),)
    assert customer(w, AMINA).opted_out is False
    with w.session() as s:
        assert outbox.enqueue(s, s.get(Customer, customer_id), "a reminder") is not None


@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_the_opt_out_and_opt_in_confirmations_fit_one_gsm7_sms(lang):
    for key in ("opted_out", "opted_in"):
        assert gsm7.fits_one_sms(MESSAGES.render(lang, key)), (lang, key)


def test_the_channel_used_last_is_remembered(w):
    w.customer(AMINA, 1001)
    send(w, "HELP")
    assert customer(w, AMINA).last_channel == "sms"


def test_start_from_a_linked_telegram_chat_shows_help_and_opts_back_in(sqlite_world):
    from bot.inbound import Inbound
    from bot.storage.models import Customer, TelegramLink
    from tests.harness import converse

    w = sqlite_world
    customer_id = w.customer("+254712345678", 1001)
    with w.session() as s:
        s.add(TelegramLink(customer_id=customer_id, telegram_user_id=4242, chat_id=4242))

    def start(update_id: int):
        return converse(
            w.services,
            Inbound(channel="telegram", provider_id=str(update_id), sender="4242", text="/start"),
        )

    help_text = w.services.messages.render("en", "help")
    assert start(1).texts == (help_text,)
    with w.session() as s:
        s.get(Customer, customer_id).opted_out = True
    assert start(2).texts == (w.services.messages.render("en", "opted_in"),)
    with w.session() as s:
        assert s.get(Customer, customer_id).opted_out is False
