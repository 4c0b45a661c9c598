"""How a unit of work ends: a command commits; leaving the block without commit rolls back every write, and a
transaction that only read ends with COMMIT (on PostgreSQL a ROLLBACK makes psycopg drop the connection's
prepared statements, so every read-only request would cost the next commands their prepared plans)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, update

from bpm.adapters.orm import Group, User


@pytest.fixture
def ends(context):
    """'commit' / 'rollback' for each transaction of the test's engine, in order."""
    seen: list[str] = []

    def committed(_connection):
        seen.append("commit")

    def rolled_back(_connection):
        seen.append("rollback")

    event.listen(context.engine, "commit", committed)
    event.listen(context.engine, "rollback", rolled_back)
    yield seen
    event.remove(context.engine, "commit", committed)
    event.remove(context.engine, "rollback", rolled_back)


def groups_named(context, name: str) -> int:
    with context.uow() as uow:
        return uow.session.scalar(select(func.count()).select_from(Group).where(Group.name == name))


def test_a_transaction_that_only_read_ends_with_commit_on_postgresql(context, ends):
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)) >= 0
    # SQLite transactions start with BEGIN IMMEDIATE (a write lock, counted as a write) and SQLite has no
    # prepared statements to keep: they still end with ROLLBACK.
    assert ends == (["rollback"] if context.engine.dialect.name == "sqlite" else ["commit"])


def test_a_core_write_left_uncommitted_is_rolled_back(context, users, ends):
    with context.uow() as uow:
        uow.session.execute(update(User).values(email="changed@example.com"))
    assert ends == ["rollback"]
    with context.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User)
                                  .where(User.email == "changed@example.com")) == 0


def test_flushed_and_pending_changes_left_uncommitted_are_rolled_back(context, ends):
    with context.uow() as uow:
        uow.session.add(Group(name="flushed-only", display_name=""))
        uow.flush()
    with context.uow() as uow:
        uow.session.add(Group(name="pending-only", display_name=""))
    assert groups_named(context, "flushed-only") == 0
    assert groups_named(context, "pending-only") == 0


def test_an_error_rolls_back_even_a_read(context, ends):
    with pytest.raises(RuntimeError), context.uow() as uow:
        uow.session.scalar(select(func.count()).select_from(User))
        raise RuntimeError("the command failed")
    assert ends == ["rollback"]
