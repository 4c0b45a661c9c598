"""timers: timer start schedules, task escalation deadlines, incidents

Revision ID: 0002_timers
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_timers"
down_revision = "0001_core"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "timer_schedules",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("process_key", sa.String(length=255), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("element_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("next_due_at", UTC_DATETIME, nullable=True),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_count", sa.Integer(), nullable=False),
        sa.Column("last_started_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["definition_id"], ["process_definitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_timer_schedules_due", "timer_schedules", ["status", "next_due_at"])
    op.create_index("ix_timer_schedules_key", "timer_schedules", ["process_key", "status"])

    op.create_table(
        "task_deadlines",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("repeat", sa.String(length=50), nullable=True),
        sa.Column("fired_count", sa.Integer(), nullable=False),
        sa.Column("policy", JSON_TYPE, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("fired_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_deadlines_due", "task_deadlines", ["status", "due_at"])
    op.create_index("ix_task_deadlines_task", "task_deadlines", ["task_id", "status"])

    op.create_table(
        "incidents",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=True),
        sa.Column("process_key", sa.String(length=255), nullable=True),
        sa.Column("element_id", sa.String(length=255), nullable=True),
        sa.Column("element_name", sa.String(length=255), nullable=True),
        sa.Column("job_kind", sa.String(length=30), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("last_failed_at", UTC_DATETIME, nullable=False),
        sa.Column("resolved_at", UTC_DATETIME, nullable=True),
        sa.Column("resolved_by", sa.String(length=150), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_job", "incidents", ["job_kind", "job_id", "resolved_at"])
    op.create_index("ix_incidents_open", "incidents", ["resolved_at", "id"])
    op.create_index("ix_incidents_instance_id", "incidents", ["instance_id"])


def downgrade() -> None:
    op.drop_table("incidents")
    op.drop_table("task_deadlines")
    op.drop_table("timer_schedules")
