"""The CSV exports (payments, codes) for accounting and audits: `ovbot export` and the
console's downloads write the same rows.

The columns are a contract (scripts read them): add at the end, never rename or reorder.
Times are UTC, ISO 8601 (`2026-12-01T08:30:00Z`). Phone numbers are masked unless asked
in clear: an export is an operator's deliberate act, but files travel (mail,
spreadsheets, shared drives) further than the database; accounting matches payments by
reference, and only the rare audit needs the numbers themselves. Text that came from
outside (references, product refs, names) and would start a spreadsheet formula gets a
leading apostrophe.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from bot.ledger import ENTRY_ORDER
from bot.storage.models import Agent, Code, Device, Payment
from bot.text.phones import mask

PAYMENT_COLUMNS = (
    "reference",
    "created_at",
    "source",
    "product_id",
    "serial",
    "product_ref",
    "days",
    "amount",
    "payer_phone",
    "agent_phone",
    "agent_name",
    "code_id",
    "state",
)
CODE_COLUMNS = (
    "product_id",
    "serial",
    "code_id",
    "upstream_index",
    "kind",
    "days",
    "code",
    "minted_at",
    "credit_until_after",
    "channel",
    "requested_by",
)
Row = Sequence[object]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
Phone = Callable[[str | None], str]


def payment_rows(
    session: Session, since: datetime | None = None, *, clear_phones: bool = False
) -> Iterator[Row]:
    """Every payment, oldest first. state: `unmatched`, `in code` or `credit`."""
    phone = _phones(clear_phones)
    seller = aliased(Agent)
    query = (
        select(Payment, Device, seller)
        .outerjoin(Device, Device.id == Payment.device_id)
        .outerjoin(seller, seller.id == Payment.agent_id)
        .order_by(Payment.created_at, Payment.id)
    )
    if since is not None:
        query = query.where(Payment.created_at >= utc(since))
    for p, device, agent in session.execute(query):
        state = "unmatched" if p.device_id is None else ("in code" if p.code_id else "credit")
        yield (
            text(p.reference),
            time(p.created_at),
            p.source,
            device.product_id if device else "",
            (device.oem_serial or "") if device else "",
            text(p.product_ref),
            p.days,
            "" if p.amount is None else str(p.amount),
            phone(p.phone),
            phone(agent.phone if agent else None),
            text(agent.name if agent else None),
            p.code_id or "",
            state,
        )


def code_rows(
    session: Session, since: datetime | None = None, *, clear_phones: bool = False
) -> Iterator[Row]:
    """Every minted code, by device, each device's in the order to enter them."""
    phone = _phones(clear_phones)
    query = (
        select(Code, Device)
        .join(Device, Device.id == Code.device_id)
        .where(Code.state == "minted")
        .order_by(Device.product_id, *ENTRY_ORDER)
    )
    if since is not None:
        query = query.where(Code.minted_at >= utc(since))
    for code, device in session.execute(query):
        who = code.requested_by or ""
        yield (
            device.product_id,
            device.oem_serial or "",
            code.id,
            "" if code.upstream_index is None else code.upstream_index,
            code.kind,
            "" if code.days is None else code.days,
            code.code,
            time(code.minted_at),
            time(code.credit_until_after),
            code.channel,
            phone(who) if who.startswith("+") else who,
        )


EXPORTS: dict[str, tuple[Sequence[str], Callable[..., Iterator[Row]]]] = {
    "payments": (PAYMENT_COLUMNS, payment_rows),
    "codes": (CODE_COLUMNS, code_rows),
}


def write(file: TextIO, columns: Sequence[str], rows: Iterable[Row]) -> None:
    writer = csv.writer(file, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


def _phones(clear: bool) -> Phone:
    if clear:
        return lambda phone: phone or ""
    return lambda phone: mask(phone) if phone else ""


def text(value: str | None) -> str:
    """Text that came from outside (a payer's reference, a name), safe to open in a
    spreadsheet: one that would start a formula gets a leading apostrophe."""
    value = value or ""
    return "'" + value if value[:1] in FORMULA_STARTS else value


def utc(value: datetime) -> datetime:
    """A naive time (as typed) read as UTC; an aware one as it is."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def time(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""
