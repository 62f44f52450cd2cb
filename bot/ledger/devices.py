"""Finding devices: by a customer's short reference, or by product id or serial (agents).

A device also answers to its API id (an OEM item id in v2, e.g. TEST2503000017): what an
operator may read off the distributor's own portal. Nobody has to type it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.storage.models import Device

MIN_REF = 4  # references are at least this many characters of the serial


@dataclass(frozen=True)
class Ambiguous:
    refs: tuple[str, ...]


class Named(Protocol):
    """What a device answers to: a `Device`, or the plain facts a read loads
    (bot/customers/conversation.py)."""

    @property
    def id(self) -> int: ...
    @property
    def product_id(self) -> int: ...
    @property
    def oem_serial(self) -> str | None: ...
    @property
    def payg_serial(self) -> str | None: ...
    @property
    def api_id(self) -> str | None: ...


D = TypeVar("D", bound=Named)


def references(devices: Sequence[Named]) -> dict[int, str]:
    """The shortest serial suffix (at least MIN_REF long) that tells each device apart.

    A suffix that another device answers to (its serial ends with it, or it is that
    device's product id or PAYG serial) is grown, so `resolve` finds this device with it.
    """
    serials = {d.id: (d.oem_serial or str(d.product_id)).upper() for d in devices}
    refs = {}
    for device in devices:
        serial = serials[device.id]
        others = [d for d in devices if d.id != device.id]
        size = min(MIN_REF, len(serial))
        while size < len(serial) and any(
            _answers_to(o, serials[o.id], serial[-size:]) for o in others
        ):
            size += 1
        refs[device.id] = serial[-size:]
    return refs


def _answers_to(device: Named, serial: str, ref: str) -> bool:
    return serial.endswith(ref) or ref in (
        str(device.product_id),
        (device.payg_serial or "").upper(),
        (device.api_id or "").upper(),
    )


def reference(session: Session, device: Device) -> str:
    if device.owner_id is None:
        return device.oem_serial or str(device.product_id)
    siblings = session.scalars(select(Device).where(Device.owner_id == device.owner_id)).all()
    return references(list(siblings))[device.id]


def resolve(devices: Sequence[D], ref: str | None) -> D | Ambiguous | None:
    """The one device `ref` names among `devices`; the only device when `ref` is None."""
    if ref is None:
        if len(devices) > 1:
            refs = references(devices)
            return Ambiguous(tuple(refs[d.id] for d in devices))
        return devices[0] if devices else None
    ref = ref.upper()
    exact = [
        d
        for d in devices
        if ref in (str(d.product_id), *(_upper(x) for x in (d.oem_serial, d.payg_serial, d.api_id)))
    ]
    if len(exact) == 1:
        return exact[0]
    by_suffix = [
        d for d in devices if len(ref) >= 3 and d.oem_serial and d.oem_serial.upper().endswith(ref)
    ]
    if len(by_suffix) == 1:
        return by_suffix[0]
    if len(by_suffix) > 1:
        refs = references(devices)
        return Ambiguous(tuple(refs[d.id] for d in by_suffix))
    return None


def find(session: Session, text: str) -> Device | None:
    """A device of the fleet by product id or serial, as agents type it."""
    text = (text or "").strip().upper()
    if not text:
        return None
    clauses = [
        func.upper(Device.oem_serial) == text,
        func.upper(Device.payg_serial) == text,
        func.upper(Device.api_id) == text,
    ]
    if text.isdigit() and len(text) <= 9:
        clauses.append(Device.product_id == int(text))
    found = session.scalars(select(Device).where(or_(*clauses)).order_by(Device.id)).all()
    # The product id or a serial first: an API id is only a fallback (v1 ids are product ids).
    exact = [d for d in found if text in (str(d.product_id), _upper(d.oem_serial))]
    best = exact or found
    return best[0] if best else None


def _upper(value: str | None) -> str:
    return (value or "").upper()
