"""Code integrity: send deadlines (fencing), adopted codes, ordered pushes, alarms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Written by hand to stay frozen, like 0001.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("codes") as batch:
        batch.add_column(sa.Column("send_deadline", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("adopted_by", sa.Text(), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("after_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f("fk_outbox_after_id_outbox"), "outbox", ["after_id"], ["id"])
    op.create_table(
        "integrity_alarms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("code_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_integrity_alarms")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_integrity_alarms_device_id_devices")
        ),
        sa.ForeignKeyConstraint(
            ["code_id"], ["codes.id"], name=op.f("fk_integrity_alarms_code_id_codes")
        ),
        sa.CheckConstraint(
            "kind IN ('late_answer', 'answer_differs')", name=op.f("ck_integrity_alarms_kind")
        ),
    )


def downgrade() -> None:
    op.drop_table("integrity_alarms")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("fk_outbox_after_id_outbox"), type_="foreignkey")
        batch.drop_column("after_id")
    with op.batch_alter_table("codes") as batch:
        batch.drop_column("adopted_by")
        batch.drop_column("send_deadline")
