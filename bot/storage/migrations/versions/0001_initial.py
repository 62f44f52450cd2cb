"""The initial schema: customers, devices, agents, codes, payments, inbound messages, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Written by hand to stay frozen: it does not import bot.storage.models, and every constraint is
named here in full (the names match bot.storage.models.NAMING_CONVENTION).
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def utc():
    return sa.DateTime(timezone=True)


def money():
    return sa.Numeric(precision=12, scale=2)


def check(name, condition):
    return sa.CheckConstraint(condition, name=op.f(name))


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("language", sa.String(2), server_default="en", nullable=False),
        sa.Column("opted_out", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_channel", sa.String(16), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
        sa.UniqueConstraint("phone", name=op.f("uq_customers_phone")),
        check("ck_customers_language", "language IN ('en', 'fr', 'sw')"),
        check("ck_customers_last_channel", "last_channel IN ('sms', 'telegram')"),
    )

    op.create_table(
        "telegram_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("linked_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_links")),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            ondelete="CASCADE",
            name=op.f("fk_telegram_links_customer_id_customers"),
        ),
        sa.UniqueConstraint("telegram_user_id", name=op.f("uq_telegram_links_telegram_user_id")),
    )

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("oem_serial", sa.String(64), nullable=True),
        sa.Column("payg_serial", sa.String(64), nullable=True),
        sa.Column("value_per_day", money(), nullable=True),
        sa.Column("lifecycle_status", sa.String(64), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("credit_until", utc(), nullable=True),
        sa.Column("state", sa.String(16), server_default="payg", nullable=False),
        sa.Column("balance", money(), server_default="0", nullable=False),
        sa.Column("synced_at", utc(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["customers.id"],
            ondelete="SET NULL",
            name=op.f("fk_devices_owner_id_customers"),
        ),
        sa.UniqueConstraint("product_id", name=op.f("uq_devices_product_id")),
        sa.UniqueConstraint("oem_serial", name=op.f("uq_devices_oem_serial")),
        check("ck_devices_state", "state IN ('payg', 'free', 'locked')"),
        check("ck_devices_balance_not_negative", "balance >= 0"),
    )
    op.create_index("ix_devices_owner_id", "devices", ["owner_id"])

    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("phone", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("pin_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), server_default="agent", nullable=False),
        sa.Column("failed_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", utc(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("phone", name=op.f("uq_agents_phone")),
        check("ck_agents_role", "role IN ('agent', 'admin')"),
        check("ck_agents_failed_attempts_not_negative", "failed_attempts >= 0"),
    )

    op.create_table(
        "codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("days", sa.Integer(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("otp_hash", sa.String(32), nullable=True),
        sa.Column("otp_count", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(8), server_default="pending", nullable=False),
        sa.Column("request_key", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("upstream_index", sa.Integer(), nullable=True),
        sa.Column("credit_until_after", utc(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("minted_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_codes")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_codes_device_id_devices")
        ),
        sa.UniqueConstraint("request_key", name=op.f("uq_codes_request_key")),
        sa.UniqueConstraint("device_id", "code", name=op.f("uq_codes_device_id_code")),
        check("ck_codes_kind", "kind IN ('days', 'free', 'reset')"),
        check("ck_codes_state", "state IN ('pending', 'minted', 'unknown', 'failed')"),
        check(
            "ck_codes_channel",
            "channel IN ('sms', 'telegram', 'ussd', 'payments', 'cli', 'system')",
        ),
        check(
            "ck_codes_days_match_kind",
            "(kind = 'days' AND days IS NOT NULL AND days BETWEEN 1 AND 1095)"
            " OR (kind <> 'days' AND days IS NULL)",
        ),
        check("ck_codes_minted_has_code", "state <> 'minted' OR code IS NOT NULL"),
    )
    op.create_index("ix_codes_device_id_created_at", "codes", ["device_id", "created_at"])

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("product_ref", sa.Text(), nullable=True),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("amount", money(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(32), nullable=True),
        sa.Column("code_id", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_payments_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_payments_agent_id_agents")
        ),
        sa.ForeignKeyConstraint(["code_id"], ["codes.id"], name=op.f("fk_payments_code_id_codes")),
        sa.UniqueConstraint("reference", name=op.f("uq_payments_reference")),
        check("ck_payments_source", "source IN ('agent', 'webhook', 'cli', 'demo')"),
        check("ck_payments_days_not_negative", "days >= 0"),
        check("ck_payments_amount_positive", "amount > 0"),
    )
    op.create_index("ix_payments_device_id_code_id", "payments", ["device_id", "code_id"])

    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("provider_id", sa.Text(), nullable=False),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
        sa.UniqueConstraint(
            "channel", "provider_id", name=op.f("uq_inbound_messages_channel_provider_id")
        ),
    )

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", utc(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("provider_message_id", sa.Text(), nullable=True),
        sa.Column("code_id", sa.Integer(), nullable=True),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("sent_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_outbox_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(["code_id"], ["codes.id"], name=op.f("fk_outbox_code_id_codes")),
        check("ck_outbox_channel", "channel IN ('sms', 'telegram')"),
        check("ck_outbox_status", "status IN ('pending', 'sending', 'sent', 'failed')"),
        check("ck_outbox_attempts_not_negative", "attempts >= 0"),
    )
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    for table in (
        "outbox",
        "inbound_messages",
        "payments",
        "codes",
        "agents",
        "devices",
        "telegram_links",
        "customers",
    ):
        op.drop_table(table)
