"""The operator console: `operators` (accounts, lock-out) and `audit_log` (admin actions).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

Written by hand to stay frozen, like 0001. Two new tables, and two indexes for the console's pages
(payments by day, a customer's messages); no existing row changes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="viewer"),
        sa.Column("session_token", sa.String(64), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('viewer', 'admin')", name=op.f("ck_operators_role")),
        sa.CheckConstraint(
            "failed_logins >= 0", name=op.f("ck_operators_failed_logins_not_negative")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("email", name=op.f("uq_operators_email")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("before", sa.Text(), nullable=True),
        sa.Column("after", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["operators.id"], name=op.f("fk_audit_log_operator_id_operators")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"])
    op.create_index(op.f("ix_audit_log_operator_id"), "audit_log", ["operator_id"])

    # The console's figures by day, and a customer's messages on its device page.
    op.create_index(op.f("ix_payments_created_at"), "payments", ["created_at"])
    op.create_index(op.f("ix_outbox_customer_id"), "outbox", ["customer_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_customer_id"), table_name="outbox")
    op.drop_index(op.f("ix_payments_created_at"), table_name="payments")
    op.drop_index("ix_audit_log_operator_id", table_name="audit_log")
    op.drop_index("ix_audit_log_created_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("operators")
