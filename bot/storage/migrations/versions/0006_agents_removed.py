"""Agents can be retired: `agents.removed_at` (payments keep pointing at them).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Written by hand to stay frozen, like 0001. A retired agent is kept, not deleted: payments
reference agents by foreign key, and the history of who sold what must stay readable.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("removed_at")
