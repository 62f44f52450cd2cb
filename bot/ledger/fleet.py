"""Keeping the local devices table in step with the distributor's assigned items."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.omnivoltaic.client import Item, OmnivoltaicClient
from bot.storage.models import Device, utcnow


@dataclass(frozen=True)
class SyncReport:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


def sync_devices(
    session: Session, client: OmnivoltaicClient, progress: Callable[[int], None] | None = None
) -> SyncReport:
    """Upsert every assigned item into `devices`; running it twice changes nothing more."""
    known = {d.product_id: d for d in session.scalars(select(Device))}
    created = updated = 0
    now = utcnow()
    for item in client.iter_assigned_items():
        device = known.get(item.product_id)
        if device is None:
            device = Device(product_id=item.product_id)
            session.add(device)
            known[item.product_id] = device
            created += 1
        else:
            updated += 1
        _copy(item, device)
        device.synced_at = now
        if progress:
            progress(created + updated)
    session.flush()
    return SyncReport(created=created, updated=updated)


def _copy(item: Item, device: Device) -> None:
    device.oem_serial = item.oem_serial
    device.payg_serial = item.payg_serial
    device.value_per_day = item.value_per_day
    device.lifecycle_status = item.lifecycle_status
