"""A whole product on the embedded emulator, for tests: no network, real database.

`World` holds the dependencies (database, emulator-backed client, ledger) plus helpers to set up
customers and payments and to feed codes to device simulators.  Also here: the databases the
tests run on (`BACKENDS`, `sqlite_file_url`, `postgres_schema_url`, used by conftest.py), the
agents' world of the USSD menu (`populate_agents`, `check_screen`), outbox rows
(`queue_messages`, `outbox_rows`) and the variables `Settings.from_env` reads.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bot import bootstrap
from bot.agents.pins import add_agent
from bot.customers import conversation
from bot.deps import Deps
from bot.inbound import Inbound, Reply, Responder, process
from bot.ledger import Ledger
from bot.ledger.fleet import sync_devices
from bot.omnivoltaic.client import OmnivoltaicClient
from bot.omnivoltaic.emulator import EmulatorTransport, create_emulator
from bot.omnivoltaic.simulator import Device as Simulator
from bot.outbox import queue as outbox
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import Customer, Device, OutboxMessage, TelegramLink
from bot.text import gsm7
from tests.fakes import FakeTime

SECRETS = dict(
    twilio_account_sid="AC" + "0" * 32,
    twilio_auth_token="test-twilio-token",
    twilio_from_number="+15005550006",
    telegram_bot_token="123:test",
    telegram_secret_token="test-telegram-secret",
    payments_secret="test-pay-secret",
    mpesa_callback_token="test-mpesa-token",
    mpesa_shortcode="600638",
    public_base_url="https://bot.example.test",
    africastalking_callback_token="test-at-callback-token",
    console_secret_key="test-console-secret-key",
)

# -- databases ------------------------------------------------------------------------------

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


def sqlite_file_url(directory) -> str:
    return f"sqlite:///{directory / 'test.db'}"


@contextmanager
def postgres_schema_url(base_url: str) -> Iterator[str]:
    """A URL whose connections use a new, empty schema; the schema is dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(base_url)
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


# -- the product ----------------------------------------------------------------------------


def terminate_backend(database_url: str, pid: int) -> None:
    """End PostgreSQL backend `pid` from a connection of its own: a server that dropped
    a connection, as a restart or an idle timeout would."""
    killer = db.make_engine(database_url)
    try:
        with killer.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            other.commit()
    finally:
        killer.dispose()


def converse(deps: Deps, inbound: Inbound, responder: Responder | Callable | None = None) -> Reply:
    """`inbound` through `bot.inbound.process`: to the conversation, or to `responder`
    (a Responder, or a bare respond function answering in the conversation's language)."""
    if responder is None:
        responder = conversation.RESPONDER
    elif not isinstance(responder, Responder):
        responder = Responder(responder, conversation.language)
    return process(deps, inbound, responder)


@dataclass
class World:
    services: Deps
    emulator_app: object
    simulators: dict[int, Simulator] = field(default_factory=dict)

    @property
    def emulator(self):
        return self.emulator_app.extensions["omnivoltaic_emulator"]

    @property
    def ledger(self) -> Ledger:
        return self.services.ledger

    def session(self):
        return db.transaction(self.services.sessions)

    def customer(
        self, phone: str, *product_ids: int, name: str = "Amina", language: str = "en"
    ) -> int:
        with self.session() as s:
            customer = Customer(phone=phone, name=name, language=language)
            s.add(customer)
            s.flush()
            for pid in product_ids:
                s.scalar(select(Device).where(Device.product_id == pid)).owner_id = customer.id
            return customer.id

    def pay(self, product_id: int, days: int, reference: str) -> None:
        with self.session() as s:
            device = s.scalar(select(Device).where(Device.product_id == product_id))
            self.ledger.record_payment(
                s, reference=reference, device=device, days=days, source="cli"
            )

    def device(self, product_id: int) -> Device:
        with self.session() as s:
            return s.scalar(select(Device).where(Device.product_id == product_id))

    def client(self, **settings):
        """A test client of the web app on these services, with settings changed if given."""
        from webhooks.app import create_app

        services = self.services
        if settings:
            services = dataclasses.replace(services, settings=services.settings.replace(**settings))
        return create_app(deps=services).test_client()

    def simulator(self, product_id: int) -> Simulator:
        """The physical device: provisioned with its chain's top, kept across calls."""
        if product_id not in self.simulators:
            with httpx.Client(
                transport=httpx.WSGITransport(app=self.emulator_app), base_url="http://emulator"
            ) as http:
                top = http.get(f"/_emulator/items/{product_id}/top").json()["top"]
            self.simulators[product_id] = Simulator(top)
        return self.simulators[product_id]


def build_world(
    database_url: str,
    tmp_path,
    *,
    grace: timedelta = timedelta(0),
    timeout: float = 2.0,
    **settings,
) -> World:
    values = dict(
        SECRETS,
        database_url=database_url,
        omnivoltaic_emulator_state=str(tmp_path / "emulator.db"),
        omnivoltaic_timeout=timeout,
    )
    values.update(settings)
    config = Settings(**values)
    app = create_emulator(config.omnivoltaic_emulator_state, "test-seed")
    http = httpx.Client(
        transport=EmulatorTransport(app), base_url=bootstrap.EMULATOR_BASE_URL, timeout=timeout
    )
    services = bootstrap.build(config, http=http)
    services.ledger.grace = grace
    services.ledger.send_window = timedelta(seconds=timeout)
    db.upgrade(services.engine)
    with db.transaction(services.sessions) as session:
        sync_devices(session, services.omnivoltaic)
    return World(services=services, emulator_app=app)


# -- the agents' world (the USSD menu, in the core and over HTTP) ---------------------------

AGENT, ADMIN, STRANGER = "+254700000101", "+254700000102", "+254700000199"
OWNER, OTHER_OWNER = "+254712345678", "+254722000333"
PIN, ADMIN_PIN = "2468", "1357"
SCREEN = 160


def populate_agents(world: World) -> World:
    """Two agents; 1001 owned, 1002 free of owners, 1003 owned with one 5-day code."""
    with world.session() as s:
        add_agent(s, AGENT, "Wanjiru", PIN)
        add_agent(s, ADMIN, "Otieno", ADMIN_PIN, role="admin")
    world.customer(OWNER, 1001)
    world.customer(OTHER_OWNER, 1003, name="Juma")
    world.pay(1003, 5, "seed-1003")
    with world.session() as s:
        device = s.scalar(select(Device).where(Device.product_id == 1003))
        world.ledger.mint_days(s, device, request_key="seed-1003", channel="cli")
    return world


def check_screen(text: str) -> None:
    """A USSD screen: not empty, at most 160 characters, all GSM-7."""
    assert text, "an empty screen"
    assert len(text) <= SCREEN, (len(text), text)
    assert gsm7.is_gsm7(text), [ch for ch in text if not gsm7.is_gsm7(ch)]


# -- outbox rows ----------------------------------------------------------------------------


def queue_messages(
    Session,
    *bodies: str,
    phone: str = "+254712345678",
    telegram_chat: int | None = None,
) -> list[int]:
    """Messages queued for the customer with `phone` (made if new; linked to `telegram_chat`
    and last seen on Telegram if given); their outbox ids."""
    with db.transaction(Session) as session:
        customer = session.scalar(select(Customer).where(Customer.phone == phone))
        if customer is None:
            customer = Customer(phone=phone)
            session.add(customer)
            session.flush()
        if telegram_chat is not None:
            customer.last_channel = "telegram"
            session.add(
                TelegramLink(
                    customer_id=customer.id, telegram_user_id=telegram_chat, chat_id=telegram_chat
                )
            )
            session.flush()
        return [outbox.enqueue(session, customer, body).id for body in bodies]


def outbox_rows(Session) -> dict[int, OutboxMessage]:
    """Every outbox row, by id."""
    with Session() as session:
        return {m.id: m for m in session.scalars(select(OutboxMessage))}


# -- Twilio's requests (SMS and WhatsApp share one route) ----------------------------------

TWILIO_SMS_PATH = "/webhooks/twilio/sms"


def twilio_post(client, form: dict[str, str], path: str = TWILIO_SMS_PATH):
    """`form` posted as Twilio posts it: signed with SECRETS' auth token over the public URL."""
    from twilio.request_validator import RequestValidator

    url = SECRETS["public_base_url"] + path
    signature = RequestValidator(SECRETS["twilio_auth_token"]).compute_signature(url, form)
    return client.post(path, data=form, headers={"X-Twilio-Signature": signature})


def twiml_messages(response) -> list[str]:
    """The texts of a TwiML answer's <Message> elements."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(response.get_data(as_text=True))
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def twilio_message(body: str, sid: str, sender: str, channel: str = "sms") -> dict[str, str]:
    """An incoming message as Twilio posts it: an SMS, or (channel "whatsapp") a WhatsApp
    text, whose addresses are `whatsapp:+…` and which carries the sender's WhatsApp ids."""
    form = {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "SmsSid": sid,
        "SmsStatus": "received",
        "Body": body,
        "To": SECRETS["twilio_from_number"],
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": SECRETS["twilio_account_sid"],
        "From": sender,
        "ApiVersion": "2010-04-01",
    }
    if channel == "whatsapp":
        form.update(
            From="whatsapp:" + sender,
            To="whatsapp:+14155238886",
            ProfileName="Amina",
            WaId=sender.lstrip("+"),
            MessageType="text",
            ReferralNumMedia="0",
        )
    return form


# -- settings -------------------------------------------------------------------------------


class _Recorder(dict):
    """An environment that remembers every name asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def variables_read() -> set[str]:
    """Every environment variable `Settings.from_env` reads (found by running it)."""
    env = _Recorder()
    Settings.from_env(env)
    return env.asked


def timed_client(world, clock: FakeTime) -> OmnivoltaicClient:
    """The world's API client, on `clock`."""
    return OmnivoltaicClient(
        world.services.http,
        "demo@example.com",
        "demo",
        timeout=2.0,
        clock=clock.mono,
        wall_clock=clock.wall,
    )


# -- the command line -----------------------------------------------------------------------


def ovbot(*args: str, input: str | None = None):
    """`ovbot ARGS` as an operator runs it (click's CliRunner); the click Result."""
    from click.testing import CliRunner

    from bot.cli.main import main

    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def count_rows(Session, model, *where) -> int:
    """How many rows of `model` match `where`."""
    from sqlalchemy import func

    with Session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where))


# -- the operator console -------------------------------------------------------------------

CONSOLE_ADMIN, CONSOLE_VIEWER = "admin@ops.example", "viewer@ops.example"
CONSOLE_PASSWORD = "console-test-password"
_CSRF = __import__("re").compile(r'name="csrf_token" value="([^"]+)"')


def add_operators(world: World) -> World:
    """An admin and a viewer, both with CONSOLE_PASSWORD."""
    from bot.operators.accounts import add_operator

    with world.session() as s:
        add_operator(s, CONSOLE_ADMIN, CONSOLE_PASSWORD, "admin")
        add_operator(s, CONSOLE_VIEWER, CONSOLE_PASSWORD, "viewer")
    return world


def csrf_token(html: str) -> str:
    """The CSRF token a console page puts in its forms."""
    found = _CSRF.search(html)
    assert found, "no form with a CSRF token on this page"
    return found.group(1)


def console_login(client, email: str, password: str = CONSOLE_PASSWORD):
    """Sign in through the login form, as a browser does; the response to the POST."""
    token = csrf_token(client.get("/console/login").text)
    return client.post(
        "/console/login", data={"email": email, "password": password, "csrf_token": token}
    )


def console_post(client, path: str, csrf: bool | str = True, **form):
    """A console form's POST, with the session's CSRF token (or `csrf`: False for none,
    or a string to send instead)."""
    if csrf is True:
        form["csrf_token"] = csrf_token(client.get("/console/exports").text)
    elif csrf:
        form["csrf_token"] = csrf
    return client.post(path, data=form)
