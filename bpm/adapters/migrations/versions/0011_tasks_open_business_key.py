"""index open tasks by business key: a case's tasks found without walking every open task

The inbox filtered by `?business_key=`, a record's open tasks and a lead's pool step all ask for the open tasks of
one business key. Without this index each of them walked every open task the caller could see (or every open
task): its cost grew with the backlog. Partial: a completed task leaves it, and completing one adds nothing.

Revision ID: 0011_tasks_open_business_key
Revises: 0010_instance_archive
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_tasks_open_business_key"
down_revision = "0010_instance_archive"
branch_labels = None
depends_on = None

OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_index("ix_tasks_open_business_key", "tasks", ["business_key"], postgresql_where=OPEN,
                    sqlite_where=OPEN)


def downgrade() -> None:
    op.drop_index("ix_tasks_open_business_key", table_name="tasks")
