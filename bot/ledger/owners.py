"""Importing device owners from a CSV: `product_id,customer_phone,customer_name[,language]`.

Every row is checked on its own: good rows are imported, bad rows are reported by line
number and reason. Importing the same file twice changes nothing the second time.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.domain import LANGUAGES
from bot.storage.models import Customer, Device
from bot.text.phones import InvalidPhone, normalise

HEADER = ("product_id", "customer_phone", "customer_name")
MAX_PRODUCT_DIGITS = 9  # product ids are 32-bit integers in the devices table
MAX_NAME = 200


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Row:
    product_id: int
    phone: str
    name: str
    language: str | None


class BadRow(ValueError):
    pass


BATCH = 1000  # rows checked against the database at a time: two queries per batch


def import_owners(
    session: Session,
    lines: Iterable[str],
    region: str,
    default_language: str = "en",
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every good row of `lines`; `progress(rows_read)` after each batch."""
    report = ImportReport()
    claimed: dict[int, str] = {}
    people: dict[str, tuple[int, str, str | None]] = {}
    known = _Known(session)
    batch: list[tuple[int, _Row | BadRow]] = []
    reader = csv.reader(lines)
    end = 0
    for fields in reader:
        number, end = end + 1, reader.line_num  # a quoted field may span several lines
        if not any(f.strip() for f in fields):
            continue
        if number == 1 and tuple(f.strip().lower() for f in fields[:3]) == HEADER:
            continue
        try:
            batch.append((number, _parse(fields, region)))
        except BadRow as exc:
            batch.append((number, exc))
        if len(batch) >= BATCH:
            _import_batch(known, batch, claimed, people, default_language, report)
            batch = []
            if progress:
                progress(number)
    _import_batch(known, batch, claimed, people, default_language, report)
    session.flush()
    if progress:
        progress(end)
    return report


def _import_batch(
    known: _Known,
    batch: list[tuple[int, _Row | BadRow]],
    claimed: dict[int, str],
    people: dict[str, tuple[int, str, str | None]],
    default_language: str,
    report: ImportReport,
) -> None:
    rows = [row for _, row in batch if isinstance(row, _Row)]
    known.load({r.product_id for r in rows}, {r.phone for r in rows})
    for number, row in batch:
        try:
            if isinstance(row, BadRow):
                raise row
            again = row.product_id in claimed  # the same line twice: done the first time
            if claimed.setdefault(row.product_id, row.phone) != row.phone:
                raise BadRow(f"device {row.product_id} is given to two owners in this file")
            first, name, language = people.get(row.phone, (number, row.name, row.language))
            if name != row.name or (language and row.language and language != row.language):
                raise BadRow(f"this customer has another name or language on line {first}")
            changed = False if again else _apply(known, row, default_language)
            people[row.phone] = (first, name, language or row.language)
        except BadRow as exc:
            report.errors.append((number, str(exc)))
            continue
        if changed:
            report.imported += 1
        else:
            report.unchanged += 1
    known.session.flush()


class _Known:
    """The devices and customers a batch names, read in two queries per batch."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.devices: dict[int, Device] = {}
        self.customers: dict[str, Customer] = {}

    def load(self, product_ids: set[int], phones: set[str]) -> None:
        wanted = product_ids - self.devices.keys()
        if wanted:
            found = self.session.scalars(select(Device).where(Device.product_id.in_(wanted)))
            self.devices.update((d.product_id, d) for d in found)
        callers = phones - self.customers.keys()
        if callers:
            found_people = self.session.scalars(select(Customer).where(Customer.phone.in_(callers)))
            self.customers.update((c.phone, c) for c in found_people)


def _parse(fields: list[str], region: str) -> _Row:
    fields = [f.strip() for f in fields]
    if len(fields) not in (3, 4):
        raise BadRow(f"expected 3 or 4 columns, got {len(fields)}")
    product, phone, name = fields[:3]
    language = fields[3].lower() if len(fields) == 4 and fields[3] else None
    if not (product.isascii() and product.isdigit()) or len(product) > MAX_PRODUCT_DIGITS:
        raise BadRow(
            f"product_id must be a number of at most {MAX_PRODUCT_DIGITS} digits, "
            f"got {product[:20]!r}"
        )
    if not name:
        raise BadRow("customer_name is empty")
    if len(name) > MAX_NAME:
        raise BadRow(f"customer_name is longer than {MAX_NAME} characters")
    if language is not None and language not in LANGUAGES:
        raise BadRow(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    try:
        e164 = normalise(phone, region)
    except InvalidPhone as exc:
        raise BadRow(f"customer_phone: {exc}") from None
    return _Row(int(product), e164, name, language)


def _apply(known: _Known, row: _Row, default_language: str) -> bool:
    device = known.devices.get(row.product_id)
    if device is None:
        raise BadRow(f"unknown device {row.product_id} (run `ovbot sync-devices` first)")
    customer = known.customers.get(row.phone)
    changed = False
    if customer is None:
        customer = Customer(
            phone=row.phone, name=row.name, language=row.language or default_language
        )
        known.session.add(customer)
        known.customers[row.phone] = customer
        changed = True
    else:
        if customer.name != row.name:
            customer.name, changed = row.name, True
        if row.language and customer.language != row.language:
            customer.language, changed = row.language, True
    if customer.id is None or device.owner_id != customer.id:
        device.owner, changed = customer, True
    return changed
