"""The agent USSD menu in the core (bot/agents/menu.py and its screens, actions and state).

Driven like a gateway drives it. The walk of every menu path over HTTP is in
tests/webhooks/test_ussd.py; here are the behaviours behind it: codes that devices accept,
idempotent confirms, PIN counting and the lock, the daily cap, a slow or failing code
service, and what reaches the logs.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from bot.agents import actions as agent_menu_actions
from bot.agents import menu as agent_menu
from bot.agents import screens
from bot.agents import state as menu_state
from bot.agents.pins import add_agent, remove
from bot.inbound import Inbound
from bot.settings import Settings
from bot.storage.models import (
    Agent,
    Code,
    Customer,
    InboundMessage,
    OutboxMessage,
    Payment,
)
from bot.text.templates import Messages
from tests.harness import (
    ADMIN,
    ADMIN_PIN,
    AGENT,
    OTHER_OWNER,
    OWNER,
    PIN,
    STRANGER,
    check_screen,
    converse,
    populate_agents,
)


class Dial:
    """One USSD session: every request carries the whole input path, like the gateway's."""

    def __init__(self, world, phone: str):
        self.world, self.phone, self.id, self.inputs = world, phone, uuid.uuid4().hex, []

    def path(self) -> str:
        return "*".join(self.inputs)

    def send(self, *values: str):
        reply = None
        for value in values or (None,):
            if value is not None:
                self.inputs.append(value)
            reply = ussd(self.world, self.phone, self.id, self.path())
            check_screen(reply.text)
        return reply


def ussd(world, phone: str, session_id: str, text: str):
    inbound = Inbound(
        channel="ussd",
        provider_id=agent_menu.provider_id(session_id, text),
        sender=phone,
        text=text,
    )
    return converse(world.services, inbound, agent_menu.RESPONDER)


def code_in(text: str) -> str:
    start = text.index("*")
    return text[start : text.index("#", start) + 1]


def count(world, model, *where) -> int:
    with world.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def agent_row(world, phone=AGENT) -> Agent:
    with world.session() as s:
        return s.scalar(select(Agent).where(Agent.phone == phone))


@pytest.fixture
def w(world):
    return populate_agents(world)


# -- selling days ---------------------------------------------------------------------


def test_a_sale_gives_a_code_the_device_accepts_with_exactly_those_days(w):
    dial = Dial(w, AGENT)
    dial.send()
    confirm = dial.send(PIN, "1", "1001", "30")
    assert not confirm.end and "30 days" in confirm.text and "+254*****678" in confirm.text
    done = dial.send("1")
    assert done.end
    code = code_in(done.text)
    entry = w.simulator(1001).enter(code)
    assert (entry.outcome, entry.days) == ("days", 30)
    with w.session() as s:
        payment = s.scalar(
            select(Payment).where(Payment.reference == f"ussd:{agent_id(w, AGENT)}:{dial.id}")
        )
        assert (payment.days, payment.source, payment.code.code) == (30, "agent", code)
        assert payment.agent.phone == AGENT


def test_the_owner_gets_the_code_by_message_and_code_by_sms_returns_it(w):
    dial = Dial(w, AGENT)
    code = code_in(dial.send("", PIN, "1", "1001", "7", "1").text)
    with w.session() as s:
        owner = s.scalar(select(Customer).where(Customer.phone == OWNER))
        bodies = s.scalars(
            select(OutboxMessage.body).where(OutboxMessage.customer_id == owner.id)
        ).all()
    assert len(bodies) == 1 and code in bodies[0]
    reply = converse(
        w.services, Inbound(channel="sms", provider_id="SM-after-sale", sender=OWNER, text="CODE")
    )
    assert reply.text.startswith("No new payment found. Latest code")
    assert code in reply.text


def test_a_replayed_confirm_mints_nothing_and_returns_the_same_code(w):
    dial = Dial(w, AGENT)
    first = dial.send("", PIN, "1", "1001", "12", "1")
    codes, sent = count(w, Code), count(w, OutboxMessage)
    again = dial.send()  # the gateway repeats the same request
    assert again == first
    # Even answered afresh (the stored reply lost, e.g. a crash before commit):
    with w.session() as s:
        inbound = Inbound(channel="ussd", provider_id="not-stored", sender=AGENT, text=dial.path())
        fresh = agent_menu.respond(
            w.services,
            s,
            dataclasses.replace(inbound, provider_id=agent_menu.provider_id(dial.id, "replayed")),
        )
    assert code_in(fresh.text) == code_in(first.text)
    assert (count(w, Code), count(w, OutboxMessage)) == (codes, sent)
    assert count(w, Payment, Payment.reference == f"ussd:{agent_id(w, AGENT)}:{dial.id}") == 1


def test_a_sale_needs_an_owner(w):
    reply = Dial(w, AGENT).send("", PIN, "1", "1002")
    assert not reply.end and "OVES001002 has no owner" in reply.text


def test_the_daily_cap_limits_days_sold_per_agent(database_url, tmp_path):
    from tests.harness import build_world

    world = populate_agents(build_world(database_url, tmp_path, agent_daily_days_cap=10))
    try:
        assert Dial(world, AGENT).send("", PIN, "1", "1001", "8", "1").end
        over = Dial(world, AGENT).send("", PIN, "1", "1001", "3")
        assert not over.end and "2 more days" in over.text
        assert "Sell 2 days" in Dial(world, AGENT).send("", PIN, "1", "1001", "2").text
        assert "Sell 9 days" in Dial(world, ADMIN).send("", ADMIN_PIN, "1", "1001", "9").text
    finally:
        world.services.close()


def test_a_slow_code_service_ends_saying_the_code_comes_by_sms(database_url, tmp_path):
    from tests.harness import build_world

    world = populate_agents(build_world(database_url, tmp_path, ussd_mint_budget=0.3))
    try:
        world.emulator.mint_then_timeout(1, delay=1.5)
        reply = Dial(world, AGENT).send("", PIN, "1", "1001", "9", "1")
        assert reply.end and "will reach the customer by SMS" in reply.text
        assert count(world, Code, Code.state == "unknown") == 1
        assert count(world, Payment, Payment.days == 9) == 1
    finally:
        world.services.close()


def test_an_unreachable_code_service_keeps_the_payment(w):
    w.emulator.fail_next(1, 429)
    reply = Dial(w, AGENT).send("", PIN, "1", "1001", "4", "1")
    assert reply.end and "recorded" in reply.text and "send CODE" in reply.text
    assert count(w, Payment, Payment.days == 4, Payment.code_id.is_(None)) == 1


def test_only_the_last_input_acts(w):
    codes = count(w, Code)
    reply = ussd(w, AGENT, "past-the-end", f"{PIN}*1*1001*3*1*1")
    assert reply.end and reply.text == "Session ended. Please dial again."
    assert count(w, Code) == codes and count(w, Payment, Payment.days == 3) == 0


# -- the other flows ------------------------------------------------------------------


def test_register_a_new_customer(w):
    reply = Dial(w, AGENT).send("", PIN, "2", "OVES001002", "0712 000 111", "Baraka", "1")
    assert reply.end and "OVES001002 is now registered to Baraka +254*****111" in reply.text
    device = w.device(1002)
    with w.session() as s:
        customer = s.get(Customer, device.owner_id)
        assert (customer.phone, customer.name, customer.language) == (
            "+254712000111",
            "Baraka",
            "en",
        )


def test_transfer_needs_an_explicit_confirm(w):
    dial = Dial(w, AGENT)
    ask = dial.send("", PIN, "2", "1001")
    assert "OVES001001 belongs to +254*****678" in ask.text
    assert "Press 1" in dial.send("2").text
    done = dial.send("1", OTHER_OWNER, "Juma K", "1")
    assert done.end
    with w.session() as s:
        assert s.get(Customer, w.device(1001).owner_id).phone == OTHER_OWNER
        assert s.scalar(select(Customer).where(Customer.phone == OTHER_OWNER)).name == "Juma K"


def test_resend_shows_the_stored_code_and_queues_it_without_minting(w):
    codes = count(w, Code)
    reply = Dial(w, AGENT).send("", PIN, "3", "1003")
    assert reply.end and "Sent to the customer." in reply.text
    assert count(w, Code) == codes
    with w.session() as s:
        latest = w.ledger.latest_code(s, w.device(1003))
        message = s.scalar(select(OutboxMessage).where(OutboxMessage.code_id == latest.id))
    assert latest.code in reply.text and latest.code in message.body
    assert message.recipient == OTHER_OWNER


def test_status_shows_the_masked_owner_credit_and_last_code(w):
    reply = Dial(w, AGENT).send("", PIN, "4", "1003")
    until = w.device(1003).credit_until.strftime("%Y-%m-%d")
    assert reply.end
    assert f"Owner: +254*****333\nCredit until: {until}\nLast code: 20" in reply.text


@pytest.mark.parametrize("choice, kind, outcome", [("5", "free", "free"), ("6", "reset", "reset")])
def test_admin_special_codes_work_on_the_device(w, choice, kind, outcome):
    reply = Dial(w, ADMIN).send("", ADMIN_PIN, choice, "1001", "1")
    assert reply.end and reply.text.startswith(f"{kind.capitalize()} code for OVES001001")
    assert w.simulator(1001).enter(code_in(reply.text)).outcome == outcome


def test_a_plain_agent_gets_no_special_codes(w):
    codes = count(w, Code)
    for choice in ("5", "6"):
        reply = Dial(w, AGENT).send("", PIN, choice)
        assert reply.end and "Only admin agents" in reply.text
    assert count(w, Code) == codes


def test_a_refused_special_code_is_reported_plainly(w):
    w.emulator.fail_next(1, 403)
    reply = Dial(w, ADMIN).send("", ADMIN_PIN, "5", "1001", "1")
    assert reply.end and "refused" in reply.text and "allowance" in reply.text


# -- PINs -----------------------------------------------------------------------------


def test_three_wrong_pins_lock_the_agent_for_the_configured_minutes(w):
    dial = Dial(w, AGENT)
    assert "2 tries left" in dial.send("", "1111").text
    assert "1 try left" in dial.send("2222").text
    locked = dial.send("3333")
    assert locked.end and "15 min" in locked.text
    assert Dial(w, AGENT).send().end  # even the first screen, even with the right PIN next
    later = w.services.clock() + timedelta(minutes=15, seconds=1)
    w.services = dataclasses.replace(w.services, clock=lambda: later)
    assert "1 Sell days" in Dial(w, AGENT).send("", PIN).text


def test_a_replayed_path_counts_each_wrong_pin_once(w):
    dial = Dial(w, AGENT)
    dial.send("", "1111")
    assert agent_row(w).failed_attempts == 1
    dial.send(PIN, "1", "1001")  # "1111" is in every later path
    assert agent_row(w).failed_attempts == 0
    other = Dial(w, AGENT)
    other.send("", "9999", "9998")
    dial.send("30")  # replays the old PIN entries: nothing counted, nothing reset
    assert agent_row(w).failed_attempts == 2


def test_a_crafted_path_counts_every_guess(w):
    reply = ussd(w, AGENT, "crafted", "1111*2222*3333*" + PIN)
    assert reply.end and "Session ended" in reply.text
    assert agent_row(w).locked_until is not None


def test_a_pin_of_the_wrong_shape_is_not_a_guess(w):
    assert "4 to 8 digits" in Dial(w, AGENT).send("", "12").text
    assert agent_row(w).failed_attempts == 0


def test_an_unknown_number_learns_nothing(w):
    reply = Dial(w, STRANGER).send()
    assert reply.end and reply.text == "This number is not registered as an agent."


def test_a_removed_agent_is_refused_like_a_stranger_and_its_sales_stay_its_own(w):
    sold = Dial(w, AGENT).send("", PIN, "1", "1001", "7", "1")
    assert sold.end and "*" in sold.text
    with w.session() as s:
        agent, removed = remove(s, AGENT)
    assert removed
    for path in (("",), ("", PIN), ("", PIN, "1", "1001", "7", "1")):
        reply = Dial(w, AGENT).send(*path)
        assert reply.text == MESSAGES.render("en", "ussd_unknown_agent"), path
    assert count(w, Payment) == 2  # the seed and the sale, nothing new
    with w.session() as s:
        payment = s.scalar(select(Payment).where(Payment.source == "agent"))
        assert payment.agent.phone == AGENT and payment.agent.removed_at is not None
    with w.session() as s:
        add_agent(s, AGENT, "Wanjiru", "8642")  # reinstated, with a new PIN
    assert not Dial(w, AGENT).send("", "8642").end


def test_the_pin_never_reaches_a_log_nor_the_inbound_table(w, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    Dial(w, AGENT).send("", PIN, "1", "1001", "3", "1")
    Dial(w, AGENT).send("", "8642", "8642")
    monkeypatch.setattr(agent_menu_actions, "ACTIONS", {})  # any crash is logged too
    monkeypatch.setattr(agent_menu, "ACTIONS", {})
    assert "went wrong" in Dial(w, AGENT).send("", PIN, "4", "1001").text
    assert "failed" in caplog.text
    assert PIN not in caplog.text and "8642" not in caplog.text
    with w.session() as s:
        ids = s.scalars(select(InboundMessage.provider_id)).all()
    assert ids and not any(PIN in i or "8642" in i for i in ids)


# -- wording --------------------------------------------------------------------------
# Worst cases: a 16-character serial, 40-character names, the longest numbers.
LONG = dict(
    device="TEST2503000017AB",
    owner="+254*****678",
    phone="+254*****678",
    name="N" * 40,
    days=1095,
    left=1095,
    code="*024 413 975 593 119 504 641#",
    codes="\n".join(["*024 413 975 593 119 504 641#"] * 2),
    count=99,
    date="2029-12-31",
    until="2029-12-31",
    minutes=1440,
)
MESSAGES = Messages.load()
LANGUAGES = ("en", "fr", "sw")
USSD_KEYS = sorted(k for k in MESSAGES.templates["en"] if k.startswith("ussd_"))
HINTS = [k for k in USSD_KEYS if k.startswith("ussd_hint_")]
SENT_AFTER = ("ussd_sold", "ussd_resent", "ussd_sold_too_many")  # + "\nSent to ..."


def long_values(lang: str) -> dict:
    """LONG, with the longest of the words the menu itself puts into {until} and {owner}."""

    def longest(*texts):
        return max(texts, key=len)

    return dict(
        LONG,
        until=longest(
            LONG["until"],
            MESSAGES.render(lang, "ussd_state_free"),
            MESSAGES.render(lang, "ussd_state_locked"),
        ),
        owner=longest(LONG["owner"], MESSAGES.render(lang, "ussd_no_owner")),
    )


@pytest.mark.parametrize("lang", ["fr", "sw"])
def test_every_ussd_key_is_translated(lang):
    """No screen of the menu falls back to English in French or Swahili."""
    assert [k for k in USSD_KEYS if k not in MESSAGES.templates[lang]] == []


@pytest.mark.parametrize("key", USSD_KEYS)
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_ussd_template_is_gsm7_and_fits_a_screen(lang, key):
    text = MESSAGES.render(lang, key, **long_values(lang))
    if key in SENT_AFTER:
        text += "\n" + MESSAGES.render(lang, "ussd_sent")
    check_screen(text)


@pytest.mark.parametrize("hint", [None, *HINTS])
@pytest.mark.parametrize("screen", sorted(screens.SCREENS))
@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_screen_fits_with_any_hint(lang, screen, hint):
    # The menu speaks the deployment's default language (settings.default_language).
    deps = SimpleNamespace(say=MESSAGES.render, settings=Settings(default_language=lang))
    ctx = menu_state.Ctx(deps, session=None, agent=None, session_id="s")
    device = SimpleNamespace(
        oem_serial=LONG["device"], product_id=1, owner=SimpleNamespace(phone="+254712345678")
    )
    retry = menu_state.Retry(hint, long_values(lang)) if hint else None
    for kind in ("free", "reset"):  # the two confirms of special_confirm
        state = menu_state.State(
            screen,
            dict(device=device, days=1095, kind=kind, name=LONG["name"], phone="+254712345678"),
        )
        text = screens.render(ctx, state, retry)
        check_screen(text)
        if screens.SCREENS[screen].nav:
            assert text.endswith("\n" + MESSAGES.render(lang, "ussd_nav"))
        if hint:
            assert text.startswith(MESSAGES.render(lang, hint, **long_values(lang)) + "\n")


# -- the menu in French and Swahili ---------------------------------------------------


@pytest.fixture
def world_in(database_url, tmp_path):
    """`world_in(lang)`: a populated world whose default language (the menu's) is `lang`."""
    from tests.harness import build_world

    made = []

    def build(lang):
        made.append(populate_agents(build_world(database_url, tmp_path, default_language=lang)))
        return made[-1]

    yield build
    for world in made:
        world.services.close()


@pytest.mark.parametrize(
    "lang, sold, sent",
    [
        pytest.param("fr", "Code pour OVES001001, 30 jours:\n*", "Envoyé au client.", id="fr"),
        pytest.param("sw", "Msimbo wa OVES001001, siku 30:\n*", "Imetumwa kwa mteja.", id="sw"),
    ],
)
def test_a_sale_in_the_default_language(world_in, lang, sold, sent):
    w = world_in(lang)
    dial = Dial(w, AGENT)  # every screen is checked: at most 160 GSM-7 characters
    assert dial.send().text == MESSAGES.render(lang, "ussd_pin")
    assert dial.send(PIN).text == MESSAGES.render(lang, "ussd_menu")
    dial.send("1", "1001", "30")
    done = dial.send("1")
    assert done.end and done.text.startswith(sold) and done.text.endswith(sent)
    assert w.simulator(1001).enter(code_in(done.text)).days == 30
    with w.session() as s:  # the owner's SMS stays in the owner's language
        owner = s.scalar(select(Customer).where(Customer.phone == OWNER))
        body = s.scalar(select(OutboxMessage.body).where(OutboxMessage.customer_id == owner.id))
    assert owner.language == "en" and body.startswith("New code for")


@pytest.mark.parametrize("lang", ["fr", "sw"])
def test_register_in_the_default_language(world_in, lang):
    w = world_in(lang)
    reply = Dial(w, AGENT).send("", PIN, "2", "OVES001002", "0712 000 111", "Baraka", "1")
    assert reply.end and reply.text == MESSAGES.render(
        lang, "ussd_registered", device="OVES001002", name="Baraka", phone="+254*****111"
    )
    with w.session() as s:
        assert s.get(Customer, w.device(1002).owner_id).language == lang


@pytest.mark.parametrize("lang", ["fr", "sw"])
def test_refusals_in_the_default_language(world_in, lang):
    w = world_in(lang)
    assert Dial(w, STRANGER).send().text == MESSAGES.render(lang, "ussd_unknown_agent")
    assert Dial(w, AGENT).send("", PIN, "5").text == MESSAGES.render(lang, "ussd_admin_only")
    dial = Dial(w, AGENT)
    dial.send("", "1111", "2222")
    assert dial.send("3333").text == MESSAGES.render(lang, "ussd_locked", minutes=15)


def agent_id(world, phone: str) -> int:
    with world.session() as s:
        return s.scalar(select(Agent.id).where(Agent.phone == phone))
