"""Finding devices: short references for customers, product id or serial for agents."""

from __future__ import annotations

import pytest

from bot.ledger import devices
from bot.ledger.devices import Ambiguous
from bot.storage.models import Customer, Device


def fleet(*serials, start: int = 1001) -> list[Device]:
    """Transient devices (no database): ids 1.., product ids from `start`."""
    return [
        Device(
            id=i, product_id=start + i - 1, oem_serial=serial, payg_serial=f"PAYG{start + i - 1}"
        )
        for i, serial in enumerate(serials, start=1)
    ]


REFERENCES = [
    # label, serials, expected references in the same order
    pytest.param(["OVES001001"], ["1001"], id="one device: last four characters"),
    pytest.param(["OVES001001", "OVES001002"], ["1001", "1002"], id="differ in the last four"),
    pytest.param(
        ["OVES001001", "OVES011001"],
        ["01001", "11001"],
        id="same last four: grow until they differ",
    ),
    pytest.param(["oves001001"], ["1001"], id="upper case"),
    pytest.param(["A1"], ["A1"], id="serial shorter than four"),
    pytest.param(["1001", "X1001"], ["1001", "X1001"], id="one serial ends with the other"),
    pytest.param([None, "OVES001002"], ["1001", "1002"], id="no serial: the product id"),
    pytest.param(
        ["SN7777", "SN1001"],
        ["7777", "N1001"],
        id="suffix equal to another device's product id: grow",
    ),
]


@pytest.mark.parametrize("serials, expected", REFERENCES)
def test_references_are_the_shortest_distinct_serial_suffixes(serials, expected):
    owned = fleet(*serials)
    refs = devices.references(owned)
    assert [refs[d.id] for d in owned] == expected
    for device in owned:  # what we show, the customer can type back
        assert devices.resolve(owned, refs[device.id]) is device


THREE = fleet("OVES001001", "OVES001002", "OVES002002")
RESOLVE = [
    # label, owned, reference typed, expected (index into owned, Ambiguous refs, or None)
    pytest.param(THREE[:1], None, 0, id="no reference, one device: that one"),
    pytest.param([], None, None, id="no reference, no device"),
    pytest.param(
        THREE, None, Ambiguous(("1001", "1002", "2002")), id="no reference, several: ask which"
    ),
    pytest.param(THREE, "1002", 1, id="product id"),
    pytest.param(THREE, "OVES002002", 2, id="full serial"),
    pytest.param(THREE, "oves002002", 2, id="serial in lower case"),
    pytest.param(THREE, "PAYG1003", 2, id="payg serial"),
    pytest.param(THREE, "2002", 2, id="suffix"),
    pytest.param(THREE, "1001", 0, id="suffix that is also a product id"),
    pytest.param(THREE, "002", Ambiguous(("1002", "2002")), id="suffix of two: ask which"),
    pytest.param(THREE, "02", None, id="suffix shorter than three"),
    pytest.param(THREE, "1004", None, id="not one of theirs"),
    pytest.param(THREE, "OVES009999", None, id="unknown serial"),
]


WITH_API_IDS = [
    Device(id=1, product_id=1001, api_id="TEST2503000017", oem_serial="OVES001001"),
    Device(id=2, product_id=1002, api_id="TEST2503000018", oem_serial="OVES001002"),
]
RESOLVE += [
    pytest.param(WITH_API_IDS, "test2503000018", 1, id="api id"),
    pytest.param(WITH_API_IDS, "1002", 1, id="product id beside api ids"),
]


@pytest.mark.parametrize("owned, ref, expected", RESOLVE)
def test_resolve_finds_the_one_device_a_reference_names(owned, ref, expected):
    found = devices.resolve(owned, ref)
    if isinstance(expected, int):
        assert found is owned[expected]
    else:
        assert found == expected


# -- against the database ---------------------------------------------------------------


@pytest.fixture
def stocked(session):
    owner, other = Customer(phone="+254712345678"), Customer(phone="+254722000111")
    session.add_all([owner, other])
    session.flush()
    session.add_all(
        [
            Device(
                product_id=1002,
                api_id="A-1002",
                oem_serial="OVES001002",
                payg_serial="PAYG-B",
                owner_id=owner.id,
            ),
            Device(
                product_id=1001,
                api_id="A-1001",
                oem_serial="OVES001001",
                payg_serial="PAYG-A",
                owner_id=owner.id,
            ),
            Device(
                product_id=1003, api_id="TEST2503000017", oem_serial="OVES001003", owner_id=other.id
            ),
            Device(product_id=1004, api_id="1001", oem_serial=None),
        ]
    )
    session.flush()
    return session, owner, other


def test_a_customers_devices_are_theirs_only_by_product_id(stocked):
    """What the conversation reads (`Customer.devices`, loaded with the customer)."""
    session, owner, other = stocked
    session.expire_all()
    assert [d.product_id for d in owner.devices] == [1001, 1002]
    assert [d.product_id for d in other.devices] == [1003]


def test_reference_is_computed_among_the_owners_devices(stocked):
    session, owner, _ = stocked
    by_id = {d.product_id: d for d in owner.devices}
    assert devices.reference(session, by_id[1001]) == "1001"
    unowned = devices.find(session, "1004")
    assert devices.reference(session, unowned) == "1004"


FIND = [
    pytest.param("1001", 1001, id="product id"),
    pytest.param(" 1003 ", 1003, id="product id with spaces"),
    pytest.param("OVES001002", 1002, id="serial"),
    pytest.param("oves001002", 1002, id="serial in lower case"),
    pytest.param("payg-a", 1001, id="payg serial"),
    pytest.param("1004", 1004, id="device without a serial"),
    pytest.param("test2503000017", 1003, id="api id (an OEM item id)"),
    pytest.param("A-1002", 1002, id="api id"),
    pytest.param("1001", 1001, id="a product id wins over another device's api id"),
    pytest.param("9999", None, id="unknown product id"),
    pytest.param("12345678901234567890", None, id="number too large for a product id"),
    pytest.param("1001; DROP TABLE devices", None, id="injection"),
    pytest.param("", None, id="empty"),
    pytest.param("   ", None, id="blank"),
    pytest.param(None, None, id="nothing"),
]


@pytest.mark.parametrize("text, expected", FIND)
def test_find_takes_a_product_id_or_serial_as_agents_type_it(stocked, text, expected):
    session, _, _ = stocked
    found = devices.find(session, text)
    assert (found.product_id if found else None) == expected
