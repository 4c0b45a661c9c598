"""PostgreSQL: a function that fails the statement calling it unless exactly one row matched

A command's UPDATE of its instance names the version it read; when another command changed the instance first,
the UPDATE matches no row and the command must fail as a whole. Checked in Python after the statement, that
needs the statement's result before the transaction may commit: COMMIT cannot go to the database with the
command's writes. Checked by the database (`bpm.adapters.hot_rows`: the UPDATE in a CTE, its row count passed to
`bpm_expect_one_row`), a stale version fails the statement, the transaction is aborted, and a COMMIT sent in the
same round trip is skipped. The error's SQLSTATE, BP001, is the project's own (class "BP" is not PostgreSQL's).

SQLite has nothing to add: its writes go through the ORM's flush, which checks the row counts itself.

Revision ID: 0016_update_checked_in_database
Revises: 0015_candidates_follow_task
"""

from alembic import op

revision = "0016_update_checked_in_database"
down_revision = "0015_candidates_follow_task"
branch_labels = None
depends_on = None

UP = """CREATE FUNCTION bpm_expect_one_row(matched bigint, what text) RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    IF matched <> 1 THEN
        RAISE EXCEPTION '% matched % rows, expected 1', what, matched USING ERRCODE = 'BP001';
    END IF;
    RETURN matched;
END $$"""

DOWN = "DROP FUNCTION IF EXISTS bpm_expect_one_row(bigint, text)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UP)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DOWN)
