"""Channels: WhatsApp (Twilio) and Africa's Talking SMS.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Written by hand to stay frozen, like 0001.

- `whatsapp` joins the channels of customers (`last_channel`), of the outbox and of codes;
- `customers.whatsapp_at`: when the customer last wrote on WhatsApp, for the 24-hour
  session window pushes must stay inside;
- `outbox.provider` (null: the channel's configured sender; `africastalking`: an answer
  that must go back through Africa's Talking) and `outbox.link_id` (the linkId it answers);
- `outbox.delivery_error` widens to 64 characters: Africa's Talking gives reasons in
  words (`UserAccountSuspended`), not Twilio's digits.

Down again, WhatsApp rows become SMS rows (the recipient is the same phone number), and
a reason longer than 16 characters is cut to 16.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD_CUSTOMER = "('sms', 'telegram')"
NEW_CUSTOMER = "('sms', 'telegram', 'whatsapp')"
OLD_CODE = "('sms', 'telegram', 'ussd', 'payments', 'cli', 'system')"
NEW_CODE = "('sms', 'telegram', 'ussd', 'payments', 'cli', 'system', 'whatsapp')"


def _recheck(table: str, name: str, column: str, allowed: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(name), f"{column} IN {allowed}")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_constraint(op.f("ck_customers_last_channel"), type_="check")
        batch.create_check_constraint(
            op.f("ck_customers_last_channel"), f"last_channel IN {NEW_CUSTOMER}"
        )
        batch.add_column(sa.Column("whatsapp_at", sa.DateTime(timezone=True), nullable=True))
    _recheck("codes", "ck_codes_channel", "channel", NEW_CODE)
    with op.batch_alter_table("outbox") as batch:
        batch.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_channel"), f"channel IN {NEW_CUSTOMER}")
        batch.add_column(sa.Column("provider", sa.String(16), nullable=True))
        batch.add_column(sa.Column("link_id", sa.Text(), nullable=True))
        batch.create_check_constraint(op.f("ck_outbox_provider"), "provider IN ('africastalking')")
        batch.alter_column(
            "delivery_error",
            existing_type=sa.String(16),
            type_=sa.String(64),
            existing_nullable=True,
        )


def downgrade() -> None:
    op.execute("UPDATE customers SET last_channel = 'sms' WHERE last_channel = 'whatsapp'")
    op.execute("UPDATE codes SET channel = 'sms' WHERE channel = 'whatsapp'")
    op.execute("UPDATE outbox SET channel = 'sms' WHERE channel = 'whatsapp'")
    op.execute(
        "UPDATE outbox SET delivery_error = substr(delivery_error, 1, 16)"
        " WHERE length(delivery_error) > 16"
    )
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column(
            "delivery_error",
            existing_type=sa.String(64),
            type_=sa.String(16),
            existing_nullable=True,
        )
        batch.drop_constraint(op.f("ck_outbox_provider"), type_="check")
        batch.drop_column("link_id")
        batch.drop_column("provider")
        batch.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_channel"), f"channel IN {OLD_CUSTOMER}")
    _recheck("codes", "ck_codes_channel", "channel", OLD_CODE)
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("whatsapp_at")
        batch.drop_constraint(op.f("ck_customers_last_channel"), type_="check")
        batch.create_check_constraint(
            op.f("ck_customers_last_channel"), f"last_channel IN {OLD_CUSTOMER}"
        )
