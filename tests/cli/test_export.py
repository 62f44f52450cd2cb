"""`ovbot export payments|codes [--since DATE] [--output FILE] [--clear-phones]`: CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.agents.pins import add_agent
from bot.cli.export import CODE_COLUMNS, PAYMENT_COLUMNS
from bot.storage import db
from bot.storage.models import Code, Device, Payment
from tests.harness import ovbot

OLD = datetime(2026, 1, 10, 8, 30, tzinfo=UTC)


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
def paid(fleet, Session):
    """Three payments: an agent's (old), the CLI's for 1001 (in a code), an unmatched one."""
    with db.transaction(Session) as session:
        agent, _ = add_agent(session, "+254700000100", "Jane", "4821")
        device = session.scalar(select(Device).where(Device.product_id == 1002))
        session.add(
            Payment(
                reference="=HYPERLINK(1)",
                device_id=device.id,
                days=5,
                source="agent",
                agent_id=agent.id,
                phone="+254712345678",
                created_at=OLD,
            )
        )
        session.add(
            Payment(reference="MP-2", product_ref="OVES999", days=2, amount=100, source="webhook")
        )
    assert ovbot("credit", "1001", "7", "--reference", "R-1").exit_code == 0
    return fleet


def test_payments_as_csv_with_stable_headers_and_masked_phones(paid):
    result = ovbot("export", "payments")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == ",".join(PAYMENT_COLUMNS)
    rows = table(result.stdout)
    assert [r["reference"] for r in rows] == ["'=HYPERLINK(1)", "MP-2", "R-1"]
    agent_sale, unmatched, cli = rows
    assert agent_sale["created_at"] == "2026-01-10T08:30:00Z"
    assert (agent_sale["payer_phone"], agent_sale["agent_phone"]) == (
        "+254*****678",
        "+254*****100",
    )
    assert (agent_sale["agent_name"], agent_sale["state"], agent_sale["product_id"]) == (
        "Jane",
        "credit",
        "1002",
    )
    assert (unmatched["state"], unmatched["product_id"], unmatched["amount"]) == (
        "unmatched",
        "",
        "100.00",
    )
    assert (cli["state"], cli["serial"], cli["days"]) == ("in code", "OVES001001", "7")
    assert "712345678" not in result.stdout and "700000100" not in result.stdout


def test_clear_phones_are_given_in_clear_with_a_warning(paid):
    result = ovbot("export", "payments", "--clear-phones")
    assert table(result.stdout)[0]["payer_phone"] == "+254712345678"
    assert "phone numbers are in clear" in result.stderr


def test_since_keeps_only_the_later_rows(paid):
    rows = table(ovbot("export", "payments", "--since", "2026-01-11").stdout)
    assert [r["reference"] for r in rows] == ["MP-2", "R-1"]
    late = table(ovbot("export", "payments", "--since", "2026-01-10T08:30:01").stdout)
    assert "'=HYPERLINK(1)" not in [r["reference"] for r in late]


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "10/01/2026", ""])
def test_a_bad_since_is_a_usage_error_and_writes_nothing(paid, since):
    result = ovbot("export", "payments", "--since", since, "--output", "out.csv")
    assert result.exit_code == 2 and "--since" in result.stderr
    assert not (paid / "out.csv").exists()


def test_output_writes_the_file_and_says_so(paid):
    result = ovbot("export", "payments", "--output", "payments.csv")
    assert result.exit_code == 0 and result.stdout == ""
    assert "3 row(s) written to payments.csv" in result.stderr
    written = (paid / "payments.csv").read_text(encoding="utf-8")
    assert written == ovbot("export", "payments").stdout


def test_codes_come_by_device_in_entry_order(fleet, Session):
    """Upstream indexes out of id order, and one not known yet: the order to enter them."""
    with db.transaction(Session) as session:
        devices = {
            d.product_id: d
            for d in session.scalars(select(Device).where(Device.product_id.in_([1001, 1002])))
        }
        minted = datetime.now(UTC) - timedelta(days=1)
        for key, (pid, index, days) in enumerate(
            [(1002, 2, 3), (1001, 3, 1), (1001, None, 4), (1001, 1, 2), (1001, 2, 5)]
        ):
            session.add(
                Code(
                    device_id=devices[pid].id,
                    kind="days",
                    days=days,
                    code=f"*{key:03d} 000 000 000 000 000 000#",
                    state="minted",
                    request_key=f"test:{key}:0",
                    channel="cli",
                    requested_by="+254712345678",
                    upstream_index=index,
                    minted_at=minted,
                )
            )
        session.add(
            Code(
                device_id=devices[1001].id,
                kind="days",
                days=9,
                state="failed",
                request_key="test:failed:0",
                channel="cli",
            )
        )
    result = ovbot("export", "codes")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == ",".join(CODE_COLUMNS)
    rows = table(result.stdout)
    assert [(r["product_id"], r["upstream_index"], r["days"]) for r in rows] == [
        ("1001", "1", "2"),
        ("1001", "2", "5"),
        ("1001", "3", "1"),
        ("1001", "", "4"),
        ("1002", "2", "3"),
    ]
    assert {r["requested_by"] for r in rows} == {"+254*****678"}
    assert table(ovbot("export", "codes", "--since", "2099-01-01").stdout) == []


def test_export_refuses_an_unmigrated_database(home):
    result = ovbot("export", "codes")
    assert result.exit_code == 1 and "ovbot db upgrade" in result.stderr


def test_export_help_documents_the_columns(home):
    text = " ".join(ovbot("export", "payments", "--help").stdout.split())
    assert "Columns: " + ", ".join(PAYMENT_COLUMNS) + "." in text
    text = " ".join(ovbot("export", "codes", "--help").stdout.split())
    assert "Columns: " + ", ".join(CODE_COLUMNS) + "." in text and "entered" in text
