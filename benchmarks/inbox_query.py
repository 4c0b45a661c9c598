"""Inbox list query on PostgreSQL with a million open tasks: server-side timings and query plans.

    .venv/bin/python benchmarks/inbox_query.py --database-url postgresql+psycopg://127.0.0.1:5432/test

Creates a private database next to the one named in the URL (migrated with the project's Alembic revisions,
so the indexes measured are the shipped ones) and drops it at the end (`--keep` keeps it). Steps:
1. seed `--users` users, `--groups` groups (each user in `--groups-per-user` random groups) and `--tasks` open
   tasks with COPY: `--assigned-share` of them assigned to a random user, the rest unassigned with one random
   candidate group (a task_candidates row, which the database writes from the task row); due dates spread over
   +-30 days, 5 % without a due date;
   and `--completed-tasks` completed tasks (in completed instances, each completed by a random user, 40 % of
   them once offered to a group), then VACUUM (ANALYZE), the state autovacuum keeps a live table in;
2. for `--samples` random users, build the inbox statement exactly as the API does
   (bpm.services.tasks.inbox_statement: scope "all" = mine + my groups, sorted by due date, 50 per page) and
   run it under EXPLAIN (ANALYZE, BUFFERS): the first page, a deep page reached with the keyset cursor of
   the `--deep-row`th row, and the first page filtered by the business key of one task deep in the user's
   inbox (`?business_key=`: how an integrator or the throughput benchmark finds a case's task), the badge
   counts of the inbox page (`GET /api/v1/tasks/counts`), the first page of the claimable tab
   (`?scope=groups`), of the completed tab and of the approver's instance list (`GET /api/v1/process-instances`
   for a user who is neither admin, designer nor integrator); and, for
   `--samples` random open tasks, the first statement of completing one (its load), and for random groups the
   query of a new task's recipients (the group's active members);
3. report p50 / p95 / max of the server-side execution time (planning time separately) and print the plan
   of one sample user for both pages;
4. send the first page and the page filtered by business key as the server sends them, prepared, and time each
   execution at the client once PostgreSQL has settled on a plan, next to the same statements with the tasks'
   status bound instead of written into their text (EXPLAIN above plans each statement with its values: a
   prepared statement may run on a generic plan made without them).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import libpq_url  # noqa: E402

from bpm.adapters import hot_rows  # noqa: E402
from bpm.adapters.db import migrate  # noqa: E402
from bpm.adapters.orm import Task  # noqa: E402
from bpm.domain.model import Actor  # noqa: E402
from bpm.services.instances import InstanceFilter, list_statement  # noqa: E402
from bpm.services.notifications import _recipients_query  # noqa: E402
from bpm.services.tasks import (  # noqa: E402
    TaskQuery,
    _actor_values,
    _counts_statement,
    _cursor_for,
    _inbox_query,
    completion_query,
    inbox_statement,
)

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
NAMES = ["Manager review", "Finance check", "Director approval", "Legal review", "Quote sign-off",
         "Complaint triage", "Lead follow-up", "报价审批", "投诉处理"]
TASKS_PER_INSTANCE = 5


def main() -> None:
    args = parse_args()
    admin_url, bench_url, name = create_database(args.database_url)
    print(f"database {name}", flush=True)
    try:
        migrate(bench_url)
        seed(bench_url, args)
        report(bench_url, args)
    finally:
        if not args.keep:
            drop_database(admin_url, name)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=500)
    parser.add_argument("--groups-per-user", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--assigned-share", type=float, default=0.6)
    parser.add_argument("--completed-tasks", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--page", type=int, default=50)
    parser.add_argument("--deep-row", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--random-page-cost", type=float, help="the planner setting for the measuring session "
                        "(default: the server's; 1.1 is the usual value for data on SSD or in memory)")
    return parser.parse_args()


# --- database lifecycle ------------------------------------------------------------------------------------------


def create_database(url: str) -> tuple[str, str, str]:
    name = f"bpm_bench_inbox_{uuid.uuid4().hex[:8]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url, str(make_url(url).set(database=name).render_as_string(hide_password=False)), name


def drop_database(admin_url: str, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# --- seeding ---------------------------------------------------------------------------------------------------


def seed(url: str, args) -> None:
    rng = random.Random(args.seed)
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as connection:
        memberships = seed_identity(connection, args, rng)
        seed_tasks(connection, args, rng)
        seed_completed(connection, args, rng)
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")  # the steady state autovacuum keeps a live table in
    print(f"seeded {args.users} users, {args.groups} groups, {args.tasks} open and {args.completed_tasks} "
          f"completed tasks in "
          f"{time.perf_counter() - started:.1f} s", flush=True)
    SEEDED["memberships"] = memberships


SEEDED: dict = {}


def user_name(index: int) -> str:
    return f"user{index:05d}"


def group_name(index: int) -> str:
    return f"group{index:03d}"


def seed_identity(connection, args, rng) -> dict[str, list[str]]:
    memberships = {}
    with connection.cursor() as cursor:
        with cursor.copy("COPY groups (id, name, display_name) FROM STDIN") as copy:
            for g in range(args.groups):
                copy.write_row((g + 1, group_name(g), ""))
        with cursor.copy("COPY users (id, username, display_name, roles, active, created_at) FROM STDIN") as copy:
            for u in range(args.users):
                copy.write_row((u + 1, user_name(u), "", '["approver"]', True, NOW))
        with cursor.copy("COPY user_groups (user_id, group_id) FROM STDIN") as copy:
            for u in range(args.users):
                chosen = rng.sample(range(args.groups), args.groups_per_user)
                memberships[user_name(u)] = [group_name(g) for g in chosen]
                for g in chosen:
                    copy.write_row((u + 1, g + 1))
        cursor.execute("INSERT INTO process_definitions (key, version, name, bpmn_xml, spec_json, model, checksum, "
                       "deployed_at) VALUES ('bench', 1, 'Bench', '', '{}', '{}', 'x', %s) RETURNING id", (NOW,))
        SEEDED["definition_id"] = cursor.fetchone()[0]
    connection.commit()
    return memberships


def seed_tasks(connection, args, rng) -> None:
    """`--tasks` open tasks in running instances (see task_row)."""
    ids = instance_ids(args.tasks, rng)
    instances = ((instance_id, SEEDED["definition_id"], "bench", f"BK-{index:07d}", "running", "{}", 1,
                  user_name(rng.randrange(args.users)), NOW, None) for index, instance_id in enumerate(ids))
    copy_instances_and_tasks(connection, instances, (task_row(index, ids, args, rng) for index in range(args.tasks)))


def seed_completed(connection, args, rng) -> None:
    """The history a live server accumulates: `--completed-tasks` completed tasks in completed instances (see
    completed_task_row)."""
    ids = instance_ids(args.completed_tasks, rng)
    instances = (completed_instance_row(index, instance_id, args, rng) for index, instance_id in enumerate(ids))
    tasks = (completed_task_row(index, ids, args, rng) for index in range(args.completed_tasks))
    copy_instances_and_tasks(connection, instances, tasks)


def instance_ids(tasks: int, rng) -> list[str]:
    return [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range((tasks + TASKS_PER_INSTANCE - 1)
                                                                       // TASKS_PER_INSTANCE)]


def copy_instances_and_tasks(connection, instances, tasks) -> None:
    """COPY the instance rows, then the task rows of the (task row, candidate row or None) pairs: the database
    writes each task's candidate rows from its candidate lists (the triggers of migration 0015), as it does for
    the server, and the script checks it wrote the rows it expects."""
    candidates = []
    with connection.cursor() as cursor:
        before = cursor.execute("SELECT count(*) FROM task_candidates").fetchone()[0]
        with cursor.copy("COPY process_instances (id, definition_id, process_key, business_key, status, state_json, "
                         "version, started_by, started_at, ended_at) FROM STDIN") as copy:
            for row in instances:
                copy.write_row(row)
        with cursor.copy("COPY tasks (id, instance_id, process_key, business_key, element_id, name, status, assignee, "
                         "candidate_groups, candidate_users, due_at, priority, created_at, completed_at, completed_by) "
                         "FROM STDIN") as copy:
            for row, candidate in tasks:
                copy.write_row(row)
                if candidate:
                    candidates.append(candidate)
        written = cursor.execute("SELECT count(*) FROM task_candidates").fetchone()[0] - before
    if written != len(candidates):
        raise SystemExit(f"the database wrote {written} candidate rows for {len(candidates)} offered tasks")
    connection.commit()


def task_row(index: int, instance_ids: list[str], args, rng) -> tuple[tuple, tuple | None]:
    """An open task: `--assigned-share` assigned to a random user, the rest offered to one random group."""
    task_id = str(uuid.UUID(int=rng.getrandbits(128)))
    instance_index = index // TASKS_PER_INSTANCE
    due = None if rng.random() < 0.05 else NOW + timedelta(minutes=rng.randrange(-30 * 1440, 30 * 1440))
    assigned = rng.random() < args.assigned_share
    assignee = user_name(rng.randrange(args.users)) if assigned else None
    group = None if assigned else group_name(rng.randrange(args.groups))
    row = (task_id, instance_ids[instance_index], "bench", f"BK-{instance_index:07d}", "step", rng.choice(NAMES),
           "open", assignee, json.dumps([group] if group else []), "[]", due, rng.choice((30, 50, 50, 70, 90)), NOW,
           None, None)
    return row, ((task_id, instance_ids[instance_index], "g", group, due, True) if group else None)


def completed_instance_row(index: int, instance_id: str, args, rng) -> tuple:
    started = NOW - timedelta(minutes=rng.randrange(365 * 1440))
    return (instance_id, SEEDED["definition_id"], "bench", f"DONE-{index:07d}", "completed", "{}", 1,
            user_name(rng.randrange(args.users)), started, started + timedelta(days=1))


def completed_task_row(index: int, instance_ids: list[str], args, rng) -> tuple[tuple, tuple | None]:
    """A task completed within the last year by a random user; 40 % were offered to a group (a closed row)."""
    task_id = str(uuid.UUID(int=rng.getrandbits(128)))
    done_by = user_name(rng.randrange(args.users))
    group = group_name(rng.randrange(args.groups)) if rng.random() < 0.4 else None
    done_at = NOW - timedelta(minutes=rng.randrange(365 * 1440))
    instance_index = index // TASKS_PER_INSTANCE
    row = (task_id, instance_ids[instance_index], "bench", f"DONE-{instance_index:07d}", "step", rng.choice(NAMES),
           "completed", done_by, json.dumps([group] if group else []), "[]", done_at, 50,
           done_at - timedelta(hours=2), done_at, done_by)
    return row, ((task_id, instance_ids[instance_index], "g", group, done_at, False) if group else None)


# --- measuring -------------------------------------------------------------------------------------------------


def report(url: str, args) -> None:
    rng = random.Random(args.seed + 1)
    sample = rng.sample(sorted(SEEDED["memberships"]), args.samples)
    first, deep, by_key, counts, claimable, completed, involved = [], [], [], [], [], [], []
    prepared: dict[str, dict[str, list[float]]] = {}  # page -> form -> ms per execution, one per sampled user
    plans = {}
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        if args.random_page_cost is not None:
            connection.execute(f"SET random_page_cost = {args.random_page_cost}")
        print(f"random_page_cost {connection.execute('SHOW random_page_cost').fetchone()[0]}")
        for username in sample:
            actor = Actor(username, frozenset({"approver"}), frozenset(SEEDED["memberships"][username]))
            query = TaskQuery(limit=args.page)
            first.append(explain(connection, inbox_statement(actor, query, NOW)))
            cursor = deep_cursor(connection, actor, args)
            if cursor is None:
                continue
            deep_query = TaskQuery(limit=args.page, cursor=cursor)
            deep.append(explain(connection, inbox_statement(actor, deep_query, NOW)))
            counts.append(explain(connection, _counts_statement().params(**_actor_values(actor), now=NOW)))
            claimable.append(explain(connection, inbox_statement(actor, TaskQuery(scope="groups", limit=args.page),
                                                                 NOW)))
            done = TaskQuery(scope="completed", status="completed", limit=args.page)
            completed.append(explain(connection, inbox_statement(actor, done, NOW)))
            involved.append(explain(connection, list_statement(actor, InstanceFilter(limit=args.page))))
            keyed = TaskQuery(limit=args.page, business_key=visible_business_key(connection, actor))
            by_key.append(explain(connection, inbox_statement(actor, keyed, NOW)))
            for page, page_query in (("first page", query), ("filtered by business key", keyed)):
                for form, ms in prepared_runs(connection, actor, page_query).items():
                    prepared.setdefault(page, {}).setdefault(form, []).append(ms)
            plans.setdefault("first", (username, plan_text(connection, inbox_statement(actor, query, NOW))))
            plans.setdefault("business key", (username, plan_text(connection, inbox_statement(actor, keyed, NOW))))
            plans.setdefault("deep", (username, plan_text(connection, inbox_statement(actor, deep_query, NOW))))
        visible = visible_counts(connection, sample[:20])
        loads = completion_loads(connection, rng, args.samples)
        recipients = recipient_lookups(connection, rng, args)
    print(f"\nvisible open tasks per sampled user (mine + my groups), first 20 users: "
          f"median {statistics.median(visible):.0f}, max {max(visible)}")
    summarize("first page", first)
    summarize(f"deep page (cursor at row {args.deep_row})", deep)
    summarize("filtered by the business key of one visible task", by_key)
    summarize("the badge counts (tasks.count_tasks: one statement, seven counts)", counts)
    summarize("first page of the claimable tab (scope \"groups\")", claimable)
    summarize("first page of the completed tab (tasks I completed)", completed)
    summarize("first page of an approver's instance list (instances they started or had a task in)", involved)
    summarize("a completion's load of one open task (bpm.services.tasks.completion_query)", loads)
    summarize("a new task's recipients, the members of one group (notifications._recipients_query)", recipients)
    print("\nas the server sends them: prepared, ms per execution seen by the client (median of executions "
          f"{WARM_EXECUTIONS + 1}-{WARM_EXECUTIONS + TIMED_EXECUTIONS}, the plan PostgreSQL settled on):")
    for page, forms in prepared.items():
        print(f"  {page}: " + "; ".join(f"{form} p50 {percentile(sorted(ms), 50):.3f} ms, p95 "
                                         f"{percentile(sorted(ms), 95):.3f} ms" for form, ms in forms.items()))
    for page, (username, plan) in plans.items():
        print(f"\n--- plan, {page} page, {username} ---\n{plan}")


def sql_of(statement) -> str:
    return str(statement.compile(dialect=postgresql.dialect(),
                                 compile_kwargs={"literal_binds": True, "render_postcompile": True}))


def explain(connection, statement) -> tuple[float, float]:
    [[result]] = connection.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql_of(statement)).fetchall()
    return result[0]["Execution Time"], result[0]["Planning Time"]


WARM_EXECUTIONS, TIMED_EXECUTIONS = 8, 20
OPEN_WRITTEN = "tasks.status = 'open'"


def prepared_runs(connection, actor: Actor, query: TaskQuery) -> dict[str, float]:
    """The statement sent as the server sends it, prepared (after five executions PostgreSQL may settle on a
    generic plan, made without the values), and the same statement with the tasks' status bound instead of
    written into its text (as before orm.task_status_is): the median ms per execution of each, timed by the
    client (round trip included), after WARM_EXECUTIONS untimed ones."""
    statement, values = _inbox_query(actor, query, NOW)
    compiled = hot_rows.compiled(statement, {"groups": len(values["groups"])})  # as list_tasks sends it
    shipped, values = compiled.text, compiled.parameters(values)
    forms = {"status written (shipped)": (shipped, values),
             "status bound": (shipped.replace(OPEN_WRITTEN, "tasks.status = %(bpm_open)s::VARCHAR"),
                              {**values, "bpm_open": "open"})}
    timings = {}
    for form, (sql, parameters) in forms.items():
        for _ in range(WARM_EXECUTIONS):
            connection.execute(sql, parameters, prepare=True).fetchall()
        runs = []
        for _ in range(TIMED_EXECUTIONS):
            began = time.perf_counter()
            connection.execute(sql, parameters, prepare=True).fetchall()
            runs.append((time.perf_counter() - began) * 1000)
        timings[form] = statistics.median(runs)
    connection.execute("DEALLOCATE ALL")  # each sampled user's statements are prepared anew, as on a new connection
    return timings


def plan_text(connection, statement) -> str:
    rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql_of(statement)).fetchall()
    return "\n".join(r[0] for r in rows)


def deep_cursor(connection, actor: Actor, args) -> str | None:
    """The keyset cursor a client holds after paging down to row `--deep-row` (or the user's last row)."""
    listing = TaskQuery(limit=args.deep_row)
    rows = connection.execute(sql_of(inbox_statement(actor, listing, NOW).with_only_columns(Task.id, Task.due_at)))
    rows = rows.fetchall()
    if len(rows) < 2:
        return None
    task_id, due_at = rows[min(args.deep_row, len(rows)) - 1]
    return _cursor_for(Task(id=task_id, due_at=due_at), "due_at")


def visible_business_key(connection, actor: Actor) -> str:
    """The business key of the last task on the user's inbox by due date (an integrator's lookup of one case)."""
    listing = TaskQuery(limit=1000)
    rows = connection.execute(sql_of(inbox_statement(actor, listing, NOW).with_only_columns(Task.business_key)))
    return rows.fetchall()[-1][0]


def completion_loads(connection, rng, samples: int) -> list[tuple[float, float]]:
    """The first statement of completing a task (task, instance, definition and what else the instance has
    open), for random open tasks: its cost must not grow with the other instances' backlog."""
    task_ids = [row[0] for row in connection.execute("SELECT id FROM tasks ORDER BY id LIMIT 20000")]
    statement = completion_query()
    return [explain(connection, statement.params(task_id=task_id)) for task_id in rng.sample(task_ids, samples)]


def recipient_lookups(connection, rng, args) -> list[tuple[float, float]]:
    """The recipients query of every new task, for random candidate groups (active members, by username)."""
    groups = [group_name(index) for index in rng.sample(range(args.groups), min(args.samples, args.groups))]
    statement = _recipients_query(postgres=True)
    return [explain(connection, statement.params(users=[], groups=[group])) for group in groups]


def visible_counts(connection, usernames: list[str]) -> list[int]:
    counts = []
    for username in usernames:
        groups = SEEDED["memberships"][username]
        [[count]] = connection.execute(
            "SELECT (SELECT count(*) FROM tasks WHERE status = 'open' AND assignee = %s) + "
            "(SELECT count(*) FROM task_candidates WHERE kind = 'g' AND name = ANY(%s) AND is_open)",
            (username, groups))
        counts.append(count)
    return counts


def summarize(label: str, timings: list[tuple[float, float]]) -> None:
    execution = sorted(t[0] for t in timings)
    planning = sorted(t[1] for t in timings)
    print(f"{label}: n={len(execution)} execution p50 {percentile(execution, 50):.2f} ms, "
          f"p95 {percentile(execution, 95):.2f} ms, max {execution[-1]:.2f} ms; "
          f"planning p50 {percentile(planning, 50):.2f} ms, p95 {percentile(planning, 95):.2f} ms")


def percentile(values: list[float], pct: float) -> float:
    index = max(0, min(len(values) - 1, round(pct / 100 * len(values) + 0.5) - 1))
    return values[index]


if __name__ == "__main__":
    main()
