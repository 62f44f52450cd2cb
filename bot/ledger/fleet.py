"""Keeping the local devices table in step with the distributor's assigned items.

A device is matched by its product id (what people type stays put) and takes its API id
from the item: what the configured generation calls it (OMNIVOLTAIC.md section 3). So a
sync after switching OMNIVOLTAIC_API_VERSION readdresses every device, and nothing else.

Every page is read from the API first, with no transaction open (no lock is ever held
across a network call), and checked as a whole; only then is the table written, by
`sync_fleet` in short transactions of `BATCH` devices, so that web requests are never
kept waiting behind a sync of 100,000 devices. A failure while reading changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.omnivoltaic.client import Item, OmnivoltaicClient, ProtocolError
from bot.storage import db
from bot.storage.models import Device, utcnow

BATCH = 500  # devices written per transaction


@dataclass(frozen=True)
class SyncReport:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


def fetch(client: OmnivoltaicClient, progress: Callable[[int], None] | None = None) -> list[Item]:
    """Every assigned item, page after page; `progress(items_read)` as they come.

    An item listed twice counts once (the later listing wins)."""
    items: dict[int, Item] = {}
    for count, item in enumerate(client.iter_assigned_items(), start=1):
        items[item.product_id] = item
        if progress:
            progress(count)
    return list(items.values())


def sync_devices(
    session: Session, client: OmnivoltaicClient, progress: Callable[[int], None] | None = None
) -> SyncReport:
    """Upsert every assigned item into `devices`, in the caller's transaction.

    The API is read before the session's first statement, so no lock is held meanwhile
    (a session begins its transaction lazily). Running it twice changes nothing more."""
    items = fetch(client, progress)
    _check(session, items)
    report = _upsert(session, items, utcnow())
    session.flush()
    return report


def sync_fleet(
    sessions: sessionmaker[Session],
    client: OmnivoltaicClient,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
) -> SyncReport:
    """`sync_devices` for a whole fleet: read it all, then write it in short transactions."""
    items = fetch(client, progress)
    with db.reading(sessions) as session:
        _check(session, items)
    created = updated = 0
    now = utcnow()
    for start in range(0, len(items), batch):
        with db.transaction(sessions) as session:
            done = _upsert(session, items[start : start + batch], now)
        created, updated = created + done.created, updated + done.updated
    return SyncReport(created=created, updated=updated)


def _check(session: Session, items: list[Item]) -> None:
    """Refuse, before writing anything, two devices that would answer to one API id."""
    owner: dict[str, int] = {}
    for item in items:
        other = owner.setdefault(item.api_id, item.product_id)
        if other != item.product_id:
            raise _clash(other, item)
    listed = {item.product_id for item in items}
    kept = session.execute(select(Device.product_id, Device.api_id))
    for product_id, api_id in kept:  # devices this sync leaves as they are
        holder = owner.get(api_id)
        if product_id not in listed and holder is not None:
            raise ProtocolError(
                f"items {product_id} and {holder} both answer to API id {api_id!r}; nothing changed"
            )


def _clash(first: int, item: Item) -> ProtocolError:
    return ProtocolError(
        f"items {first} and {item.product_id} both answer to API id {item.api_id!r};"
        " nothing changed"
    )


def _upsert(session: Session, items: Iterable[Item], now: datetime) -> SyncReport:
    items = list(items)
    wanted = [item.product_id for item in items]
    known = {
        d.product_id: d
        for d in session.scalars(select(Device).where(Device.product_id.in_(wanted)))
    }
    created = updated = 0
    for item in items:
        device = known.get(item.product_id)
        if device is None:
            device = known[item.product_id] = Device(product_id=item.product_id)
            session.add(device)
            created += 1
        else:
            updated += 1
        _copy(item, device)
        device.synced_at = now
    return SyncReport(created=created, updated=updated)


def _copy(item: Item, device: Device) -> None:
    device.api_id = item.api_id
    device.oem_serial = item.oem_serial
    device.payg_serial = item.payg_serial
    device.value_per_day = item.value_per_day
    device.lifecycle_status = item.lifecycle_status
