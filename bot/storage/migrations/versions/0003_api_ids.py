"""API ids: the id a device is addressed by in the Omnivoltaic API, as text (issue 15).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

v1 of the API names a product by its integer productItemID, v2 by a string (its OEM item
id). Existing devices were synced from v1, so their API id is their product id as text;
`ovbot sync-devices` sets it from the items after a switch to v2. The downgrade drops the
column: product ids were never touched, so every row reads as before.

Written by hand to stay frozen, like 0001.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("api_id", sa.String(64), nullable=True))
    op.execute("UPDATE devices SET api_id = CAST(product_id AS VARCHAR(64))")
    with op.batch_alter_table("devices") as batch:
        batch.alter_column("api_id", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint(op.f("uq_devices_api_id"), ["api_id"])


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_constraint(op.f("uq_devices_api_id"), type_="unique")
        batch.drop_column("api_id")
