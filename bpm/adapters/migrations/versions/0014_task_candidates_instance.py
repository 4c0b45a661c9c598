"""candidate rows carry their task's instance: an approver's instances without reading each offered task

An approver's instance list (and nothing else) asked, for every task their name or groups were ever offered, which
instance it belongs to: one read of the task per candidate row, thousands for a busy group. The rows now carry
the instance id, and on PostgreSQL the lookup index carries it too, so that question is answered from the index.

Revision ID: 0014_task_candidates_instance
Revises: 0013_tasks_completed_by
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_task_candidates_instance"
down_revision = "0013_tasks_completed_by"
branch_labels = None
depends_on = None

LOOKUP = "ix_task_candidates_lookup"


def upgrade() -> None:
    with op.batch_alter_table("task_candidates") as batch:
        batch.add_column(sa.Column("instance_id", sa.String(36), nullable=True))
    op.execute("UPDATE task_candidates SET instance_id = "
               "(SELECT tasks.instance_id FROM tasks WHERE tasks.id = task_candidates.task_id)")
    with op.batch_alter_table("task_candidates") as batch:
        batch.alter_column("instance_id", existing_type=sa.String(36), nullable=False)
    op.drop_index(LOOKUP, table_name="task_candidates")
    op.create_index(LOOKUP, "task_candidates", ["kind", "name", "task_id"], postgresql_include=["instance_id"])


def downgrade() -> None:
    op.drop_index(LOOKUP, table_name="task_candidates")
    op.create_index(LOOKUP, "task_candidates", ["kind", "name", "task_id"])
    with op.batch_alter_table("task_candidates") as batch:
        batch.drop_column("instance_id")
