"""M-Pesa payments: `mpesa` is a payment source (payments.source CHECK).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Written by hand to stay frozen, like 0001. An M-Pesa confirmation is recorded with source
`mpesa` and the reference `mpesa:<TransID>` (webhooks/mpesa.py), so the reference's
unique constraint already makes a repeated TransID change nothing; the code it mints keeps
the channel `payments`. Down again, M-Pesa payments stay (they are money received) and
read as `webhook`, the source they would have had before.
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BEFORE = "source IN ('agent', 'webhook', 'cli', 'demo')"
AFTER = "source IN ('agent', 'webhook', 'cli', 'demo', 'mpesa')"


def upgrade() -> None:
    _source_check(AFTER)


def downgrade() -> None:
    op.execute("UPDATE payments SET source = 'webhook' WHERE source = 'mpesa'")
    _source_check(BEFORE)


def _source_check(condition: str) -> None:
    with op.batch_alter_table("payments") as batch:
        batch.drop_constraint(op.f("ck_payments_source"), type_="check")
        batch.create_check_constraint(op.f("ck_payments_source"), condition)
