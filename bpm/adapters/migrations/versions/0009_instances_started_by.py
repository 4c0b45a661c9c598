"""index process instances by their initiator, newest first ("my requests")

Revision ID: 0009_instances_started_by
Revises: 0008_forms
"""

from alembic import op

revision = "0009_instances_started_by"
down_revision = "0008_forms"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_instances_started_by", "process_instances", ["started_by", "started_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_instances_started_by", table_name="process_instances")
