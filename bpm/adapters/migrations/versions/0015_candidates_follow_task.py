"""candidate rows follow their task in the database: open means claimable, due dates move with the task

A candidate row's `is_open` said whether its task was open, kept in step by a statement after every completion
and cancellation; the due date by another after every due-date change. A claimed task stayed "open" there, so
counting a caller's claimable tasks read every one of their open candidate rows' tasks to see which were still
unclaimed (17 ms per badge request for ~1,600 claimable tasks among a million open ones), and the group inbox walk
stepped over claimed tasks the same way.

Now `is_open` means claimable: the task is open and nobody holds it. Triggers keep it, and the due date, in step
with the task on every UPDATE of the task, whichever statement or code path makes it, and set both from the task
when a candidate row is inserted. The badge count is answered from the candidates' index alone, and a completion
sends one statement fewer.

SQLite's "move and copy" table rebuild (alembic batch mode) drops a table's triggers: a later migration that
rebuilds `tasks` or `task_candidates` that way must create them again (`create_triggers`).

Revision ID: 0015_candidates_follow_task
Revises: 0014_task_candidates_instance
"""

from alembic import op

revision = "0015_candidates_follow_task"
down_revision = "0014_task_candidates_instance"
branch_labels = None
depends_on = None

CLAIMABLE = "tasks.status = 'open' AND tasks.assignee IS NULL"

POSTGRES_UP = [
    """CREATE FUNCTION bpm_candidates_follow_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_candidates SET is_open = (NEW.status = 'open' AND NEW.assignee IS NULL), due_at = NEW.due_at
     WHERE task_id = NEW.id
       AND (is_open IS DISTINCT FROM (NEW.status = 'open' AND NEW.assignee IS NULL)
            OR due_at IS DISTINCT FROM NEW.due_at);
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_candidates_follow AFTER UPDATE OF status, assignee, due_at ON tasks FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee IS DISTINCT FROM NEW.assignee
          OR OLD.due_at IS DISTINCT FROM NEW.due_at)
    EXECUTE FUNCTION bpm_candidates_follow_task()""",
    f"""CREATE FUNCTION bpm_candidate_from_task() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    claimable boolean;
    due timestamptz;
BEGIN
    SELECT {CLAIMABLE}, tasks.due_at INTO claimable, due FROM tasks WHERE tasks.id = NEW.task_id;
    IF FOUND THEN
        NEW.is_open := claimable;
        NEW.due_at := due;
    END IF;
    RETURN NEW;
END $$""",
    """CREATE TRIGGER task_candidates_from_task BEFORE INSERT ON task_candidates FOR EACH ROW
    EXECUTE FUNCTION bpm_candidate_from_task()""",
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS task_candidates_from_task ON task_candidates",
    "DROP FUNCTION IF EXISTS bpm_candidate_from_task()",
    "DROP TRIGGER IF EXISTS tasks_candidates_follow ON tasks",
    "DROP FUNCTION IF EXISTS bpm_candidates_follow_task()",
]

SQLITE_UP = [
    """CREATE TRIGGER tasks_candidates_follow AFTER UPDATE OF status, assignee, due_at ON tasks FOR EACH ROW
    WHEN OLD.status IS NOT NEW.status OR OLD.assignee IS NOT NEW.assignee OR OLD.due_at IS NOT NEW.due_at
BEGIN
    UPDATE task_candidates SET is_open = (NEW.status = 'open' AND NEW.assignee IS NULL), due_at = NEW.due_at
     WHERE task_id = NEW.id;
END""",
    f"""CREATE TRIGGER task_candidates_from_task AFTER INSERT ON task_candidates FOR EACH ROW
BEGIN
    UPDATE task_candidates
       SET is_open = EXISTS (SELECT 1 FROM tasks WHERE tasks.id = NEW.task_id AND {CLAIMABLE}),
           due_at = (SELECT tasks.due_at FROM tasks WHERE tasks.id = NEW.task_id)
     WHERE task_id = NEW.task_id AND kind = NEW.kind AND name = NEW.name
       AND EXISTS (SELECT 1 FROM tasks WHERE tasks.id = NEW.task_id);
END""",
]

SQLITE_DOWN = ["DROP TRIGGER IF EXISTS task_candidates_from_task", "DROP TRIGGER IF EXISTS tasks_candidates_follow"]


def create_triggers() -> None:
    for statement in POSTGRES_UP if _postgres() else SQLITE_UP:
        op.execute(statement)


def upgrade() -> None:
    op.execute(f"UPDATE task_candidates SET is_open = EXISTS (SELECT 1 FROM tasks "
               f"WHERE tasks.id = task_candidates.task_id AND {CLAIMABLE})")
    create_triggers()


def downgrade() -> None:
    for statement in POSTGRES_DOWN if _postgres() else SQLITE_DOWN:
        op.execute(statement)
    op.execute("UPDATE task_candidates SET is_open = EXISTS (SELECT 1 FROM tasks "
               "WHERE tasks.id = task_candidates.task_id AND tasks.status = 'open')")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
