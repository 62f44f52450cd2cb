"""`ovbot chat`'s engine: real, signed requests through the webhook stack."""

from __future__ import annotations

import dataclasses
import re
from urllib.parse import parse_qs

import httpx
import pytest
from sqlalchemy import func, select

from bot.cli.chat import Chat, ChatError, outbox_peek, remote, run
from bot.storage.models import InboundMessage
from webhooks.app import create_app

CODE = re.compile(r"\*\d{3}(?: \d{3}){6}#")
PHONE = "+254712345678"


@pytest.fixture
def app(sqlite_world):
    sqlite_world.customer(PHONE, 1001)
    sqlite_world.pay(1001, 7, "console-1")
    return create_app(deps=sqlite_world.services)


def chat(app, world, channel="sms", phone=PHONE, **settings) -> Chat:
    config = world.services.settings
    http = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=config.public_base_url)
    return Chat(http, config.replace(**settings), phone, channel)


def test_sms_gets_a_code_the_device_accepts(app, sqlite_world):
    replies = chat(app, sqlite_world).send("CODE")
    assert len(replies) == 1
    code = CODE.search(replies[0]).group(0)
    entry = sqlite_world.simulator(1001).enter(code)
    assert (entry.outcome, entry.days) == ("days", 7)


def test_whatsapp_is_twilios_form_with_whatsapp_addresses(app, sqlite_world):
    sent = []
    config = sqlite_world.services.settings
    wsgi = httpx.WSGITransport(app=app)

    def spy(request: httpx.Request) -> httpx.Response:
        sent.append(parse_qs(request.content.decode()))
        return wsgi.handle_request(request)

    http = httpx.Client(transport=httpx.MockTransport(spy), base_url=config.public_base_url)
    replies = Chat(http, config, PHONE, "whatsapp").send("CODE")
    assert CODE.search(replies[0])
    (form,) = sent
    assert (form["From"], form["To"], form["WaId"]) == (
        ["whatsapp:" + PHONE],
        ["whatsapp:+14155238886"],
        [PHONE.lstrip("+")],
    )
    with sqlite_world.session() as s:
        assert s.scalar(select(InboundMessage.channel)) == "whatsapp"


def test_each_message_is_a_new_provider_message(app, sqlite_world):
    session = chat(app, sqlite_world)
    session.send("RESEND")
    session.send("RESEND")
    chat(app, sqlite_world).send("RESEND")  # a new session does not reuse ids
    with sqlite_world.session() as s:
        assert s.scalar(select(func.count()).select_from(InboundMessage)) == 3


@pytest.mark.parametrize(
    "wrong",
    [
        {"twilio_auth_token": "not-the-app-token"},
        {"public_base_url": "https://elsewhere.example.test"},
    ],
)
def test_sms_requests_are_really_signed(app, sqlite_world, wrong):
    [refused] = chat(app, sqlite_world, **wrong).send("CODE")
    assert refused.startswith("[HTTP 403") and "TWILIO_AUTH_TOKEN" in refused


def test_telegram_requests_carry_the_secret(app, sqlite_world):
    wrong = chat(app, sqlite_world, "telegram", telegram_secret_token="not-the-secret")
    [refused] = wrong.send("/start")
    assert refused.startswith("[HTTP 403") and "TELEGRAM_SECRET_TOKEN" in refused


def test_telegram_start_contact_then_code(app, sqlite_world):
    session = chat(app, sqlite_world, "telegram")
    start = session.send("/start")
    assert len(start) == 2 and start[1].startswith("[button: ")
    linked = session.share_contact()
    assert "Amina" in linked[0]
    code = CODE.search(session.send("/code")[0]).group(0)
    assert sqlite_world.simulator(1001).enter(code).days == 7


def test_telegram_users_differ_by_phone(app, sqlite_world):
    """Chatting as another number is another Telegram user, not the last one linked."""
    sqlite_world.customer("+254712345679", 1002, name="Baraka")
    amina = chat(app, sqlite_world, "telegram")
    amina.share_contact()
    baraka = chat(app, sqlite_world, "telegram", phone="+254712345679")
    assert baraka.user_id != amina.user_id
    status = baraka.send("STATUS")
    assert "1001" not in " ".join(status) and "button" in " ".join(status)


def test_an_unknown_sms_sender_learns_only_how_to_register(app, sqlite_world):
    replies = chat(app, sqlite_world, phone="+254799999999").send("CODE")
    assert len(replies) == 1 and "register" in replies[0] and not CODE.search(replies[0])


class FakeChat:
    def __init__(self, channel="sms", replies=None):
        self.channel, self.sent, self.contacts = channel, [], 0
        self.replies = replies

    def send(self, text):
        self.sent.append(text)
        return self.replies if self.replies is not None else [f"echo {text}"]

    def share_contact(self):
        self.contacts += 1
        return ["linked"]


def test_run_skips_blank_lines_and_stops_at_quit():
    fake, out = FakeChat(), []
    run(fake, ["  CODE \n", "\n", "   ", "status", "/quit", "HELP"], out.append)
    assert fake.sent == ["CODE", "status"]
    assert out == ["bot> echo CODE", "bot> echo status"]


def test_run_shares_the_contact_on_telegram_only():
    telegram, sms, out = FakeChat("telegram"), FakeChat("sms"), []
    run(telegram, ["/contact", "/exit"], out.append)
    run(sms, ["/contact"], out.append)
    assert (telegram.contacts, telegram.sent) == (1, [])
    assert (sms.contacts, sms.sent) == (0, ["/contact"])


def test_run_shows_silence_and_indents_long_replies():
    out = []
    run(FakeChat(replies=[]), ["STOP"], out.append)
    run(FakeChat(replies=["line one\nline two"]), ["HISTORY"], out.append)
    assert out == ["bot> (no reply)", "bot> line one\n     line two"]


# -- buttons, and a server elsewhere ---------------------------------------------------------


def test_telegram_buttons_are_shown_and_pick_presses_one(sqlite_world):
    sqlite_world.customer(PHONE, 1001, 1002)
    sqlite_world.pay(1002, 3, "console-2")
    app = create_app(deps=sqlite_world.services)
    config = sqlite_world.services.settings
    http = httpx.Client(transport=httpx.WSGITransport(app=app), base_url=config.public_base_url)
    session = Chat(
        http, config, PHONE, "telegram", pushes=outbox_peek(sqlite_world.services.sessions)
    )
    session.share_contact()
    choose = session.send("/code")
    assert choose[-1] == "[buttons: 1001 | 1002 - type /pick 1001]"
    assert session.pick("nope") == ["[no button nope; buttons: 1001, 1002]"]
    [pushed] = session.pick(" 1002")
    assert pushed.startswith("(pushed) ") and "3 days" in pushed
    code = CODE.search(pushed).group(0)
    assert sqlite_world.simulator(1002).enter(code).days == 3


def test_a_remote_server_is_signed_for_with_the_url_when_no_public_base_url_is_set(
    app, sqlite_world
):
    """The server checks Twilio's signature over its PUBLIC_BASE_URL: here, the --url."""
    url = "http://127.0.0.1:8000"
    server = dataclasses.replace(
        sqlite_world.services, settings=sqlite_world.services.settings.replace(public_base_url=url)
    )
    http = httpx.Client(transport=httpx.WSGITransport(app=create_app(deps=server)), base_url=url)
    local = sqlite_world.services.settings.replace(public_base_url=None)
    replies = Chat(http, local, PHONE, sign_base_url=url).send("CODE")
    assert CODE.search(replies[0])
    elsewhere = Chat(http, local, PHONE, sign_base_url="http://elsewhere.example.test")
    assert elsewhere.send("CODE")[0].startswith("[HTTP 403")


def test_an_unreachable_server_is_a_clear_error():
    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ChatError, match="cannot reach the server at http://127.0.0.1:8000"):
        remote("http://127.0.0.1:8000", transport=httpx.MockTransport(refuse))


def test_a_server_that_stops_answering_mid_chat_is_said_and_the_chat_goes_on(sqlite_world):
    calls = []

    def flaky(request):
        calls.append(request)
        raise httpx.ReadTimeout("timed out", request=request)

    http = httpx.Client(transport=httpx.MockTransport(flaky), base_url="http://127.0.0.1:8000")
    out = []
    run(Chat(http, sqlite_world.services.settings, PHONE), ["CODE", "STATUS"], out.append)
    assert out == ["bot> [http://127.0.0.1:8000 did not answer in time]"] * 2
    assert len(calls) == 2
