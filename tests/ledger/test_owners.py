"""Importing owners from CSV: good rows in, bad rows named by line and reason, idempotent."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from bot.ledger.owners import import_owners
from bot.storage.models import Customer, Device

PRODUCTS = (1001, 1002, 1003, 1004, 1005)


@pytest.fixture
def fleet(session):
    for pid in PRODUCTS:
        session.add(Device(product_id=pid, oem_serial=f"OVES00{pid}"))
    session.commit()
    return session


def run(session, text: str, region: str = "KE", language: str = "en"):
    report = import_owners(session, io.StringIO(text), region, language)
    session.commit()
    return report


def owner_phone(session, pid: int) -> str | None:
    device = session.scalar(select(Device).where(Device.product_id == pid))
    return device.owner.phone if device.owner else None


def customer(session, phone: str) -> Customer:
    return session.scalar(select(Customer).where(Customer.phone == phone))


def customers(session) -> int:
    return session.scalar(select(func.count()).select_from(Customer))


def test_imports_good_rows_and_skips_the_header(fleet):
    report = run(
        fleet,
        "product_id,customer_phone,customer_name\n"
        "1001,+254712345678,Amina\n"
        "1002,0712 345 679,Baraka\n",
    )
    assert (report.imported, report.unchanged, report.errors) == (2, 0, [])
    assert report.ok
    assert owner_phone(fleet, 1001) == "+254712345678"
    assert owner_phone(fleet, 1002) == "+254712345679"
    assert customer(fleet, "+254712345678").name == "Amina"


def test_header_with_the_language_column_and_any_case(fleet):
    report = run(
        fleet, "Product_ID, Customer_Phone ,customer_name,language\n1001,0712345678,Amina,sw\n"
    )
    assert (report.imported, report.errors) == (1, [])


def test_the_header_is_only_a_header_on_the_first_line(fleet):
    report = run(fleet, "1001,0712345678,Amina\nproduct_id,customer_phone,customer_name\n")
    assert report.imported == 1
    assert [line for line, _ in report.errors] == [2]


@pytest.mark.parametrize(
    "region,phone,expected",
    [
        ("KE", "0712345678", "+254712345678"),
        ("KE", "0712 345 678", "+254712345678"),
        ("KE", "254712345678", "+254712345678"),
        ("KE", "+254712345678", "+254712345678"),
        ("TZ", "0712345678", "+255712345678"),
        ("TZ", "+254712345678", "+254712345678"),
    ],
)
def test_phones_are_normalised_with_the_region(fleet, region, phone, expected):
    report = run(fleet, f"1001,{phone},Amina\n", region=region)
    assert report.errors == []
    assert owner_phone(fleet, 1001) == expected


def test_language_column_sets_it_and_the_default_applies_otherwise(fleet):
    run(fleet, "1001,0712345678,Amina,SW\n1002,0712345679,Baraka\n", language="fr")
    assert customer(fleet, "+254712345678").language == "sw"
    assert customer(fleet, "+254712345679").language == "fr"
    # A later file without the column keeps the language; with it, changes it.
    report = run(fleet, "1001,0712345678,Amina\n")
    assert (report.imported, report.unchanged) == (0, 1)
    assert customer(fleet, "+254712345678").language == "sw"
    report = run(fleet, "1001,0712345678,Amina,en\n")
    assert report.imported == 1 and customer(fleet, "+254712345678").language == "en"


def test_a_second_import_changes_nothing(fleet):
    text = "1001,0712345678,Amina\n1002,0712345678,Amina\n1003,0712345679,Baraka,fr\n"
    assert run(fleet, text).imported == 3
    report = run(fleet, text)
    assert (report.imported, report.unchanged, report.errors) == (0, 3, [])
    assert customers(fleet) == 2


def test_one_customer_may_own_several_devices(fleet):
    run(fleet, "1001,0712345678,Amina\n1002,+254712345678,Amina\n")
    assert customers(fleet) == 1
    assert [d.product_id for d in customer(fleet, "+254712345678").devices] == [1001, 1002]


def test_a_device_moves_to_its_new_owner(fleet):
    run(fleet, "1001,0712345678,Amina\n")
    report = run(fleet, "1001,0712345679,Baraka\n")
    assert report.imported == 1
    assert owner_phone(fleet, 1001) == "+254712345679"
    assert customer(fleet, "+254712345678").devices == []


def test_a_changed_name_is_an_update(fleet):
    run(fleet, "1001,0712345678,Amina\n")
    report = run(fleet, "1001,0712345678,Amina Wanjiru\n")
    assert report.imported == 1
    assert customer(fleet, "+254712345678").name == "Amina Wanjiru"


BAD_ROWS = {
    "unknown device": ("9999,0712345678,Nobody", "unknown device 9999"),
    "product id not a number": ("abc,0712345678,Amina", "product_id"),
    "product id with superscript digits": ("1001\u00b2,0712345678,Amina", "product_id"),
    "product id with other digits": ("\u0661\u0660\u0660\u0661,0712345678,Amina", "product_id"),
    "product id too big": ("99999999999999999999,0712345678,Amina", "product_id"),
    "negative product id": ("-1001,0712345678,Amina", "product_id"),
    "letters in the phone": ("1001,0712ABCDEF,Amina", "customer_phone"),
    "too short a phone": ("1001,0712,Amina", "customer_phone"),
    "empty phone": ("1001,,Amina", "customer_phone"),
    "bad language": ("1001,0712345678,Amina,de", "language"),
    "empty name": ("1001,0712345678,  ", "customer_name"),
    "name too long": ("1001,0712345678," + "A" * 201, "customer_name"),
    "two columns": ("1001,0712345678", "columns"),
    "five columns": ("1001,0712345678,Amina,en,extra", "columns"),
    "one column": ("1001", "columns"),
}


def test_bad_rows_are_reported_by_line_and_reason(fleet):
    labels = sorted(BAD_ROWS)
    rows = ["product_id,customer_phone,customer_name", "1002,0712345679,Baraka"]
    rows += [BAD_ROWS[label][0] for label in labels]
    report = run(fleet, "\n".join(rows) + "\n")
    assert report.imported == 1, "the good row is imported"
    errors = dict(report.errors)
    for line, label in enumerate(labels, start=3):
        assert BAD_ROWS[label][1] in errors.get(line, "(not reported)"), label
    assert len(errors) == len(labels)
    assert customers(fleet) == 1


def test_a_device_given_to_two_owners_keeps_the_first(fleet):
    report = run(fleet, "1001,0712345678,Amina\n1001,0712345679,Baraka\n")
    assert report.imported == 1
    assert report.errors == [(2, "device 1001 is given to two owners in this file")]
    assert owner_phone(fleet, 1001) == "+254712345678"
    assert customer(fleet, "+254712345679") is None


def test_the_same_device_twice_for_the_same_owner_is_fine(fleet):
    report = run(fleet, "1001,0712345678,Amina\n1001,+254712345678,Amina\n")
    assert (report.imported, report.unchanged, report.errors) == (1, 1, [])


def test_one_customer_with_two_names_in_one_file_is_a_bad_row(fleet):
    text = "1001,0712345678,Amina\n1002,0712345678,Mary\n"
    report = run(fleet, text)
    assert report.imported == 1 and [line for line, _ in report.errors] == [2]
    assert "line 1" in report.errors[0][1]
    again = run(fleet, text)
    assert (again.imported, again.unchanged) == (0, 1), "a repeat import changes nothing"
    assert customer(fleet, "+254712345678").name == "Amina"


def test_line_numbers_count_blank_lines_and_quoted_newlines(fleet):
    text = (
        "product_id,customer_phone,customer_name\n"
        "\n"
        '1001,0712345678,"Amina\nWanjiru"\n'  # lines 3-4
        "9999,0712345679,Nobody\n"  # line 5
        "   ,  ,  \n"  # line 6: blank, skipped
        "1002,0712345670,Baraka,xx\n"
    )  # line 7
    report = run(fleet, text)
    assert report.imported == 1
    assert [line for line, _ in report.errors] == [5, 7]


def test_bad_rows_do_not_stop_the_good_ones_after_them(fleet):
    text = "\n".join(
        ["9999,0712345678,A", "1001,0712345678,Amina", "x,y,z", "1002,0712345679,Baraka"]
    )
    report = run(fleet, text)
    assert report.imported == 2 and [line for line, _ in report.errors] == [1, 3]


def test_an_empty_file(fleet):
    report = run(fleet, "")
    assert (report.imported, report.unchanged, report.errors) == (0, 0, [])


def test_one_customer_with_two_languages_in_one_file_is_a_bad_row(fleet):
    report = run(
        fleet, "1001,0712345678,Amina,sw\n1002,0712345678,Amina\n1003,0712345678,Amina,fr\n"
    )
    assert report.imported == 2 and [line for line, _ in report.errors] == [3]
    assert customer(fleet, "+254712345678").language == "sw"


def test_batches_keep_every_rule_across_their_boundaries_and_report_progress(session, monkeypatch):
    """Rows are checked against the database a batch at a time (two queries per batch):
    a customer, a repeated line and a conflict still span batches, and progress is told."""
    monkeypatch.setattr("bot.ledger.owners.BATCH", 3)
    for pid in range(2001, 2009):
        session.add(Device(product_id=pid, oem_serial=f"OVES00{pid}"))
    session.commit()
    rows = [
        "2001,+254712345601,Amina",  # batch 1
        "2002,+254712345601,Amina",
        "not-a-number,+254712345602,Baraka",
        "2003,+254712345603,Chiku",  # batch 2
        "2001,+254712345601,Amina",  # the same line again: unchanged
        "2002,+254712345699,Someone",  # device 2002 already given to Amina in this file
        "2004,+254712345601,Amina Z",  # batch 3: Amina with another name
        "9999,+254712345604,Dalia",  # no such device
        "2005,+254712345603,Chiku",  # a customer created two batches before
    ]
    told: list[int] = []
    report = import_owners(session, io.StringIO("\n".join(rows) + "\n"), "KE", "en", told.append)
    session.commit()
    assert (report.imported, report.unchanged) == (4, 1)
    assert [line for line, _ in report.errors] == [3, 6, 7, 8]
    assert told == [3, 6, 9, 9]
    assert owner_phone(session, 2005) == owner_phone(session, 2003) == "+254712345603"
    assert customers(session) == 2
    again = import_owners(session, io.StringIO("\n".join(rows) + "\n"), "KE", "en")
    assert (again.imported, again.unchanged) == (0, 5)
