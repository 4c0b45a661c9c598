"""index completed tasks by who completed them: "done by me" and an approver's instances without reading every
completed task

Completed tasks are most of the table on a server that has run for a while. The "completed" tab of the inbox and
the instance list of an approver (instances they have had a task in) asked for the tasks a user completed, and
without this index each of them read every completed task.

Revision ID: 0013_tasks_completed_by
Revises: 0012_user_groups_by_group
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_tasks_completed_by"
down_revision = "0012_user_groups_by_group"
branch_labels = None
depends_on = None

COMPLETED = sa.text("status = 'completed'")


def upgrade() -> None:
    op.create_index("ix_tasks_completed_by", "tasks", ["completed_by", "completed_at"], postgresql_where=COMPLETED,
                    sqlite_where=COMPLETED)


def downgrade() -> None:
    op.drop_index("ix_tasks_completed_by", table_name="tasks")
