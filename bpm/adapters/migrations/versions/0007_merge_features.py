"""merge the feature branches (timers, outbox, approvals, records, integrations) into one head

Revision ID: 0007_merge_features
Revises: 0002_timers, 0003_outbox, 0004_approvals, 0005_records, 0006_integrations
"""

revision = "0007_merge_features"
down_revision = ("0002_timers", "0003_outbox", "0004_approvals", "0005_records", "0006_integrations")
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to change: the branches touch disjoint tables; this revision only joins them."""


def downgrade() -> None:
    """Nothing to undo."""
