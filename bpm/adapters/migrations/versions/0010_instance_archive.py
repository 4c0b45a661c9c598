"""instance archive: finished tasks moved out of long-running instances' state, in appended chunks

Revision ID: 0010_instance_archive
Revises: 0009_instances_started_by
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_instance_archive"
down_revision = "0009_instances_started_by"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "instance_archive",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("tasks", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_instance_archive_instance", "instance_archive", ["instance_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_instance_archive_instance", table_name="instance_archive")
    op.drop_table("instance_archive")
