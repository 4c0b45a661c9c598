"""index group memberships by group: a group's members found without reading every membership

Every new task notifies the members of its candidate groups, and the identity pages list a group's members; the
primary key (user_id, group_id) only serves the other direction (a user's groups).

Revision ID: 0012_user_groups_by_group
Revises: 0011_tasks_open_business_key
"""

from alembic import op

revision = "0012_user_groups_by_group"
down_revision = "0011_tasks_open_business_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_user_groups_group", "user_groups", ["group_id", "user_id"])


def downgrade() -> None:
    op.drop_index("ix_user_groups_group", table_name="user_groups")
