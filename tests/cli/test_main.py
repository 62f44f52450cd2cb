"""`ovbot`, driven as an operator would: click's CliRunner, files under tmp_path."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import click
import flask
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.agents.pins import verify_pin
from bot.cli import demo
from bot.cli.main import main
from bot.storage import db
from bot.storage.models import Agent, Code, Customer, Device, IntegrityAlarm, Payment
from tests.harness import count_rows as count
from tests.harness import ovbot

CODE = re.compile(r"\*\d{3}(?: \d{3}){6}#")


# -- help and configuration ------------------------------------------------------------------


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_help_works_without_any_configuration(home, monkeypatch):
    monkeypatch.setenv("DEFAULT_LANGUAGE", "not-a-language")  # broken, and never read
    monkeypatch.setenv("OMNIVOLTAIC_API_URL", "https://unreachable.invalid")
    result = ovbot("--help")
    assert result.exit_code == 0
    for name in (
        "db",
        "sync-devices",
        "import-owners",
        "agent",
        "credit",
        "demo",
        "chat",
        "serve",
        "emulator",
        "telegram",
    ):
        assert name in result.output
    for path in _commands(main):
        assert ovbot(*path, "--help").exit_code == 0, path
    assert list(home.iterdir()) == []


def test_version_comes_from_the_package_metadata(home):
    from importlib.metadata import version

    result = ovbot("--version")
    assert (result.exit_code, result.stdout) == (0, f"ovbot {version('ovbot')}\n")
    assert list(home.iterdir()) == []


def test_every_help_line_in_a_command_list_is_a_whole_sentence(home):
    """click cuts a long first sentence with "..." in the list of commands."""
    for path in _commands(main):
        command = main
        for name in path:
            command = command.commands[name]
        short = command.get_short_help_str(limit=45)
        assert short and not short.endswith("...") and short.endswith("."), (path, short)
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help is None or len(param.help.split()) > 1, (path, param.name)


def test_a_bad_setting_is_a_clean_error_naming_it(home, monkeypatch):
    monkeypatch.setenv("DEFAULT_REGION", "XX")
    result = ovbot("db", "upgrade")
    assert result.exit_code == 1
    assert "DEFAULT_REGION" in result.stderr and "Traceback" not in result.output


# -- db upgrade ------------------------------------------------------------------------------


def test_db_upgrade_prints_the_revision_and_is_idempotent(home):
    first = ovbot("db", "upgrade")
    assert first.exit_code == 0
    assert first.stdout == f"database at revision {db.head_revision()}\n"
    second = ovbot("db", "upgrade")
    assert (second.exit_code, second.stdout) == (0, first.stdout)
    assert (home / "ovbot.db").exists()


def test_the_default_database_is_under_instance_in_the_current_directory(home, monkeypatch):
    monkeypatch.delenv("DATABASE_URL")
    assert ovbot("db", "upgrade").exit_code == 0
    assert (home / "instance" / "ovbot.db").is_file()


# -- sync-devices ----------------------------------------------------------------------------


def test_sync_devices_fills_the_fleet_once(home, Session):
    first = ovbot("sync-devices")
    assert first.exit_code == 0 and "100 devices synced (100 new, 0 updated)" in first.stdout
    assert "100 devices read so far\n" in first.stderr and "\r" not in first.output
    assert count(Session, Device) == 100
    second = ovbot("sync-devices")
    assert second.exit_code == 0 and "(0 new, 100 updated)" in second.stdout
    assert count(Session, Device) == 100
    assert (home / "emulator.db").is_file() and not (home / "instance").exists()


# -- import-owners ---------------------------------------------------------------------------

OWNERS = """\
product_id,customer_phone,customer_name,language
1001,0712345678,Amina
1002,+254712345679,Baraka,sw
9999,0712345670,Nobody
1003,0712ABC678,Letters
1004,0712345671,Claire,de
1005,0712345672,
1006,0712345673
1007,0712345674,Dan,en,extra
1008,0712345675,Esther
1008,0712345676,Fatuma
"""
BAD_LINES = {
    4: "unknown device 9999",
    5: "customer_phone",
    6: "language",
    7: "customer_name is empty",
    8: "expected 3 or 4 columns, got 2",
    9: "expected 3 or 4 columns, got 5",
    11: "device 1008 is given to two owners",
}


def _reported(stderr: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^line (\d+): (.*)$", stderr, re.M)}


def test_import_owners_imports_good_rows_and_names_bad_lines(fleet, Session):
    (fleet / "owners.csv").write_text(OWNERS)
    result = ovbot("import-owners", "owners.csv")
    assert result.exit_code == 1
    reported = _reported(result.stderr)
    assert set(reported) == set(BAD_LINES)
    for line, reason in BAD_LINES.items():
        assert reason in reported[line], line
    assert "3 imported" in result.stdout and "7 bad rows" in result.stdout

    with Session() as session:
        amina = session.scalar(select(Customer).where(Customer.phone == "+254712345678"))
        baraka = session.scalar(select(Customer).where(Customer.phone == "+254712345679"))
        assert (amina.name, amina.language, [d.product_id for d in amina.devices]) == (
            "Amina",
            "en",
            [1001],
        )
        assert (baraka.language, [d.product_id for d in baraka.devices]) == ("sw", [1002])
    assert count(Session, Customer) == 3
    assert "0712345670" not in result.output, "no phone number in clear"

    again = ovbot("import-owners", "owners.csv")
    assert again.exit_code == 1
    assert "0 imported, 3 unchanged, 7 bad rows" in again.stdout
    assert set(_reported(again.stderr)) == set(BAD_LINES)
    assert count(Session, Customer) == 3


def test_import_owners_of_a_clean_file_exits_zero(fleet, monkeypatch, Session):
    monkeypatch.setenv("DEFAULT_REGION", "TZ")
    (fleet / "owners.csv").write_text("1001,0712345678,Amina\n")
    result = ovbot("import-owners", "owners.csv")
    assert (result.exit_code, result.stderr) == (0, "")
    with Session() as session:
        assert session.scalar(select(Customer.phone)) == "+255712345678"


def test_import_owners_reads_a_bom_and_refuses_a_missing_file(fleet):
    (fleet / "bom.csv").write_bytes(
        "\ufeffproduct_id,customer_phone,customer_name\n1001,0712345678,Amina\n".encode("utf-8")
    )
    assert ovbot("import-owners", "bom.csv").exit_code == 0
    assert ovbot("import-owners", "missing.csv").exit_code == 2


def test_import_owners_refuses_a_file_that_is_not_utf8(fleet, Session):
    (fleet / "latin1.csv").write_bytes(
        "1001,0712345678,Amina\n1002,0712345679,Am\u00e9lie\n".encode("latin-1")
    )
    result = ovbot("import-owners", "latin1.csv")
    assert result.exit_code == 1 and "UTF-8" in result.stderr
    assert "Traceback" not in result.output
    assert count(Session, Customer) == 0, "all or nothing"


# -- agent add -------------------------------------------------------------------------------


def test_agent_add_creates_then_updates(home, Session):
    first = ovbot("agent", "add", "0700000100", "--name", "Jane", "--pin", "48213579")
    assert first.exit_code == 0 and "created" in first.stdout
    second = ovbot(
        "agent", "add", "+254700000100", "--name", "Jane W", "--pin", "97531864", "--role", "admin"
    )
    assert second.exit_code == 0 and "updated" in second.stdout
    assert count(Session, Agent) == 1
    with Session() as session:
        agent = session.scalar(select(Agent))
    assert (agent.phone, agent.name, agent.role) == ("+254700000100", "Jane W", "admin")
    assert verify_pin("97531864", agent.pin_hash)
    assert not verify_pin("48213579", agent.pin_hash)
    stored = b"".join(p.read_bytes() for p in home.glob("ovbot.db*"))  # WAL included
    for pin in ("48213579", "97531864"):
        assert pin not in first.output + second.output and pin.encode() not in stored
    assert "0700000100" not in first.output and "700000100" not in second.output


@pytest.mark.parametrize(
    "args",
    [
        ("--pin", "12"),
        ("--pin", "12345678901"),
        ("--pin", "12ab"),
        ("--pin", "4821", "--role", "boss"),
        ("--pin", "4821", "--name", "   "),
    ],
)
def test_agent_add_usage_errors(home, Session, args):
    options = ["--name", "Jane", *args] if "--name" not in args else list(args)
    result = ovbot("agent", "add", "0700000100", *options)
    assert result.exit_code == 2
    if (home / "ovbot.db").exists():
        assert count(Session, Agent) == 0


def test_agent_add_refuses_a_bad_phone(home):
    result = ovbot("agent", "add", "12", "--name", "Jane", "--pin", "4821")
    assert result.exit_code == 2 and "PHONE" in result.stderr


# -- credit ----------------------------------------------------------------------------------


def test_credit_records_mints_and_ignores_a_repeat(fleet, Session):
    first = ovbot("credit", "1001", "30", "--reference", "RCPT-1")
    assert first.exit_code == 0 and "recorded 30 days for device 1001" in first.stdout
    with Session() as session:
        device = session.scalar(select(Device).where(Device.product_id == 1001))
        codes = session.scalars(select(Code).where(Code.device_id == device.id)).all()
    assert [(c.kind, c.days, c.state) for c in codes] == [("days", 30, "minted")]
    assert f"code {codes[0].code} (30 days)" in first.stdout
    assert "not sent: the device has no owner" in first.stdout and "code: sent" not in first.stdout
    assert count(Session, Payment) == 1

    again = ovbot("credit", "1001", "30", "--reference", "RCPT-1")
    assert again.exit_code == 0 and "already recorded" in again.stdout
    assert (count(Session, Payment), count(Session, Code)) == (1, 1)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("1002", "30"), id="another device"),
        pytest.param(("1001", "31"), id="other days"),
    ],
)
def test_credit_with_a_reference_used_for_another_payment_fails_and_changes_nothing(
    fleet, Session, args
):
    assert ovbot("credit", "1001", "30", "--reference", "RCPT-1").exit_code == 0
    other = ovbot("credit", *args, "--reference", "RCPT-1")
    assert other.exit_code == 1
    assert "RCPT-1 was already used for another payment: 30 days for device 1001" in other.stderr
    assert "nothing changed" in other.stderr
    assert (count(Session, Payment), count(Session, Code)) == (1, 1)
    same = ovbot("credit", "oves001001", "30", "--reference", "RCPT-1")  # by serial: the same
    assert same.exit_code == 0 and "already recorded" in same.stdout


def test_credit_by_serial(fleet, Session):
    assert ovbot("credit", "oves001003", "2", "--reference", "R-2").exit_code == 0
    with Session() as session:
        payment = session.scalar(select(Payment))
        assert (payment.device.product_id, payment.days, payment.source) == (1003, 2, "cli")


@pytest.mark.parametrize(
    "args",
    [
        ("4242", "5", "--reference", "R"),  # not in the fleet
        ("1101", "5", "--reference", "R"),  # the other distributor's
        ("1001", "0", "--reference", "R"),
        ("1001", "-3", "--reference", "R"),
        ("1001", "five", "--reference", "R"),
        ("1001", "5"),  # no reference
    ],
)
def test_credit_errors_change_nothing(fleet, Session, args):
    assert ovbot("credit", *args).exit_code == 2
    assert (count(Session, Payment), count(Session, Code)) == (0, 0)


# -- chat ------------------------------------------------------------------------------------


@pytest.fixture
def customer(fleet):
    (fleet / "owners.csv").write_text("1001,0712345678,Amina\n")
    assert ovbot("import-owners", "owners.csv").exit_code == 0
    assert ovbot("credit", "1001", "7", "--reference", "R-1").exit_code == 0
    return fleet


def test_chat_over_sms(customer):
    result = ovbot("chat", "--from", "0712345678", input="CODE\nSTATUS\n")
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert len(lines) == 2
    assert CODE.search(lines[0])
    assert "7 days left" in lines[1]


def test_chat_over_telegram_needs_the_contact_first(customer):
    result = ovbot(
        "chat",
        "--from",
        "+254712345678",
        "--channel",
        "telegram",
        input="CODE\n/contact\n/code\n/quit\nSTATUS\n",
    )
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert not CODE.search(lines[0]) and "[button:" in lines[1]
    assert "Amina" in lines[2]
    assert CODE.search(lines[3])
    assert len(lines) == 4, "nothing after /quit"


def test_chat_on_a_fresh_directory_migrates_first_and_warns_it_is_empty(home):
    result = ovbot("chat", "--from", "0712345678", input="CODE\n")
    assert result.exit_code == 0
    assert "not registered" in result.stdout and "went wrong" not in result.stdout
    assert "has no customers" in result.stderr and str(home / "ovbot.db") in result.stderr


def test_credit_to_an_owned_device_says_queued_not_sent(customer, Session):
    result = ovbot("credit", "1001", "3", "--reference", "R-2")
    with Session() as session:
        code = session.scalar(select(Code).order_by(Code.id.desc()))
    assert f"code {code.code} (3 days)" in result.stdout
    assert "queued for Amina (+254*****678) by sms, not sent yet" in result.stdout


def test_chat_with_customers_does_not_warn(customer):
    result = ovbot("chat", "--from", "0712345678", input="STATUS\n")
    assert result.exit_code == 0 and "has no customers" not in result.stderr


def test_chat_over_whatsapp_gets_the_same_answers_and_records_the_channel(customer, Session):
    result = ovbot("chat", "--from", "0712345678", "--channel", "whatsapp", input="CODE\nSTATUS\n")
    assert result.exit_code == 0 and "over whatsapp" in result.stdout
    lines = [line for line in result.stdout.splitlines() if line.startswith("bot> ")]
    assert len(lines) == 2 and CODE.search(lines[0]) and "days left" in lines[1]
    with Session() as session:
        amina = session.scalar(select(Customer))
        assert amina.last_channel == "whatsapp" and amina.whatsapp_at is not None


def test_chat_with_an_unreachable_server_is_a_clear_error(home):
    result = ovbot("chat", "--from", "0712345678", "--url", "http://127.0.0.1:9", input="CODE\n")
    assert (
        result.exit_code == 1 and "cannot reach the server at http://127.0.0.1:9" in result.stderr
    )
    assert "Traceback" not in result.output


def test_chat_refuses_a_bad_number(home):
    result = ovbot("chat", "--from", "hello")
    assert result.exit_code == 2 and "--from" in result.stderr


# -- demo, serve, telegram -------------------------------------------------------------------


def test_demo_seeds_and_serves(home, monkeypatch, Session):
    served, embedded = {}, []
    monkeypatch.setattr(flask.Flask, "run", lambda app, **kw: served.update(kw, app=app))
    # Not the real embedded worker: its thread would outlive the command (whose deps close
    # when it returns) and log errors into whatever test this process runs next.
    monkeypatch.setattr("webhooks.app.embed_worker", embedded.append)
    result = ovbot("demo", "--port", "8123")
    assert result.exit_code == 0
    assert served["port"] == 8123 and served["app"].extensions["ovbot"].settings.demo
    assert embedded == [served["app"].extensions["ovbot"]]
    assert "http://127.0.0.1:8123" in result.stdout and "ovbot chat" in result.stdout
    assert f"PIN {demo.AGENT_PIN}" in result.stdout
    # The console is on, with a secret key made for the run, and its operator printed.
    assert "/console/" in {rule.rule for rule in served["app"].url_map.iter_rules()}
    assert served["app"].extensions["ovbot"].settings.console_secret_key
    assert "http://127.0.0.1:8123/console/" in result.stdout
    assert demo.OPERATOR_PASSWORD in result.stdout
    assert count(Session, Device) == 100
    assert count(Session, Customer) == len(demo.CUSTOMERS)
    assert ovbot("demo").exit_code == 0
    assert count(Session, Customer) == len(demo.CUSTOMERS)


def test_demo_refuses_a_real_api(home, monkeypatch):
    monkeypatch.setenv("OMNIVOLTAIC_API_URL", "https://api.example.test")
    result = ovbot("demo")
    assert result.exit_code == 1 and "OMNIVOLTAIC_API_URL" in result.stderr


def test_serve_names_missing_production_settings(home, monkeypatch):
    monkeypatch.setenv("OMNIVOLTAIC_API_URL", "https://api.example.test")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "tok")
    result = ovbot("serve")
    assert result.exit_code == 1
    for name in (
        "OMNIVOLTAIC_USERNAME",
        "OMNIVOLTAIC_PASSWORD",
        "PUBLIC_BASE_URL",
        "TWILIO_ACCOUNT_SID",
        "TWILIO_FROM_NUMBER",
    ):
        assert name in result.stderr


def test_telegram_set_webhook_checks_before_calling(home, monkeypatch):
    result = ovbot("telegram", "set-webhook", "https://bot.example.com/webhooks/telegram")
    assert result.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN" in result.stderr and "TELEGRAM_SECRET_TOKEN" in result.stderr
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123:abc")
    monkeypatch.setenv("TELEGRAM_SECRET_TOKEN", "secret")
    result = ovbot("telegram", "set-webhook", "http://bot.example.com/webhooks/telegram")
    assert result.exit_code == 2 and "https" in result.stderr


def test_alarms_lists_integrity_alarms_and_exits_non_zero_while_there_are_any(fleet, Session):
    quiet = ovbot("alarms")
    assert quiet.exit_code == 0 and "0 integrity alarm(s)" in quiet.stdout
    with db.transaction(Session) as session:
        device = session.scalar(select(Device).where(Device.product_id == 1001))
        session.add(
            IntegrityAlarm(
                kind="late_answer",
                device_id=device.id,
                detail="an answer came after the attempt was released",
            )
        )
    loud = ovbot("alarms")
    assert loud.exit_code == 1
    assert "late_answer\tdevice 1001" in loud.stdout and "1 integrity alarm(s)" in loud.stdout


def test_agent_unlock_lifts_a_lock_out_and_list_shows_it(home, Session):
    assert ovbot("agent", "add", "0700000100", "--name", "Jane", "--pin", "4821").exit_code == 0
    with db.transaction(Session) as session:  # three wrong PINs, as anyone could send them
        agent = session.scalar(select(Agent))
        agent.failed_attempts, agent.locked_until = 2, datetime.now(UTC) + timedelta(minutes=15)
    listed = ovbot("agent", "list")
    assert "+254*****100\tagent\tJane\tlocked until" in listed.stdout
    assert "0700000100" not in listed.stdout and "700000100" not in listed.stdout
    done = ovbot("agent", "unlock", "+254700000100")
    assert done.exit_code == 0 and "unlocked Jane" in done.stdout
    with Session() as session:
        agent = session.scalar(select(Agent))
        assert (agent.failed_attempts, agent.locked_until) == (0, None)
    assert "active" in ovbot("agent", "list").stdout
    unknown = CliRunner().invoke(main, ["agent", "unlock", "+254700000999"])
    assert unknown.exit_code != 0 and "no agent +254*****999" in unknown.output


def test_agent_add_prompts_for_the_pin_hidden_when_not_given(home, Session):
    done = ovbot("agent", "add", "0700000100", "--name", "Jane", input="4821\n4821\n")
    assert done.exit_code == 0 and "created" in done.stdout
    assert "4821" not in done.stdout  # hidden: not echoed
    with Session() as session:
        assert verify_pin("4821", session.scalar(select(Agent)).pin_hash)
