"""Indexes for every lookup a request or the worker makes (tests/storage/test_indexes.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

Written by hand to stay frozen, like 0001.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An agent types a serial in any case: the lookup compares upper-cased serials.
    op.create_index("ix_devices_upper_oem_serial", "devices", [sa.text("upper(oem_serial)")])
    op.create_index("ix_devices_upper_payg_serial", "devices", [sa.text("upper(payg_serial)")])
    op.create_index("ix_devices_upper_api_id", "devices", [sa.text("upper(api_id)")])
    # Open attempts (state IN pending, unknown) and recent codes (state, then minted_at).
    op.create_index("ix_codes_state_minted_at", "codes", ["state", "minted_at"])
    # Codes whose answer came late (the sweep pushes them).
    op.create_index("ix_integrity_alarms_kind_code_id", "integrity_alarms", ["kind", "code_id"])
    # Whether a code's push is queued.
    op.create_index("ix_outbox_code_id", "outbox", ["code_id"])
    # Payments not yet in a code, by device: what the sweep mints.
    op.create_index(
        "ix_payments_unminted",
        "payments",
        ["device_id"],
        sqlite_where=sa.text("code_id IS NULL"),
        postgresql_where=sa.text("code_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_unminted", "payments")
    op.drop_index("ix_outbox_code_id", "outbox")
    op.drop_index("ix_integrity_alarms_kind_code_id", "integrity_alarms")
    op.drop_index("ix_codes_state_minted_at", "codes")
    op.drop_index("ix_devices_upper_api_id", "devices")
    op.drop_index("ix_devices_upper_payg_serial", "devices")
    op.drop_index("ix_devices_upper_oem_serial", "devices")
