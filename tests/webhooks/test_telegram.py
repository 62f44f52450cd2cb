"""`POST /webhooks/telegram` over HTTP: labelled tables of real Telegram Update shapes.

The updates follow the Bot API's Update, Message, Chat, User, Contact, Sticker and
CallbackQuery objects as Telegram posts them, with the secret token header Telegram adds
when the webhook was set with `secret_token`.
"""

from __future__ import annotations

import copy
import json
import logging

import pytest
from sqlalchemy import func, select

from bot.storage.models import Code, Customer, InboundMessage, OutboxMessage, TelegramLink
from bot.text.templates import Messages
from tests.harness import SECRETS, build_world, sqlite_file_url

PATH = "/webhooks/telegram"
HEADER = "X-Telegram-Bot-Api-Secret-Token"
AMINA = "+254712345678"
MESSAGES = Messages.load()

USER = {
    "id": 111222333,
    "is_bot": False,
    "first_name": "Amina",
    "last_name": "Wanjiru",
    "username": "amina_w",
    "language_code": "en",
}
STRANGER = {"id": 444555666, "is_bot": False, "first_name": "Eve", "language_code": "sw"}
BOT = {"id": 7000000001, "is_bot": True, "first_name": "OVES", "username": "OvesTokenBot"}
DATE = 1717171717


def chat_of(user: dict) -> dict:
    return {
        "id": user["id"],
        "first_name": user["first_name"],
        "username": user.get("username", ""),
        "type": "private",
    }


def text_update(update_id: int, text: str, user: dict = USER, chat: dict | None = None) -> dict:
    message = {
        "message_id": 1000 + update_id,
        "from": user,
        "chat": chat or chat_of(user),
        "date": DATE,
        "text": text,
    }
    if text.startswith("/"):
        message["entities"] = [{"offset": 0, "length": len(text.split()[0]), "type": "bot_command"}]
    return {"update_id": update_id, "message": message}


def contact_update(
    update_id: int, phone: str, contact_user_id: int | None, user: dict = USER
) -> dict:
    contact = {"phone_number": phone, "first_name": user["first_name"]}
    if contact_user_id is not None:
        contact["user_id"] = contact_user_id
    return {
        "update_id": update_id,
        "message": {
            "message_id": 2000 + update_id,
            "from": user,
            "chat": chat_of(user),
            "date": DATE,
            "contact": contact,
        },
    }


def post(client, update, secret: str | None = SECRETS["telegram_secret_token"], raw=None):
    headers = {HEADER: secret} if secret is not None else {}
    if raw is not None:
        return client.post(PATH, data=raw, headers=headers, content_type="application/json")
    return client.post(PATH, json=update, headers=headers)


def footprint(world) -> tuple:
    with world.session() as s:
        counts = tuple(
            s.scalar(select(func.count()).select_from(m))
            for m in (TelegramLink, Code, InboundMessage)
        )
    return counts + (world.emulator.store.history_page(1, 1001, 0, 1)[1],)


def en(key: str, **values) -> str:
    return MESSAGES.render("en", key, **values)


def ask_for_contact(chat_id: int, key: str = "telegram_share_contact") -> dict:
    return {
        "method": "sendMessage",
        "chat_id": chat_id,
        "text": en(key),
        "reply_markup": {
            "keyboard": [[{"text": en("telegram_share_button"), "request_contact": True}]],
            "resize_keyboard": True,
            "one_time_keyboard": True,
        },
    }


@pytest.fixture
def w(sqlite_world):
    sqlite_world.customer(AMINA, 1001, name="Amina")
    sqlite_world.pay(1001, 6, "paid-1")
    return sqlite_world


@pytest.fixture
def client(w):
    return w.client()


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One world for the tables of requests that must change nothing (SQLite)."""
    directory = tmp_path_factory.mktemp("telegram")
    world = build_world(sqlite_file_url(directory), directory)
    world.customer(AMINA, 1001, name="Amina")
    world.pay(1001, 6, "paid-1")
    yield world
    world.services.close()


def linked(client) -> None:
    response = post(client, contact_update(1, "254712345678", USER["id"]))
    assert response.get_json()["text"] == en("telegram_linked", name="Amina")
    assert response.get_json()["reply_markup"] == {"remove_keyboard": True}


# -- the start and the link ---------------------------------------------------------------


def test_start_asks_for_the_contact_with_a_request_contact_button(w, client):
    response = post(client, text_update(1, "/start"))
    assert response.status_code == 200 and response.mimetype == "application/json"
    body = response.get_json()
    assert body == ask_for_contact(USER["id"])
    assert body["reply_markup"]["keyboard"][0][0]["request_contact"] is True


UNLINKED = ["/code", "code", "STATUS 1001", "/devices", "hello"]


@pytest.mark.parametrize("text", UNLINKED)
def test_an_unlinked_user_learns_only_how_to_share_a_contact(shared, text):
    before = footprint(shared)
    update = text_update(50 + UNLINKED.index(text), text, user=STRANGER)
    assert post(shared.client(), update).get_json() == ask_for_contact(STRANGER["id"])
    assert footprint(shared)[:2] == before[:2] and footprint(shared)[-1] == before[-1]


OWN_CONTACTS = [
    pytest.param("254712345678", id="without the plus, as Telegram sends it"),
    pytest.param("+254712345678", id="with the plus"),
    pytest.param("0712345678", id="national format"),
]


@pytest.mark.parametrize("phone", OWN_CONTACTS)
def test_sharing_ones_own_registered_contact_links_the_chat_then_commands_work(w, client, phone):
    response = post(client, contact_update(1, phone, USER["id"]))
    assert response.get_json()["text"] == en("telegram_linked", name="Amina")
    with w.session() as s:
        link = s.scalar(select(TelegramLink))
        assert (link.telegram_user_id, link.chat_id) == (USER["id"], USER["id"])
    first = post(client, text_update(2, "/code")).get_json()
    with w.session() as s:
        (code,) = s.scalars(select(Code)).all()
    assert first["chat_id"] == USER["id"] and code.code in first["text"]
    assert "6 days" in first["text"] and "reply_markup" not in first
    assert w.simulator(1001).enter(code.code).days == 6
    for update_id, text in ((3, "code"), (4, "/code@OvesTokenBot"), (5, "/resend 1001")):
        again = post(client, text_update(update_id, text)).get_json()
        assert code.code in again["text"], text
    assert footprint(w)[1] == 1


NOT_LINKED = [
    pytest.param(
        contact_update(1, "254712345678", STRANGER["id"]),
        "telegram_contact_not_yours",
        True,
        id="someone else's contact (user_id differs)",
    ),
    pytest.param(
        contact_update(1, "254712345678", None),
        "telegram_contact_not_yours",
        True,
        id="an address-book contact without user_id",
    ),
    pytest.param(
        contact_update(1, "254712345678", USER["id"], user=STRANGER),
        "telegram_contact_not_yours",
        True,
        id="a stranger forwarding Amina's own contact",
    ),
    pytest.param(
        contact_update(1, "254799000000", USER["id"]),
        "telegram_contact_unknown",
        False,
        id="own contact, number not registered",
    ),
    pytest.param(
        contact_update(1, "not a number", USER["id"]),
        "telegram_contact_unknown",
        False,
        id="own contact, junk number",
    ),
]


@pytest.mark.parametrize("update, key, button", NOT_LINKED)
def test_a_contact_that_is_not_the_senders_own_registered_number_does_not_link(
    w, client, update, key, button
):
    sender = update["message"]["from"]["id"]
    body = post(client, update).get_json()
    assert body["text"] == en(key) and body["chat_id"] == sender
    assert ("reply_markup" in body) is button
    with w.session() as s:
        assert s.scalar(select(func.count()).select_from(TelegramLink)) == 0
    assert post(
        client, text_update(9, "/code", user=update["message"]["from"])
    ).get_json() == ask_for_contact(sender)
    assert footprint(w)[1] == 0


def test_a_linked_chat_does_not_let_another_user_in(w, client):
    linked(client)
    post(client, text_update(2, "/code"))
    assert post(client, text_update(3, "/code", user=STRANGER)).get_json() == ask_for_contact(
        STRANGER["id"]
    )


def test_a_repeated_update_id_returns_the_same_answer_and_causes_nothing_new(w, client):
    linked(client)
    first = post(client, text_update(2, "/code"))
    before = footprint(w)
    w.pay(1001, 4, "paid-2")
    again = post(client, text_update(2, "/code"))
    assert again.get_data() == first.get_data()
    assert footprint(w) == before
    relink = post(client, contact_update(1, "254712345678", USER["id"]))  # the same update
    assert relink.get_json()["text"] == en("telegram_linked", name="Amina")
    assert footprint(w) == before


def test_stop_on_telegram_is_confirmed(w, client):
    linked(client)
    response = post(client, text_update(2, "/stop"))
    assert response.status_code == 200
    assert response.get_json()["text"] == en("opted_out")
    with w.session() as s:
        assert s.scalar(select(Customer.opted_out).where(Customer.phone == AMINA)) is True


# -- updates we do not handle: empty 200 -----------------------------------------------------

STICKER = {
    "file_id": "CAACAgIAAxkBAAIBY2Z",
    "file_unique_id": "AgADnQEAAladvQo",
    "type": "regular",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
    "emoji": "\U0001f44d",
}
GROUP = {
    "id": -4001234567,
    "title": "Wanjiru family",
    "type": "group",
    "all_members_are_administrators": True,
}
CHANNEL = {"id": -1001234567890, "title": "OVES news", "type": "channel"}


def _edited() -> dict:
    update = text_update(7, "/code")
    message = update.pop("message")
    message["edit_date"] = DATE + 60
    return dict(update, edited_message=message)


IGNORED = [
    pytest.param(_edited(), id="edited_message"),
    pytest.param(
        {
            "update_id": 8,
            "channel_post": {
                "message_id": 5,
                "sender_chat": CHANNEL,
                "chat": CHANNEL,
                "date": DATE,
                "text": "CODE",
            },
        },
        id="channel_post",
    ),
    pytest.param(
        {
            "update_id": 9,
            "message": {
                "message_id": 6,
                "from": USER,
                "chat": chat_of(USER),
                "date": DATE,
                "sticker": STICKER,
            },
        },
        id="sticker",
    ),
    pytest.param(
        {
            "update_id": 10,
            "message": {
                "message_id": 7,
                "from": USER,
                "chat": chat_of(USER),
                "date": DATE,
                "photo": [
                    {
                        "file_id": "AgACAgQ",
                        "file_unique_id": "AQADx",
                        "width": 90,
                        "height": 67,
                        "file_size": 1254,
                    }
                ],
                "caption": "CODE",
            },
        },
        id="photo with a caption",
    ),
    pytest.param(text_update(11, "/code@OvesTokenBot", chat=GROUP), id="group chat command"),
    pytest.param(
        {
            "update_id": 12,
            "message": {
                "message_id": 8,
                "from": USER,
                "chat": GROUP,
                "date": DATE,
                "contact": {
                    "phone_number": "254712345678",
                    "first_name": "Amina",
                    "user_id": USER["id"],
                },
            },
        },
        id="contact shared in a group",
    ),
    pytest.param(
        {
            "update_id": 13,
            "callback_query": {
                "id": "4382bfdwdsb323b2d9",
                "from": USER,
                "chat_instance": "-5212341234",
                "inline_message_id": "AAAAAGa1",
                "data": "code 1001",
            },
        },
        id="callback_query of an inline-mode message",
    ),
    pytest.param(
        {
            "update_id": 16,
            "callback_query": {
                "id": "4382bfdwdsb323b2e0",
                "from": USER,
                "chat_instance": "-5212341234",
                "data": "code 1001",
                "message": {
                    "message_id": 9,
                    "from": BOT,
                    "chat": GROUP,
                    "date": DATE,
                    "text": "Choose",
                },
            },
        },
        id="callback_query in a group",
    ),
    pytest.param(
        {
            "update_id": 14,
            "my_chat_member": {
                "chat": chat_of(USER),
                "from": USER,
                "date": DATE,
                "old_chat_member": {"user": BOT, "status": "member"},
                "new_chat_member": {"user": BOT, "status": "kicked", "until_date": 0},
            },
        },
        id="user blocked the bot",
    ),
    pytest.param({"update_id": 15}, id="update with nothing in it"),
]


@pytest.mark.parametrize("update", IGNORED)
def test_updates_we_do_not_handle_get_an_empty_200_and_change_nothing(shared, update):
    client = shared.client()
    linked(client)
    before = footprint(shared)
    response = post(client, update)
    assert response.status_code == 200 and response.get_data() == b""
    assert footprint(shared) == before


# -- refused -------------------------------------------------------------------------------


def _with(update: dict, path: tuple, value) -> dict:
    update = copy.deepcopy(update)
    target = update
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return update


def _replies_nested(depth: int) -> str:
    """An Update whose message replies to a message that replies to ... `depth` deep."""
    head = json.dumps({"message_id": 1, "date": DATE, "chat": {"id": 1, "type": "private"}})[:-1]
    return (
        '{"update_id": 22, "message": '
        + (head + ', "reply_to_message": ') * depth
        + head
        + "}" * (depth + 1)
        + "}"
    )


_DELETE = object()
GOOD = text_update(20, "/code")
CONTACT = contact_update(21, "254712345678", USER["id"])
TOO_BIG = 2**63  # one more than a signed 64-bit column holds
REFUSED = [
    # label, update, raw body, secret header, settings, status
    pytest.param(GOOD, None, None, {}, 403, id="no secret header"),
    pytest.param(GOOD, None, "", {}, 403, id="empty secret header"),
    pytest.param(GOOD, None, "wrong-secret", {}, 403, id="wrong secret"),
    pytest.param(
        GOOD, None, SECRETS["telegram_secret_token"] + "x", {}, 403, id="secret with a suffix"
    ),
    pytest.param(CONTACT, None, "wrong-secret", {}, 403, id="forged contact"),
    pytest.param(
        GOOD, None, "", {"telegram_secret_token": None}, 403, id="secret unset: fail closed"
    ),
    pytest.param(GOOD, None, None, {"demo": True}, 403, id="demo with a secret still needs it"),
    pytest.param(None, "{not json", "ok", {}, 400, id="malformed JSON"),
    pytest.param(None, "", "ok", {}, 400, id="empty body"),
    pytest.param([GOOD], None, "ok", {}, 400, id="a JSON array"),
    pytest.param({"message": GOOD["message"]}, None, "ok", {}, 400, id="no update_id"),
    pytest.param(dict(GOOD, update_id="20"), None, "ok", {}, 400, id="update_id as text"),
    pytest.param(dict(GOOD, update_id=True), None, "ok", {}, 400, id="update_id as a boolean"),
    pytest.param(dict(GOOD, message="CODE"), None, "ok", {}, 400, id="message as text"),
    pytest.param(
        _with(GOOD, ("message", "date"), _DELETE), None, "ok", {}, 400, id="message without date"
    ),
    pytest.param(
        _with(GOOD, ("message", "chat"), _DELETE), None, "ok", {}, 400, id="message without chat"
    ),
    pytest.param(
        _with(GOOD, ("message", "date"), 10**20), None, "ok", {}, 400, id="date out of range"
    ),
    pytest.param(
        _with(GOOD, ("message", "date"), "yesterday"), None, "ok", {}, 400, id="date as text"
    ),
    pytest.param(
        _with(GOOD, ("message", "from", "id"), "amina"), None, "ok", {}, 400, id="sender id as text"
    ),
    pytest.param(
        _with(GOOD, ("message", "chat", "id"), "chat"), None, "ok", {}, 400, id="chat id as text"
    ),
    pytest.param(_with(GOOD, ("message", "text"), 42), None, "ok", {}, 400, id="text as a number"),
    pytest.param(
        _with(CONTACT, ("message", "contact"), "254712345678"),
        None,
        "ok",
        {},
        400,
        id="contact as text",
    ),
    pytest.param(
        _with(CONTACT, ("message", "contact", "user_id"), "111222333"),
        None,
        "ok",
        {},
        400,
        id="contact user_id as text",
    ),
    pytest.param(None, "[" * 30_000 + "]" * 30_000, "ok", {}, 400, id="deeply nested JSON"),
    pytest.param(
        None, '{"a":' * 10_000 + "1" + "}" * 10_000, "ok", {}, 400, id="deeply nested objects"
    ),
    pytest.param(None, _replies_nested(500), "ok", {}, 400, id="deeply nested replies"),
]
# label, update, the field the 400 names
TOO_BIG_IDS = [
    pytest.param(dict(GOOD, update_id=TOO_BIG), "update_id", id="update_id 2**63"),
    pytest.param(dict(GOOD, update_id=-TOO_BIG), "update_id", id="update_id -2**63"),
    pytest.param(dict(GOOD, update_id=10**30), "update_id", id="update_id beyond any column"),
    pytest.param(
        _with(GOOD, ("message", "chat", "id"), TOO_BIG), "message.chat.id", id="chat id 2**63"
    ),
    pytest.param(
        _with(GOOD, ("message", "chat", "id"), -TOO_BIG), "message.chat.id", id="chat id -2**63"
    ),
    pytest.param(
        _with(GOOD, ("message", "from", "id"), TOO_BIG), "message.from.id", id="sender id 2**63"
    ),
    pytest.param(
        _with(_with(GOOD, ("message", "from", "id"), TOO_BIG), ("message", "chat", "id"), TOO_BIG),
        "message.chat.id",
        id="sender and chat ids 2**63",
    ),
    pytest.param(
        _with(CONTACT, ("message", "contact", "user_id"), TOO_BIG),
        "message.contact.user_id",
        id="contact user_id 2**63",
    ),
]


@pytest.mark.parametrize("update, raw, secret, settings, status", REFUSED)
def test_forged_or_malformed_updates_are_refused_and_change_nothing(
    shared, caplog, update, raw, secret, settings, status
):
    secret = SECRETS["telegram_secret_token"] if secret == "ok" else secret
    before = footprint(shared)
    response = post(shared.client(**settings), update, secret=secret, raw=raw)
    assert response.status_code == status
    assert response.is_json and response.get_json()["status"] == "rejected"
    assert footprint(shared) == before
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("update, field", TOO_BIG_IDS)
def test_ids_that_do_not_fit_64_bits_are_refused_quietly_and_change_nothing(
    shared, caplog, update, field
):
    before = footprint(shared)
    response = post(shared.client(), update)
    assert response.status_code == 400
    body = response.get_json()
    assert (body["status"], body["field"]) == ("rejected", field) and body["error"]
    assert footprint(shared) == before
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_largest_64_bit_ids_are_accepted_and_stored(w, client):
    user = dict(USER, id=2**63 - 1)
    update = dict(contact_update(1, "254712345678", user["id"], user=user), update_id=2**63 - 1)
    assert post(client, update).get_json()["text"] == en("telegram_linked", name="Amina")
    with w.session() as s:
        link = s.scalar(select(TelegramLink))
        assert (link.telegram_user_id, link.chat_id) == (2**63 - 1, 2**63 - 1)


def test_demo_without_a_secret_accepts_updates(w):
    client = w.client(demo=True, telegram_secret_token=None)
    assert post(client, text_update(30, "/start"), secret=None).get_json() == ask_for_contact(
        USER["id"]
    )


def test_the_reply_is_json_a_bot_api_call(w, client):
    linked(client)
    raw = post(client, text_update(2, "HELP")).get_data(as_text=True)
    assert json.loads(raw) == {"method": "sendMessage", "chat_id": USER["id"], "text": en("help")}


# -- several devices: an inline keyboard, and the pressed button ---------------------------

JUMA = "+254722000333"


def callback_update(update_id: int, data, user: dict = USER, query_id: str | None = None) -> dict:
    """A button pressed under the bot's message, as Telegram posts it."""
    return {
        "update_id": update_id,
        "callback_query": {
            "id": query_id or f"43821{update_id:014d}",
            "from": user,
            "chat_instance": "-5212341234",
            "data": data,
            "message": {
                "message_id": 3000 + update_id,
                "from": BOT,
                "chat": chat_of(user),
                "date": DATE,
                "text": "You have several devices",
            },
        },
    }


def answered(update: dict) -> dict:
    return {
        "method": "answerCallbackQuery",
        "callback_query_id": update["callback_query"]["id"],
    }


def pushed(world) -> list[OutboxMessage]:
    with world.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


@pytest.fixture
def two(sqlite_world):
    """Amina owns 1001 (6 days paid) and 1002; Juma owns 1003 (4 days paid)."""
    sqlite_world.customer(AMINA, 1001, 1002, name="Amina")
    sqlite_world.customer(JUMA, 1003, name="Juma")
    sqlite_world.pay(1001, 6, "paid-1")
    sqlite_world.pay(1003, 4, "paid-3")
    return sqlite_world


@pytest.fixture
def two_client(two):
    client = two.client()
    linked(client)
    return client


@pytest.mark.parametrize("command", ["/code", "/resend", "/status", "/history"])
def test_a_customer_with_several_devices_gets_a_button_per_device(two, two_client, command):
    body = post(two_client, text_update(2, command)).get_json()
    assert body["text"] == en("choose_device", refs="1001, 1002")
    name = command.lstrip("/")
    assert body["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "1001", "callback_data": f"{name} 1001"}],
            [{"text": "1002", "callback_data": f"{name} 1002"}],
        ]
    }
    assert footprint(two)[1] == 0 and pushed(two) == []


def test_pressing_a_button_answers_the_callback_and_pushes_the_code(two, two_client):
    keyboard = post(two_client, text_update(2, "/code")).get_json()["reply_markup"]
    update = callback_update(3, keyboard["inline_keyboard"][0][0]["callback_data"])
    response = post(two_client, update)
    assert response.get_json() == answered(update)
    with two.session() as s:
        (code,) = s.scalars(select(Code)).all()
    [message] = pushed(two)
    assert (message.channel, message.recipient, message.status) == (
        "telegram",
        str(USER["id"]),
        "pending",
    )
    assert code.code in message.body and "6 days" in message.body
    assert two.simulator(1001).enter(code.code).days == 6

    again = post(two_client, update)  # Telegram delivers the same update again
    assert again.get_data() == response.get_data()
    assert len(pushed(two)) == 1 and footprint(two)[1] == 1


def test_a_pressed_buttons_pushed_reply_wakes_the_drain_at_once(two):
    """The reply goes through the outbox: its commit wakes the drain, as every push does."""
    import dataclasses

    from webhooks.app import create_app

    woken: list[int] = []
    deps = dataclasses.replace(two.services, after_commit=lambda: woken.append(1))
    client = create_app(deps=deps).test_client()
    linked(client)
    woken.clear()
    post(client, callback_update(3, "status 1001"))
    assert len(pushed(two)) == 1 and woken == [1]


def test_a_button_for_someone_elses_device_is_refused_and_reveals_nothing(two, two_client):
    update = callback_update(3, "code 1003")  # Juma's device, forged by Amina's client
    assert post(two_client, update).get_json() == answered(update)
    [message] = pushed(two)
    assert message.body == en("unknown_device")
    assert footprint(two)[1] == 0, "nothing minted for 1003"
    unknown = callback_update(4, "status 999999")  # a device nobody has
    post(two_client, unknown)
    assert pushed(two)[-1].body == message.body, "the same answer as for a device of another"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param("lang fr", id="not a device command"),
        pytest.param("stop", id="an opt-out"),
        pytest.param("code", id="no device"),
        pytest.param("devices", id="a command without a device"),
        pytest.param("", id="empty"),
    ],
)
def test_a_button_that_is_not_one_of_ours_is_answered_with_nothing(two, two_client, data):
    update = callback_update(3, data)
    assert post(two_client, update).get_json() == answered(update)
    assert pushed(two) == [] and footprint(two)[1] == 0
    with two.session() as s:
        amina = s.scalar(select(Customer).where(Customer.phone == AMINA))
        assert (amina.language, amina.opted_out) == ("en", False)


def test_a_button_from_a_stranger_learns_only_how_to_share_a_contact(two, two_client):
    body = post(two_client, callback_update(3, "code 1001", user=STRANGER)).get_json()
    assert body == ask_for_contact(STRANGER["id"])
    assert pushed(two) == [] and footprint(two)[1] == 0


def test_an_opted_out_customer_gets_the_buttons_answer_in_the_reply(two, two_client):
    with two.session() as s:
        s.scalar(select(Customer).where(Customer.phone == AMINA)).opted_out = True
    body = post(two_client, callback_update(3, "code 1001")).get_json()
    assert body["method"] == "sendMessage" and body["chat_id"] == USER["id"]
    with two.session() as s:
        (code,) = s.scalars(select(Code)).all()
    assert code.code in body["text"]
    assert pushed(two) == [], "the outbox does not push to an opted-out customer"


BAD_CALLBACKS = [
    pytest.param(callback_update(40, "c" * 65), "callback_query.data", id="data over 64 bytes"),
    pytest.param(
        callback_update(41, "code " + "\u00e9" * 30), "callback_query.data", id="65 bytes in UTF-8"
    ),
    pytest.param(callback_update(42, "code\n1001"), "callback_query.data", id="a control char"),
    pytest.param(callback_update(43, 1001), "callback_query.data", id="data as a number"),
    pytest.param(
        callback_update(44, "code 1001", query_id="9" * 65), "callback_query.id", id="long id"
    ),
    pytest.param(
        _with(callback_update(45, "code 1001"), ("callback_query", "from", "id"), 2**63),
        "callback_query.from.id",
        id="sender id 2**63",
    ),
    pytest.param(
        _with(
            callback_update(46, "code 1001"), ("callback_query", "message", "chat", "id"), "chat"
        ),
        "callback_query.message.chat.id",
        id="chat id as text",
    ),
]


@pytest.mark.parametrize("update, field", BAD_CALLBACKS)
def test_malformed_callbacks_are_refused_and_change_nothing(two, two_client, update, field):
    before = footprint(two)
    response = post(two_client, update)
    assert response.status_code == 400
    assert (response.get_json()["status"], response.get_json()["field"]) == ("rejected", field)
    assert footprint(two) == before and pushed(two) == []


def test_exactly_64_bytes_of_data_are_read_and_answered(two, two_client):
    update = callback_update(47, "code " + "1" * 59)  # 64 bytes, the bound: not ours
    assert post(two_client, update).get_json() == answered(update)
    assert pushed(two) == []
