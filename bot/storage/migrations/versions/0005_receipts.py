"""Delivery receipts: what Twilio said became of a sent message, and one retry elsewhere.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Written by hand to stay frozen, like 0001 and 0002.  `retry_of` is unique: a message is
handed to another channel at most once, whatever receipts arrive, and the index on
`provider_message_id` finds the row a receipt names.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("delivery_status", sa.String(16), nullable=True))
        batch.add_column(sa.Column("delivery_error", sa.String(16), nullable=True))
        batch.add_column(sa.Column("receipt_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("retry_of", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_outbox_retry_of_outbox"), "outbox", ["retry_of"], ["id"])
        batch.create_unique_constraint(op.f("uq_outbox_retry_of"), ["retry_of"])
        batch.create_check_constraint(
            op.f("ck_outbox_delivery_status"),
            "delivery_status IN ('delivered', 'undelivered', 'failed')",
        )
    op.create_index(
        op.f("ix_outbox_provider_message_id"), "outbox", ["provider_message_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_provider_message_id"), table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_delivery_status"), type_="check")
        batch.drop_constraint(op.f("uq_outbox_retry_of"), type_="unique")
        batch.drop_constraint(op.f("fk_outbox_retry_of_outbox"), type_="foreignkey")
        batch.drop_column("retry_of")
        batch.drop_column("receipt_at")
        batch.drop_column("delivery_error")
        batch.drop_column("delivery_status")
