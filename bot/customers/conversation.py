"""The customer conversation: `respond(deps, session, inbound) -> Reply` (no Flask here).

Identify the sender, parse the text, dispatch through a table. Unknown senders learn only
how to register; a device that is not the sender's gets the same answer as one that does
not exist. The edges hand `RESPONDER` to `bot.inbound.process`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import CompoundSelect, Select, bindparam, select, union_all
from sqlalchemy.orm import Session, joinedload

from bot.customers import coach, commands, telegram_link
from bot.customers.commands import Command
from bot.deps import Deps
from bot.inbound import Inbound, Reply, Responder
from bot.ledger import devices
from bot.ledger.book import StatusFigures, status_columns
from bot.ledger.outcome import attempt
from bot.outbox import queue as outbox
from bot.storage import db
from bot.storage.models import Code, Customer, Device
from bot.text.codes import code_texts
from bot.text.phones import try_normalise
from bot.text.templates import format_date

log = logging.getLogger(__name__)
HISTORY_SIZE = 3
MINT_FAILED = {
    "pending": "code_pending",
    "unavailable": "api_unavailable",
    "refused": "code_refused",
}


@dataclass(frozen=True)
class Turn:
    deps: Deps
    session: Session
    inbound: Inbound
    customer: Customer
    command: Command

    def say(self, key: str, **values: object) -> str:
        return self.deps.say(self.customer.language, key, **values)

    def reading(self) -> Reading:
        """The same turn for a read command's handler (it takes plain facts)."""
        reader = db.Reader.over(self.session)
        return Reading(self.deps, reader, self.inbound, Facts.of(self.customer), self.command)


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the read commands show of a device (bot.ledger.devices.Named, and more)."""

    id: int
    product_id: int
    oem_serial: str | None
    payg_serial: str | None
    api_id: str | None
    state: str
    credit_until: datetime | None
    # STATUS's figures, when the statement that loaded the facts carried them.
    figures: StatusFigures | None = None

    @classmethod
    def of(cls, device: Device) -> DeviceFacts:
        return cls(
            device.id,
            device.product_id,
            device.oem_serial,
            device.payg_serial,
            device.api_id,
            device.state,
            device.credit_until,
        )


@dataclass(frozen=True, slots=True)
class Facts:
    """The sender as a read sees them: plain values from one Core statement, no ORM
    objects (loading those costs more than the query on a read path)."""

    id: int
    phone: str
    language: str
    last_channel: str | None
    whatsapp_at: datetime | None
    devices: tuple[DeviceFacts, ...]

    @classmethod
    def of(cls, customer: Customer) -> Facts:
        return cls(
            customer.id,
            customer.phone,
            customer.language,
            customer.last_channel,
            customer.whatsapp_at,
            tuple(DeviceFacts.of(d) for d in customer.devices),
        )


@dataclass(frozen=True)
class Reading:
    """A read command's turn: the same as `Turn`, with the sender's facts, read through a
    `db.Reader` (its session is opened only for a handler that asks for it)."""

    deps: Deps
    reader: db.Reader
    inbound: Inbound
    customer: Facts
    command: Command

    @property
    def session(self) -> Session:
        return self.reader.session

    def say(self, key: str, **values: object) -> str:
        return self.deps.say(self.customer.language, key, **values)


def respond(deps: Deps, session: Session, inbound: Inbound) -> Reply:
    if inbound.contact is not None:
        return telegram_link.link(deps, session, inbound.sender, inbound.contact)
    customer = identify(deps, session, inbound)
    command = commands.parse(inbound.text)
    if customer is None:
        return _stranger(deps, inbound, command)
    customer.last_channel = inbound.channel
    if inbound.channel == "whatsapp":
        outbox.wrote_on_whatsapp(customer, deps.clock())
    turn = Turn(deps, session, inbound, customer, command)
    if inbound.button:
        return pressed(turn)
    return HANDLERS[command.name](turn)


def _stranger(deps: Deps, inbound: Inbound, command: Command) -> Reply:
    """An unknown sender learns only how to register (or, on Telegram, to share a contact)."""
    if command.name == commands.STOP:  # nothing to stop, but confirmed like the rest
        return Reply.say(deps.say(deps.settings.default_language, "opted_out"))
    if inbound.channel == "telegram":
        return telegram_link.ask_for_contact(deps)
    return Reply.say(deps.say(deps.settings.default_language, "not_registered"))


def identify(deps: Deps, session: Session, inbound: Inbound) -> Customer | None:
    """The sender, with their devices loaded in the same query (every command needs them)."""
    if inbound.channel == "telegram":
        return telegram_link.customer_for(session, inbound.sender)
    phone = try_normalise(inbound.sender, deps.settings.default_region)
    if phone is None:
        return None
    return session.scalars(_BY_PHONE, {"phone": phone}).unique().first()


# Built once: building a statement costs more than running it on a read path.
_BY_PHONE = (
    select(Customer)
    .options(joinedload(Customer.devices))
    .where(Customer.phone == bindparam("phone"))
)


def read(deps: Deps, reader: db.Reader, inbound: Inbound) -> Reply:
    """A read command (`reads`), in the read-only transaction of bot/inbound.py: the sender
    and their devices in one statement, then the command's own query, if any. A sender
    writing on another channel than last time is answered the writing way (the channel
    is recorded)."""
    command = commands.parse(inbound.text)
    if inbound.channel == "telegram":
        customer = telegram_link.customer_for(reader.session, inbound.sender)
        facts = Facts.of(customer) if customer is not None else None
    else:
        facts = _facts(deps, reader, inbound.sender, command)
    if facts is None:
        return _stranger(deps, inbound, command)
    if facts.last_channel != inbound.channel:
        raise db.WouldWrite("the channel changed: answered the writing way, which records it")
    if inbound.channel == "whatsapp" and outbox.whatsapp_window_stale(
        facts.whatsapp_at, deps.clock()
    ):
        raise db.WouldWrite("the WhatsApp window is recorded the writing way")
    return READERS[command.name](Reading(deps, reader, inbound, facts, command))


def _facts(deps: Deps, reader: db.Reader, sender: str, command: Command) -> Facts | None:
    """The sender's facts; for STATUS, each device's figures in the same statement."""
    phone = try_normalise(sender, deps.settings.default_region)
    if phone is None:
        return None
    statement = _FACTS_AND_FIGURES if command.name == commands.STATUS else _FACTS
    rows = reader.rows(statement, {"phone": phone})
    if not rows:
        return None
    first = rows[0]
    owned = tuple(_device(row) for row in rows if row[5] is not None)
    return Facts(first[0], first[1], first[2], first[3], first[4], owned)


def _device(row: Any) -> DeviceFacts:
    figures = StatusFigures.of(row[12], row[13], row[14]) if len(row) > 12 else None
    return DeviceFacts(row[5], row[6], row[7], row[8], row[9], row[10], row[11], figures)


_customers, _devices = Customer.__table__, Device.__table__
_FACT_COLUMNS = (
    _customers.c.id,
    _customers.c.phone,
    _customers.c.language,
    _customers.c.last_channel,
    _customers.c.whatsapp_at,
    _devices.c.id,
    _devices.c.product_id,
    _devices.c.oem_serial,
    _devices.c.payg_serial,
    _devices.c.api_id,
    _devices.c.state,
    _devices.c.credit_until,
)


def _facts_statement(*figures: Any) -> Select[Any]:
    return (
        select(*_FACT_COLUMNS, *figures)
        .select_from(_customers.outerjoin(_devices, _devices.c.owner_id == _customers.c.id))
        .where(_customers.c.phone == bindparam("phone"))
        .order_by(_devices.c.product_id)
    )


# Compiled once, run on the driver's cursor (db.Prepared): the customer, and one row per
# device they own; for STATUS with each device's figures (the ledger's own columns,
# correlated to the device).
_FACTS = db.Prepared(_facts_statement())
_FACTS_AND_FIGURES = db.Prepared(_facts_statement(*status_columns(_devices.c.id)))


def language(deps: Deps, session: Session, inbound: Inbound) -> str:
    customer = identify(deps, session, inbound)
    return customer.language if customer else deps.settings.default_language


# The commands that only read: answered without a write (bot/inbound.py).
READS = frozenset({commands.STATUS, commands.HISTORY, commands.DEVICES, commands.HELP})
READS |= {commands.UNKNOWN}  # answered with the help
READS |= {commands.COACH}  # compares with the stored codes, no API call


def reads(inbound: Inbound) -> bool:
    """A typed read command (a pressed button's reply is pushed: a write)."""
    if inbound.contact is not None or inbound.button:
        return False
    return commands.parse(inbound.text).name in READS


def command_name(inbound: Inbound) -> str:
    """What `inbound` asks, as a metrics label: a command's name; unknown text is "other"."""
    if inbound.contact is not None:
        return "contact"
    name = commands.parse(inbound.text).name
    return "other" if name == commands.UNKNOWN else name


RESPONDER = Responder(
    respond=respond, language=language, reads=reads, read=read, command=command_name
)


# -- the commands ---------------------------------------------------------------------


def _with_device(handler: Callable[[Turn, Device, str], Reply]) -> Callable[[Turn], Reply]:
    """Resolve the device the command names (or the only one) before calling `handler`
    with it and its short reference among the customer's devices."""

    def run(turn: Turn) -> Reply:
        owned = list(turn.customer.devices)  # loaded with the customer (identify)
        found = _one(turn, owned)
        return found if isinstance(found, Reply) else handler(turn, *found)

    run.__name__ = handler.__name__
    return run


def _reading_device(
    handler: Callable[[Reading, DeviceFacts, str], Reply],
) -> Callable[[Reading], Reply]:
    """`_with_device` for a read command's handler."""

    def run(turn: Reading) -> Reply:
        found = _one(turn, turn.customer.devices)
        return found if isinstance(found, Reply) else handler(turn, *found)

    run.__name__ = handler.__name__
    return run


D = TypeVar("D", bound=devices.Named)


def _one(turn: Turn | Reading, owned: Sequence[D]) -> tuple[D, str] | Reply:
    """The device the command names among `owned` and its short reference, or the reply
    saying there is none or asking which."""
    found = devices.resolve(owned, turn.command.device)
    if found is None or isinstance(found, devices.Ambiguous):
        return _not_one(turn, owned, found)
    return found, devices.references(owned)[found.id]


def _not_one(
    turn: Turn | Reading, owned: Sequence[devices.Named], found: devices.Ambiguous | None
) -> Reply:
    """No device by that name, or which one? The references to type, and (Telegram) a
    button for each."""
    if found is None:
        return Reply.say(turn.say("unknown_device"))
    by_ref = {ref: device_id for device_id, ref in devices.references(owned).items()}
    product_ids = {d.id: d.product_id for d in owned}
    choices = tuple(
        (ref, f"{turn.command.name} {product_ids[by_ref[ref]]}")
        for ref in found.refs
        if ref in by_ref
    )
    return Reply.say(turn.say("choose_device", refs=", ".join(found.refs)), choices=choices)


BUTTON_COMMANDS = (commands.CODE, commands.RESEND, commands.STATUS, commands.HISTORY)


def pressed(turn: Turn) -> Reply:
    """A device button of `_choose` (Telegram's callback_query): that command for that
    device, the reply pushed to the chat. The data is the sender's to forge: anything but
    a device command is answered with nothing, and a device that is not theirs gets the
    same answer as a typed one (`unknown_device`)."""
    command = turn.command
    if command.name not in BUTTON_COMMANDS or command.device is None:
        return Reply()
    reply = HANDLERS[command.name](turn)
    return telegram_link.push(turn.session, turn.customer, turn.inbound.sender, reply)


@_with_device
def code(turn: Turn, device: Device, ref: str) -> Reply:
    ledger = turn.deps.ledger
    key = f"{turn.inbound.channel}:{turn.inbound.provider_id}"
    outcome = attempt(
        lambda: ledger.mint_days(
            turn.session,
            device,
            request_key=key,
            channel=turn.inbound.channel,
            requested_by=turn.customer.phone,
            timeout=turn.deps.settings.reply_budget,
        ),
        f"CODE for device {device.product_id}",
    )
    result = outcome.result
    if result is None:  # not final: a retry of this message must try again
        failed = MINT_FAILED[outcome.failure or "unavailable"]
        return Reply.say(turn.say(failed, device=ref), final=outcome.failure == "refused")
    held = (turn.say("codes_held", held=result.held, device=ref),) if result.held else ()
    if result.codes:
        return Reply.say(*code_texts(turn.say, ref, result.codes), *held)
    return _stored_codes(turn, device, ref, "code_latest", *held)


def _stored_codes(turn: Turn, device: Device, ref: str, key: str, *after: str) -> Reply:
    """The codes of the latest mint again: one with `key`'s wording, several in order."""
    codes = turn.deps.ledger.latest_codes(turn.session, device)
    if not codes:
        return Reply.say(turn.say("no_code_yet", device=ref), *after)
    if len(codes) == 1:
        c = codes[0]
        return Reply.say(
            turn.say(key, code=c.code, device=ref, date=format_date(c.minted_at)), *after
        )
    return Reply.say(*code_texts(turn.say, ref, codes, many="codes_resent_many"), *after)


@_with_device
def resend(turn: Turn, device: Device, ref: str) -> Reply:
    return _stored_codes(turn, device, ref, "code_resent")


@_reading_device
def status(turn: Reading, device: DeviceFacts, ref: str) -> Reply:
    if device.state == "free":
        return Reply.say(turn.say("status_free", device=ref))
    if device.state == "locked":
        return Reply.say(turn.say("status_locked", device=ref))
    now = turn.deps.clock()
    figures = device.figures or turn.deps.ledger.status_figures(turn.session, device)
    values = dict(
        device=ref,
        unredeemed=figures.unspent_days,
        last_date=format_date(figures.last_minted_at) if figures.last_minted_at else "-",
    )
    if device.credit_until is None and values["unredeemed"] == 0:
        return Reply.say(turn.say("no_code_yet", device=ref))
    if device.credit_until and device.credit_until > now:
        left = -(-(device.credit_until - now).total_seconds() // 86400)
        return Reply.say(
            turn.say(
                "status_active",
                days_left=int(left),
                until=format_date(device.credit_until),
                **values,
            )
        )
    return Reply.say(turn.say("status_expired", until=format_date(device.credit_until), **values))


@_reading_device
def history(turn: Reading, device: DeviceFacts, ref: str) -> Reply:
    newest = turn.session.scalars(
        select(Code)
        .where(Code.device_id == device.id, Code.state == "minted")
        .order_by(Code.upstream_index.desc().nulls_first(), Code.id.desc())
        .limit(HISTORY_SIZE)
    ).all()
    codes = newest[::-1]  # shown in the order they must be entered
    if not codes:
        return Reply.say(turn.say("history_empty", device=ref))
    lines = [turn.say("history_header", device=ref)]
    for c in codes:
        key = {"days": "history_line", "free": "history_line_free"}.get(
            c.kind, "history_line_reset"
        )
        lines.append(turn.say(key, date=format_date(c.minted_at), days=c.days, code=c.code))
    return Reply.say("\n".join(lines))


def list_devices(turn: Reading) -> Reply:
    owned = turn.customer.devices
    if not owned:
        return Reply.say(turn.say("unknown_device"))
    refs = devices.references(owned)
    lines = [turn.say("devices_header")]
    lines += [
        turn.say("devices_line", ref=refs[d.id], serial=d.oem_serial or d.product_id) for d in owned
    ]
    return Reply.say("\n".join(lines))


def help_(turn: Reading) -> Reply:
    return Reply.say(turn.say("help"))


def lang(turn: Turn) -> Reply:
    if turn.command.argument is None:
        return Reply.say(turn.say("lang_choose"))
    turn.customer.language = turn.command.argument
    return Reply.say(turn.say("lang_set"))


def stop(turn: Turn) -> Reply:
    """No more pushes; confirmed on every channel (Telegram and ARRET or SIMAMA have no
    carrier to do it). Later messages are still answered: the customer wrote to us."""
    turn.customer.opted_out = True
    return Reply.say(turn.say("opted_out"))


def start(turn: Turn) -> Reply:
    """START opts back in to pushes; on Telegram, /start from a linked chat shows help."""
    was_out, turn.customer.opted_out = turn.customer.opted_out, False
    if turn.inbound.channel == "telegram" and not was_out:
        return Reply.say(turn.say("help"))
    return Reply.say(turn.say("opted_in"))


def coach_(turn: Reading) -> Reply:
    """A code typed back to us: what it is among the sender's own codes (coach.py)."""
    owned = turn.customer.devices
    verdict = coach.judge(turn.command.argument or "", _coach_codes(turn.session, owned))
    found = next((d for d in owned if d.id == verdict.device_id), None)
    ref = devices.references(owned)[found.id] if found else ""
    serial = (found.oem_serial or str(found.product_id)) if found else ""
    return Reply.say(*coach.texts(turn.say, verdict, ref, serial))


COACH_DEVICES = 100  # devices per statement (SQLite allows 500 terms in a compound select)


def _coach_codes(session: Session, owned: Sequence[devices.Named]) -> dict[int, list[coach.Known]]:
    """The newest `coach.WINDOW` minted codes of each device, in the order to enter them:
    one statement (for up to COACH_DEVICES devices), each device's part read from
    the end of its (device_id, created_at) index."""
    rows: dict[int, list[tuple[int | None, int, coach.Known]]] = {d.id: [] for d in owned}
    ids = [d.id for d in owned]
    for start in range(0, len(ids), COACH_DEVICES):
        chunk = ids[start : start + COACH_DEVICES]
        values = {f"d{i}": device_id for i, device_id in enumerate(chunk)}
        for device_id, code, minted_at, index, code_id in session.execute(
            _coach_window(len(chunk)), values
        ):
            rows[device_id].append((index, code_id, coach.Known(code, minted_at)))
    # Entry order, as bot.ledger.ENTRY_ORDER: the upstream index (unknown last), then id.
    return {
        device_id: [k for _, _, k in sorted(found, key=lambda r: (r[0] is None, r[0] or 0, r[1]))]
        for device_id, found in rows.items()
    }


@functools.lru_cache(maxsize=COACH_DEVICES)
def _coach_window(count: int) -> CompoundSelect[Any]:
    parts = (
        select(Code.device_id, Code.code, Code.minted_at, Code.upstream_index, Code.id)
        .where(Code.device_id == bindparam(f"d{i}"), Code.state == "minted")
        .order_by(Code.created_at.desc(), Code.id.desc())
        .limit(coach.WINDOW)
        .subquery()
        for i in range(count)
    )
    return union_all(*(select(part) for part in parts))


# The read commands' handlers, on the sender's facts (`read`, and `respond` through
# `Turn.reading` when a read is answered the writing way).
READERS: dict[str, Callable[[Reading], Reply]] = {
    commands.STATUS: status,
    commands.HISTORY: history,
    commands.DEVICES: list_devices,
    commands.HELP: help_,
    commands.UNKNOWN: help_,
    commands.COACH: coach_,
}
assert READERS.keys() == READS


def _written(reader: Callable[[Reading], Reply]) -> Callable[[Turn], Reply]:
    return lambda turn: reader(turn.reading())


HANDLERS: dict[str, Callable[[Turn], Reply]] = {
    **{name: _written(reader) for name, reader in READERS.items()},
    commands.CODE: code,
    commands.RESEND: resend,
    commands.LANG: lang,
    commands.STOP: stop,
    commands.START: start,
}
