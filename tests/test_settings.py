"""Settings: every variable read in one place, typed, checked, documented."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from bot import settings as settings_module
from bot.settings import DEMO_PASSWORD, DEMO_USERNAME, ConfigError, Settings
from tests.harness import variables_read

ROOT = Path(__file__).resolve().parent.parent

# DESIGN.md section 5: the variables operators and tests depend on.
CONTRACT = {
    "DATABASE_URL",
    "OMNIVOLTAIC_API_URL",
    "OMNIVOLTAIC_USERNAME",
    "OMNIVOLTAIC_PASSWORD",
    "OMNIVOLTAIC_EMULATOR_STATE",
    "OMNIVOLTAIC_EMULATOR_SEED",
    "OMNIVOLTAIC_EMULATOR_FLEET",
    "PUBLIC_BASE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_SECRET_TOKEN",
    "PAYMENTS_SECRET",
    "DEFAULT_REGION",
    "DEFAULT_LANGUAGE",
    "METRICS_TOKEN",
    "CONSOLE_SECRET_KEY",
}


def variables_in_source() -> set[str]:
    """The same, found by reading bot/settings.py: string arguments next to `env`."""
    tree = ast.parse(Path(settings_module.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "env"
            and isinstance(node.args[1], ast.Constant)
        ):
            names.add(node.args[1].value)
    return names


def test_the_source_and_a_run_agree_on_the_variables():
    assert variables_in_source() == variables_read()
    assert len(variables_read()) >= len(CONTRACT)


def test_every_contract_variable_is_read():
    assert CONTRACT <= variables_read()


def test_defaults():
    s = Settings.from_env({})
    assert s.database_url == "sqlite:///instance/ovbot.db"
    assert s.omnivoltaic_api_url is None and s.uses_emulator
    assert s.omnivoltaic_emulator_state == "instance/emulator.db"
    assert s.omnivoltaic_emulator_seed
    assert (s.default_region, s.default_language) == ("KE", "en")
    assert s.mint_on_payment is True
    assert s.agent_lock_minutes == 15
    assert s.ussd_service_codes == ()
    assert s.demo is False
    secrets = (
        "omnivoltaic_username",
        "omnivoltaic_password",
        "public_base_url",
        "twilio_account_sid",
        "twilio_auth_token",
        "twilio_from_number",
        "telegram_bot_token",
        "telegram_secret_token",
        "payments_secret",
        "twilio_whatsapp_from",
        "africastalking_username",
        "africastalking_api_key",
        "africastalking_sender_id",
        "africastalking_callback_token",
        "mpesa_shortcode",
        "mpesa_callback_token",
    )
    assert all(getattr(s, name) is None for name in secrets)
    assert s.sms_provider == "twilio" and not s.whatsapp_pushes


@pytest.mark.parametrize(
    "env, named",
    [
        pytest.param({"SMS_PROVIDER": "nexmo"}, "SMS_PROVIDER", id="an unknown SMS provider"),
        pytest.param(
            {"TWILIO_WHATSAPP_FROM": "14155238886"}, "TWILIO_WHATSAPP_FROM", id="not a sender"
        ),
    ],
)
def test_channel_settings_that_cannot_work_are_refused_by_name(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "values, pushes",
    [
        pytest.param({}, False, id="no WhatsApp sender"),
        pytest.param({"twilio_whatsapp_from": "whatsapp:+1415"}, False, id="no Twilio account"),
        pytest.param(
            {
                "twilio_whatsapp_from": "whatsapp:+1415",
                "twilio_account_sid": "AC",
                "twilio_auth_token": "t",
            },
            True,
            id="sender and account",
        ),
        pytest.param(
            {"twilio_whatsapp_from": "whatsapp:+1415", "demo": True}, True, id="the demo prints"
        ),
    ],
)
def test_whatsapp_pushes_need_a_sender_and_the_account_behind_it(values, pushes):
    assert Settings(**values).whatsapp_pushes is pushes


# env variable -> (value given, attribute, value read)
READ = {
    "DATABASE_URL": (
        "postgresql+psycopg://u:p@db/ovbot",
        "database_url",
        "postgresql+psycopg://u:p@db/ovbot",
    ),
    "OMNIVOLTAIC_API_URL": (
        "https://api.example.test",
        "omnivoltaic_api_url",
        "https://api.example.test",
    ),
    "OMNIVOLTAIC_USERNAME": ("dist@example.com", "omnivoltaic_username", "dist@example.com"),
    "OMNIVOLTAIC_PASSWORD": ("s3cret", "omnivoltaic_password", "s3cret"),
    "OMNIVOLTAIC_TIMEOUT": ("2.5", "omnivoltaic_timeout", 2.5),
    "OMNIVOLTAIC_EMULATOR_STATE": (
        "/var/lib/emu.db",
        "omnivoltaic_emulator_state",
        "/var/lib/emu.db",
    ),
    "OMNIVOLTAIC_EMULATOR_SEED": ("seed-42", "omnivoltaic_emulator_seed", "seed-42"),
    "OMNIVOLTAIC_EMULATOR_FLEET": ("100000", "omnivoltaic_emulator_fleet", 100000),
    "OMNIVOLTAIC_API_VERSION": ("V2", "omnivoltaic_api_version", "v2"),
    "OMNIVOLTAIC_LOGIN_URL": (
        "https://b2b.example.test/user/login",
        "omnivoltaic_login_url",
        "https://b2b.example.test/user/login",
    ),
    "OMNIVOLTAIC_AUTH_SCHEME": ("Bearer", "omnivoltaic_auth_scheme", "bearer"),
    "PUBLIC_BASE_URL": ("https://bot.example.com", "public_base_url", "https://bot.example.com"),
    "TWILIO_ACCOUNT_SID": ("AC123", "twilio_account_sid", "AC123"),
    "TWILIO_AUTH_TOKEN": ("tw-token", "twilio_auth_token", "tw-token"),
    "TWILIO_FROM_NUMBER": ("+15005550006", "twilio_from_number", "+15005550006"),
    "TELEGRAM_BOT_TOKEN": ("123:abc", "telegram_bot_token", "123:abc"),
    "TELEGRAM_SECRET_TOKEN": ("tg-secret", "telegram_secret_token", "tg-secret"),
    "PAYMENTS_SECRET": ("pay-secret", "payments_secret", "pay-secret"),
    "TWILIO_WHATSAPP_FROM": (
        "whatsapp:+14155238886",
        "twilio_whatsapp_from",
        "whatsapp:+14155238886",
    ),
    "SMS_PROVIDER": ("AfricasTalking", "sms_provider", "africastalking"),
    "AFRICASTALKING_USERNAME": ("sandbox", "africastalking_username", "sandbox"),
    "AFRICASTALKING_API_KEY": ("at-key-123", "africastalking_api_key", "at-key-123"),
    "AFRICASTALKING_SENDER_ID": ("OVES", "africastalking_sender_id", "OVES"),
    "AFRICASTALKING_CALLBACK_TOKEN": (
        "at-callback",
        "africastalking_callback_token",
        "at-callback",
    ),
    "MPESA_SHORTCODE": (" 600638 ", "mpesa_shortcode", "600638"),
    "MPESA_CALLBACK_TOKEN": ("mp-token", "mpesa_callback_token", "mp-token"),
    "DEFAULT_REGION": ("tz", "default_region", "TZ"),
    "DEFAULT_LANGUAGE": ("SW", "default_language", "sw"),
    "MINT_ON_PAYMENT": ("off", "mint_on_payment", False),
    "AGENT_LOCK_MINUTES": ("30", "agent_lock_minutes", 30),
    "AGENT_DAILY_DAYS_CAP": ("90", "agent_daily_days_cap", 90),
    "OVBOT_CONFIG_DIR": ("/etc/ovbot", "config_dir", "/etc/ovbot"),
    "LOG_FORMAT": ("JSON", "log_format", "json"),
    "USSD_MINT_BUDGET": ("4.5", "ussd_mint_budget", 4.5),
    "REPLY_BUDGET": ("9", "reply_budget", 9.0),
    "DB_POOL_SIZE": ("20", "db_pool_size", 20),
    "DB_MAX_OVERFLOW": ("0", "db_max_overflow", 0),
    "DB_POOL_RECYCLE": ("600", "db_pool_recycle", 600.0),
    "DB_STATEMENT_TIMEOUT": ("0", "db_statement_timeout", 0.0),
    "USSD_SERVICE_CODES": (" *384#, *385*1# ,", "ussd_service_codes", ("*384#", "*385*1#")),
    "METRICS_TOKEN": (" scrape-me ", "metrics_token", "scrape-me"),
    "PROMETHEUS_MULTIPROC_DIR": (
        "/run/ovbot-metrics",
        "prometheus_multiproc_dir",
        "/run/ovbot-metrics",
    ),
    # Reminders (issue 13).
    "TIMEZONE": ("Europe/Paris", "timezone", "Europe/Paris"),
    "REMINDER_DAYS": ("1, 5", "reminder_days", (5, 1)),
    "QUIET_HOURS": ("20-7", "quiet_hours", (20, 7)),
    "CONSOLE_SECRET_KEY": ("s3cret-key", "console_secret_key", "s3cret-key"),
}


def test_the_table_covers_every_variable_read():
    assert set(READ) == variables_read(), "a new variable needs a row in READ (and docs)"


@pytest.mark.parametrize("name", sorted(READ))
def test_each_variable_is_read_into_its_attribute(name):
    given, attribute, expected = READ[name]
    value = getattr(Settings.from_env({name: given}), attribute)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("name", sorted(READ))
def test_blank_values_mean_the_default(name):
    assert Settings.from_env({name: "   "}) == Settings.from_env({})


def test_values_are_stripped():
    assert Settings.from_env({"TWILIO_AUTH_TOKEN": "  tok \n"}).twilio_auth_token == "tok"


def test_from_env_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("PAYMENTS_SECRET", "from-the-process")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "fr")
    s = Settings.from_env()
    assert (s.payments_secret, s.default_language) == ("from-the-process", "fr")


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("On", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("OFF", False),
    ],
)
def test_flags(value, expected):
    assert Settings.from_env({"MINT_ON_PAYMENT": value}).mint_on_payment is expected


@pytest.mark.parametrize(
    "name,value",
    [
        ("OMNIVOLTAIC_TIMEOUT", "ten"),
        ("OMNIVOLTAIC_TIMEOUT", "0"),
        ("OMNIVOLTAIC_TIMEOUT", "-1"),
        ("OMNIVOLTAIC_TIMEOUT", "nan"),
        ("OMNIVOLTAIC_TIMEOUT", "inf"),
        ("AGENT_LOCK_MINUTES", "1.5"),
        ("AGENT_LOCK_MINUTES", "fifteen"),
        ("AGENT_LOCK_MINUTES", "-1"),
        ("AGENT_DAILY_DAYS_CAP", "many"),
        ("AGENT_DAILY_DAYS_CAP", "-5"),
        ("USSD_MINT_BUDGET", "soon"),
        ("USSD_MINT_BUDGET", "0"),
        ("MINT_ON_PAYMENT", "maybe"),
        ("MINT_ON_PAYMENT", "2"),
        ("DEFAULT_LANGUAGE", "de"),
        ("DEFAULT_LANGUAGE", "english"),
        ("DEFAULT_REGION", "XX"),
        ("DEFAULT_REGION", "KEN"),
        ("DEFAULT_REGION", "K"),
        ("DEFAULT_REGION", "254"),
        ("OMNIVOLTAIC_API_VERSION", "v3"),
        ("OMNIVOLTAIC_API_VERSION", "2"),
        ("OMNIVOLTAIC_AUTH_SCHEME", "basic"),
        ("OMNIVOLTAIC_LOGIN_URL", "b2b.example.test/user/login"),
        ("OMNIVOLTAIC_EMULATOR_FLEET", "0"),
        ("OMNIVOLTAIC_EMULATOR_FLEET", "many"),
        ("DB_POOL_SIZE", "0"),
        ("DB_POOL_SIZE", "five"),
        ("DB_MAX_OVERFLOW", "-1"),
        ("DB_STATEMENT_TIMEOUT", "-5"),
        ("MPESA_SHORTCODE", "paybill"),
        ("MPESA_SHORTCODE", "600 638"),
        ("MPESA_SHORTCODE", "６００６３８"),
    ],
)
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    assert name in str(error.value)


def test_overrides_win_over_the_environment():
    s = Settings.from_env({"DEFAULT_LANGUAGE": "fr"}, default_language="sw", demo=True)
    assert (s.default_language, s.demo) == ("sw", True)


def test_overrides_are_checked_too():
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE"):
        Settings.from_env({}, default_language="de")


def test_settings_are_frozen_and_replace_makes_a_copy():
    s = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.database_url = "sqlite://"  # type: ignore[misc]
    t = s.replace(demo=True)
    assert t.demo and not s.demo


# -- required secrets --------------------------------------------------------------------


def test_require_names_every_missing_variable_and_only_those():
    s = Settings(twilio_auth_token="set")
    with pytest.raises(ConfigError) as error:
        s.require("TWILIO_AUTH_TOKEN", "PAYMENTS_SECRET", "TELEGRAM_SECRET_TOKEN")
    message = str(error.value)
    assert "PAYMENTS_SECRET" in message and "TELEGRAM_SECRET_TOKEN" in message
    assert "TWILIO_AUTH_TOKEN" not in message


def test_require_passes_when_everything_is_set():
    Settings(payments_secret="x", twilio_auth_token="y").require(
        "PAYMENTS_SECRET", "TWILIO_AUTH_TOKEN"
    )


@pytest.mark.parametrize(
    "values,missing",
    [
        ({}, set()),
        (
            {"omnivoltaic_api_url": "https://api.test"},
            {"OMNIVOLTAIC_USERNAME", "OMNIVOLTAIC_PASSWORD"},
        ),
        (
            {"omnivoltaic_api_url": "https://api.test", "omnivoltaic_username": "u"},
            {"OMNIVOLTAIC_PASSWORD"},
        ),
        (
            {
                "omnivoltaic_api_url": "https://api.test",
                "omnivoltaic_username": "u",
                "omnivoltaic_password": "p",
            },
            set(),
        ),
        (
            {"twilio_auth_token": "t"},
            {"PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_FROM_NUMBER"},
        ),
        (
            {
                "twilio_auth_token": "t",
                "public_base_url": "https://b",
                "twilio_account_sid": "AC",
                "twilio_from_number": "+15005550006",
            },
            set(),
        ),
        (
            {"twilio_whatsapp_from": "whatsapp:+14155238886"},
            {"TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"},
        ),
        (
            {"sms_provider": "africastalking"},
            {"AFRICASTALKING_USERNAME", "AFRICASTALKING_API_KEY"},
        ),
        (
            {"africastalking_callback_token": "tok", "africastalking_username": "u"},
            {"AFRICASTALKING_API_KEY"},
        ),
        (
            {
                "sms_provider": "africastalking",
                "africastalking_username": "u",
                "africastalking_api_key": "k",
            },
            set(),
        ),
        ({"mpesa_callback_token": "t"}, {"MPESA_SHORTCODE"}),
        ({"mpesa_callback_token": "t", "mpesa_shortcode": "600638"}, set()),
    ],
)
def test_require_for_production(values, missing):
    s = Settings(**values)
    if not missing:
        s.require_for_production()
        return
    with pytest.raises(ConfigError) as error:
        s.require_for_production()
    named = set(re.findall(r"[A-Z][A-Z_]{3,}", str(error.value)))
    assert named == missing


def test_credentials_default_to_the_demo_distributor_only_with_the_emulator():
    assert Settings().omnivoltaic_credentials == (DEMO_USERNAME, DEMO_PASSWORD)
    assert Settings(omnivoltaic_username="u", omnivoltaic_password="p").omnivoltaic_credentials == (
        "u",
        "p",
    )
    real = Settings(omnivoltaic_api_url="https://api.test")
    with pytest.raises(ConfigError) as error:
        _ = real.omnivoltaic_credentials
    assert "OMNIVOLTAIC_USERNAME" in str(error.value)
    assert "OMNIVOLTAIC_PASSWORD" in str(error.value)
    assert real.replace(
        omnivoltaic_username="u", omnivoltaic_password="p"
    ).omnivoltaic_credentials == ("u", "p")


# -- documented, and read nowhere else ------------------------------------------------------


def _example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / "config" / "example.env").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            values.setdefault(match.group(1), match.group(2))
    return values


def test_every_variable_is_in_example_env_and_nothing_stale():
    assert set(_example_env()) == variables_read()


def test_every_variable_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in variables_read() if f"`{name}`" not in readme}
    assert not missing


def test_example_env_is_a_valid_configuration():
    s = Settings.from_env(_example_env())
    assert s.database_url == Settings.database_url
    assert s.uses_emulator


def test_no_other_module_reads_the_environment():
    offenders = []
    for folder in ("bot", "webhooks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "settings.py" and path.parent.name == "bot":
                continue
            if re.search(r"os\.environ|getenv\(", path.read_text()):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_login_url_defaults_to_the_api_url_and_is_ignored_by_the_emulator():
    api = "https://api.example.test"
    assert Settings.from_env({"OMNIVOLTAIC_API_URL": api}).omnivoltaic_login_target == (
        "/user/login"  # relative: joined to the API URL by the client's base URL
    )
    login = "https://b2b.example.test/auth/login"
    both = {"OMNIVOLTAIC_API_URL": api, "OMNIVOLTAIC_LOGIN_URL": login}
    assert Settings.from_env(both).omnivoltaic_login_target == login
    alone = Settings.from_env({"OMNIVOLTAIC_LOGIN_URL": login})
    assert alone.uses_emulator and alone.omnivoltaic_login_target == "/user/login"


def test_log_format_and_config_dir():
    settings = Settings.from_env({"LOG_FORMAT": "JSON", "OVBOT_CONFIG_DIR": "/etc/ovbot"})
    assert (settings.log_format, settings.config_dir) == ("json", "/etc/ovbot")
    assert (Settings.from_env({}).log_format, Settings.from_env({}).config_dir) == ("text", None)
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of text, json, got 'xml'"):
        Settings.from_env({"LOG_FORMAT": "xml"})


# -- reminders (issue 13): TIMEZONE, REMINDER_DAYS, QUIET_HOURS ------------------------------


def test_reminder_defaults():
    s = Settings.from_env({})
    assert (s.timezone, s.reminder_days, s.quiet_hours) == ("Africa/Nairobi", (3, 1, 0), (21, 8))


@pytest.mark.parametrize(
    "env, expected",
    [
        pytest.param({"REMINDER_DAYS": "0, 7,2"}, ("reminder_days", (7, 2, 0)), id="days sorted"),
        pytest.param({"REMINDER_DAYS": "off"}, ("reminder_days", ()), id="days off"),
        pytest.param({"QUIET_HOURS": "22-6"}, ("quiet_hours", (22, 6)), id="quiet wraps"),
        pytest.param({"QUIET_HOURS": "13 - 15"}, ("quiet_hours", (13, 15)), id="quiet same day"),
        pytest.param({"QUIET_HOURS": "OFF"}, ("quiet_hours", None), id="quiet off"),
        pytest.param({"TIMEZONE": "UTC"}, ("timezone", "UTC"), id="utc"),
    ],
)
def test_reminder_settings_are_read(env, expected):
    name, value = expected
    assert getattr(Settings.from_env(env), name) == value


@pytest.mark.parametrize(
    "env, message",
    [
        pytest.param({"TIMEZONE": "Mars/Olympus"}, "TIMEZONE must be an IANA", id="zone"),
        pytest.param({"REMINDER_DAYS": "3,x"}, "REMINDER_DAYS must be", id="not a number"),
        pytest.param({"REMINDER_DAYS": "-1"}, "REMINDER_DAYS must be", id="negative"),
        pytest.param({"REMINDER_DAYS": "1,1"}, "REMINDER_DAYS must be", id="twice"),
        pytest.param({"REMINDER_DAYS": "31"}, "REMINDER_DAYS must be", id="too far"),
        pytest.param({"QUIET_HOURS": "21"}, "QUIET_HOURS must be START-END", id="one hour"),
        pytest.param({"QUIET_HOURS": "21:00-8:00"}, "QUIET_HOURS must be START-END", id="hh:mm"),
        pytest.param({"QUIET_HOURS": "24-8"}, "QUIET_HOURS must be two different", id="24"),
        pytest.param({"QUIET_HOURS": "8-8"}, "QUIET_HOURS must be two different", id="empty"),
    ],
)
def test_bad_reminder_settings_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)
