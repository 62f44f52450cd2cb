"""Settings: every environment variable the product reads, read here and only here.

`Settings.from_env()` builds one frozen, typed object; the composition roots (the app
factory and the CLI) call it once and hand it on.  Non-secrets have development
defaults; secrets default to unset, and `require()` names every missing one at start-up.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from bot.domain import LANGUAGES

DEMO_USERNAME = "demo@example.com"
DEMO_PASSWORD = "demo"
LOG_FORMATS = ("text", "json")
# Reminders (issue 13): at most this many days ahead; "off" turns a setting off.
MAX_REMINDER_DAYS = 30
OFF = ("off", "none")
SMS_PROVIDERS = ("twilio", "africastalking")


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name, "").strip()
    return value or default


@overload
def _number(env: Mapping[str, str], name: str, default: float) -> float: ...
@overload
def _number(env: Mapping[str, str], name: str, default: int, cast: Callable[[str], int]) -> int: ...
def _number(
    env: Mapping[str, str], name: str, default: float, cast: Callable[[str], float] = float
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = cast(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _reminder_days(env: Mapping[str, str], name: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """REMINDER_DAYS: "3,1,0" -> (3, 1, 0), largest first; "off" -> ()."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in OFF:
        return ()
    problem = (
        f"{name} must be distinct whole numbers of days from 0 to {MAX_REMINDER_DAYS}, "
        f"separated by commas (e.g. 3,1,0), or off; got {raw!r}"
    )
    parts = [p.strip() for p in raw.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(problem)
    days = [int(p) for p in parts]
    if len(set(days)) != len(days) or max(days) > MAX_REMINDER_DAYS:
        raise ConfigError(problem)
    return tuple(sorted(days, reverse=True))


def _hours(
    env: Mapping[str, str], name: str, default: tuple[int, int] | None
) -> tuple[int, int] | None:
    """QUIET_HOURS: "21-8" -> (21, 8), from 21:00 to 08:00 local time; "off" -> None."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() in OFF:
        return None
    start, dash, end = raw.partition("-")
    start, end = start.strip(), end.strip()
    if not (dash and start.isdigit() and end.isdigit()):
        raise ConfigError(
            f"{name} must be START-END in whole hours, e.g. 21-8 (from 21:00 to 08:00), "
            f"or off; got {raw!r}"
        )
    return int(start), int(end)


def read_log_format(env: Mapping[str, str] | None = None) -> str:
    """LOG_FORMAT, checked: the processes set logging up before they read the rest."""
    env = os.environ if env is None else env
    value = (_text(env, "LOG_FORMAT", "text") or "").lower()
    if value not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///instance/ovbot.db"
    # Omnivoltaic: no URL means the embedded emulator, logged in as the demo distributor.
    omnivoltaic_api_url: str | None = None
    omnivoltaic_username: str | None = None
    omnivoltaic_password: str | None = None
    omnivoltaic_timeout: float = 10.0
    omnivoltaic_emulator_state: str = "instance/emulator.db"
    omnivoltaic_emulator_seed: str = "oves-demo-seed"
    omnivoltaic_emulator_fleet: int = 100  # the demo distributor's items
    # Omnivoltaic generations and login (issue 15): where to log in (unset = the API URL
    # + /user/login; the emulator ignores it), which endpoints (v1: integer productItemID;
    # v2: the /v2 paths, the product as its OEM item id) and how the token is sent (raw,
    # or "Bearer <token>").
    omnivoltaic_login_url: str | None = None
    omnivoltaic_api_version: str = "v1"
    omnivoltaic_auth_scheme: str = "raw"
    # Channels.
    public_base_url: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from_number: str | None = None
    telegram_bot_token: str | None = None
    telegram_secret_token: str | None = None
    payments_secret: str | None = None
    # WhatsApp through Twilio (the sender, e.g. whatsapp:+14155238886) and Africa's
    # Talking SMS (issue 12); SMS_PROVIDER chooses who sends SMS pushes.
    twilio_whatsapp_from: str | None = None
    sms_provider: str = "twilio"
    africastalking_username: str | None = None
    africastalking_api_key: str | None = None
    africastalking_sender_id: str | None = None
    africastalking_callback_token: str | None = None
    # M-Pesa C2B (Daraja): the paybill or till its callbacks must name, and the token in
    # the registered URLs' query (`?token=`; Daraja does not sign its callbacks).
    mpesa_shortcode: str | None = None
    mpesa_callback_token: str | None = None
    # People.
    default_region: str = "KE"
    default_language: str = "en"
    # Behaviour.
    mint_on_payment: bool = True
    agent_lock_minutes: int = 15
    agent_daily_days_cap: int = 0  # 0 = no cap
    ussd_mint_budget: float = 8.0
    reply_budget: float = 12.0  # seconds of upstream calls for one SMS/Telegram reply
    ussd_service_codes: tuple[str, ...] = ()
    # The database pool (PostgreSQL): connections kept per process, extra ones allowed
    # under a burst, seconds before a connection is replaced, and the statement timeout.
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_pool_recycle: float = 1800.0
    db_statement_timeout: float = 30.0
    # Operations (issue 11): the operator's own wording (OVBOT_CONFIG_DIR/messages/*.toml,
    # else the packaged one) and the log format (text, or one JSON object a line).
    config_dir: str | None = None
    log_format: str = "text"
    # Set by `ovbot demo` only: webhooks accept unsigned requests.
    demo: bool = False
    # Metrics (GET /metrics): a bearer token guarding it (unset: open, bind it privately),
    # and prometheus_client's own directory for gunicorn's workers (it reads it at import).
    metrics_token: str | None = None
    prometheus_multiproc_dir: str | None = None
    # Reminders before credit runs out (issue 13): the local time zone of quiet hours and
    # of "today", the days before the credit ends (largest first; the day after it ran out
    # is always reminded), and the hours with no reminder (start, end; None: none).
    timezone: str = "Africa/Nairobi"
    reminder_days: tuple[int, ...] = (3, 1, 0)
    quiet_hours: tuple[int, int] | None = (21, 8)
    # The operator console (/console/): signs its session cookies; unset, the console is
    # off (the demo makes one up).
    console_secret_key: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        codes = _text(env, "USSD_SERVICE_CODES", "") or ""
        values: dict[str, Any] = dict(
            database_url=_text(env, "DATABASE_URL", cls.database_url),
            omnivoltaic_api_url=_text(env, "OMNIVOLTAIC_API_URL"),
            omnivoltaic_username=_text(env, "OMNIVOLTAIC_USERNAME"),
            omnivoltaic_password=_text(env, "OMNIVOLTAIC_PASSWORD"),
            omnivoltaic_timeout=_number(env, "OMNIVOLTAIC_TIMEOUT", cls.omnivoltaic_timeout),
            omnivoltaic_emulator_state=_text(
                env, "OMNIVOLTAIC_EMULATOR_STATE", cls.omnivoltaic_emulator_state
            ),
            omnivoltaic_emulator_seed=_text(
                env, "OMNIVOLTAIC_EMULATOR_SEED", cls.omnivoltaic_emulator_seed
            ),
            omnivoltaic_emulator_fleet=_number(
                env, "OMNIVOLTAIC_EMULATOR_FLEET", cls.omnivoltaic_emulator_fleet, int
            ),
            omnivoltaic_login_url=_text(env, "OMNIVOLTAIC_LOGIN_URL"),
            omnivoltaic_api_version=(
                _text(env, "OMNIVOLTAIC_API_VERSION", cls.omnivoltaic_api_version) or ""
            ).lower(),
            omnivoltaic_auth_scheme=(
                _text(env, "OMNIVOLTAIC_AUTH_SCHEME", cls.omnivoltaic_auth_scheme) or ""
            ).lower(),
            public_base_url=_text(env, "PUBLIC_BASE_URL"),
            twilio_account_sid=_text(env, "TWILIO_ACCOUNT_SID"),
            twilio_auth_token=_text(env, "TWILIO_AUTH_TOKEN"),
            twilio_from_number=_text(env, "TWILIO_FROM_NUMBER"),
            telegram_bot_token=_text(env, "TELEGRAM_BOT_TOKEN"),
            telegram_secret_token=_text(env, "TELEGRAM_SECRET_TOKEN"),
            payments_secret=_text(env, "PAYMENTS_SECRET"),
            twilio_whatsapp_from=_text(env, "TWILIO_WHATSAPP_FROM"),
            sms_provider=(_text(env, "SMS_PROVIDER", cls.sms_provider) or "").lower(),
            africastalking_username=_text(env, "AFRICASTALKING_USERNAME"),
            africastalking_api_key=_text(env, "AFRICASTALKING_API_KEY"),
            africastalking_sender_id=_text(env, "AFRICASTALKING_SENDER_ID"),
            africastalking_callback_token=_text(env, "AFRICASTALKING_CALLBACK_TOKEN"),
            mpesa_shortcode=_text(env, "MPESA_SHORTCODE"),
            mpesa_callback_token=_text(env, "MPESA_CALLBACK_TOKEN"),
            default_region=(_text(env, "DEFAULT_REGION", cls.default_region) or "").upper(),
            default_language=(_text(env, "DEFAULT_LANGUAGE", cls.default_language) or "").lower(),
            mint_on_payment=_flag(env, "MINT_ON_PAYMENT", cls.mint_on_payment),
            agent_lock_minutes=_number(env, "AGENT_LOCK_MINUTES", cls.agent_lock_minutes, int),
            agent_daily_days_cap=_number(
                env, "AGENT_DAILY_DAYS_CAP", cls.agent_daily_days_cap, int
            ),
            ussd_mint_budget=_number(env, "USSD_MINT_BUDGET", cls.ussd_mint_budget),
            reply_budget=_number(env, "REPLY_BUDGET", cls.reply_budget),
            ussd_service_codes=tuple(c.strip() for c in codes.split(",") if c.strip()),
            db_pool_size=_number(env, "DB_POOL_SIZE", cls.db_pool_size, int),
            db_max_overflow=_number(env, "DB_MAX_OVERFLOW", cls.db_max_overflow, int),
            db_pool_recycle=_number(env, "DB_POOL_RECYCLE", cls.db_pool_recycle),
            db_statement_timeout=_number(env, "DB_STATEMENT_TIMEOUT", cls.db_statement_timeout),
            config_dir=_text(env, "OVBOT_CONFIG_DIR"),
            log_format=read_log_format(env),
            metrics_token=_text(env, "METRICS_TOKEN"),
            prometheus_multiproc_dir=_text(env, "PROMETHEUS_MULTIPROC_DIR"),
            timezone=_text(env, "TIMEZONE", cls.timezone),
            reminder_days=_reminder_days(env, "REMINDER_DAYS", cls.reminder_days),
            quiet_hours=_hours(env, "QUIET_HOURS", cls.quiet_hours),
            console_secret_key=_text(env, "CONSOLE_SECRET_KEY"),
        )
        values.update(overrides)
        settings = cls(**values)
        settings.check()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @property
    def uses_emulator(self) -> bool:
        return self.omnivoltaic_api_url is None

    @property
    def whatsapp_pushes(self) -> bool:
        """Whether pushes may go out on WhatsApp: a sender number and, outside the demo
        (whose senders only print), the Twilio account that sends from it."""
        if not self.twilio_whatsapp_from:
            return False
        return self.demo or bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def omnivoltaic_login_target(self) -> str:
        """Where the client logs in: OMNIVOLTAIC_LOGIN_URL, or /user/login on the API URL
        (always the latter with the embedded emulator, which has no other host)."""
        if self.uses_emulator:
            return "/user/login"
        return self.omnivoltaic_login_url or "/user/login"

    @property
    def omnivoltaic_credentials(self) -> tuple[str, str]:
        """The distributor login; the demo distributor when the emulator is embedded."""
        if self.omnivoltaic_username and self.omnivoltaic_password:
            return self.omnivoltaic_username, self.omnivoltaic_password
        if self.uses_emulator:
            return DEMO_USERNAME, DEMO_PASSWORD
        self.require("OMNIVOLTAIC_USERNAME", "OMNIVOLTAIC_PASSWORD")
        raise AssertionError("unreachable")

    def check(self) -> None:
        """Reject settings that cannot work, naming each one."""
        if self.default_language not in LANGUAGES:
            raise ConfigError(
                f"DEFAULT_LANGUAGE must be one of {', '.join(LANGUAGES)}, "
                f"got {self.default_language!r}"
            )
        if self.default_region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(
                "DEFAULT_REGION must be a two-letter region code such as KE, "
                f"got {self.default_region!r}"
            )
        self._check_omnivoltaic()
        self._check_reminders()
        if self.sms_provider not in SMS_PROVIDERS:
            raise ConfigError(
                f"SMS_PROVIDER must be {' or '.join(SMS_PROVIDERS)}, got {self.sms_provider!r}"
            )
        whatsapp = self.twilio_whatsapp_from
        if whatsapp and not whatsapp.removeprefix("whatsapp:").startswith(("+", "MG")):
            raise ConfigError(
                "TWILIO_WHATSAPP_FROM must be a WhatsApp sender such as whatsapp:+14155238886,"
                f" got {whatsapp!r}"
            )
        if self.mpesa_shortcode is not None and not (
            self.mpesa_shortcode.isascii() and self.mpesa_shortcode.isdigit()
        ):
            raise ConfigError(
                f"MPESA_SHORTCODE must be the paybill or till number, got {self.mpesa_shortcode!r}"
            )
        for name, value in (
            ("OMNIVOLTAIC_TIMEOUT", self.omnivoltaic_timeout),
            ("USSD_MINT_BUDGET", self.ussd_mint_budget),
            ("REPLY_BUDGET", self.reply_budget),
        ):
            if not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        if not 1 <= self.omnivoltaic_emulator_fleet <= 1_000_000:
            raise ConfigError(
                "OMNIVOLTAIC_EMULATOR_FLEET must be 1 to 1000000 items, "
                f"got {self.omnivoltaic_emulator_fleet!r}"
            )
        if self.db_pool_size < 1:
            raise ConfigError(f"DB_POOL_SIZE must be at least 1, got {self.db_pool_size!r}")
        for name, value in (
            ("AGENT_LOCK_MINUTES", self.agent_lock_minutes),
            ("AGENT_DAILY_DAYS_CAP", self.agent_daily_days_cap),
            ("DB_MAX_OVERFLOW", self.db_max_overflow),
            ("DB_POOL_RECYCLE", self.db_pool_recycle),
            ("DB_STATEMENT_TIMEOUT", self.db_statement_timeout),
        ):
            if value < 0:
                raise ConfigError(f"{name} must not be negative, got {value!r}")

    def _check_omnivoltaic(self) -> None:
        for name, value, allowed in (
            ("OMNIVOLTAIC_API_VERSION", self.omnivoltaic_api_version, ("v1", "v2")),
            ("OMNIVOLTAIC_AUTH_SCHEME", self.omnivoltaic_auth_scheme, ("raw", "bearer")),
        ):
            if value not in allowed:
                raise ConfigError(f"{name} must be {' or '.join(allowed)}, got {value!r}")
        login = self.omnivoltaic_login_url
        if login is not None and not login.lower().startswith(("https://", "http://")):
            raise ConfigError(f"OMNIVOLTAIC_LOGIN_URL must be an http(s) URL, got {login!r}")

    def _check_reminders(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"TIMEZONE must be an IANA time zone such as Africa/Nairobi or UTC, "
                f"got {self.timezone!r}"
            ) from None
        days = self.reminder_days
        if len(set(days)) != len(days) or not all(0 <= d <= MAX_REMINDER_DAYS for d in days):
            raise ConfigError(
                f"REMINDER_DAYS must be distinct days from 0 to {MAX_REMINDER_DAYS}, got {days!r}"
            )
        if self.quiet_hours is not None:
            start, end = self.quiet_hours
            if not (0 <= start <= 23 and 0 <= end <= 23) or start == end:
                raise ConfigError(
                    "QUIET_HOURS must be two different hours from 0 to 23, e.g. 21-8, "
                    f"got {start}-{end}"
                )

    def require(self, *names: str) -> None:
        """Fail at start-up, naming every required variable that is unset."""
        missing = [n for n in names if not getattr(self, n.lower())]
        if missing:
            raise ConfigError("missing required setting(s): " + ", ".join(missing))

    def require_for_production(self) -> None:
        """What `ovbot serve` and `ovbot worker` need before they start."""
        needed: list[str] = []
        if not self.uses_emulator:
            needed += ["OMNIVOLTAIC_USERNAME", "OMNIVOLTAIC_PASSWORD"]
        if self.twilio_auth_token:
            needed += ["PUBLIC_BASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_FROM_NUMBER"]
        if self.twilio_whatsapp_from:
            needed += ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]
        if self.sms_provider == "africastalking" or self.africastalking_callback_token:
            needed += ["AFRICASTALKING_USERNAME", "AFRICASTALKING_API_KEY"]
        if self.mpesa_callback_token:  # M-Pesa on: callbacks must name our shortcode
            needed += ["MPESA_SHORTCODE"]
        self.require(*dict.fromkeys(needed))


def multiprocess_dir() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR alone, for bot/metrics.py at import: prometheus_client
    opens its files there as soon as a metric is defined, before any Settings exist."""
    return _text(os.environ, "PROMETHEUS_MULTIPROC_DIR")


def export(name: str, value: str) -> None:
    """Set a variable for this process and the ones it starts (`ovbot serve`'s gunicorn)."""
    os.environ[name] = value
