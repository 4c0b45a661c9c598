"""PostgreSQL: the inbox's statements keep their partial indexes in a prepared statement's generic plan.

The server sends its statements prepared (psycopg prepares a statement after five uses, bpm.adapters.hot_rows at
once), and after five executions PostgreSQL may run a prepared statement on a generic plan, one made without the
values. The partial indexes of `tasks` (ix_tasks_open_assignee_due and ix_tasks_open_business_key, WHERE status =
'open'; ix_tasks_completed_by, WHERE status = 'completed') serve such a plan only when the statement's text names
the status: with the status bound, the planner cannot prove the index's predicate, and either plans every execution
anew or, on the generic plan, reads every open task. Everything here is rolled back, statistics included."""

from datetime import timedelta

import psycopg
import pytest
from conftest import START
from psycopg import sql
from sqlalchemy import create_engine, text

from bpm.adapters import hot_rows
from bpm.domain.model import Actor
from bpm.services import tasks

ALICE = Actor("alice", frozenset({"approver"}), frozenset({"team-leads"}), None)

CASES = {  # the inbox query the API builds -> the partial index its generic plan must read
    "by business key": (tasks.TaskQuery(business_key="case-17"), "ix_tasks_open_business_key"),
    "mine": (tasks.TaskQuery(scope="mine"), "ix_tasks_open_assignee_due"),
}


def seed_tasks(connection) -> None:
    """3,000 open tasks (a third assigned to alice or others, the rest offered to groups) and 3,000 completed ones,
    with statistics: enough rows that reading every open task costs the planner more than an index."""
    connection.execute(text(
        "INSERT INTO process_definitions (key, version, name, bpmn_xml, spec_json, model, checksum, deployed_at) "
        "VALUES ('plans', 1, 'Plans', '', '{}', '{}', 'x', now())"))
    connection.execute(text(
        "INSERT INTO process_instances (id, definition_id, process_key, status, state_json, version, started_at) "
        "SELECT 'plans-instance', id, 'plans', 'running', '{}', 1, now() FROM process_definitions "
        "WHERE key = 'plans'"))
    connection.execute(text(
        "INSERT INTO tasks (id, instance_id, process_key, business_key, element_id, name, status, assignee, "
        "candidate_groups, candidate_users, priority, created_at, due_at, completed_by, completed_at) "
        "SELECT 'plans-' || n, 'plans-instance', 'plans', 'case-' || n, 'step', 'Step', "
        "CASE WHEN n % 2 = 0 THEN 'open' ELSE 'completed' END, "
        "CASE WHEN n % 6 = 0 THEN 'alice' WHEN n % 6 = 2 THEN 'user-' || n END, "
        "jsonb_build_array(CASE WHEN n % 6 = 4 THEN 'team-leads' ELSE 'group-' || n % 50 END), "
        "'[]'::jsonb, 50, now(), :start + n * interval '1 minute', "
        "CASE WHEN n % 2 = 1 THEN 'user-' || n % 40 END, CASE WHEN n % 2 = 1 THEN now() END "
        "FROM generate_series(1, 6000) AS n"), {"start": START + timedelta(days=1)})
    connection.execute(text("ANALYZE tasks, task_candidates"))


def generic_plan(dbapi_connection, query: tasks.TaskQuery) -> str:
    """EXPLAIN of the query's statement, prepared as the server prepares it, on a generic plan."""
    statement, values = tasks._inbox_query(ALICE, query, START)
    compiled = hot_rows.compiled(statement, {"groups": len(values["groups"])})
    numbered, names = hot_rows._numbered(compiled.text)
    bound = compiled.parameters(values)
    dbapi_connection.execute(b"PREPARE inbox_page AS " + numbered)
    try:
        dbapi_connection.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        arguments = sql.SQL(", ").join(sql.Literal(bound[name]) for name in names)
        explained = dbapi_connection.execute(sql.SQL("EXPLAIN EXECUTE inbox_page ({})").format(arguments))
        return "\n".join(row[0] for row in explained)
    finally:
        dbapi_connection.execute("DEALLOCATE inbox_page")


@pytest.mark.parametrize("case", list(CASES))
def test_an_inbox_statement_reads_its_partial_index_on_a_generic_plan(postgres_url, case):
    query, index = CASES[case]
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            seed_tasks(connection)
            dbapi_connection = connection.connection.dbapi_connection
            assert isinstance(dbapi_connection, psycopg.Connection)
            plan = generic_plan(dbapi_connection, query)
            transaction.rollback()
    finally:
        engine.dispose()
    assert index in plan, plan


def test_only_known_statuses_are_written_into_a_statement():
    from bpm.adapters.orm import task_status_is

    assert "'open'" in str(task_status_is("open").compile())
    with pytest.raises(ValueError, match="unknown task status"):
        task_status_is("open' OR '1'='1")
