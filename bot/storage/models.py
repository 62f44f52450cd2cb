"""The tables, as SQLAlchemy 2.0 typed models.

The rules of DESIGN.md section 3 that a database can keep are kept here, in the schema:
unique references make payments, mints and inbound messages idempotent; CHECK constraints
keep codes coherent (a minted code always has its value); foreign keys are enforced on
SQLite too (bot/storage/db.py turns them on).  Every datetime is timezone-aware UTC: `utcnow()`
makes them, and `UTCDateTime` refuses naive values and reads back UTC on every backend.

The schema itself is created by the Alembic migrations in bot/migrations, never by
`create_all`; a test proves the migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from bot.domain import AGENT_ROLES, LANGUAGES, MAX_CODE_DAYS, OPERATOR_ROLES

# The allowed values of the text columns that act as enums (each is a CHECK constraint).
CUSTOMER_CHANNELS = ("sms", "telegram", "whatsapp")
DEVICE_STATES = ("payg", "free", "locked")
CODE_KINDS = ("days", "free", "reset")
# pending: attempt recorded before the API call; minted: we hold the code;
# unknown: outcome unknown, reconcile from the code history before minting again;
# failed: surely not minted.
CODE_STATES = ("pending", "minted", "unknown", "failed")
CODE_CHANNELS = ("sms", "telegram", "ussd", "payments", "cli", "system", "whatsapp")
PAYMENT_SOURCES = ("agent", "webhook", "cli", "demo", "mpesa")
OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")
# What a delivery receipt said last (the providers' final statuses); null: no receipt yet.
DELIVERY_STATUSES = ("delivered", "undelivered", "failed")
# Who must send an outbox row when it is not simply its channel's configured sender:
# an answer to an Africa's Talking message goes back through Africa's Talking.
OUTBOX_PROVIDERS = ("africastalking",)

MONEY = Numeric(12, 2)

# Stable constraint names, the same on SQLite and PostgreSQL (and in the migrations).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC: the only kind of datetime the models take."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC, read back as UTC on every backend.

    SQLite has no time zones: values are stored as UTC text and tagged UTC when read.
    Naive datetimes are refused, so a local time can never pass for UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: use an aware one, e.g. utcnow()")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def one_of(column: str, values: tuple[str, ...], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...)), named `ck_<table>_<name or column>`."""
    allowed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=name or column)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime}


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        one_of("language", LANGUAGES),
        one_of("last_channel", CUSTOMER_CHANNELS),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)  # E.164
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(2), default="en", server_default="en")
    opted_out: Mapped[bool] = mapped_column(default=False, server_default=false())
    last_channel: Mapped[str | None] = mapped_column(String(16))
    # When they last wrote on WhatsApp (to the hour, bot/outbox/queue.py): pushes go there
    # only inside WhatsApp's 24-hour session window.  Migration 0007.
    whatsapp_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    devices: Mapped[list[Device]] = relationship(
        back_populates="owner", order_by="Device.product_id", passive_deletes=True
    )
    telegram_links: Mapped[list[TelegramLink]] = relationship(
        back_populates="customer", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<Customer {self.id} {self.phone}>"


class TelegramLink(Base):
    __tablename__ = "telegram_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)

    customer: Mapped[Customer] = relationship(back_populates="telegram_links")


def _product_id_text(context: DefaultExecutionContext) -> str:
    """A new device's API id until a sync says otherwise: its product id (the v1 id)."""
    parameters: dict[str, object] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return str(parameters["product_id"])


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (
        one_of("state", DEVICE_STATES),
        CheckConstraint("balance >= 0", name="balance_not_negative"),
        Index("ix_devices_owner_id", "owner_id"),
        # Agents type serials in any case (bot/ledger/devices.py `find`).
        Index("ix_devices_upper_oem_serial", text("upper(oem_serial)")),
        Index("ix_devices_upper_payg_serial", text("upper(payg_serial)")),
        Index("ix_devices_upper_api_id", text("upper(api_id)")),
        # Whose credit runs out when: the reminder pass (bot/customers/reminders.py).
        Index("ix_devices_credit_until", "credit_until"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(unique=True)  # the API's productItemID
    # How the API names the device, as text: the productItemID in v1, the OEM item id in v2
    # (set by `ovbot sync-devices`). People type the product id or a serial, never this.
    api_id: Mapped[str] = mapped_column(String(64), unique=True, default=_product_id_text)
    oem_serial: Mapped[str | None] = mapped_column(String(64), unique=True)
    payg_serial: Mapped[str | None] = mapped_column(String(64))
    value_per_day: Mapped[Decimal | None] = mapped_column(MONEY)
    lifecycle_status: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id", ondelete="SET NULL"))
    credit_until: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16), default="payg", server_default="payg")
    # Money paid but worth less than a day, kept for the next payment.
    balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal("0"), server_default="0")
    synced_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    owner: Mapped[Customer | None] = relationship(back_populates="devices")

    def __repr__(self) -> str:
        return f"<Device {self.product_id}>"


class Agent(Base):
    __tablename__ = "agents"
    __table_args__ = (
        one_of("role", AGENT_ROLES),
        CheckConstraint("failed_attempts >= 0", name="failed_attempts_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)  # E.164
    name: Mapped[str] = mapped_column(String(200))
    pin_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="agent", server_default="agent")
    failed_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None]
    # Retired by an operator (`ovbot agent remove`): kept for the payments that name it,
    # refused by the USSD menu.
    removed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<Agent {self.id} {self.phone} {self.role}>"


class Code(Base):
    """One mint of a code, recorded *before* the API call (OMNIVOLTAIC.md section 2)."""

    __tablename__ = "codes"
    __table_args__ = (
        one_of("kind", CODE_KINDS),
        one_of("state", CODE_STATES),
        one_of("channel", CODE_CHANNELS),
        CheckConstraint(
            f"(kind = 'days' AND days IS NOT NULL AND days BETWEEN 1 AND {MAX_CODE_DAYS})"
            " OR (kind <> 'days' AND days IS NULL)",
            name="days_match_kind",
        ),
        CheckConstraint("state <> 'minted' OR code IS NOT NULL", name="minted_has_code"),
        UniqueConstraint("device_id", "code"),
        Index("ix_codes_device_id_created_at", "device_id", "created_at"),
        Index("ix_codes_state_minted_at", "state", "minted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    kind: Mapped[str] = mapped_column(String(8))
    days: Mapped[int | None]
    code: Mapped[str | None] = mapped_column(Text)  # as the API gives it; null until known
    otp_hash: Mapped[str | None] = mapped_column(String(32))
    otp_count: Mapped[int | None]
    state: Mapped[str] = mapped_column(String(8), default="pending", server_default="pending")
    request_key: Mapped[str] = mapped_column(Text, unique=True)  # one mint per request
    requested_by: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16))
    upstream_index: Mapped[int | None]  # codeIndex in the API's code history
    # The fence: no process may start sending this attempt after it. Reconciliation may
    # release an attempt only once it, plus the answer window, has passed.
    send_deadline: Mapped[datetime | None]
    # The request (key without its `:n`) whose answer showed this code when it was
    # adopted from the history: RESEND shows it with that request's codes.
    adopted_by: Mapped[str | None] = mapped_column(Text)
    credit_until_after: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    minted_at: Mapped[datetime | None]

    device: Mapped[Device] = relationship()

    def __repr__(self) -> str:
        return f"<Code {self.id} {self.kind} {self.days} {self.state}>"


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        one_of("source", PAYMENT_SOURCES),
        CheckConstraint("days >= 0", name="days_not_negative"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_payments_device_id_code_id", "device_id", "code_id"),
        Index(
            "ix_payments_unminted",
            "device_id",
            sqlite_where=text("code_id IS NULL"),
            postgresql_where=text("code_id IS NULL"),
        ),
        # The console's figures by day (bot/operators/views.py), migration 0010.
        Index("ix_payments_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(Text, unique=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id"))  # null: unmatched
    product_ref: Mapped[str | None] = mapped_column(Text)  # what the payer sent
    days: Mapped[int]
    amount: Mapped[Decimal | None] = mapped_column(MONEY)
    source: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    phone: Mapped[str | None] = mapped_column(String(32))
    code_id: Mapped[int | None] = mapped_column(ForeignKey("codes.id"))  # null: not in a code yet
    response: Mapped[str | None] = mapped_column(Text)  # JSON answer, for an idempotent repeat
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    device: Mapped[Device | None] = relationship()
    code: Mapped[Code | None] = relationship()
    agent: Mapped[Agent | None] = relationship()

    def __repr__(self) -> str:
        return f"<Payment {self.reference} {self.days}d>"


class InboundMessage(Base):
    """A message already handled, by provider id: a repeat gets the stored reply."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)  # the rendered reply, JSON text
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxMessage(Base):
    """A message to send later (by the worker), written in the same transaction as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (
        one_of("channel", CUSTOMER_CHANNELS),
        one_of("status", OUTBOX_STATUSES),
        CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_outbox_code_id", "code_id"),
        # Delivery receipts (bot/outbox/receipts.py), migration 0003_receipts.
        one_of("delivery_status", DELIVERY_STATUSES),
        Index("ix_outbox_provider_message_id", "provider_message_id"),
        # A withdrawn reminder's row is deleted: its foreign-key check looks here.
        Index("ix_outbox_after_id", "after_id"),
        one_of("provider", OUTBOX_PROVIDERS),  # migration 0007
        # A customer's messages on the console's device page, migration 0010.
        Index("ix_outbox_customer_id", "customer_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    channel: Mapped[str] = mapped_column(String(16))
    recipient: Mapped[str] = mapped_column(Text)  # phone number or chat id
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    provider_message_id: Mapped[str | None] = mapped_column(Text)
    code_id: Mapped[int | None] = mapped_column(ForeignKey("codes.id"))
    # The message of the same event that must go out first (several codes, in order).
    after_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Delivery receipts: the provider's final word, its error code, when it came; and the
    # message this one re-sends on another channel (unique: at most one retry each).
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(String(64))  # "UserInBlackList"
    receipt_at: Mapped[datetime | None]
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), unique=True)
    # Channels (migration 0007): the provider that must send it (null: the channel's
    # configured sender) and the Africa's Talking linkId of the message it answers.
    provider: Mapped[str | None] = mapped_column(String(16))
    link_id: Mapped[str | None] = mapped_column(Text)

    customer: Mapped[Customer | None] = relationship()
    code: Mapped[Code | None] = relationship()


ALARM_KINDS = ("late_answer", "answer_differs")


class IntegrityAlarm(Base):
    """Something that should never happen to a code did: kept for operators to act on.

    `late_answer`: an answer arrived for an attempt already released as "surely not
    minted" (its days may have been minted again); `answer_differs`: the API's answer
    differs from the code adopted from its history for the same attempt.
    """

    __tablename__ = "integrity_alarms"
    __table_args__ = (
        one_of("kind", ALARM_KINDS),
        Index("ix_integrity_alarms_kind_code_id", "kind", "code_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    code_id: Mapped[int | None] = mapped_column(ForeignKey("codes.id"))
    detail: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# The reminder the day after the credit ran out (`Reminder.days_before`).
DAY_AFTER = -1


class Reminder(Base):
    """A reminder about one credit period of one device (bot/customers/reminders.py).

    The period is the `credit_until` it was about; `days_before` is the offset (3, 1, 0,
    or DAY_AFTER). Unique on the three: several workers never send one twice. Its message
    is `outbox_id`; a reminder withdrawn before it went out (its period moved on: a
    payment, or it came too late) has `cancelled_at` and why, and no message.
    """

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("device_id", "credit_until", "days_before"),
        CheckConstraint(f"days_before >= {DAY_AFTER}", name="days_before_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    credit_until: Mapped[datetime]
    days_before: Mapped[int]
    outbox_id: Mapped[int | None] = mapped_column(ForeignKey("outbox.id"), unique=True)
    # Not sent after this (the end of its window, or the start of the quiet hours).
    send_by: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(Text)


# -- the operator console (issue 14), migration 0010 ----------------------------------------


class Operator(Base):
    """Someone who signs in to the web console (`ovbot operator add`): a viewer or an admin.

    `session_token` is what a signed-in browser's cookie names (with the id): a new one,
    on a new password or role, signs every browser of the old one out.
    """

    __tablename__ = "operators"
    __table_args__ = (
        one_of("role", OPERATOR_ROLES),
        CheckConstraint("failed_logins >= 0", name="failed_logins_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # lower case
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer", server_default="viewer")
    session_token: Mapped[str] = mapped_column(String(64))
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<Operator {self.id} {self.role}>"


class AuditEntry(Base):
    """One admin action, written in the same transaction as the action itself: who (the
    operator, or `cli`), what (an action name and its target), when, and the state of the
    target before and after (JSON text)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_operator_id", "operator_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    actor: Mapped[str] = mapped_column(String(254))  # the operator's email, or "cli"
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
