"""Agents can be retired: `agents.removed_at` (payments keep pointing at them).

Revision ID: 0003_agents_removed
Revises: 0002
Create Date: 2026-12-01

Written by hand to stay frozen, like 0001. A retired agent is kept, not deleted: payments
reference agents by foreign key, and the history of who sold what must stay readable.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_agents_removed"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("removed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("removed_at")
