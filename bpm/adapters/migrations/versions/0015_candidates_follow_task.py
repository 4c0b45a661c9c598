"""candidate rows are the database's index of tasks by candidate: written, replaced and kept in step by triggers

A candidate row's `is_open` said whether its task was open, kept in step by a statement after every completion
and cancellation; the due date by another after every due-date change; and the rows themselves were written by
the projection after each new task (one more INSERT per task) and rewritten by every command that changed a
task's candidates. A claimed task stayed "open" there, so counting a caller's claimable tasks read every one of
their open candidate rows' tasks to see which were still unclaimed (17 ms per badge request for ~1,600
claimable tasks among a million open ones), and the group inbox walk stepped over claimed tasks the same way.

Now the rows follow from the task row alone, in the statement that writes the task:
- a new task gets one row per distinct name in its `candidate_groups` ("g") and `candidate_users` ("u");
- a change of either list replaces the task's rows;
- `is_open` means claimable (the task is open and nobody holds it) and, with the due date, follows every UPDATE
  of the task's status, assignee or due date, whichever statement or code path makes it.
The badge count is answered from the candidates' index alone, and a step that opens a task and closes another
sends two statements fewer.

SQLite's "move and copy" table rebuild (alembic batch mode) drops a table's triggers: a later migration that
rebuilds `tasks` that way must create them again (`create_triggers`).

Revision ID: 0015_candidates_follow_task
Revises: 0014_task_candidates_instance
"""

from alembic import op

revision = "0015_candidates_follow_task"
down_revision = "0014_task_candidates_instance"
branch_labels = None
depends_on = None

CLAIMABLE = "tasks.status = 'open' AND tasks.assignee IS NULL"
NEW_CLAIMABLE = "NEW.status = 'open' AND NEW.assignee IS NULL"
INSERT_ROWS = "INSERT INTO task_candidates (task_id, kind, name, instance_id, due_at, is_open)"

POSTGRES_UP = [
    f"""CREATE FUNCTION bpm_candidates_of_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM task_candidates WHERE task_id = NEW.id;
    END IF;
    {INSERT_ROWS}
    SELECT DISTINCT NEW.id, offered.kind, offered.name, NEW.instance_id, NEW.due_at, {NEW_CLAIMABLE}
      FROM (SELECT 'g' AS kind, value AS name FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(NEW.candidate_groups) = 'array' THEN NEW.candidate_groups ELSE '[]' END)
            UNION
            SELECT 'u', value FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(NEW.candidate_users) = 'array' THEN NEW.candidate_users ELSE '[]' END)
           ) AS offered;
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_candidates_written AFTER INSERT ON tasks FOR EACH ROW
    EXECUTE FUNCTION bpm_candidates_of_task()""",
    """CREATE TRIGGER tasks_candidates_replaced AFTER UPDATE OF candidate_groups, candidate_users ON tasks
    FOR EACH ROW WHEN (OLD.candidate_groups IS DISTINCT FROM NEW.candidate_groups
                       OR OLD.candidate_users IS DISTINCT FROM NEW.candidate_users)
    EXECUTE FUNCTION bpm_candidates_of_task()""",
    f"""CREATE FUNCTION bpm_candidates_follow_task() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_candidates SET is_open = ({NEW_CLAIMABLE}), due_at = NEW.due_at
     WHERE task_id = NEW.id
       AND (is_open IS DISTINCT FROM ({NEW_CLAIMABLE}) OR due_at IS DISTINCT FROM NEW.due_at);
    RETURN NULL;
END $$""",
    """CREATE TRIGGER tasks_candidates_follow AFTER UPDATE OF status, assignee, due_at ON tasks FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.assignee IS DISTINCT FROM NEW.assignee
          OR OLD.due_at IS DISTINCT FROM NEW.due_at)
    EXECUTE FUNCTION bpm_candidates_follow_task()""",
]

POSTGRES_DOWN = [
    "DROP TRIGGER IF EXISTS tasks_candidates_follow ON tasks",
    "DROP FUNCTION IF EXISTS bpm_candidates_follow_task()",
    "DROP TRIGGER IF EXISTS tasks_candidates_replaced ON tasks",
    "DROP TRIGGER IF EXISTS tasks_candidates_written ON tasks",
    "DROP FUNCTION IF EXISTS bpm_candidates_of_task()",
]

SQLITE_ROWS = f"""{INSERT_ROWS}
    SELECT DISTINCT NEW.id, offered.kind, offered.name, NEW.instance_id, NEW.due_at, {NEW_CLAIMABLE}
      FROM (SELECT 'g' AS kind, value AS name FROM json_each(NEW.candidate_groups)
            UNION
            SELECT 'u', value FROM json_each(NEW.candidate_users)) AS offered;"""

SQLITE_UP = [
    f"""CREATE TRIGGER tasks_candidates_written AFTER INSERT ON tasks FOR EACH ROW
BEGIN
    {SQLITE_ROWS}
END""",
    f"""CREATE TRIGGER tasks_candidates_replaced AFTER UPDATE OF candidate_groups, candidate_users ON tasks
    FOR EACH ROW WHEN OLD.candidate_groups IS NOT NEW.candidate_groups OR OLD.candidate_users IS NOT NEW.candidate_users
BEGIN
    DELETE FROM task_candidates WHERE task_id = NEW.id;
    {SQLITE_ROWS}
END""",
    f"""CREATE TRIGGER tasks_candidates_follow AFTER UPDATE OF status, assignee, due_at ON tasks FOR EACH ROW
    WHEN OLD.status IS NOT NEW.status OR OLD.assignee IS NOT NEW.assignee OR OLD.due_at IS NOT NEW.due_at
BEGIN
    UPDATE task_candidates SET is_open = ({NEW_CLAIMABLE}), due_at = NEW.due_at WHERE task_id = NEW.id;
END""",
]

SQLITE_DOWN = ["DROP TRIGGER IF EXISTS tasks_candidates_follow", "DROP TRIGGER IF EXISTS tasks_candidates_replaced",
               "DROP TRIGGER IF EXISTS tasks_candidates_written"]


def create_triggers() -> None:
    for statement in POSTGRES_UP if _postgres() else SQLITE_UP:
        op.execute(statement)


def upgrade() -> None:
    op.execute(f"UPDATE task_candidates SET is_open = EXISTS (SELECT 1 FROM tasks "
               f"WHERE tasks.id = task_candidates.task_id AND {CLAIMABLE}), "
               f"due_at = (SELECT tasks.due_at FROM tasks WHERE tasks.id = task_candidates.task_id)")
    create_triggers()


def downgrade() -> None:
    for statement in POSTGRES_DOWN if _postgres() else SQLITE_DOWN:
        op.execute(statement)
    op.execute("UPDATE task_candidates SET is_open = EXISTS (SELECT 1 FROM tasks "
               "WHERE tasks.id = task_candidates.task_id AND tasks.status = 'open')")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
