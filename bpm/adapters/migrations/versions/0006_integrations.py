"""integrations: message subscriptions, start events and buffer; webhooks and their deliveries; scenarios

Revision ID: 0006_integrations
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_integrations"
down_revision = "0001_core"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "message_subscriptions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(36), sa.ForeignKey("process_instances.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("process_key", sa.String(255), nullable=False),
        sa.Column("business_key", sa.String(255), nullable=True),
        sa.Column("message_name", sa.String(255), nullable=False),
        sa.Column("element_id", sa.String(255), nullable=False),
        sa.Column("correlation", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_message_subscriptions_name", "message_subscriptions", ["message_name", "business_key"])
    op.create_index("ix_message_subscriptions_instance_id", "message_subscriptions", ["instance_id"])
    op.create_table(
        "message_start_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definition_id", sa.Integer(), sa.ForeignKey("process_definitions.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("process_key", sa.String(255), nullable=False),
        sa.Column("message_name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("definition_id", "message_name", name="uq_message_start"),
    )
    op.create_index("ix_message_start_events_process_key", "message_start_events", ["process_key"])
    op.create_index("ix_message_start_events_message_name", "message_start_events", ["message_name"])
    op.create_table(
        "message_buffer",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("business_key", sa.String(255), nullable=True),
        sa.Column("instance_id", sa.String(36), nullable=True),
        sa.Column("correlation", JSON, nullable=False),
        sa.Column("variables", JSON, nullable=False),
        sa.Column("sent_by", sa.String(150), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=False),
        sa.Column("delivered_at", UTC_DATETIME, nullable=True),
        sa.Column("delivered_to", sa.String(36), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_message_buffer_name", "message_buffer", ["name", "delivered_at", "expires_at"])
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("events", JSON, nullable=False),
        sa.Column("process_key", sa.String(255), nullable=True),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.Integer(),
                  sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("outbox_id", sa.String(64), nullable=True),
        sa.Column("redelivery_of", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_deliveries_subscription", "webhook_deliveries", ["subscription_id", "id"])
    op.create_table(
        "process_scenarios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_key", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scenario", JSON, nullable=False),
        sa.Column("expect", JSON, nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(150), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("process_key", "name", name="uq_scenario_name"),
    )
    op.create_index("ix_process_scenarios_process_key", "process_scenarios", ["process_key"])


def downgrade() -> None:
    for table in ("process_scenarios", "webhook_deliveries", "webhook_subscriptions", "message_buffer",
                  "message_start_events", "message_subscriptions"):
        op.drop_table(table)
