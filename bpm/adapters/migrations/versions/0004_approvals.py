"""approver inbox: approval records, signers, CC, comments, attachments, deputies, saved filters

Also adds the delegation / substitute columns to `tasks` and the partial index the inbox query walks
(open tasks of one assignee in due order).

Revision ID: 0004_approvals
Revises: 0001_core
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_approvals"
down_revision = "0001_core"
branch_labels = None
depends_on = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTCDateTime = sa.DateTime(timezone=True)
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    _task_columns()
    op.create_table(
        "approval_records",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("element_id", sa.String(255), nullable=False),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("actor", sa.String(150), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_approval_records_instance", "approval_records", ["instance_id", "id"])
    op.create_index("ix_approval_records_task_id", "approval_records", ["task_id"])
    op.create_table(
        "task_signers",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("position", sa.String(10), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("added_by", sa.String(150), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=True),
        sa.Column("opinion", sa.Text(), nullable=True),
        sa.Column("added_at", UTCDateTime, nullable=False),
        sa.Column("acted_at", UTCDateTime, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_signers_task_id", "task_signers", ["task_id"])
    op.create_index("ix_task_signers_user", "task_signers", ["username", "status"])
    op.create_table(
        "task_cc",
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("name", sa.String(150), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "kind", "name"),
    )
    op.create_index("ix_task_cc_lookup", "task_cc", ["kind", "name", "task_id"])
    op.create_table(
        "task_comments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("author", sa.String(150), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("mentions", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_comments_task", "task_comments", ["task_id", "id"])
    op.create_table(
        "task_attachments",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(36), sa.ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", BigId, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_name", sa.String(64), nullable=False),
        sa.Column("uploaded_by", sa.String(150), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_task_attachments_task", "task_attachments", ["task_id", "id"])
    op.create_table(
        "substitutes",
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("deputy", sa.String(150), nullable=False),
        sa.Column("starts_at", UTCDateTime, nullable=False),
        sa.Column("ends_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("username"),
    )
    op.create_table(
        "saved_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("query", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username", "name", name="uq_saved_filter_name"),
    )
    op.create_index("ix_saved_filters_username", "saved_filters", ["username"])


def _task_columns() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("owner", sa.String(150), nullable=True))
        batch.add_column(sa.Column("delegation_state", sa.String(20), nullable=True))
        batch.add_column(sa.Column("substitute_for", sa.String(150), nullable=True))
        batch.add_column(sa.Column("last_urged_at", UTCDateTime, nullable=True))
    # The inbox walks "my open tasks in due order" straight off this index (NULL due dates sort last).
    op.create_index("ix_tasks_open_assignee_due", "tasks", ["assignee", "due_at", "id"],
                    postgresql_where=OPEN, sqlite_where=OPEN)
    # ... and "open tasks of one of my groups in due order" off this one (one ordered walk per group).
    with op.batch_alter_table("task_candidates") as batch:
        batch.add_column(sa.Column("due_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("is_open", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index("ix_task_candidates_open_due", "task_candidates", ["kind", "name", "due_at", "task_id"],
                    postgresql_where=sa.text("is_open"), sqlite_where=sa.text("is_open"))


def downgrade() -> None:
    op.drop_index("ix_task_candidates_open_due", table_name="task_candidates")
    with op.batch_alter_table("task_candidates") as batch:
        batch.drop_column("is_open")
        batch.drop_column("due_at")
    op.drop_index("ix_tasks_open_assignee_due", table_name="tasks")
    for table in ("saved_filters", "substitutes", "task_attachments", "task_comments", "task_cc", "task_signers",
                  "approval_records"):
        op.drop_table(table)
    with op.batch_alter_table("tasks") as batch:
        for column in ("last_urged_at", "substitute_for", "delegation_state", "owner"):
            batch.drop_column(column)
