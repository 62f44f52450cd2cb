"""Syncing the devices table from the distributor's assigned items."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from bot.ledger.fleet import sync_devices, sync_fleet
from bot.omnivoltaic.client import Item, OmnivoltaicError
from bot.storage import db
from bot.storage.models import Customer, Device, utcnow


def item(pid: int, value: str = "50", status: str = "ASSIGNED", api_id: str | None = None) -> Item:
    return Item(
        product_id=pid,
        api_id=str(pid) if api_id is None else api_id,
        oem_serial=f"OVES{pid:06d}",
        payg_serial=f"PAYG{pid}",
        value_per_day=Decimal(value),
        lifecycle_status=status,
        raw={},
    )


class FakeClient:
    """Hands out a list of items; can fail after a number of them, like a lost page."""

    def __init__(self, items, fail_after: int | None = None):
        self.items, self.fail_after = list(items), fail_after

    def iter_assigned_items(self):
        for count, one in enumerate(self.items):
            if count == self.fail_after:
                raise OmnivoltaicError("the API went away")
            yield one


def devices(session) -> dict[int, Device]:
    return {d.product_id: d for d in session.scalars(select(Device))}


def test_creates_every_item_with_its_fields(session):
    seen = []
    report = sync_devices(
        session, FakeClient(item(p) for p in range(1001, 1006)), progress=seen.append
    )
    session.commit()
    assert (report.created, report.updated, report.total) == (5, 0, 5)
    assert seen == [1, 2, 3, 4, 5]
    d = devices(session)[1003]
    assert (d.oem_serial, d.payg_serial, d.value_per_day, d.lifecycle_status) == (
        "OVES001003",
        "PAYG1003",
        Decimal("50"),
        "ASSIGNED",
    )
    assert d.synced_at is not None and d.owner_id is None and d.state == "payg"


def test_a_second_sync_creates_nothing_and_updates_fields(session):
    sync_devices(session, FakeClient(item(p) for p in (1001, 1002)))
    session.commit()
    before = devices(session)
    ids = {pid: d.id for pid, d in before.items()}
    first_sync = before[1001].synced_at
    report = sync_devices(session, FakeClient([item(1001, "75", "RETURNED"), item(1002)]))
    session.commit()
    assert (report.created, report.updated) == (0, 2)
    after = devices(session)
    assert {pid: d.id for pid, d in after.items()} == ids
    assert (after[1001].value_per_day, after[1001].lifecycle_status) == (Decimal("75"), "RETURNED")
    assert after[1001].synced_at >= first_sync


def test_sync_keeps_what_only_we_know(session):
    sync_devices(session, FakeClient([item(1001)]))
    owner = Customer(phone="+254712345678", name="Amina")
    session.add(owner)
    session.flush()
    d = devices(session)[1001]
    until = utcnow() + timedelta(days=5)
    d.owner_id, d.credit_until, d.state, d.balance = owner.id, until, "free", Decimal("20")
    session.commit()
    sync_devices(session, FakeClient([item(1001, "60")]))
    session.commit()
    d = devices(session)[1001]
    assert (d.owner_id, d.credit_until, d.state, d.balance) == (
        owner.id,
        until,
        "free",
        Decimal("20"),
    )


def test_an_item_no_longer_assigned_stays(session):
    sync_devices(session, FakeClient([item(1001), item(1002)]))
    report = sync_devices(session, FakeClient([item(1002)]))
    session.commit()
    assert report.total == 1 and set(devices(session)) == {1001, 1002}


def test_an_item_listed_twice_is_one_device(session):
    report = sync_devices(session, FakeClient([item(1001), item(1001)]))
    session.commit()
    assert report.created == 1
    assert session.scalar(select(func.count()).select_from(Device)) == 1


def test_an_api_failure_part_way_changes_nothing_inside_a_transaction(Session):
    with pytest.raises(OmnivoltaicError):
        with db.transaction(Session) as session:
            sync_devices(session, FakeClient((item(p) for p in range(1001, 1011)), fail_after=5))
    with Session() as session:
        assert session.scalar(select(func.count()).select_from(Device)) == 0


def test_the_embedded_emulator_fleet(sqlite_world):
    """The demo distributor's items 1001-1100, not the other distributor's."""
    with sqlite_world.session() as session:
        found = devices(session)
        assert sorted(found) == list(range(1001, 1101))
        assert found[1001].oem_serial == "OVES001001"
        report = sync_devices(session, sqlite_world.services.omnivoltaic)
    assert (report.created, report.updated) == (0, 100)


def test_each_device_takes_its_api_id_from_the_item(session):
    sync_devices(session, FakeClient([item(1001), item(1002, api_id="TEST2503000017")]))
    session.commit()
    found = devices(session)
    assert (found[1001].api_id, found[1002].api_id) == ("1001", "TEST2503000017")


def test_a_sync_after_switching_generation_readdresses_every_device_and_nothing_else(session):
    sync_devices(session, FakeClient([item(1001), item(1002)]))
    owner = Customer(phone="+254712345678")
    session.add(owner)
    session.flush()
    devices(session)[1001].owner_id = owner.id
    session.commit()
    ids = {pid: d.id for pid, d in devices(session).items()}
    v2 = [item(p, api_id=f"OVES{p:06d}") for p in (1001, 1002)]
    report = sync_devices(session, FakeClient(v2))
    session.commit()
    after = devices(session)
    assert (report.created, report.updated) == (0, 2)
    assert {pid: d.id for pid, d in after.items()} == ids
    assert [after[p].api_id for p in (1001, 1002)] == ["OVES001001", "OVES001002"]
    assert after[1001].owner_id == owner.id


def test_two_items_answering_to_one_api_id_are_refused_and_nothing_changes(Session):
    with db.transaction(Session) as session:
        sync_devices(session, FakeClient([item(1001)]))
    clash = [item(1002, api_id="SAME"), item(1003, api_id="SAME")]
    with pytest.raises(OmnivoltaicError, match="1002 and 1003"):
        with db.transaction(Session) as session:
            sync_devices(session, FakeClient(clash))
    with Session() as session:
        assert {p: d.api_id for p, d in devices(session).items()} == {1001: "1001"}


def test_the_embedded_emulator_fleet_in_v2(tmp_path):
    from tests.harness import build_world, sqlite_file_url

    world = build_world(sqlite_file_url(tmp_path), tmp_path, omnivoltaic_api_version="v2")
    try:
        with world.session() as session:
            found = devices(session)
        assert sorted(found) == list(range(1001, 1101))
        assert found[1001].api_id == "TEST2501001001"  # the item's oemItemID
    finally:
        world.services.close()


# -- a whole fleet: read first, then written in short transactions ----------------------


class LockCheckingClient(FakeClient):
    """Before each item, checks that another connection can still take the write lock."""

    def __init__(self, items, path: str):
        super().__init__(items)
        self.path, self.checked = path, 0

    def iter_assigned_items(self):
        import sqlite3

        for one in super().iter_assigned_items():
            other = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if a sync holds it
            other.execute("ROLLBACK")
            other.close()
            self.checked += 1
            yield one


def test_sync_fleet_holds_no_lock_while_reading_the_api_and_writes_in_batches(
    sqlite_engine, sqlite_url
):
    Session = db.make_sessionmaker(sqlite_engine)
    client = LockCheckingClient(
        (item(p) for p in range(1001, 1011)), sqlite_url.removeprefix("sqlite:///")
    )
    commits = []
    event.listen(sqlite_engine, "commit", lambda conn: commits.append(1))
    seen = []
    report = sync_fleet(Session, client, progress=seen.append, batch=4)
    assert (report.created, report.updated, client.checked) == (10, 0, 10)
    assert seen == list(range(1, 11)) and len(commits) == 3  # 4 + 4 + 2 devices
    again = sync_fleet(Session, LockCheckingClient([item(1001, "75")], client.path), batch=4)
    assert (again.created, again.updated) == (0, 1)
    with Session() as session:
        assert len(devices(session)) == 10 and devices(session)[1001].value_per_day == 75


def test_sync_fleet_changes_nothing_when_the_api_fails_part_way(Session):
    with pytest.raises(OmnivoltaicError):
        sync_fleet(Session, FakeClient((item(p) for p in range(1001, 1011)), fail_after=7))
    with Session() as session:
        assert devices(session) == {}


def test_sync_fleet_refuses_an_api_id_clash_across_batches_before_writing(Session):
    sync_fleet(Session, FakeClient([item(1001, api_id="A")]))
    clash = [item(p) for p in range(1002, 1010)] + [item(1010, api_id="A")]
    with pytest.raises(OmnivoltaicError, match="1001 and 1010"):
        sync_fleet(Session, FakeClient(clash), batch=3)
    with Session() as session:
        assert set(devices(session)) == {1001}
