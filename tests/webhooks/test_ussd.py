"""`POST /webhooks/ussd` over HTTP: a labelled table walking every menu path, then the edge.

Each case is one agent's sessions as Africa's Talking drives them: every request carries the
whole input path so far; NEW starts a new session. Every answer is checked: status 200,
text/plain, "CON " or "END ", a screen of at most 160 GSM-7 characters.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy import func, select

from bot.storage.models import Code
from bot.text.templates import Messages
from tests.harness import (
    ADMIN,
    ADMIN_PIN,
    AGENT,
    OTHER_OWNER,
    PIN,
    STRANGER,
    check_screen,
    populate_agents,
)
from webhooks.app import create_app

MESSAGES = Messages.load()

NEW = object()  # start a new session (the same phone)
LOGIN = [("", "CON", "Enter your PIN"), (PIN, "CON", "1 Sell days")]
ADMIN_LOGIN = [("", "CON", "Enter your PIN"), (ADMIN_PIN, "CON", "6 Reset code")]
SELL_1001 = LOGIN + [
    ("1", "CON", "Enter device ID or serial"),
    ("1001", "CON", "OVES001001\nEnter days"),
]
MENU = (
    "CON",
    "1 Sell days\n2 Register customer\n3 Resend code\n4 Device status\n5 Free code\n6 Reset code",
)

CASES = {
    # Who may use it.
    "unknown phone: END and nothing else": (
        STRANGER,
        [("", "END", "This number is not registered as an agent.")],
    ),
    "PIN opens the menu, exactly as DESIGN.md says": (AGENT, [LOGIN[0], (PIN, *MENU)]),
    "PIN of the wrong shape is re-asked": (AGENT, [LOGIN[0], ("12", "CON", "4 to 8 digits")]),
    "wrong PIN, then the right one": (
        AGENT,
        [LOGIN[0], ("1111", "CON", "Wrong PIN. 2 tries left"), (PIN, *MENU)],
    ),
    "three wrong PINs lock the agent, across sessions": (
        AGENT,
        [
            LOGIN[0],
            ("1111", "CON", "2 tries left"),
            NEW,
            LOGIN[0],
            ("2222", "CON", "1 try left"),
            ("3333", "END", "Try again in 15 min"),
            NEW,
            ("", "END", "Too many wrong PINs"),
        ],
    ),
    # The menu.
    "menu: unknown choice is re-asked": (AGENT, LOGIN + [("9", "CON", "Choose 1 to 6")]),
    "menu: 0 has nowhere to go back to": (AGENT, LOGIN + [("0", "CON", "Choose 1 to 6")]),
    "menu: 00 stays on the menu": (AGENT, LOGIN + [("00", *MENU)]),
    # 1 Sell days.
    "sell: device, days, confirm, code": (
        AGENT,
        SELL_1001
        + [
            ("30", "CON", "Sell 30 days for OVES001001\nOwner +254*****678\n1 Confirm"),
            ("1", "END", "Code for OVES001001, 30 days:\n*0"),
        ],
    ),
    "sell: by serial, lower case": (
        AGENT,
        LOGIN + [("1", "CON", "Enter device"), ("oves001001", "CON", "Enter days")],
    ),
    "sell: unknown device is re-asked": (
        AGENT,
        LOGIN + [("1", "CON", "Enter device"), ("9999", "CON", "Device not found.\nEnter device")],
    ),
    "sell: a device of another distributor is unknown": (
        AGENT,
        LOGIN + [("1", "CON", "Enter device"), ("1101", "CON", "Device not found.")],
    ),
    "sell: a device without owner is refused": (
        AGENT,
        LOGIN + [("1", "CON", "Enter device"), ("1002", "CON", "OVES001002 has no owner.")],
    ),
    "sell: days out of range are re-asked": (
        AGENT,
        SELL_1001
        + [
            ("1096", "CON", "1 to 1095"),
            ("2.5", "CON", "1 to 1095"),
            ("", "CON", "1 to 1095"),
            ("1095", "CON", "Sell 1095 days"),
        ],
    ),
    "sell: 0 goes back from days to device": (
        AGENT,
        SELL_1001 + [("0", "CON", "Enter device"), ("0", *MENU)],
    ),
    "sell: 0 goes back from confirm to days": (
        AGENT,
        SELL_1001
        + [("5", "CON", "Sell 5 days"), ("0", "CON", "Enter days"), ("6", "CON", "Sell 6 days")],
    ),
    "sell: 00 goes home from confirm": (
        AGENT,
        SELL_1001 + [("5", "CON", "Sell 5 days"), ("00", *MENU), ("4", "CON", "Enter device")],
    ),
    "sell: only 1 confirms": (
        AGENT,
        SELL_1001 + [("5", "CON", "Sell 5 days"), ("2", "CON", "Press 1 to confirm.\nSell 5 days")],
    ),
    # 2 Register customer.
    "register: a new customer on a device without owner": (
        AGENT,
        LOGIN
        + [
            ("2", "CON", "Enter device"),
            ("1002", "CON", "OVES001002\nEnter the customer's"),
            ("0712000111", "CON", "Enter the customer's name"),
            ("Baraka", "CON", "Register OVES001002 to Baraka +254*****111?"),
            ("1", "END", "OVES001002 is now registered to Baraka +254*****111."),
        ],
    ),
    "register: bad phone and name are re-asked": (
        AGENT,
        LOGIN
        + [
            ("2", "CON", "Enter device"),
            ("1002", "CON", "phone number"),
            ("12345", "CON", "Not a valid phone number."),
            ("0712000111", "CON", "name"),
            ("x", "CON", "2 to 40 letters"),
            ("0", "CON", "phone number"),
        ],
    ),
    "register: an owned device needs a transfer confirm": (
        AGENT,
        LOGIN
        + [
            ("2", "CON", "Enter device"),
            ("1001", "CON", "OVES001001 belongs to +254*****678.\n1 Register it to a new owner"),
            ("3", "CON", "Press 1 to confirm."),
            ("1", "CON", "phone number"),
            (OTHER_OWNER, "CON", "name"),
            ("Juma", "CON", "Register OVES001001 to Juma"),
            ("1", "END", "now registered to Juma +254*****333"),
        ],
    ),
    # 3 Resend code and 4 Device status.
    "resend: the stored code, sent again": (
        AGENT,
        LOGIN + [("3", "CON", "Enter device"), ("1003", "END", "Latest code for OVES001003 (")],
    ),
    "resend: no code yet": (
        AGENT,
        LOGIN + [("3", "CON", "Enter device"), ("1001", "END", "No code yet for OVES001001.")],
    ),
    "status: owner, credit, last code": (
        AGENT,
        LOGIN
        + [("4", "CON", "Enter device"), ("1003", "END", "OVES001003\nOwner: +254*****333\n")],
    ),
    "status: a device without owner": (
        AGENT,
        LOGIN + [("4", "CON", "Enter device"), ("1002", "END", "Owner: none\nCredit until: -")],
    ),
    # 5 Free code and 6 Reset code.
    "free: a plain agent is refused": (
        AGENT,
        LOGIN + [("5", "END", "Only admin agents can make free and reset codes.")],
    ),
    "reset: a plain agent is refused": (AGENT, LOGIN + [("6", "END", "Only admin agents")]),
    "free: admin confirms and gets the code": (
        ADMIN,
        ADMIN_LOGIN
        + [
            ("5", "CON", "Enter device"),
            ("1001", "CON", "FREE code for OVES001001"),
            ("1", "END", "Free code for OVES001001:\n*0"),
        ],
    ),
    "reset: admin, back from confirm, then confirms": (
        ADMIN,
        ADMIN_LOGIN
        + [
            ("6", "CON", "Enter device"),
            ("1001", "CON", "RESET code for OVES001001"),
            ("0", "CON", "Enter device"),
            ("1003", "CON", "RESET code for OVES001003"),
            ("1", "END", "Reset code for OVES001003:\n*0"),
        ],
    ),
}


@pytest.fixture
def client(world):
    populate_agents(world)
    return create_app(deps=world.services).test_client()


def post(client, **form):
    fields = dict(
        sessionId="ATUid_test",
        serviceCode="*384*123#",
        phoneNumber=AGENT,
        networkCode="63902",
        text="",
    )
    fields.update(form)
    response = client.post("/webhooks/ussd", data=fields)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    kind, _, screen = body.partition(" ")
    assert kind in ("CON", "END"), body
    check_screen(screen)
    return kind, screen


def walk(client, label):
    """Play one case of CASES; yield (value, want_kind, want_text, kind, screen) per step."""
    phone, steps = CASES[label]
    session, inputs, started = uuid.uuid4().hex, [], False
    for step in steps:
        if step is NEW:
            session, inputs, started = uuid.uuid4().hex, [], False
            continue
        value, want_kind, want_text = step
        if started:
            inputs.append(value)
        else:
            assert value == "", "a session starts with an empty text"
            started = True
        kind, screen = post(client, sessionId=session, phoneNumber=phone, text="*".join(inputs))
        yield value, want_kind, want_text, kind, screen


@pytest.mark.parametrize("label", list(CASES))
def test_menu_paths(client, label):
    for value, want_kind, want_text, kind, screen in walk(client, label):
        assert (kind, want_text in screen) == (want_kind, True), (label, value, screen)


@pytest.fixture
def client_in(database_url, tmp_path, lang):
    """A client on a populated world whose default language (the menu's) is `lang`."""
    from tests.harness import build_world

    world = populate_agents(build_world(database_url, tmp_path, default_language=lang))
    yield create_app(deps=world.services).test_client()
    world.services.close()


@pytest.mark.parametrize("label", list(CASES))
@pytest.mark.parametrize("lang", ["fr", "sw"])
def test_menu_paths_in_french_and_swahili(client_in, lang, label):
    """The same walks with DEFAULT_LANGUAGE=fr or sw: the same CON/END at every step,
    every real screen at most 160 GSM-7 characters (post checks), and no English left."""
    english = {MESSAGES.render("en", key) for key in ("ussd_nav", "ussd_menu", "ussd_pin")}
    for value, want_kind, want_text, kind, screen in walk(client_in, label):
        assert kind == want_kind, (label, value, screen)
        assert want_text not in screen, (label, value, screen)
        assert not any(text in screen for text in english), (label, value, screen)


@pytest.mark.parametrize("lang", ["en", "fr", "sw"])
def test_refusals_before_the_menu_in_every_language(client_in, lang):
    form = dict(sessionId="s8", serviceCode="*384*123#", phoneNumber=AGENT, text="")
    response = client_in.post("/webhooks/ussd", data=dict(form, sessionId=""))
    assert response.get_data(as_text=True) == "END " + MESSAGES.render(lang, "ussd_bad_request")
    services = client_in.application.extensions["ovbot"]
    services.settings = services.settings.replace(ussd_service_codes=("*384*123#",))
    assert post(client_in, **dict(form, serviceCode="*999#")) == (
        "END",
        MESSAGES.render(lang, "ussd_wrong_service"),
    )


def test_a_repeated_request_is_answered_the_same_and_mints_nothing(client, world):
    path = f"{PIN}*1*1001*3*1"
    first = post(client, sessionId="ATUid_repeat", text=path)
    with world.session() as s:
        codes = s.scalar(select(func.count()).select_from(Code))
    assert post(client, sessionId="ATUid_repeat", text=path) == first
    with world.session() as s:
        assert s.scalar(select(func.count()).select_from(Code)) == codes


@pytest.mark.parametrize("missing", ["sessionId", "serviceCode", "phoneNumber"])
def test_a_missing_field_ends_politely_with_200(client, missing):
    fields = dict(sessionId="s1", serviceCode="*384*123#", phoneNumber=AGENT, text="")
    del fields[missing]
    response = client.post("/webhooks/ussd", data=fields)
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "END Incomplete request. Please dial again."


def test_a_missing_text_is_the_first_request(client):
    response = client.post(
        "/webhooks/ussd", data=dict(sessionId="s2", serviceCode="*384*123#", phoneNumber=AGENT)
    )
    assert response.get_data(as_text=True).startswith("CON ")


def test_national_phone_numbers_are_normalised(client):
    assert post(client, sessionId="s3", phoneNumber="0700000101")[0] == "CON"
    assert post(client, sessionId="s4", phoneNumber="254700000101")[0] == "CON"


def test_service_codes_can_be_restricted(world):
    populate_agents(world)
    world.services.settings = world.services.settings.replace(ussd_service_codes=("*384*123#",))
    client = create_app(deps=world.services).test_client()
    assert post(client, sessionId="s5", serviceCode="*384*123#")[0] == "CON"
    assert post(client, sessionId="s6", serviceCode="*999#") == (
        "END",
        "This service code is not served here.",
    )


def test_a_crash_is_an_end_screen(client, monkeypatch):
    from bot.agents import menu as agent_menu

    def boom(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr(agent_menu, "_replay", boom)
    kind, screen = post(client, sessionId="s7", text=PIN)
    assert kind == "END" and "went wrong" in screen


# -- hostile paths (issue 9 #1): bounded at the edge, answered in O(length) ------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("*" * 60, id="61 empty inputs"),
        pytest.param("*" * 65_000, id="65,000 raw stars"),
        pytest.param("1" * 601, id="601 characters"),
        pytest.param(f"{PIN}*" + "1*" * 60, id="more inputs than any real path"),
    ],
)
def test_a_path_no_gateway_sends_ends_at_once_and_touches_nothing(client, world, text):
    queries = count_queries(world)
    kind, screen = post(client, text=text)
    assert (kind, screen) == ("END", MESSAGES.render("en", "ussd_session_over"))
    assert queries() == 0  # refused at the edge: not even the agent is looked up


def test_answering_a_long_path_costs_its_length_once_not_per_prefix(client, world):
    """59 empty inputs on the PIN screen: a hint each, no look-up or hash per prefix."""
    queries = count_queries(world)
    post(client, text="*" * 58)
    few = queries()
    post(client, text="*" * 10, sessionId="other")
    assert few <= queries() - few + 2  # about the same as a 10-input path


def test_more_pin_tries_in_one_path_than_the_lock_allows_end_the_session(client, world):
    kind, screen = post(client, text="1111*2222*3333*4444")
    assert (kind, screen) == ("END", MESSAGES.render("en", "ussd_session_over"))


def count_queries(world):
    """A counter of the SQL statements the app runs from now on."""
    from sqlalchemy import event

    seen = []
    event.listen(world.services.engine, "before_cursor_execute", lambda *args: seen.append(1))
    return lambda: len(seen)


@pytest.mark.parametrize("field", ["sessionId", "phoneNumber", "serviceCode", "text"])
def test_a_nul_in_any_field_ends_politely_and_stores_nothing(client, world, field):
    queries = count_queries(world)
    kind, screen = post(client, **{field: "1\x00"})
    assert (kind, screen) == ("END", MESSAGES.render("en", "ussd_bad_request"))
    assert queries() == 0


def test_a_free_code_for_a_device_already_free_is_refused_plainly(client, caplog):
    """Found by the fuzz test: it was an ERROR ("refused upstream") and a misleading screen."""
    first = post(client, phoneNumber=ADMIN, sessionId="f1", text=f"{ADMIN_PIN}*5*1001*1")
    assert first[0] == "END" and "*0" in first[1]
    with caplog.at_level(logging.INFO):
        kind, screen = post(client, phoneNumber=ADMIN, sessionId="f2", text=f"{ADMIN_PIN}*5*1001*1")
    assert (kind, screen) == (
        "END",
        MESSAGES.render("en", "ussd_already_free", device="OVES001001"),
    )
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
