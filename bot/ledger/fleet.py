"""Keeping the local devices table in step with the distributor's assigned items.

A device is matched by its product id (what people type stays put) and takes its API id
from the item: what the configured generation calls it (OMNIVOLTAIC.md section 3). So a
sync after switching OMNIVOLTAIC_API_VERSION readdresses every device, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.omnivoltaic.client import Item, OmnivoltaicClient, ProtocolError
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
    by_api_id = {d.api_id: d for d in known.values()}
    created = updated = 0
    now = utcnow()
    for item in client.iter_assigned_items():
        device = known.get(item.product_id)
        holder = by_api_id.get(item.api_id)
        if holder is not None and holder is not device:
            raise ProtocolError(
                f"items {holder.product_id} and {item.product_id} both answer to API id"
                f" {item.api_id!r}; nothing changed"
            )
        if device is None:
            device = Device(product_id=item.product_id, api_id=item.api_id)
            session.add(device)
            known[item.product_id] = device
            created += 1
        else:
            updated += 1
            by_api_id.pop(device.api_id, None)
        by_api_id[item.api_id] = device
        _copy(item, device)
        device.synced_at = now
        if progress:
            progress(created + updated)
    session.flush()
    return SyncReport(created=created, updated=updated)


def _copy(item: Item, device: Device) -> None:
    device.api_id = item.api_id
    device.oem_serial = item.oem_serial
    device.payg_serial = item.payg_serial
    device.value_per_day = item.value_per_day
    device.lifecycle_status = item.lifecycle_status
