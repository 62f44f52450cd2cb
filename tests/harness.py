"""A whole product on the embedded emulator, for tests: no network, real database.

`World` holds the dependencies (database, emulator-backed client, ledger) plus helpers to set up
customers and payments and to feed codes to device simulators.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import httpx
from sqlalchemy import select

from bot import bootstrap
from bot.customers import conversation
from bot.deps import Deps
from bot.inbound import Inbound, Reply, Responder, process
from bot.ledger import Ledger
from bot.ledger.fleet import sync_devices
from bot.omnivoltaic.emulator import EmulatorTransport, create_emulator
from bot.omnivoltaic.simulator import Device as Simulator
from bot.settings import Settings
from bot.storage import db
from bot.storage.models import Customer, Device

SECRETS = dict(
    twilio_account_sid="AC" + "0" * 32,
    twilio_auth_token="test-twilio-token",
    twilio_from_number="+15005550006",
    telegram_bot_token="123:test",
    telegram_secret_token="test-telegram-secret",
    payments_secret="test-pay-secret",
    public_base_url="https://bot.example.test",
)


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
    db.upgrade(services.engine)
    with db.transaction(services.sessions) as session:
        sync_devices(session, services.omnivoltaic)
    return World(services=services, emulator_app=app)
