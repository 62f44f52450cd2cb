"""Reminders before credit runs out: the `reminders` table, and devices by `credit_until`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

Written by hand to stay frozen, like 0001. One row per device, credit period
(`credit_until`) and offset (`days_before`), unique: two workers never send one twice.
The index on `devices.credit_until` serves the reminder pass (plain `create_index`, no
batch rebuild of `devices`, so its expression indexes stay); the one on `outbox.after_id`
serves the foreign-key check when a withdrawn reminder's message is deleted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("credit_until", _utc(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("send_by", _utc(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("cancelled_at", _utc(), nullable=True),
        sa.Column("cancel_reason", sa.Text(), nullable=True),
        sa.CheckConstraint("days_before >= -1", name=op.f("ck_reminders_days_before_known")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_reminders_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_reminders_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], name=op.f("fk_reminders_outbox_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
        sa.UniqueConstraint(
            "device_id",
            "credit_until",
            "days_before",
            name=op.f("uq_reminders_device_id_credit_until_days_before"),
        ),
        sa.UniqueConstraint("outbox_id", name=op.f("uq_reminders_outbox_id")),
    )
    op.create_index("ix_devices_credit_until", "devices", ["credit_until"], if_not_exists=True)
    # A reminder withdrawn before it went out has its outbox row deleted; the foreign key
    # outbox.after_id is checked on each delete (without an index: a scan of the outbox).
    op.create_index("ix_outbox_after_id", "outbox", ["after_id"], if_not_exists=True)


def downgrade() -> None:
    op.drop_index("ix_outbox_after_id", "outbox")
    op.drop_index("ix_devices_credit_until", "devices")
    op.drop_table("reminders")
