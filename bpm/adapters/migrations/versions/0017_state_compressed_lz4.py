"""PostgreSQL: an instance's state and its archive chunks are compressed with lz4 instead of pglz

Every command that moves an instance writes its whole state (`process_instances.state_json`, 3.7 KB for the
3-approval process, 48 KB for a 100-way parallel multi-instance). PostgreSQL compresses a text value of more than
about 2 KB before it stores it, with pglz unless the column says otherwise, and decompresses it on every read.
lz4 does both in a fraction of pglz's CPU for a slightly larger value (BENCHMARKS.md, "State compression").
Values already stored keep their compression until they are written again, which for a running instance is its
next step; both kinds are read back the same.

Needs PostgreSQL 14 or later built with lz4 (the Debian and Docker builds are). Without it the columns keep
pglz, and the migration says so instead of failing. SQLite stores text as it is: nothing to do there.

Revision ID: 0017_state_compressed_lz4
Revises: 0016_update_checked_in_database
"""

from alembic import op

revision = "0017_state_compressed_lz4"
down_revision = "0016_update_checked_in_database"
branch_labels = None
depends_on = None

COLUMNS = (("process_instances", "state_json"), ("instance_archive", "tasks"))


def _set_compression(method: str) -> str:
    alters = "\n".join(f"        ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method};"
                       for table, column in COLUMNS)
    return f"""DO $$
BEGIN
    IF current_setting('server_version_num')::int < 140000 THEN
        RAISE NOTICE 'PostgreSQL before 14 compresses with pglz only: the state columns keep it';
        RETURN;
    END IF;
    BEGIN
{alters}
    EXCEPTION WHEN feature_not_supported THEN
        RAISE NOTICE 'this PostgreSQL was built without %: the state columns keep their compression', '{method}';
    END;
END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_set_compression("lz4"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_set_compression("pglz"))
