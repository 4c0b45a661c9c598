"""The migration history must stay one line: a second head means two features' tables can drift apart."""

from alembic.script import ScriptDirectory

from bpm.adapters.db import alembic_config


def test_the_migration_history_has_exactly_one_head():
    heads = ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()
    assert len(heads) == 1, f"several migration heads {sorted(heads)}: add a merge revision"

